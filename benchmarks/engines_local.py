"""Benchmark: DataFusion (dfbench's local worker) against Spark (local mode) on this machine, TPC-H.

The `dfbench bench --engines datafusion,spark` path, end to end: the dataset generated when
missing, both engines started by dfbench on loopback, the 22 queries run on each in turn (a
warm-up, then the timed iterations), every query's rows compared between the engines, and
upstream's totals table (the sum of per-query p50 over the queries both completed, and Spark's
ratio to DataFusion). The script fails when a query fails or the rows differ. The result goes to
BENCHMARKS.md between the `<!-- engines-local:start -->` and `<!-- engines-local:end -->` markers.

    .venv/bin/python benchmarks/engines_local.py [--sf 1] [--iterations 3] [--data-dir benchmarks/data] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from dfbench import __version__
from dfbench.comparison.engines import render_totals
from dfbench.engine_bench import bench_engines
from report import write_section  # benchmarks/ is on sys.path: scripts run as files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sf", default="1")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--data-dir", default="benchmarks/data")
    parser.add_argument("--no-write", action="store_true", help="print the section, leave BENCHMARKS.md alone")
    args = parser.parse_args()
    load_before = os.getloadavg()
    started = time.monotonic()
    run = bench_engines(engines="datafusion,spark", scale_factor=args.sf, iterations=args.iterations,
                        data_dir=args.data_dir)
    wall = time.monotonic() - started
    load_after = os.getloadavg()
    problems = [f"{side.name} {outcome.id}: {outcome.status}" for side in run.sides
                for outcome in side.outcomes.values() if outcome.status != "ok"]
    same = sum(1 for found in run.rows_checked.values() if found and all(d is None for d in found.values()))
    rows = "\n".join(
        f"| {query} | " + " | ".join(
            "-" if (value := run.totals.p50_ms[query][engine]) is None else f"{value:,.0f}"
            for engine in run.totals.engines) + " |"
        for query in run.totals.queries)
    versions = ", ".join(f"{side.name} = {side.info.get('engine')}" for side in run.sides)
    spark_master = next((side.info.get("master") for side in run.sides if side.kind == "spark"), None)
    text = f"""## Engines on this machine: DataFusion vs Spark, TPC-H SF{args.sf}

`make bench-engines SF={args.sf} ITERATIONS={args.iterations}` (`.venv/bin/python benchmarks/engines_local.py --sf
{args.sf} --iterations {args.iterations}`, i.e. `dfbench bench --engines datafusion,spark --sf {args.sf} --iterations
{args.iterations}`),
{time.strftime('%Y-%m-%d')}, one run of {wall / 60:.1f} minutes on a {os.cpu_count()}-CPU machine shared with other
work (load average {load_before[0]:.1f} before, {load_after[0]:.1f} after: the numbers are this busy machine's,
both engines alike since they ran in turn per query, not a property of either engine). Python
{platform.python_version()}, dfbench {__version__}; {versions}; Spark master {spark_master}.
Each query: a warm-up, then {args.iterations} timed iterations per engine; DataFusion's time is
the local worker's (plan, execute, stream and count), Spark's the service's (plan, execute into
the noop sink with a row count). Rows: {same} of {len(run.rows_checked)} queries returned the same
rows on both engines.

{render_totals([run.totals], "markdown").strip()}

p50 per query (ms):

| query | {' | '.join(run.totals.engines)} |
|---|{'---:|' * len(run.totals.engines)}
{rows}

This is not upstream's comparison (a 12-instance cluster reading S3, DataFusion Distributed): one
process per engine on one small machine, DataFusion from PyPI against Spark in local mode (two
cores, shuffle partitions at twice the cores). Spark's times include its planning and its
scheduling of stages and tasks for every query; how much of them is not measured here."""
    print(text)
    if problems:
        raise SystemExit("failed: " + "; ".join(problems))
    if not args.no_write:
        write_section("engines-local", text)


if __name__ == "__main__":
    main()
