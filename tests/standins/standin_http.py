"""The HTTP side both stand-in workers share: ``GET /info`` and ``GET /?sql=`` with the JSON fields
and error texts of upstream's workers (benchmarks/src/bin/worker.rs and benchmarks/cdk/bin/worker.rs:
``WorkerInfo { worker_urls, git_commit_hash, build_time_utc, errors }``, ``QueryResult``, and the
500 answers "Missing 'sql' parameter" / "Empty 'sql' parameter").

Test-only seams, none of which the real workers have: ``--port`` or ``DFBENCH_STANDIN_PORT`` (the
real ones listen on 9000), listening on 127.0.0.1 only, ``DFBENCH_STANDIN_COMMIT`` for the
commit ``/info`` reports, and ``DFBENCH_STANDIN_ERRORS`` (a JSON list of strings) for its
``errors``, the peers a real worker could not connect to.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

DEFAULT_PORT = 9000
# The port peers serve gRPC on: /info lists them as http://IP:9001/ (url::Url adds the slash).
PEER_PORT = 9001
DEFAULT_COMMIT = "0" * 40


def port_option(value: str | None) -> int:
    return int(value or os.environ.get("DFBENCH_STANDIN_PORT") or DEFAULT_PORT)


def peer_url(address: str) -> str:
    return f"http://{address}:{PEER_PORT}/"


def bind(port: int) -> ThreadingHTTPServer:
    """Bind first, as the real workers do before anything else can fail."""
    return ThreadingHTTPServer(("127.0.0.1", port), _Handler)


def serve(server: ThreadingHTTPServer, peers: Callable[[], list[str]]) -> None:
    """Answer until killed. ``peers()`` gives the peer URLs at each ``/info``."""
    server.peers = peers  # type: ignore[attr-defined]
    # The `built` crate's BUILT_TIME_UTC is RFC 2822; the stand-in's build is its source file.
    server.build_time = time.strftime("%a, %d %b %Y %H:%M:%S +0000",  # type: ignore[attr-defined]
                                      time.gmtime(os.path.getmtime(__file__)))
    server.serve_forever()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/info":
            self._send(HTTPStatus.OK, {
                "worker_urls": self.server.peers(),  # type: ignore[attr-defined]
                "git_commit_hash": os.environ.get("DFBENCH_STANDIN_COMMIT", DEFAULT_COMMIT),
                "build_time_utc": self.server.build_time,  # type: ignore[attr-defined]
                "errors": json.loads(os.environ.get("DFBENCH_STANDIN_ERRORS") or "[]"),
            })
        elif url.path == "/":
            self._query(parse_qs(url.query).get("sql"))
        else:
            self._send(HTTPStatus.NOT_FOUND, "")

    def _query(self, sql: list[str] | None) -> None:
        if not sql:
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, "Missing 'sql' parameter")
            return
        statements = [s.strip() for s in sql[0].split(";") if s.strip()]
        if not statements:
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, "Empty 'sql' parameter")
            return
        # No engine here: every statement runs and returns no rows.
        self._send(HTTPStatus.OK, {"plan": f"StandInExec: {statements[-1]}", "count": 0, "elapsed_ms": 0.0,
                                   "tasks": 0, "stats_q_error_p50": None, "stats_q_error_p95": None})

    def _send(self, status: HTTPStatus, body: object) -> None:
        data = (json.dumps(body) if not isinstance(body, str) else body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json" if not isinstance(body, str) else "text/plain")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass
