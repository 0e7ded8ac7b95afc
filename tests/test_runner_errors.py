"""The runner when things go wrong: a worker that dies mid-run, and errors that must stop a run
before any query is sent. Real workers (a subprocess killed with SIGKILL, or in-process), real
tiny TPC-H data; a recording proxy in front of the worker sees every request the runner sends."""

from __future__ import annotations

import json
import re
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from dfbench import cli
from dfbench.bench.queries import Query
from dfbench.bench.results import QueryOutcome
from dfbench.data import generate_tpch
from dfbench.errors import ConfigError, WorkerUnreachable
from dfbench.runner import run_benchmark
from dfbench.worker.local import serve
from dfbench.worker.process import LocalWorkerProcess

DATASET = "tpch_sf0.01"
ERROR_ITERATION = {"elapsed": 0, "rowCount": 0, "plan": "", "tasks": 0}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    generate_tpch(0.01, partitions=1, data_dir=folder, progress=False)
    return folder


class RecordingProxy:
    """A loopback HTTP proxy to one worker that records each request (``/info`` or the SQL).

    ``drop`` (a substring of the SQL) makes it close the next such request's connection without
    an answer, as a worker dying mid-query does; when the worker itself does not answer, the proxy
    drops the connection too, so the runner sees what it would see without the proxy."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.requests: list[str] = []
        self.drop: str | None = None
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                sql = parse_qs(url.query).get("sql")
                seen = sql[-1] if sql else url.path
                proxy.requests.append(seen)
                if proxy.drop is not None and proxy.drop in seen:
                    proxy.drop = None
                    self.close_connection = True
                    return
                try:
                    with urllib.request.urlopen(proxy.upstream + self.path, timeout=30) as response:
                        status, body = response.status, response.read()
                except urllib.error.HTTPError as error:
                    status, body = error.code, error.read()
                except OSError:
                    self.close_connection = True  # no answer, like the worker
                    return
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def worker_url(data_dir: Path) -> Iterator[str]:
    server, thread = serve("127.0.0.1", 0, quiet=True, data_dir=data_dir)
    yield server.worker.base_url
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def proxy(worker_url: str) -> Iterator[RecordingProxy]:
    recording = RecordingProxy(worker_url)
    yield recording
    recording.close()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def assert_every_file_parses(folder: Path) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    assert files
    for path in files:
        assert not path.name.startswith("."), f"temporary file left: {path}"
        json.loads(path.read_text())  # raises on half a file


# ---------------------------------------------------------------------------------------------
# 1. a worker that dies mid-run


def test_killed_worker_fails_the_remaining_queries_and_the_run_finishes(data_dir: Path, tmp_path: Path) -> None:
    worker = LocalWorkerProcess(data_dir=data_dir)
    url = worker.start()
    killed_at: list[float] = []

    def kill_after_first(outcome: QueryOutcome) -> None:
        if not killed_at:
            assert outcome.id == "q1" and outcome.status == "ok"
            assert worker.process is not None
            worker.process.send_signal(signal.SIGKILL)
            worker.process.wait(timeout=10)
            killed_at.append(time.monotonic())

    try:
        result = run_benchmark(dataset=DATASET, url=url, data_dir=tmp_path, location=str(data_dir),
                               queries="q1,q3,q6,q15", iterations=2, engine="e", progress=False,
                               on_query_done=kill_after_first)
    finally:
        worker.stop()
    finished = time.monotonic()

    assert finished - killed_at[0] < 4  # one refused connection and one /info, no waiting per query
    assert [q.id for q in result.queries] == ["q1", "q3", "q6", "q15"]
    assert result.outcome("q1").status == "ok" and len(result.outcome("q1").iterations) == 2
    folder = tmp_path / DATASET / ".results-local" / "e"
    assert_every_file_parses(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["q1.json", "q15.json", "q3.json", "q6.json", "run.json"]
    for query_id in ("q3", "q6", "q15"):
        iterations = load(folder / f"{query_id}.json")["iterations"]
        assert len(iterations) == 1
        assert {k: v for k, v in iterations[0].items() if k != "error"} == ERROR_ITERATION
        assert iterations[0]["error"].startswith("worker unreachable: ")
        assert result.outcome(query_id).status.startswith("failed: worker unreachable")
    for query_id in ("q6", "q15"):  # never sent
        assert "not run" in load(folder / f"{query_id}.json")["iterations"][0]["error"]
    assert not result.ok and result.worker_lost and "during q3" in result.worker_lost

    manifest = load(folder / "run.json")
    assert manifest["status"] == "worker lost" and manifest["interrupted"] is False
    assert manifest["worker_lost"]["during"] == "q3" and url in manifest["worker_lost"]["error"]
    assert manifest["error"] == manifest["worker_lost"]["error"]
    assert sorted(manifest["queries"]) == ["q1", "q15", "q3", "q6"]
    assert manifest["queries"]["q6"]["status"].startswith("failed: worker unreachable")
    assert not (tmp_path / DATASET / "previous-local.json").exists()  # no baseline from a broken run


def test_after_a_dead_worker_only_one_health_check_is_sent(data_dir: Path, tmp_path: Path) -> None:
    worker = LocalWorkerProcess(data_dir=data_dir)
    proxy = RecordingProxy(worker.start())
    sent_before_kill: list[int] = []

    def kill_after_first(outcome: QueryOutcome) -> None:
        if not sent_before_kill:
            assert worker.process is not None
            worker.process.send_signal(signal.SIGKILL)
            worker.process.wait(timeout=10)
            sent_before_kill.append(len(proxy.requests))

    try:
        result = run_benchmark(dataset=DATASET, url=proxy.url, data_dir=tmp_path, location=str(data_dir),
                               queries="q1,q3,q6,q15", iterations=3, engine="e", progress=False,
                               on_query_done=kill_after_first)
    finally:
        proxy.close()
        worker.stop()

    after = proxy.requests[sent_before_kill[0]:]
    # q3's warm-up gets no answer (the proxy drops it as the dead worker would), then one /info.
    assert len(after) == 2 and "l_orderkey" in after[0] and after[1] == "/info"
    assert result.worker_lost and [q.status.startswith("failed: worker unreachable")
                                   for q in result.queries] == [False, True, True, True]
    assert_every_file_parses(tmp_path)


def test_a_worker_that_answers_again_gets_its_tables_back(data_dir: Path, tmp_path: Path,
                                                          proxy: RecordingProxy) -> None:
    # After q1 the worker "restarts": a fresh one (no tables) takes over the URL, and the request
    # in flight when that happens gets no answer.
    server, thread = serve("127.0.0.1", 0, quiet=True, data_dir=data_dir)
    restarted: list[int] = []

    def restart_after_first(outcome: QueryOutcome) -> None:
        if not restarted:
            proxy.upstream = server.worker.base_url
            proxy.drop = "dropped_here"
            restarted.append(len(proxy.requests))

    dropped = Query(id="qdrop", statement="select 1 as dropped_here")
    try:
        result = run_benchmark(dataset=DATASET, url=proxy.url, data_dir=tmp_path, location=str(data_dir),
                               queries=["q1", dropped, "q6"], iterations=2, engine="e", progress=False,
                               on_query_done=restart_after_first)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    assert result.worker_lost is None
    failed = result.outcome("qdrop").iterations
    assert len(failed) == 1 and failed[0].error.startswith("worker unreachable: ")
    after = proxy.requests[restarted[0]:]
    assert after[:2] == ["select 1 as dropped_here;", "/info"]
    assert sum("CREATE EXTERNAL TABLE" in r for r in after) == 8  # every table, on the new worker
    assert result.outcome("q6").status == "ok" and result.outcome("q6").rows == 1
    assert load(result.results_dir / "run.json")["status"] == "complete"


# ---------------------------------------------------------------------------------------------
# 2. errors before any query: one clear error, no request, no file


BEFORE_ANY_QUERY = {
    "unknown-dataset": (dict(dataset="tpch_sf999", location=None), ["--dataset", "tpch_sf999"],
                        ["dfbench data generate --sf 999", "make data SF=999"]),
    "unknown-query": (dict(queries="q1,q99"), ["--queries", "q1,q99"], ["q99", "q1 … q22"]),
    "no-query": (dict(queries=" , "), ["--queries", ","], ["No queries selected"]),
    "setting-without-equals": (dict(settings=["foo"]), ["--set", "foo"], ["'foo'", "key=value"]),
    "setting-without-value": (dict(settings=["distributed.compression="]), ["--set", "distributed.compression="],
                              ["distributed.compression has no value"]),
    "unknown-preset": (dict(settings=["distribted"]), ["--settings", "distribted"],
                       ["'distribted'", "preset (distributed, none)"]),
}


@pytest.mark.parametrize(("kwargs", "argv", "mentions"), list(BEFORE_ANY_QUERY.values()), ids=list(BEFORE_ANY_QUERY))
def test_invalid_arguments_stop_the_run_before_any_request(kwargs: dict, argv: list[str], mentions: list[str],
                                                            data_dir: Path, tmp_path: Path,
                                                            proxy: RecordingProxy) -> None:
    options = {"dataset": DATASET, "queries": "q1", "location": str(data_dir), **kwargs}
    with pytest.raises(ConfigError) as caught:
        run_benchmark(url=proxy.url, data_dir=tmp_path, iterations=1, progress=False, **options)
    for text in mentions:
        assert text in str(caught.value)
    assert proxy.requests == []  # not even /info
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("kwargs", "argv", "mentions"), list(BEFORE_ANY_QUERY.values()), ids=list(BEFORE_ANY_QUERY))
def test_cli_bench_reports_invalid_arguments_in_one_line(kwargs: dict, argv: list[str], mentions: list[str],
                                                         data_dir: Path, tmp_path: Path, proxy: RecordingProxy,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--dataset", DATASET, "--queries", "q1", "--location", str(data_dir)]
    if kwargs.get("location", "") is None:
        base = base[:-2]
    code = cli.main(["bench", "--url", proxy.url, "--data-dir", str(tmp_path), "--iterations", "1", *base, *argv])
    captured = capsys.readouterr()
    out, err = _ANSI.sub("", captured.out), _ANSI.sub("", captured.err)
    assert code == 2
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for text in mentions:
        assert text in lines[0]
    assert proxy.requests == []
    assert list(tmp_path.iterdir()) == []


def test_nothing_listening_is_one_error_and_no_file(data_dir: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    url = closed_port_url()
    with pytest.raises(WorkerUnreachable, match=re.escape(f"No worker at {url}")):
        run_benchmark(dataset=DATASET, url=url, data_dir=tmp_path, location=str(data_dir), queries="q1",
                      progress=False)
    assert list(tmp_path.iterdir()) == []

    code = cli.main(["bench", "--url", url, "--dataset", DATASET, "--location", str(data_dir),
                     "--data-dir", str(tmp_path), "--queries", "q1"])
    captured = capsys.readouterr()
    err = _ANSI.sub("", captured.err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != 0 and "Traceback" not in captured.out + err
    assert len(lines) == 1 and lines[0].startswith(f"error: No worker at {url}") and "dfbench worker" in lines[0]
    assert list(tmp_path.iterdir()) == []
