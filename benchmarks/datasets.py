"""Benchmark: making datasets of each benchmark, and running a query set over them locally.

Generation throughput of TPC-H (tpchgen-cli) and TPC-DS (tpcgen-cli) at two scale factors, the
whole `dfbench.generate_*` call timed (generation, layout, sha256 of every file, manifest), on
this machine's cores; ClickBench's download timed against a loopback stand-in serving synthetic
partitions (this machine reaches no public host, so the number is dfbench's own cost of
download, verification and checksums, not a network's). With `--tpcds-queries DIR` (e.g. a
datafusion-distributed checkout's testdata/tpcds/queries) the 99 TPC-DS queries run on the local
worker at the smaller scale factor; with `--clickbench-queries DIR` the ClickBench queries run
over the sample. The result is written into BENCHMARKS.md between the `<!-- datasets:start -->`
and `<!-- datasets:end -->` markers.

    .venv/bin/python benchmarks/datasets.py [--sf 0.1,1] [--tpcds-queries DIR] [--clickbench-queries DIR] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from report import write_section  # benchmarks/ is on sys.path: scripts run as files

from dfbench.data import download_clickbench, generate_tpcds, generate_tpch
from dfbench.runner import bench_local
from dfbench_testing.clickbench import hits_server, write_hits_partition

GENERATORS = {"tpch": generate_tpch, "tpcds": generate_tpcds}
PARTITIONS = 4
CLICKBENCH_SAMPLE = (8, 200_000)  # partitions, rows each


def _run_queries(dataset: str, queries: Path, data_dir: Path) -> str:
    started = time.perf_counter()
    run = bench_local(dataset=dataset, queries_dir=queries, iterations=1, data_dir=data_dir, progress=False)
    wall = time.perf_counter() - started
    ok = [q for q in run.queries if q.status == "ok"]
    failed = [f"{q.id} ({q.status})" for q in run.queries if q.status != "ok"]
    total = sum(q.p50 or 0 for q in ok)
    return (f"`{dataset}`: {len(ok)} of {len(run.queries)} queries ok, sum of p50 {total / 1000:.1f} s, "
            f"{wall:.1f} s wall for the run (a warm-up and one iteration each)"
            + (f"; failed: {', '.join(failed)}" if failed else "") + ".")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sf", default="0.1,1", help="two scale factors, comma-separated")
    parser.add_argument("--tpcds-queries", type=Path)
    parser.add_argument("--clickbench-queries", type=Path)
    parser.add_argument("--no-write", action="store_true", help="print the section, leave BENCHMARKS.md alone")
    args = parser.parse_args()
    scale_factors = [s.strip() for s in args.sf.split(",") if s.strip()]
    rows = []
    notes = []
    with tempfile.TemporaryDirectory(prefix="dfbench-datasets-") as scratch:
        data_dir = Path(scratch) / "data"
        for benchmark, generate in GENERATORS.items():
            for sf in scale_factors:
                started = time.perf_counter()
                dataset = generate(sf, partitions=PARTITIONS, data_dir=data_dir, progress=False)
                seconds = time.perf_counter() - started
                size = dataset.manifest.total_bytes
                rows.append(f"| {benchmark} | {sf} | {len(dataset.manifest.tables)} | {len(dataset.manifest.files)} "
                            f"| {size / 1e6:,.1f} | {sum(t.rows for t in dataset.manifest.tables.values()):,} "
                            f"| {seconds:.1f} | {size / 1e6 / seconds:,.1f} |")
                print(rows[-1], flush=True)
        if args.tpcds_queries:
            notes.append(_run_queries(f"tpcds_sf{scale_factors[0]}", args.tpcds_queries, data_dir))
        count, per = CLICKBENCH_SAMPLE
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
        if args.clickbench_queries:
            notes.append(_run_queries(f"clickbench_0-{count}", args.clickbench_queries, data_dir))
    if not args.tpcds_queries:
        notes.append("The TPC-DS queries were not run: give `--tpcds-queries DIR` (a datafusion-distributed "
                     "checkout's testdata/tpcds/queries; dfbench bundles only TPC-H's set).")
    if not args.clickbench_queries:
        notes.append("The ClickBench queries were not run: give `--clickbench-queries DIR`.")
    body = "\n".join([
        "## Datasets: generation and download throughput",
        "",
        f"`.venv/bin/python benchmarks/datasets.py --sf {args.sf}` on {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}; {PARTITIONS} partitions; the whole "
        "call timed (generation or download, layout, sha256 of every file, manifest).",
        "",
        "| benchmark | scale | tables | files | MB | rows | seconds | MB/s |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        *notes,
    ])
    print(body)
    write_section("datasets", body)


if __name__ == "__main__":
    main()
