"""The local worker against real HTTP on loopback: the contract of ARCHITECTURE.md §5."""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import datafusion
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from dfbench.sql import split_statements
from dfbench.worker.local import serve
from dfbench.worker.process import LocalWorkerProcess

NOTES = ["plain", "a;b", "it's", "-- not a comment", "x"]
REGIONS = ["AFRICA", "AMERICA", "ASIA", "EUROPE", "MIDDLE EAST"]


class Worker:
    """A served LocalWorker and a tiny HTTP client for it."""

    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str) -> tuple[int, str, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=20) as response:
                return response.status, response.headers["Content-Type"], response.read().decode()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.headers["Content-Type"], error.read().decode()

    def sql(self, sql: str) -> tuple[int, str | dict]:
        status, kind, body = self.get("/?" + urlencode({"sql": sql}))
        if status == 200:
            assert kind == "application/json"
            return status, json.loads(body)
        return status, body

    def ok(self, sql: str) -> dict:
        status, body = self.sql(sql)
        assert status == 200, body
        return body

    def info(self) -> dict:
        status, kind, body = self.get("/info")
        assert (status, kind) == (200, "application/json")
        return json.loads(body)


def _start(**kwargs) -> Iterator[Worker]:
    server, thread = serve("127.0.0.1", 0, quiet=True, **kwargs)
    try:
        yield Worker(server.worker.base_url)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Worker]:
    """A worker whose data folder is the test's temporary folder, where ``sales`` writes."""
    yield from _start(data_dir=tmp_path)


@pytest.fixture
def sales(tmp_path: Path) -> tuple[Path, pa.Table]:
    """Three parquet files in one folder, and the same rows as one pyarrow table."""
    folder = tmp_path / "sales"
    folder.mkdir()
    parts = []
    for part in range(3):
        rows = range(part * 1500, (part + 1) * 1500)
        table = pa.table({
            "id": pa.array(list(rows), pa.int64()),
            "region": [REGIONS[(i * 7) % len(REGIONS)] for i in rows],
            "amount": pa.array([(i * 37) % 1000 for i in rows], pa.int64()),
            "note": [NOTES[i % len(NOTES)] for i in rows],
        })
        pq.write_table(table, folder / f"part-{part}.parquet")
        parts.append(table)
    return folder, pa.concat_tables(parts)


def create_sales(folder: Path) -> str:
    return f"CREATE EXTERNAL TABLE sales STORED AS PARQUET LOCATION '{folder.as_posix()}/'"


def test_info_contract(worker: Worker) -> None:
    info = worker.info()
    assert info["worker_urls"] == [worker.url]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", worker.url)
    assert info["git_commit_hash"] == f"local-datafusion-{datafusion.__version__}"
    assert info["engine"] == f"datafusion-python {datafusion.__version__}"
    started = datetime.fromisoformat(info["build_time_utc"])
    assert started.tzinfo is not None and started.utcoffset().total_seconds() == 0
    assert abs((datetime.now(UTC) - started).total_seconds()) < 60
    assert info["errors"] == []
    assert info["settings"] == {}


def test_count_plan_and_timing_match_pyarrow(worker: Worker, sales) -> None:
    folder, table = sales
    result = worker.ok(f"{create_sales(folder)}; SELECT * FROM sales WHERE amount > 500")
    assert result["count"] == pc.sum(pc.greater(table["amount"], 500)).as_py() > 0
    assert result["elapsed_ms"] > 0
    assert "parquet" in result["plan"].lower()
    assert result["tasks"] == 1
    assert result["stats_q_error_p50"] is None and result["stats_q_error_p95"] is None
    assert set(result) == {"plan", "count", "elapsed_ms", "tasks", "stats_q_error_p50", "stats_q_error_p95"}

    grouped = worker.ok("SELECT region, note, sum(amount) FROM sales WHERE id % 2 = 0 GROUP BY region, note")
    even = table.filter(pc.equal(pc.bit_wise_and(table["id"], 1), 0))
    expected = even.group_by(["region", "note"]).aggregate([("amount", "sum")])
    assert grouped["count"] == expected.num_rows
    assert "AggregateExec" in grouped["plan"]


def test_tables_persist_across_requests(worker: Worker, sales) -> None:
    folder, table = sales
    assert worker.ok(create_sales(folder))["count"] == 0
    assert worker.ok("SELECT * FROM sales")["count"] == table.num_rows
    assert worker.ok("SELECT DISTINCT region FROM sales")["count"] == len(REGIONS)


def test_only_the_last_statement_is_executed(worker: Worker, sales) -> None:
    folder, _ = sales
    worker.ok(create_sales(folder))
    # Casting the notes to INT fails while executing, not while planning.
    status, body = worker.sql("SELECT CAST(note AS INT) FROM sales")
    assert status == 500 and "cast" in body.lower()
    assert worker.ok("SELECT CAST(note AS INT) FROM sales; SELECT 1")["count"] == 1
    # ...but every statement is planned: an unknown table fails the request.
    status, body = worker.sql("SELECT * FROM nowhere; SELECT 1")
    assert status == 500 and "nowhere" in body


def test_q15_shape_view_created_used_and_dropped(worker: Worker, sales) -> None:
    folder, table = sales
    worker.ok(create_sales(folder))
    top = worker.ok(
        "CREATE VIEW revenue AS SELECT region, sum(amount) AS total FROM sales GROUP BY region;\n"
        "SELECT * FROM revenue WHERE total > 0"
    )
    assert top["count"] == len(pc.unique(table["region"])) == len(REGIONS)
    assert worker.ok("SELECT * FROM revenue")["count"] == len(REGIONS)  # the view persisted
    assert worker.ok("DROP VIEW revenue")["count"] == 0
    status, body = worker.sql("SELECT * FROM revenue")
    assert status == 500 and "revenue" in body


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1", ["SELECT 1"]),
        ("SELECT 1;", ["SELECT 1"]),
        (" ; ;SELECT 1;;\n;", ["SELECT 1"]),
        ("SELECT 'a;b'; SELECT 2", ["SELECT 'a;b'", "SELECT 2"]),
        ("SELECT 'it''s;'; SELECT 2", ["SELECT 'it''s;'", "SELECT 2"]),
        ('SELECT "odd;name" FROM t', ['SELECT "odd;name" FROM t']),
        ("SELECT 1 -- one; two\n; SELECT 2", ["SELECT 1", "SELECT 2"]),
        ("SELECT 1 /* ; */ + 1", ["SELECT 1   + 1"]),
        ("-- only a comment;\n", []),
        ("SELECT '-- kept;' AS c", ["SELECT '-- kept;' AS c"]),
    ],
)
def test_split_statements(sql: str, expected: list[str]) -> None:
    assert split_statements(sql) == expected


def test_semicolon_inside_a_string_literal_does_not_split(worker: Worker, sales) -> None:
    folder, table = sales
    worker.ok(create_sales(folder))
    for note in ("a;b", "it's", "-- not a comment"):
        literal = note.replace("'", "''")
        result = worker.ok(f"SELECT * FROM sales WHERE note = '{literal}' -- trailing; comment")
        assert result["count"] == pc.sum(pc.equal(table["note"], note)).as_py() > 0


def test_set_distributed_is_recorded(worker: Worker) -> None:
    assert worker.ok("SET distributed.compression = lz4")["count"] == 0
    worker.ok(
        "SET distributed.collect_metrics=true; SET distributed.max_tasks_per_stage TO '0';\n"
        "SET datafusion.execution.target_partitions=8; SELECT 1"
    )
    assert worker.info()["settings"] == {
        "distributed.compression": "lz4",
        "distributed.collect_metrics": "true",
        "distributed.max_tasks_per_stage": "0",
    }
    worker.ok("SET distributed.compression = zstd")
    assert worker.info()["settings"]["distributed.compression"] == "zstd"
    # Only the distributed namespace is special: other unknown keys still reach DataFusion.
    status, body = worker.sql("SET distributedx.compression = lz4")
    assert status == 500 and "distributedx" in body
    assert "distributedx.compression" not in worker.info()["settings"]


def test_set_datafusion_takes_effect(worker: Worker, sales) -> None:
    is_1024 = (
        "SELECT * FROM information_schema.df_settings "
        "WHERE name = 'datafusion.execution.batch_size' AND value = '1024'"
    )
    assert worker.ok(is_1024)["count"] == 0
    worker.ok("SET datafusion.execution.batch_size = 1024")
    assert worker.ok(is_1024)["count"] == 1
    assert worker.ok("SHOW datafusion.execution.batch_size")["count"] == 1

    folder, _ = sales
    worker.ok(create_sales(folder))
    group_by = "SELECT region, count(*) FROM sales GROUP BY region"
    worker.ok("SET datafusion.execution.target_partitions = 3")
    assert re.search(r"Hash\(\[region@0\], 3\)", worker.ok(group_by)["plan"])
    worker.ok("SET datafusion.execution.target_partitions = 5")
    assert re.search(r"Hash\(\[region@0\], 5\)", worker.ok(group_by)["plan"])


def test_errors_are_500_plain_text_with_the_datafusion_message(worker: Worker) -> None:
    status, kind, body = worker.get("/?" + urlencode({"sql": "SELEC 1"}))
    assert status == 500
    assert kind.startswith("text/plain")
    assert "ParserError" in body and "SELEC" in body
    # The session survives a failed request.
    assert worker.ok("SELECT 1")["count"] == 1


def test_request_errors(worker: Worker) -> None:
    status, kind, body = worker.get("/")
    assert status == 400 and kind.startswith("text/plain") and "sql" in body
    status, _, body = worker.get("/?sql=")
    assert status == 400 and "no SQL statement" in body
    status, _, body = worker.get("/?" + urlencode({"sql": " ; -- nothing\n"}))
    assert status == 400
    status, kind, body = worker.get("/nope")
    assert status == 404 and kind == "application/json" and "/nope" in json.loads(body)["error"]
    assert worker.get("/health") == (200, "text/plain; charset=utf-8", "ok")


def test_concurrent_requests(worker: Worker, sales) -> None:
    folder, table = sales
    worker.ok(create_sales(folder))
    amounts = table["amount"]

    def request(i: int) -> tuple[int, int]:
        threshold = (i * 97) % 1000
        expected = pc.sum(pc.greater(amounts, threshold)).as_py() or 0
        # Each request redefines the one shared view and reads it back: without per-request
        # atomicity another request's CREATE lands in between and the count is wrong.
        status, body = worker.sql(
            f"SET distributed.request = {i};\n"
            f"CREATE OR REPLACE VIEW shared AS SELECT * FROM sales WHERE amount > {threshold};\n"
            "SELECT * FROM shared"
        )
        assert status == 200, body
        return body["count"], expected

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(request, range(50)))
    assert len(results) == 50
    assert [got for got, _ in results] == [expected for _, expected in results]
    assert worker.info()["settings"]["distributed.request"] in {str(i) for i in range(50)}


def test_data_dir_resolves_relative_locations(sales) -> None:
    folder, table = sales
    for worker in _start(data_dir=folder.parent):
        worker.ok("CREATE EXTERNAL TABLE s STORED AS PARQUET LOCATION 'sales/'")
        assert worker.ok("SELECT * FROM s")["count"] == table.num_rows
        assert worker.info()["data_dir"] == str(folder.parent)
        # Absolute locations are left alone.
        worker.ok(f"CREATE EXTERNAL TABLE a STORED AS PARQUET LOCATION '{folder.as_posix()}/'")
        assert worker.ok("SELECT * FROM a")["count"] == table.num_rows


def _read_line(stream, timeout: float) -> str:
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return ""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_subprocess_port_zero_and_clean_shutdown(signum: int) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "dfbench.worker.local", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = _read_line(process.stdout, timeout=20)
        match = re.fullmatch(r"listening on (http://127\.0\.0\.1:(\d+))\n", line)
        assert match, (line, process.poll())
        url = match.group(1)
        assert int(match.group(2)) > 0
        worker = Worker(url)
        assert worker.info()["worker_urls"] == [url]
        assert worker.ok("SELECT 1 UNION ALL SELECT 2")["count"] == 2
        process.send_signal(signum)
        assert process.wait(timeout=10) == 0
        stderr = process.stderr.read()
        assert "Traceback" not in stderr, stderr
        assert "GET /info" in stderr  # requests are logged unless --quiet
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()


def test_a_second_start_leaves_no_worker_behind() -> None:
    """Starting a started worker returns its URL; the one process is stopped on exit."""
    with LocalWorkerProcess() as worker:
        process = worker.process
        assert worker.start() == worker.url and worker.process is process
    assert process is not None and process.poll() is not None
