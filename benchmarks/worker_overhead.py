"""The local worker's HTTP overhead per query: what a query costs through the worker, minus what
the same query costs run in-process with DataFusion.

Setup: one small parquet table ``t`` (200,000 rows, one file) in a temporary folder. The worker is
``python -m dfbench.worker.local`` on 127.0.0.1 (a subprocess, as ``dfbench bench`` runs it),
reached with the runner's own client (:class:`dfbench.worker.client.WorkerClient`, one urllib request
per query, as a benchmark run sends them). In-process: a ``SessionContext()`` like the worker's,
the table created with the same ``CREATE EXTERNAL TABLE`` statement, each query planned with
``ctx.sql`` and its result streamed and counted as the worker does, timed with ``perf_counter``.

Per query, REPS interleaved pairs (the order within a pair alternates) after a warm-up. Per pair:

* round-trip − in-process: the client's wall time of the HTTP request minus the in-process time
  of the same query in the same pair. This is the overhead of going through the worker.
* worker elapsed_ms − in-process: what the worker reports (the number result files record) minus
  the in-process time, i.e. whether the recorded timing matches DataFusion run directly.
* round-trip − worker elapsed_ms: the HTTP-only part (same request), never in the recorded time.

Goal: median round-trip − in-process overhead under 5 ms. The result is written into
BENCHMARKS.md between ``<!-- overhead:start -->`` and ``<!-- overhead:end -->``.

    .venv/bin/python benchmarks/worker_overhead.py [--reps 300] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import datafusion
import pyarrow as pa
import pyarrow.parquet as pq
from datafusion import SessionContext

from dfbench.bench.settings import table_sql
from dfbench.worker.client import WorkerClient
from dfbench.worker.process import LocalWorkerProcess
from report import write_section  # benchmarks/ is on sys.path: scripts run as files

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
START, END = "<!-- overhead:start -->", "<!-- overhead:end -->"
COMMAND = "make bench-overhead"
GOAL_MS = 5.0
ROWS = 200_000
WARMUP = 20
QUERIES = {
    "count(*)": "SELECT count(*) FROM t",
    "group by (10 groups)": "SELECT k, sum(v) AS s, count(*) AS n FROM t GROUP BY k ORDER BY k",
}


def make_table(folder: Path) -> Path:
    table = folder / "t"
    table.mkdir()
    keys = pa.array([i % 10 for i in range(ROWS)], type=pa.int64())
    values = pa.array([float(i % 997) * 0.5 for i in range(ROWS)], type=pa.float64())
    pq.write_table(pa.table({"k": keys, "v": values}), table / "part-0.parquet")
    return table


def in_process(ctx: SessionContext, sql: str) -> tuple[float, int]:
    """The worker's execution path without HTTP: plan, stream, count (ms, rows)."""
    start = time.perf_counter()
    count = 0
    for batch in ctx.sql(sql).execute_stream():
        count += batch.to_pyarrow().num_rows
    return (time.perf_counter() - start) * 1000, count


def through_worker(client: WorkerClient, sql: str) -> tuple[float, float, int]:
    """(client round-trip ms, worker elapsed_ms, rows)."""
    start = time.perf_counter()
    answer = client.query(sql + ";")
    return (time.perf_counter() - start) * 1000, float(answer["elapsed_ms"]), int(answer["count"])


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def measure(reps: int) -> dict[str, dict[str, list[float]]]:
    samples: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="dfbench-overhead-") as tmp:
        table = make_table(Path(tmp))
        ctx = SessionContext()  # as LocalWorker's session: defaults
        for statement in table_sql("t", str(table)).split(";\n"):
            ctx.sql(statement.rstrip(";")).collect()
        with LocalWorkerProcess(data_dir=tmp) as worker:
            assert worker.url is not None and worker.url.startswith("http://127.0.0.1:")
            client = WorkerClient(worker.url)
            client.query(table_sql("t", str(table)))
            for name, sql in QUERIES.items():
                runs: dict[str, list[float]] = {"rtt": [], "elapsed": [], "inproc": []}
                for i in range(WARMUP + reps):
                    if i % 2 == 0:
                        rtt, elapsed, rows_http = through_worker(client, sql)
                        local, rows_local = in_process(ctx, sql)
                    else:
                        local, rows_local = in_process(ctx, sql)
                        rtt, elapsed, rows_http = through_worker(client, sql)
                    if rows_http != rows_local:
                        raise SystemExit(f"{name}: {rows_http} rows through the worker, {rows_local} in-process")
                    if i >= WARMUP:
                        runs["rtt"].append(rtt)
                        runs["elapsed"].append(elapsed)
                        runs["inproc"].append(local)
                samples[name] = runs
    return samples


def section(samples: dict[str, dict[str, list[float]]], reps: int, seconds: float) -> str:
    today = datetime.date.today().isoformat()
    lines = [
        START,
        "## Local worker: HTTP overhead per query",
        "",
        (f"Produced by `{COMMAND}` (`benchmarks/worker_overhead.py`) on {today}, all numbers from one run "
        f"({seconds:.0f} s). Machine: {os.cpu_count()} CPUs, {platform.machine()}, Python "
        f"{platform.python_version()}, datafusion {datafusion.__version__}."),
        "",
        (f"One parquet table `t` ({ROWS:,} rows, one file, temporary folder). The worker is "
        "`python -m dfbench.worker.local` on 127.0.0.1 (a subprocess, as `dfbench bench` runs it), reached "
        "with the runner's `WorkerClient` (one urllib request per query). In-process: a default "
        "`SessionContext` with the same `CREATE EXTERNAL TABLE`, each query planned and its result streamed "
        f"and counted as the worker does. {reps} interleaved pairs per query (order alternating within "
        f"pairs) after {WARMUP} unrecorded ones; every difference is taken within a pair (the same request "
        "for round-trip − elapsed_ms). Times in ms."),
        "",
        ("| query | in-process p50 | worker elapsed_ms p50 | round-trip p50 "
        "| round-trip − in-process p50 / p95 | elapsed_ms − in-process p50 / p95 "
        "| round-trip − elapsed_ms p50 / p95 |"),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    overheads = {}
    for name, runs in samples.items():
        rtt, elapsed, local = runs["rtt"], runs["elapsed"], runs["inproc"]
        over = [a - b for a, b in zip(rtt, local, strict=True)]
        recorded = [a - b for a, b in zip(elapsed, local, strict=True)]
        http_only = [a - b for a, b in zip(rtt, elapsed, strict=True)]
        overheads[name] = (statistics.median(over), p95(over))
        lines.append(
            f"| `{QUERIES[name]}` | {statistics.median(local):.2f} | {statistics.median(elapsed):.2f} "
            f"| {statistics.median(rtt):.2f} | **{statistics.median(over):.2f}** / {p95(over):.2f} "
            f"| {statistics.median(recorded):.2f} / {p95(recorded):.2f} "
            f"| {statistics.median(http_only):.2f} / {p95(http_only):.2f} |")
    worst = max(m for m, _ in overheads.values())
    worst_p95 = max(p for _, p in overheads.values())
    lines += [
        "",
        (f"Goal: median overhead (round-trip − in-process) under {GOAL_MS:g} ms for every query — "
        f"worst median {worst:.2f} ms: **{'met' if worst < GOAL_MS else 'NOT met'}**. "
        f"At p95 (stricter than the goal): worst {worst_p95:.2f} ms, "
        f"{'also under' if worst_p95 < GOAL_MS else 'NOT under'} {GOAL_MS:g} ms."),
        "",
        ("Reading the columns: round-trip − elapsed_ms is what HTTP, JSON and the worker's request "
        "handling (including rendering the plan text, which the worker does after its clock stops) add "
        "to a query; it never enters result files, which record elapsed_ms. elapsed_ms − in-process is "
        "how far the recorded time is from DataFusion run directly in one process (same work, another "
        "process and its thread pool). Loopback only: a worker reached through a tunnel or a VPN adds the "
        "network's round trip to the round-trip column, not to elapsed_ms."),
        END,
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=300, help="recorded pairs per query (default 300)")
    parser.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md alone")
    args = parser.parse_args()
    started = time.monotonic()
    samples = measure(args.reps)
    text = section(samples, args.reps, time.monotonic() - started)
    print(text.removeprefix(START + "\n").removesuffix("\n" + END))
    if not args.no_write:
        write_section("overhead", text.removeprefix(START).removesuffix(END))
        print(f"\nwrote {BENCHMARKS_MD.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
