"""Benchmark: making datasets of each benchmark, and running their query sets over them locally.

Generation throughput of TPC-H (tpchgen-cli), sorted TPC-H (tpchgen-cli's files rewritten with
their sort keys in the footers) and TPC-DS (tpcgen-cli) at two scale factors, the
whole `dfbench.generate_*` call timed (generation, layout, sha256 of every file, manifest), on
this machine's cores; ClickBench's download timed against a loopback stand-in serving synthetic
partitions (this machine reaches no public host, so the number is dfbench's own cost of
download, verification and checksums, not a network's). Then the bundled TPC-DS queries (all 99)
run on the local worker at the smaller scale factor, and the bundled ClickBench queries (q0-q42)
over the sample, each query's row count checked against DuckDB's for the same text on the same
files: a failed query or a differing count fails the script. `--tpcds-queries DIR` /
`--clickbench-queries DIR` run a folder of qN.sql files instead (e.g. a datafusion-distributed
checkout's testdata/<benchmark>/queries). `--quick` (what the test suite runs, kept short) makes
TPC-H at SF 0.01 only and a two-partition ClickBench sample, and runs two ClickBench queries. The result is written into BENCHMARKS.md
between the `<!-- datasets:start -->` and `<!-- datasets:end -->` markers.

    .venv/bin/python benchmarks/datasets.py [--sf 0.1,1] [--tpcds-queries DIR] [--clickbench-queries DIR] [--quick] [--no-write]
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import tempfile
import time
from pathlib import Path

from dfbench.bench.queries import select_queries
from dfbench.data import download_clickbench, generate_tpcds, generate_tpch
from dfbench.runner import bench_local
from dfbench_testing.clickbench import hits_server, write_hits_partition
from dfbench_testing.reference import reference_rows
from report import write_section  # benchmarks/ is on sys.path: scripts run as files

GENERATORS = {"tpch": generate_tpch, "tpch sorted": functools.partial(generate_tpch, sorted=True),
              "tpcds": generate_tpcds}
PARTITIONS = 4
CLICKBENCH_SAMPLE = (8, 200_000)  # partitions, rows each
QUICK_CLICKBENCH_SAMPLE = (2, 1_000)
QUICK_CLICKBENCH_QUERIES = ["q0", "q42"]
SLOWEST_SHOWN = 5


def _run_queries(dataset: str, queries_dir: Path | None, data_dir: Path, only: list[str] | None,
                 problems: list[str]) -> str:
    """One run of a dataset's queries (a warm-up and one iteration each), its row counts checked
    against DuckDB's; a failed query or a differing count goes to ``problems``."""
    started = time.perf_counter()
    run = bench_local(dataset=dataset, queries=only, queries_dir=queries_dir, iterations=1, data_dir=data_dir,
                      progress=False)
    wall = time.perf_counter() - started
    expected = reference_rows(data_dir / dataset, select_queries(dataset, only, queries_dir))
    ok = [q for q in run.queries if q.status == "ok"]
    problems += [f"{dataset} {q.id}: {q.status}" for q in run.queries if q.status != "ok"]
    problems += [f"{dataset} {q.id}: {q.rows} rows, DuckDB {expected[q.id]}" for q in ok if q.rows != expected[q.id]]
    slowest = sorted(ok, key=lambda q: q.p50 or 0, reverse=True)[:SLOWEST_SHOWN]
    source = "bundled" if queries_dir is None else f"from {queries_dir.name}/"
    return (f"`{dataset}`: {len(ok)} of {len(run.queries)} {source} queries ok, each with DuckDB's row count; "
            f"sum of p50 {sum(q.p50 or 0 for q in ok) / 1000:.1f} s, {wall:.1f} s wall for the run (a warm-up "
            f"and one iteration each); slowest p50: "
            + ", ".join(f"{q.id} {(q.p50 or 0) / 1000:.2f} s" for q in slowest) + ".")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sf", default="0.1,1", help="two scale factors, comma-separated")
    parser.add_argument("--tpcds-queries", type=Path, help="a folder of qN.sql files instead of the bundled set")
    parser.add_argument("--clickbench-queries", type=Path, help="a folder of qN.sql files instead of the bundled set")
    parser.add_argument("--quick", action="store_true", help="TPC-H SF 0.01, a small sample, two queries")
    parser.add_argument("--no-write", action="store_true", help="print the section, leave BENCHMARKS.md alone")
    args = parser.parse_args()
    scale_factors = ["0.01"] if args.quick else [s.strip() for s in args.sf.split(",") if s.strip()]
    count, per = QUICK_CLICKBENCH_SAMPLE if args.quick else CLICKBENCH_SAMPLE
    started_load = os.getloadavg()[0]
    rows = []
    notes = []
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="dfbench-datasets-") as scratch:
        data_dir = Path(scratch) / "data"
        for benchmark, generate in GENERATORS.items():
            if args.quick and benchmark != "tpch":
                continue
            for sf in scale_factors:
                started = time.perf_counter()
                dataset = generate(sf, partitions=PARTITIONS, data_dir=data_dir, progress=False)
                seconds = time.perf_counter() - started
                size = dataset.manifest.total_bytes
                rows.append(f"| {benchmark} | {sf} | {len(dataset.manifest.tables)} | {len(dataset.manifest.files)} "
                            f"| {size / 1e6:,.1f} | {sum(t.rows for t in dataset.manifest.tables.values()):,} "
                            f"| {seconds:.1f} | {size / 1e6 / seconds:,.1f} |")
                print(rows[-1], flush=True)
        if not args.quick:
            notes.append(_run_queries(f"tpcds_sf{scale_factors[0]}", args.tpcds_queries, data_dir, None, problems))
        public = Path(scratch) / "public"
        public.mkdir()
        for n in range(count):
            write_hits_partition(public / f"hits_{n}.parquet", n, per)
        with hits_server(public) as (url, _):
            started = time.perf_counter()
            sample = download_clickbench(f"0-{count}", data_dir, url=url, progress=False)
            seconds = time.perf_counter() - started
        size = sample.manifest.total_bytes
        rows.append(f"| clickbench (synthetic, loopback) | {count} partitions | 1 | {count} | {size / 1e6:,.1f} "
                    f"| {count * per:,} | {seconds:.1f} | {size / 1e6 / seconds:,.1f} |")
        notes.append(_run_queries(f"clickbench_0-{count}", args.clickbench_queries, data_dir,
                                  QUICK_CLICKBENCH_QUERIES if args.quick else None, problems))
    body = "\n".join([
        "## Datasets: generation and download throughput, and the bundled query sets",
        "",
        (f"`.venv/bin/python benchmarks/datasets.py {'--quick' if args.quick else f'--sf {args.sf}'}` on "
        f"{os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}, load average {started_load:.1f} at the "
        f"start and {os.getloadavg()[0]:.1f} at the end (the machine is shared); {PARTITIONS} partitions; the whole "
        "call timed (generation or download, layout, sha256 of every file, manifest; for ClickBench also "
        "EventDate's rewrite to a date)."),
        "",
        "| benchmark | scale | tables | files | MB | rows | seconds | MB/s |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        ("Queries on the local worker (DataFusion in one process), each query's row count compared with "
        "DuckDB's for the same text on the same files. ClickBench's sample is synthetic (the stand-in's "
        "values), so its timings say little about the real set; many of its queries match no row there."),
        "",
        *notes,
    ])
    print(body)
    if problems:
        raise SystemExit("query check failed: " + "; ".join(problems))
    write_section("datasets", body)


if __name__ == "__main__":
    main()
