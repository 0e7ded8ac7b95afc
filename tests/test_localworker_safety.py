"""The local worker as an attacker and a careless user would try it: SQL that writes or reads
where it should not, requests from web pages and rebound DNS names, a LAN bind, idle and surplus
connections, bad arguments; and the CDK tooling's own client, which must keep working."""

from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlencode

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dfbench import cli
from dfbench.bench.queries import tpch_queries
from dfbench.data import generate_tpch
from dfbench.errors import ConfigError
from dfbench.worker.local import serve

ROWS = 100


class Served:
    def __init__(self, **options: Any) -> None:
        self.server, self.thread = serve("127.0.0.1", 0, quiet=True, **options)
        self.port = self.server.server_address[1]

    def get(self, path: str = "/health", headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        """One request on its own connection, with exactly ``headers`` (Host included)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            connection.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
            for name, value in (headers if headers is not None else {"Host": f"127.0.0.1:{self.port}"}).items():
                connection.putheader(name, value)
            connection.endheaders()
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read().decode()
        finally:
            connection.close()

    def sql(self, sql: str) -> tuple[int, str]:
        status, _, body = self.get("/?" + urlencode({"sql": sql}))
        return status, body

    def raw(self, request: bytes) -> bytes:
        """Bytes sent as they are; everything the worker answers until it closes."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=20) as client:
            client.sendall(request)
            answer = b""
            while data := client.recv(65536):
                answer += data
            return answer

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    """``data/sales`` (the worker's folder, one parquet file), a secret outside it, and symlinks
    from inside to outside."""
    data, outside = tmp_path / "data", tmp_path / "outside"
    (data / "sales").mkdir(parents=True)
    outside.mkdir()
    pq.write_table(pa.table({"id": list(range(ROWS))}), data / "sales" / "part-0.parquet")
    (outside / "secret.csv").write_text("password\nhunter2\n")
    pq.write_table(pa.table({"id": [1]}), outside / "secret.parquet")
    (data / "link").symlink_to(outside)
    (data / "link.csv").symlink_to(outside / "secret.csv")
    return {"data": data, "outside": outside}


@pytest.fixture
def worker(folders: dict[str, Path]) -> Iterator[Served]:
    served = Served(data_dir=folders["data"], s3_buckets=["allowed-bucket"])
    yield served
    served.close()


# --- SQL: nothing is ever written --------------------------------------------------------------


def test_copy_and_insert_are_refused_and_write_nothing(worker: Served, folders: dict[str, Path]) -> None:
    target = folders["data"] / "written.csv"
    for sql in (f"COPY (SELECT 1 AS a) TO '{target}'",
                f"COPY (SELECT 1 AS a) TO '{target}' STORED AS CSV",
                f"EXPLAIN ANALYZE COPY (SELECT 1 AS a) TO '{target}'",
                "COPY (SELECT 1 AS a) TO 's3://allowed-bucket/written/' STORED AS PARQUET",
                (f"CREATE EXTERNAL TABLE sink (a BIGINT) STORED AS CSV LOCATION '{folders['data']}/sink/'; "
                 "INSERT INTO sink VALUES (1)")):
        status, body = worker.sql(sql)
        assert status == 500 and "DML not supported" in body, (sql, body)
    assert not target.exists() and not (folders["data"] / "sink").exists()
    # An in-memory table cannot be written to either; DDL works.
    assert worker.sql("CREATE TABLE memory AS SELECT 1 AS a")[0] == 200
    assert worker.sql("INSERT INTO memory VALUES (2)")[0] == 500
    assert json.loads(worker.sql("SELECT * FROM memory")[1])["count"] == 1


def test_ddl_and_set_keep_working(worker: Served) -> None:
    for sql in ("CREATE EXTERNAL TABLE s STORED AS PARQUET LOCATION 'sales/'",
                "CREATE VIEW v AS SELECT * FROM s", "SET datafusion.execution.batch_size = 1024",
                "SET distributed.files_per_task = 8", "DROP VIEW v",
                "CREATE OR REPLACE VIEW v AS SELECT id FROM s WHERE id < 10", "SHOW datafusion.execution.batch_size"):
        status, body = worker.sql(sql)
        assert status == 200, (sql, body)
    assert json.loads(worker.sql("SELECT * FROM v")[1])["count"] == 10
    assert worker.sql("DROP TABLE s")[0] == 200 and worker.sql("SELECT * FROM s")[0] == 500


# --- LOCATION: the data folder and the allowed buckets only --------------------------------------


def accepted_locations(data: Path) -> list[str]:
    return ["sales/", "sales", f"{data}/sales/", f"{data}/./sales/", f"{data}/sales/*.parquet",
            f"{data}/sales/../sales/", f"{data}/sales/part-0.parquet"]


def refused_locations(data: Path, outside: Path) -> list[str]:
    return ["/etc/passwd", f"{outside}/secret.csv", f"{outside}/", "../outside/secret.csv",
            f"{data}/../outside/secret.csv", f"{data}/link/secret.csv", "link/", "link.csv", f"{data}/link/",
            f"{data}/*/../../outside/secret.csv", f"{data}/sales/../../outside/", "file:///etc/passwd",
            "file:/etc/passwd", f"file://{data}/sales/", " file:///etc/passwd", "/etc/passwd ",
            "f\tile:///etc/passwd", "http://169.254.169.254/latest/meta-data/", "gs://bucket/x/",
            "s3:/allowed-bucket/x/",
            "s3://other-bucket/x/", "s3://allowed-bucket@other-bucket/x/", "s3://allowed-bucket.evil/x/", "S3://other/x/"]


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def test_locations_in_the_data_folder_are_read(worker: Served, folders: dict[str, Path]) -> None:
    for number, location in enumerate(accepted_locations(folders["data"])):
        status, body = worker.sql(f"CREATE EXTERNAL TABLE t{number} STORED AS PARQUET LOCATION {sql_literal(location)}")
        assert status == 200, (location, body)
        assert json.loads(worker.sql(f"SELECT * FROM t{number}")[1])["count"] == ROWS, location


@pytest.mark.parametrize("kind", ["CSV", "PARQUET"])
def test_locations_elsewhere_are_refused_before_anything_is_read(worker: Served, folders: dict[str, Path],
                                                                 kind: str) -> None:
    for location in refused_locations(folders["data"], folders["outside"]):
        status, body = worker.sql(f"CREATE EXTERNAL TABLE t STORED AS {kind} LOCATION {sql_literal(location)}")
        assert status == 400 and "LOCATION" in body and "\n" not in body, (location, body)
        assert "hunter2" not in body and "password" not in body
        # Nothing was created: the table does not exist.
        status, body = worker.sql("SELECT * FROM t")
        assert status == 500 and "not found" in body, location


@pytest.mark.parametrize("statement", [
    # DataFusion's own parse decides, not a pattern over the text: an escape string, a comment, a
    # second clause that looks like a LOCATION, lower case, an UNBOUNDED table, an OR REPLACE.
    "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION E'\\x2fetc\\x2fpasswd'",
    "CREATE /* LOCATION 'sales/' */ EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
    "create external table t stored as csv options ('format.delimiter' ',') location '/etc/passwd'",
    "CREATE UNBOUNDED EXTERNAL TABLE t (line VARCHAR) STORED AS CSV LOCATION '/etc/passwd'",
    "CREATE OR REPLACE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
    "CREATE EXTERNAL TABLE IF NOT EXISTS t STORED AS CSV LOCATION '/etc/' PARTITIONED BY (x)",
    "SELECT 1; CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'; SELECT 2",
])
def test_quoting_tricks_do_not_get_past_the_check(worker: Served, statement: str) -> None:
    status, body = worker.sql(statement)
    assert status in (400, 500) and "\n" not in body.strip(), body
    assert worker.sql("SELECT * FROM t")[0] == 500
    assert "root:" not in body


def test_without_a_data_folder_no_local_file_is_read(folders: dict[str, Path]) -> None:
    served = Served()
    try:
        status, body = served.sql(f"CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '{folders['data']}/sales/'")
        assert status == 400 and "--data-dir" in body
        status, body = served.sql("CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 's3://any-bucket/x/'")
        assert status == 400 and "--s3-bucket" in body
    finally:
        served.close()


# --- who may ask: the Host, Origin and Fetch metadata of a request -----------------------------


def test_host_must_be_a_loopback_name(worker: Served) -> None:
    port = worker.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"LOCALHOST:{port}", "localhost",
                 "127.0.0.1:9000"):  # another port: what a port forward delivers
        assert worker.get(headers={"Host": host})[0] == 200, host
    for host in (f"evil.example:{port}", "evil.example", f"localhost.:{port}", f"127.0.0.1.nip.io:{port}",
                 f"localhost.evil.example:{port}", f"2130706433:{port}", f"0x7f000001:{port}", f"10.0.0.7:{port}",
                 f"[::ffff:127.0.0.1]:{port}", f"user@localhost:{port}", ""):
        status, headers, body = worker.get(headers={"Host": host})
        assert status in (400, 403) and headers["Connection"] == "close" and "\n" not in body, host


def test_host_is_required_from_http_1_1_and_may_be_missing_from_http_1_0(worker: Served) -> None:
    assert worker.raw(b"GET /health HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert worker.raw(b"GET /health HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200 ")
    two = f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{worker.port}\r\nHost: evil.example\r\n\r\n".encode()
    assert worker.raw(two).startswith(b"HTTP/1.1 400 ")
    # The absolute form names its own host, which HTTP/1.1 puts before the Host header.
    absolute = f"GET http://evil.example/health HTTP/1.1\r\nHost: 127.0.0.1:{worker.port}\r\n\r\n".encode()
    assert worker.raw(absolute).startswith(b"HTTP/1.1 400 ")


@pytest.mark.parametrize("header", [
    {"Origin": "http://evil.example"}, {"Origin": "null"}, {"Origin": "http://127.0.0.1"},
    {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
    # What a browser sends for <img src="http://127.0.0.1:9000/?sql=..."> on another site.
    {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"},
])
def test_requests_from_web_pages_are_refused_before_they_run(worker: Served, header: dict[str, str]) -> None:
    path = "/?" + urlencode({"sql": "CREATE VIEW planted AS SELECT 1"})
    status, headers, body = worker.get(path, {"Host": f"127.0.0.1:{worker.port}", **header})
    assert status == 403 and "web pages" in body and headers["Content-Type"].startswith("text/plain")
    assert worker.sql("SELECT * FROM planted")[0] == 500  # never created


@pytest.mark.parametrize("site", ["none", "same-origin"])
def test_an_address_typed_in_the_browser_works(worker: Served, site: str) -> None:
    assert worker.get(headers={"Host": f"localhost:{worker.port}", "Sec-Fetch-Site": site})[0] == 200


# --- binding: loopback unless told otherwise ---------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1"])
def test_a_non_loopback_bind_needs_allow_remote(host: str) -> None:
    with pytest.raises(ConfigError, match="--allow-remote"):
        serve(host, 0, quiet=True)


def test_allow_remote_warns_and_serves() -> None:
    """A real non-loopback bind, inside a network namespace of its own (`unshare --net`) so that
    0.0.0.0 there reaches nothing but that namespace: the warning comes first, then it serves."""
    if subprocess.run(["unshare", "--net", "true"], capture_output=True, check=False).returncode != 0:
        pytest.skip("unshare --net is not allowed here (needs root or user namespaces)")
    script = ("import subprocess, sys, time, urllib.request\n"
              "subprocess.run(['ip', 'link', 'set', 'lo', 'up'], check=False)\n"
              "worker = subprocess.Popen([sys.executable, '-m', 'dfbench.worker.local', '--host', '0.0.0.0',\n"
              "                           '--port', '9000', '--allow-remote', '--quiet'], stdout=subprocess.DEVNULL,\n"
              "                          stderr=subprocess.PIPE, text=True)\n"
              "print(worker.stderr.readline().strip(), flush=True)\n"
              "for _ in range(100):\n"
              "    try:\n"
              "        print(urllib.request.urlopen('http://127.0.0.1:9000/info', timeout=2).status)\n"
              "        break\n"
              "    except OSError:\n"
              "        time.sleep(0.1)\n"
              "worker.terminate()\n")
    done = subprocess.run(["unshare", "--net", sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    warning, status = done.stdout.splitlines()[:2]
    assert warning.startswith("WARNING: the local worker on 0.0.0.0:9000 is reachable from other machines")
    assert status == "200"


def one_line_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = cli.main(argv)
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in captured.err
    return lines[0]


@pytest.mark.parametrize(("argv", "says"), [
    (["worker", "--port", "70000"], "70000"),
    (["worker", "--port", "-1"], "-1"),
    (["worker", "--port", "http"], "'http'"),
    (["worker", "--host", "0.0.0.0", "--port", "0"], "--allow-remote"),
    (["worker", "--host", "::", "--port", "0"], "--allow-remote"),
    (["worker", "--port", "0", "--s3-bucket", "Not_A_Bucket"], "Not_A_Bucket"),
    (["worker", "--port", "0", "--data-dir", "/nonexistent/folder"], "/nonexistent/folder"),
])
def test_bad_worker_arguments_are_one_line_and_exit_2(argv: list[str], says: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert says in one_line_exit_2(argv, capsys)


def test_module_entry_point_refuses_a_bad_port_in_one_line() -> None:
    done = subprocess.run([sys.executable, "-m", "dfbench.worker.local", "--port", "70000"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert [line for line in done.stderr.splitlines() if line.strip()] == [
        "error: port 70000 is not a TCP port (0-65535; 0 picks a free one)"]


# --- connections: idle ones time out, surplus ones get 503 ---------------------------------------


def closed_within(client: socket.socket, seconds: float) -> bool:
    client.settimeout(seconds)
    try:
        while client.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def test_idle_and_half_sent_connections_are_closed() -> None:
    served = Served(idle_timeout_s=0.5)
    try:
        with socket.create_connection(("127.0.0.1", served.port)) as silent, \
                socket.create_connection(("127.0.0.1", served.port)) as trickling:
            trickling.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
            assert closed_within(silent, 5) and closed_within(trickling, 5)
        # A kept-alive connection is closed once idle, and says so in its answers.
        connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=5)
        connection.request("GET", "/health")
        response = connection.getresponse()
        assert response.read() == b"ok" and response.getheader("Keep-Alive") == "timeout=0"
        assert connection.sock is not None and closed_within(connection.sock, 5)
        connection.close()
    finally:
        served.close()


def test_connections_beyond_the_cap_get_503_and_a_freed_slot_is_reused() -> None:
    served = Served(max_connections=4, idle_timeout_s=10)
    held = [socket.create_connection(("127.0.0.1", served.port)) for _ in range(4)]
    try:
        time.sleep(0.3)  # the four are accepted and hold their slots
        status, headers, body = served.get()
        assert status == 503 and headers["Connection"] == "close" and "4 connections" in body
        # A flood beyond the refusals is closed unanswered; the worker lives on.
        flood = [socket.create_connection(("127.0.0.1", served.port)) for _ in range(30)]
        for client in flood:
            client.close()
        held.pop().close()
        deadline = time.monotonic() + 10
        while served.get()[0] != 200:
            assert time.monotonic() < deadline, "the freed slot was not given back"
            time.sleep(0.05)
    finally:
        for client in held:
            client.close()
        served.close()


# --- the CDK tooling's client ------------------------------------------------------------------

CDK_BUCKET = "datafusion-distributed-benchmarks"  # hardcoded in the CDK tooling (bin/@bench-common.ts)
DATASET = "tpch_sf0.01"


def form_urlencoded(text: str) -> str:
    """URLSearchParams' serialisation (application/x-www-form-urlencoded): all but ASCII letters,
    digits and *-._ percent-encoded, spaces as +."""
    return quote_plus(text, safe="*").replace("~", "%7E")


class NodeFetch:
    """The requests of datafusion-bench.ts's DataFusionRunner.query: ``fetch(url)`` of
    ``new URL('http://localhost:9000')`` with ``searchParams.set('sql', sql)``, on undici's
    kept-alive connection, with the headers Node's fetch sends (undici: no Origin, since a Node
    request's origin is "client"; Sec-Fetch-Mode from the request's mode, cors)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def get(self, path: str) -> tuple[int, str]:
        self.connection.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        for name, value in (("host", f"localhost:{self.port}"), ("connection", "keep-alive"), ("accept", "*/*"),
                            ("accept-language", "*"), ("sec-fetch-mode", "cors"), ("user-agent", "node"),
                            ("accept-encoding", "gzip, deflate")):
            self.connection.putheader(name, value)
        self.connection.endheaders()
        response = self.connection.getresponse()
        return response.status, response.read().decode()

    def query(self, sql: str) -> dict[str, Any]:
        status, body = self.get("/?sql=" + form_urlencoded(sql))
        assert status == 200, f"Query failed: {status} {body}"  # the runner's `!response.ok` branch
        answer = json.loads(body)
        # Its zod schema: count, plan, elapsed_ms.
        assert isinstance(answer["count"], int) and isinstance(answer["plan"], str)
        assert isinstance(answer["elapsed_ms"], (int, float))
        return answer


@pytest.fixture(scope="module")
def tpch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    generate_tpch(0.01, partitions=1, data_dir=folder, progress=False)
    return folder / DATASET


def test_the_cdk_client_runs_against_the_local_worker(aws: Any, inspector: Any, tpch: Path) -> None:
    s3 = inspector.client("s3")
    s3.create_bucket(Bucket=CDK_BUCKET)
    tables = sorted(path.name for path in tpch.iterdir() if path.is_dir())
    for table in tables:
        for part in (tpch / table).glob("*.parquet"):
            s3.upload_file(str(part), CDK_BUCKET, f"{DATASET}/{table}/{part.name}")
    served = Served(s3_buckets=[CDK_BUCKET])
    try:
        fetch = NodeFetch(served.port)
        # createTables: one request for every table, then one for the settings.
        statement = "".join(f"\n    DROP TABLE IF EXISTS {table};\n    CREATE EXTERNAL TABLE IF NOT EXISTS {table} "
                            f"STORED AS PARQUET LOCATION 's3://{CDK_BUCKET}/{DATASET}/{table}/';\n " for table in tables)
        assert fetch.query(statement)["count"] == 0
        fetch.query("\n      SET distributed.files_per_task=8;\n      SET distributed.cardinality_task_count_factor=1;\n"
                    "      SET datafusion.execution.batch_size=32768;\n      SET distributed.shuffle_batch_size=32768;\n"
                    "      SET distributed.collect_metrics=true;\n      SET distributed.compression=lz4;\n"
                    "      SET distributed.children_isolator_unions=true;\n      SET distributed.broadcast_joins=false;\n"
                    "      SET distributed.max_tasks_per_stage=0;\n"
                    "      SET datafusion.optimizer.repartition_file_min_size=10485760;\n    ")
        socket_before = fetch.connection.sock
        queries = {query.id: "\n".join(line for line in query.sql.splitlines() if not line.startswith("--"))
                   for query in tpch_queries(only=["q1", "q15"])}
        for _ in range(2):  # a warm-up and an iteration
            assert fetch.query(queries["q1"])["count"] == 4
            # executeQuery: q15 (it has "create view") goes as its three statements, one request each.
            assert "create view" in queries["q15"]
            create_view, query, drop_view = queries["q15"].split(";")[:3]
            fetch.query(create_view)
            assert fetch.query(query)["count"] == 1
            fetch.query(drop_view)
        status, body = fetch.get("/info")
        assert status == 200 and json.loads(body)["settings"]["distributed.files_per_task"] == "8"
        assert fetch.connection.sock is socket_before  # every request on the one kept-alive connection
        fetch.connection.close()
    finally:
        served.close()


def test_the_cdk_client_cannot_reach_another_bucket(aws: Any) -> None:
    served = Served(s3_buckets=[CDK_BUCKET])
    try:
        fetch = NodeFetch(served.port)
        status, body = fetch.get("/?sql=" + form_urlencoded(
            "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 's3://someone-elses-bucket/x/'"))
        assert status == 400 and re.search(r"bucket 'someone-elses-bucket' is not one this worker reads", body)
        fetch.connection.close()
    finally:
        served.close()
