"""The local worker: the real worker's HTTP contract (ARCHITECTURE.md §5) on DataFusion from PyPI.

Run it with ``python -m dfbench.worker.local --host 127.0.0.1 --port 9000 [--data-dir DIR]``.
``--port 0`` picks a free port; the line ``listening on http://HOST:PORT`` on stdout says which.

Endpoints:

- ``GET /info``: ``worker_urls``, ``git_commit_hash``, ``build_time_utc``, ``errors`` as the real
  worker, plus ``engine``, ``settings`` (the recorded ``SET distributed.*`` values) and
  ``data_dir``.
- ``GET /?sql=...``: the statements are split on ``;`` (not inside quotes or comments), each one
  is planned in order, so DDL and ``SET`` take effect, and only the last one is executed and
  timed. DataFusion errors are HTTP 500 with the error text; a request without ``sql`` is 400.
- ``GET /health``: ``ok``.

Differences from the real (distributed) worker, by design:

- ``SET distributed.<key> = <value>`` is recorded and otherwise ignored: DataFusion has no
  ``distributed`` namespace and would reject it. ``SET datafusion.*`` reaches DataFusion.
- ``tasks`` is always 1: one process runs the whole plan, there are no distributed tasks.
- ``stats_q_error_p50``/``p95`` are null: there are no distributed statistics to judge.
- With ``--data-dir``, a relative ``LOCATION`` in ``CREATE EXTERNAL TABLE`` is resolved against
  that folder (otherwise DataFusion resolves it against the current directory).
- An ``s3://bucket/...`` ``LOCATION`` is read with boto3's credentials (profile, SSO, env keys) and
  the standard ``AWS_ENDPOINT_URL(_S3)``, so the local worker can read a cluster's bucket, or an
  emulator's.
- ``--worker-urls`` and ``--commit`` set what ``/info`` reports, so that tests can stand one local
  worker in for every instance of a cluster (by default: its own URL, ``local-datafusion-<version>``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import datafusion
from datafusion import SessionContext

from dfbench.sql import split_statements


class RequestError(Exception):
    """The request itself is malformed (HTTP 400), as opposed to a failing statement (500)."""


@dataclass(frozen=True)
class QueryResult:
    """The JSON body of a successful ``GET /?sql=`` (field names are the contract's)."""

    plan: str
    count: int
    elapsed_ms: float
    tasks: int = 1
    stats_q_error_p50: float | None = None
    stats_q_error_p95: float | None = None


_SET_DISTRIBUTED = re.compile(
    r"SET\s+(distributed\.[A-Za-z0-9_.]+)\s*(?:=|\s+TO\s+)\s*(.*)", re.IGNORECASE | re.DOTALL
)
_EXTERNAL_LOCATION = re.compile(
    r"^(CREATE\s+(?:UNBOUNDED\s+)?EXTERNAL\s+TABLE\b.*?\bLOCATION\s+)'((?:[^']|'')*)'",
    re.IGNORECASE | re.DOTALL,
)


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1].replace(value[0] * 2, value[0])
    return value


class LocalWorker:
    """One DataFusion session for the process lifetime, driven by SQL text."""

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, base_url: str = "",
                 worker_urls: Sequence[str] | None = None, commit: str | None = None) -> None:
        self.base_url = base_url
        self.worker_urls = list(worker_urls) if worker_urls is not None else None
        self.commit = commit
        self._buckets: set[str] = set()
        self.data_dir = os.path.abspath(data_dir) if data_dir is not None else None
        self.started = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.version = datafusion.__version__
        self._ctx = SessionContext()
        self._settings: dict[str, str] = {}
        # The handler threads share this one session. Registering tables and changing settings
        # mutate SessionContext state, and a request's statements must apply as one unit (a SET or
        # CREATE VIEW of one request must not land between another request's statements), so
        # every request holds the lock from its first statement to its last row. Serialising also
        # keeps timings honest: concurrent queries would compete for the same cores.
        self._lock = threading.Lock()

    def info(self) -> dict[str, Any]:
        return {
            "worker_urls": self.worker_urls if self.worker_urls is not None else
            [self.base_url] if self.base_url else [],
            "git_commit_hash": self.commit or f"local-datafusion-{self.version}",
            "build_time_utc": self.started,
            "errors": [],
            "engine": f"datafusion-python {self.version}",
            "settings": dict(self._settings),
            "data_dir": self.data_dir,
        }

    def run(self, sql: str) -> QueryResult:
        """Plan every statement in order, execute and time only the last.

        Raises RequestError when there is no statement, and DataFusion's exception (its message
        is the error text) when a statement fails.
        """
        statements = split_statements(sql)
        if not statements:
            raise RequestError("no SQL statement in the request")
        with self._lock:
            for statement in statements[:-1]:
                self._plan(statement)
            return self._execute(statements[-1])

    def _plan(self, statement: str) -> datafusion.DataFrame | None:
        """Plan one statement; DataFusion runs DDL and SET at this point. None for a recorded SET."""
        match = _SET_DISTRIBUTED.fullmatch(statement)
        if match:
            self._settings[match.group(1).lower()] = _unquote(match.group(2))
            return None
        return self._ctx.sql(self._resolve_location(statement))

    def _execute(self, statement: str) -> QueryResult:
        start = time.perf_counter()
        frame = self._plan(statement)
        count = 0
        if frame is not None:
            # Streamed, not collected: only the row count is needed, however large the result.
            for batch in frame.execute_stream():
                count += batch.to_pyarrow().num_rows
        elapsed_ms = (time.perf_counter() - start) * 1000
        if frame is None:
            plan = f"recorded (not executed by the local worker): {statement}"
        else:
            # Same logical plan, so the same physical plan as the one just run; built after the
            # clock stopped so that rendering it is not timed.
            plan = frame.execution_plan().display_indent()
        return QueryResult(plan=plan, count=count, elapsed_ms=elapsed_ms)

    def _resolve_location(self, statement: str) -> str:
        match = _EXTERNAL_LOCATION.match(statement)
        if not match:
            return statement
        location = match.group(2).replace("''", "'")
        if location.startswith("s3://"):
            self._register_bucket(urlsplit(location).netloc)
            return statement
        if self.data_dir is None or "://" in location or os.path.isabs(location):
            return statement
        resolved = os.path.join(self.data_dir, location).replace("'", "''")
        return f"{match.group(1)}'{resolved}'{statement[match.end():]}"

    def _register_bucket(self, bucket: str) -> None:
        """DataFusion reads s3:// only through an object store registered for the bucket."""
        if bucket in self._buckets:
            return
        import boto3
        from datafusion.object_store import AmazonS3

        session = boto3.Session()
        credentials = session.get_credentials()
        frozen = credentials.get_frozen_credentials() if credentials is not None else None
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        store = AmazonS3(bucket_name=bucket, region=session.region_name or "us-east-1",
                         access_key_id=frozen.access_key if frozen else None,
                         secret_access_key=frozen.secret_key if frozen else None,
                         session_token=frozen.token if frozen else None,
                         endpoint=endpoint, allow_http=bool(endpoint and endpoint.startswith("http://")))
        self._ctx.register_object_store("s3://", store, bucket)
        self._buckets.add(bucket)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # every response carries Content-Length, so keep-alive works
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - the http.server naming
        url = urlsplit(self.path)
        worker = self.server.worker
        if url.path == "/info":
            self._send(HTTPStatus.OK, worker.info())
        elif url.path == "/health":
            self._send(HTTPStatus.OK, "ok")
        elif url.path == "/":
            sql = parse_qs(url.query, keep_blank_values=True).get("sql")
            if sql is None:
                self._send(HTTPStatus.BAD_REQUEST, "missing query parameter 'sql' (GET /?sql=...)")
                return
            try:
                result = worker.run(sql[-1])
            except RequestError as error:
                self._send(HTTPStatus.BAD_REQUEST, str(error))
            except Exception as error:  # noqa: BLE001 - DataFusion raises plain exceptions
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, str(error) or type(error).__name__)
            else:
                self._send(HTTPStatus.OK, asdict(result))
        else:
            self._send(HTTPStatus.NOT_FOUND, {"error": f"not found: {url.path}"})

    def _send(self, status: HTTPStatus, body: str | dict[str, Any]) -> None:
        if isinstance(body, str):
            data, kind = body.encode(), "text/plain; charset=utf-8"
        else:
            data, kind = json.dumps(body).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base class signature
        if not self.server.quiet:
            super().log_message(format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    worker: LocalWorker
    quiet: bool


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    quiet: bool = False,
    worker_urls: Sequence[str] | None = None,
    commit: str | None = None,
) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Bind, start serving in a daemon thread, return both. ``server.worker.base_url`` is the URL.

    Stop with ``server.shutdown(); server.server_close()``.
    """
    server_class = _Server
    if ":" in host:
        server_class = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
    server = server_class((host, port), _Handler)
    server.quiet = quiet
    server.worker = LocalWorker(data_dir=data_dir, base_url=_url(host, server.server_address[1]),
                                worker_urls=worker_urls, commit=commit)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="localworker", daemon=True
    )
    thread.start()
    return server, thread


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dfbench.worker.local",
        description="A local DataFusion worker speaking the benchmark worker's HTTP contract.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9000, help="port (default 9000; 0 picks a free one)")
    parser.add_argument("--data-dir", help="folder that relative LOCATION paths resolve against")
    parser.add_argument("--quiet", action="store_true", help="do not log each request to stderr")
    parser.add_argument("--worker-urls", help="comma-separated peer URLs /info reports (default: its own URL)")
    parser.add_argument("--commit", help="the git_commit_hash /info reports")
    args = parser.parse_args(argv)
    if args.data_dir is not None and not os.path.isdir(args.data_dir):
        parser.error(f"--data-dir {args.data_dir!r} is not a directory")

    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        server, thread = serve(args.host, args.port, data_dir=args.data_dir, quiet=args.quiet,
                               worker_urls=None if args.worker_urls is None else
                               [u for u in args.worker_urls.split(",") if u.strip()],
                               commit=args.commit)
    except OSError as error:
        print(f"cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    print(f"listening on {server.worker.base_url}", flush=True)
    # The main thread only waits, so the signal handler runs promptly; shutdown() must not be
    # called from the serving thread itself.
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
