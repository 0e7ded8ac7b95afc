"""The local worker: the real worker's HTTP contract (ARCHITECTURE.md §5) on DataFusion from PyPI.

Run it with ``python -m dfbench.worker.local --port 9000 [--data-dir DIR] [--s3-bucket NAME ...]``.
``--port 0`` picks a free port; the line ``listening on http://HOST:PORT`` on stdout says which.

Endpoints:

- ``GET /info``: ``worker_urls``, ``git_commit_hash``, ``build_time_utc``, ``errors`` as the real
  worker, plus ``engine``, ``settings`` (the recorded ``SET distributed.*`` values) and
  ``data_dir``.
- ``GET /?sql=...``: run by the engine (:mod:`dfbench.worker.engine`, which says how, and what SQL
  it refuses). DataFusion errors are HTTP 500 with the error text; a refused location or a
  request without ``sql`` is 400.
- ``GET /rows?sql=...``: the last statement's ``columns`` and ``rows`` (decimals and dates as
  text), so that engines' answers can be compared (``dfbench bench --engines``).
- ``GET /health``: ``ok``.

``--worker-urls`` and ``--commit`` set what ``/info`` reports, so that tests can stand one local
worker in for every instance of a cluster (by default: its own URL, ``local-datafusion-<version>``).

``--slowdown FRACTION`` (0 to ``MAX_SLOWDOWN``) is a known, real handicap for calibrating verdicts
(``benchmarks/aa_real.py``): after each query has run, the worker sleeps ``FRACTION`` times the
query's elapsed time before answering and counts the sleep in ``elapsed_ms`` (so a query's time,
as the worker reports it and as a client waits for it, is ``1 + FRACTION`` times what it was).
Nothing else changes: the same plan, the same rows. ``/info`` then says ``slowdown`` (absent when 0),
so a run's ``run.json`` shows that its worker was handicapped.

Safe by default, since any local program or web page can send it a GET (what SQL it runs and what
it reads is the engine's part):

- A request whose ``Host`` is not a loopback name (``localhost``, ``127.0.0.1``, ``[::1]``) or the
  bound address is refused (403): a DNS rebinding page sends its own name. The port is not
  checked: every port forward (``ssh -L``, Session Manager, ``dfbench tunnel``, a test's proxy)
  delivers the client's local port, and the name is what a rebinding page controls.
- A request with an ``Origin`` header, or with ``Sec-Fetch-Site`` other than ``none`` (typed in
  the address bar) or ``same-origin``, comes from a web page and is refused (403). Current
  browsers send ``Sec-Fetch-Site`` with every request to a loopback address, ``<img src>``
  included, which carries no ``Origin``; what an older browser could still trigger reads only the
  folder and buckets above and writes nothing.
- It binds loopback only, unless ``--allow-remote`` (which prints a warning; bound to every
  interface, it then accepts any IP address as ``Host``, still no other name).
- A connection silent for ``IDLE_TIMEOUT_S`` is closed, and at most ``MAX_CONNECTIONS`` are served
  at once. One more is answered 503 at once rather than left waiting: a slot is held as long as its
  client keeps the connection, so a wait would mostly be a wait for idle keep-alive connections.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, NoReturn, Protocol
from urllib.parse import parse_qs, urlsplit

from dfbench.errors import ConfigError
from dfbench.worker.contract import QueryResult, RequestError


class Worker(Protocol):
    """What the server answers with: ``/info``'s object and ``/?sql=``'s result (LocalWorker, or
    another engine speaking the same contract, such as dfbench.engines.spark_service's)."""

    base_url: str

    def info(self) -> dict[str, Any]: ...

    def run(self, sql: str) -> QueryResult: ...

    def rows(self, sql: str) -> dict[str, Any]: ...

# A keep-alive connection silent this long is closed (its thread and slot freed).
IDLE_TIMEOUT_S = 30.0
# Connections served at once (a thread each); more are answered 503.
MAX_CONNECTIONS = 64
# Connections being answered 503 at once; beyond that a connection is closed unanswered (a flood).
_MAX_REFUSALS = 8
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
# Fetch metadata a browser sends with every request to a loopback address: only a URL typed in
# the address bar (none) or a page of the worker's own (same-origin; it serves none) may pass.
_BROWSER_SITES_ALLOWED = frozenset({"none", "same-origin"})
# --slowdown's bound: at most doubling each query's time, more than calibrating a verdict needs.
MAX_SLOWDOWN = 1.0
_HOST_HEADER = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^\[\]:/@\s]+)(?::(\d{1,5}))?")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # every response carries Content-Length, so keep-alive works
    server: _Server

    def __init__(self, request: socket.socket, client_address: Any, server: _Server, *, busy: bool) -> None:
        self.busy = busy  # over MAX_CONNECTIONS: answer 503 and close
        super().__init__(request, client_address, server)

    def setup(self) -> None:
        # Every read and write on the connection times out (StreamRequestHandler.setup would apply
        # its class-wide ``timeout``; this server's is per instance).
        self.request.settimeout(self.server.idle_timeout_s)
        super().setup()

    def parse_request(self) -> bool:
        """The request line and headers, then the refusals that apply to every path and method."""
        if not super().parse_request():
            return False
        refusal = self._refusal()
        if refusal is None:
            return True
        self.close_connection = True
        self._send(*refusal)
        return False

    def _refusal(self) -> tuple[HTTPStatus, str] | None:
        if self.busy:
            return HTTPStatus.SERVICE_UNAVAILABLE, (f"the worker serves {self.server.max_connections} connections "
                                                    "already; close idle ones or retry")
        if not self.path.startswith("/"):
            # An absolute URL (a proxy's form) names its own host, which would override Host.
            return HTTPStatus.BAD_REQUEST, "the request target must be a path, such as /info"
        hosts = self.headers.get_all("Host") or []
        if len(hosts) > 1:
            return HTTPStatus.BAD_REQUEST, "more than one Host header"
        if not hosts and self.request_version != "HTTP/1.0":
            return HTTPStatus.BAD_REQUEST, "missing Host header (HTTP/1.1 requires one)"
        if hosts and not self.server.host_allowed(hosts[0]):
            return HTTPStatus.FORBIDDEN, (f"Host {hosts[0]!r} is not this worker's: use http://127.0.0.1:PORT "
                                          "or http://localhost:PORT")
        if self.headers.get("Origin") is not None:
            return HTTPStatus.FORBIDDEN, "requests from web pages (with an Origin header) are refused"
        site = self.headers.get("Sec-Fetch-Site")
        if site is not None and site.strip().lower() not in _BROWSER_SITES_ALLOWED:
            return HTTPStatus.FORBIDDEN, f"requests from web pages (Sec-Fetch-Site: {site}) are refused"
        return None

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        worker = self.server.worker
        if url.path == "/info":
            info = worker.info()
            if self.server.slowdown:
                info["slowdown"] = self.server.slowdown
            self._send(HTTPStatus.OK, info)
        elif url.path == "/health":
            self._send(HTTPStatus.OK, "ok")
        elif url.path in ("/", "/rows"):
            sql = parse_qs(url.query, keep_blank_values=True).get("sql")
            if sql is None:
                self._send(HTTPStatus.BAD_REQUEST, f"missing query parameter 'sql' (GET {url.path}?sql=...)")
                return
            try:
                answer = asdict(self.server.run(sql[-1])) if url.path == "/" else worker.rows(sql[-1])
            except RequestError as error:
                self._send(HTTPStatus.BAD_REQUEST, str(error))
            except Exception as error:
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, str(error) or type(error).__name__)
            else:
                self._send(HTTPStatus.OK, answer)
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
        if self.close_connection:
            self.send_header("Connection", "close")
        else:
            # Clients that read it (Node's fetch does) close an idle connection before we do, so
            # none sends a request on a connection we are closing.
            self.send_header("Keep-Alive", f"timeout={int(self.server.idle_timeout_s)}")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)


class _Server(HTTPServer):
    """One thread per connection, as ThreadingHTTPServer, but at most ``max_connections`` served."""

    # Connections wait here for accept() while the serving thread starts the previous ones.
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], *, quiet: bool, allow_remote: bool, idle_timeout_s: float,
                 max_connections: int, slowdown: float = 0.0) -> None:
        super().__init__(address, _Handler)  # type: ignore[arg-type] # _Handler takes busy= too
        self.quiet = quiet
        self.slowdown = slowdown
        self.idle_timeout_s = idle_timeout_s
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        self._refusals = threading.BoundedSemaphore(_MAX_REFUSALS)
        bound = ipaddress.ip_address(address[0]) if _is_ip(address[0]) else None
        self._remote = allow_remote and not _is_loopback(address[0])
        self._bound = bound
        self.worker: Worker

    def host_allowed(self, header: str) -> bool:
        """A loopback name or the bound address, at any port; with --allow-remote bound to every
        interface (or to a name), any IP address. Never another DNS name: that is what a DNS
        rebinding page sends."""
        match = _HOST_HEADER.fullmatch(header.strip())
        if match is None:
            return False
        name = match.group(1).lower()
        if name in _LOOPBACK_NAMES:
            return True
        if not _is_ip(name.strip("[]")):
            return False
        address = ipaddress.ip_address(name.strip("[]"))
        if address == self._bound:
            return True
        return self._remote and (self._bound is None or self._bound.is_unspecified)

    def run(self, sql: str) -> QueryResult:
        """The engine's answer, its timed section lengthened by ``slowdown`` (module docstring): the
        sleep is measured and added, so ``elapsed_ms`` grows by what was really spent."""
        result = self.worker.run(sql)
        if not self.slowdown:
            return result
        started = time.perf_counter()
        time.sleep(result.elapsed_ms * self.slowdown / 1000)
        return replace(result, elapsed_ms=result.elapsed_ms + (time.perf_counter() - started) * 1000)

    def process_request(self, request: Any, client_address: Any) -> None:
        if self._slots.acquire(blocking=False):
            busy = False
        elif self._refusals.acquire(blocking=False):
            busy = True
        else:
            self.shutdown_request(request)
            return
        threading.Thread(target=self._serve_connection, args=(request, client_address, busy),
                         name="localworker-connection", daemon=True).start()

    def _serve_connection(self, request: Any, client_address: Any, busy: bool) -> None:
        """ThreadingMixIn.process_request_thread, with the slot given back at the end."""
        try:
            _Handler(request, client_address, self, busy=busy)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            (self._refusals if busy else self._slots).release()


class _Server6(_Server):
    address_family = socket.AF_INET6


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    """Whether every address ``host`` stands for is a loopback one (``localhost`` is)."""
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return bool(infos) and all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos)


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
    s3_buckets: Sequence[str] = (),
    allow_remote: bool = False,
    idle_timeout_s: float = IDLE_TIMEOUT_S,
    max_connections: int = MAX_CONNECTIONS,
    make_worker: Callable[[str], Worker] | None = None,
    slowdown: float = 0.0,
) -> tuple[_Server, threading.Thread]:
    """Bind, start serving in a daemon thread, return both. ``server.worker.base_url`` is the URL.
    ``make_worker(url)`` answers instead of a LocalWorker (the guards above stay the same).

    ConfigError for a non-loopback ``host`` without ``allow_remote``, a port out of range, a
    bucket name that is not one, or a ``slowdown`` outside 0..``MAX_SLOWDOWN``. Stop with
    ``server.shutdown(); server.server_close()``.
    """
    check_slowdown(slowdown)
    if not 0 <= port <= 65535:
        raise ConfigError(f"port {port} is not a TCP port (0-65535; 0 picks a free one)")
    if not _is_loopback(host):
        if not allow_remote:
            raise ConfigError(f"--host {host} is reachable from other machines; the worker binds loopback "
                              "(127.0.0.1, localhost, ::1) unless given --allow-remote")
        print(f"WARNING: the local worker on {host}:{port} is reachable from other machines: anyone who reaches "
              "it runs SQL that reads every file under --data-dir and every --s3-bucket, with your AWS "
              "credentials. Stop it (Ctrl-C) unless that network is yours alone.", file=sys.stderr, flush=True)
    if s3_buckets:
        from dfbench.config import validate_bucket_name

        for bucket in s3_buckets:
            try:
                validate_bucket_name(bucket)
            except ValueError as error:
                raise ConfigError(f"--s3-bucket: {error}") from None
    # DataFusion only when this server runs it: the Spark service's serves without it (contract.py).
    from dfbench.worker.engine import LocalWorker

    server_class = _Server6 if ":" in host else _Server
    server = server_class((host, port), quiet=quiet, allow_remote=allow_remote, idle_timeout_s=idle_timeout_s,
                          max_connections=max_connections, slowdown=slowdown)
    url = _url(host, server.server_address[1])
    server.worker = (make_worker(url) if make_worker is not None else
                     LocalWorker(data_dir=data_dir, base_url=url, worker_urls=worker_urls, commit=commit,
                                 s3_buckets=s3_buckets))
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="localworker", daemon=True
    )
    thread.start()
    return server, thread


def check_slowdown(fraction: Any) -> None:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= MAX_SLOWDOWN:
        raise ConfigError(f"--slowdown must be a fraction from 0 to {MAX_SLOWDOWN:g} (0.10 makes each query 10% "
                          f"slower), not {fraction!r}")


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value != value:  # NaN passes no comparison; name it as the check does
        raise argparse.ArgumentTypeError(f"{text!r} is not a number")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not usage plus error: the message names the argument.
        raise ConfigError(f"{message} (see --help)")


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m dfbench.worker.local") -> int:
    """The worker until SIGTERM or SIGINT; 2 with one line on stderr for bad arguments. ``dfbench
    worker`` is this, with its own ``prog``."""
    parser = _Parser(
        prog=prog,
        description="A local DataFusion worker speaking the benchmark worker's HTTP contract.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; "
                        "anything but loopback needs --allow-remote)")
    parser.add_argument("--port", type=int, default=9000, help="port (default 9000; 0 picks a free one)")
    parser.add_argument("--data-dir", help="the folder LOCATION paths may name (relative ones resolve "
                        "against it); without it no local file is read")
    parser.add_argument("--s3-bucket", action="append", default=[], metavar="NAME",
                        help="a bucket LOCATION s3:// paths may name (repeatable)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="let --host be an address other machines reach (prints a warning)")
    parser.add_argument("--quiet", action="store_true", help="do not log each request to stderr")
    parser.add_argument("--worker-urls", help="comma-separated peer URLs /info reports (default: its own URL)")
    parser.add_argument("--commit", help="the git_commit_hash /info reports")
    parser.add_argument("--slowdown", type=_fraction, default=0.0, metavar="FRACTION",
                        help=f"make every query FRACTION slower (0 to {MAX_SLOWDOWN:g}; 0.10 = 10%%): the worker "
                        "sleeps FRACTION times each query's elapsed time and counts it in elapsed_ms, changing "
                        "nothing else; a known handicap for checking that a comparison sees it (default 0)")
    try:
        args = parser.parse_args(argv)
        if args.data_dir is not None and not os.path.isdir(args.data_dir):
            raise ConfigError(f"--data-dir {args.data_dir!r} is not a directory")
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    peers = None if args.worker_urls is None else [u for u in args.worker_urls.split(",") if u.strip()]
    return run_service(args.host, args.port, lambda: serve(
        args.host, args.port, data_dir=args.data_dir, quiet=args.quiet, worker_urls=peers, commit=args.commit,
        s3_buckets=args.s3_bucket, allow_remote=args.allow_remote, slowdown=args.slowdown))


def run_service(host: str, port: int, start: Callable[[], tuple[_Server, threading.Thread]]) -> int:
    """A service's command line after its arguments: ``start`` it (bind and serve in a thread), a
    refusal or a port it cannot bind as one line on stderr and its exit code, else serve until
    SIGTERM or SIGINT and 0. The local worker's and the Spark service's."""
    try:
        server, thread = start()
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except OSError as error:
        print(f"error: cannot listen on {host}:{port}: {error.strerror or error}", file=sys.stderr)
        return 1
    _serve_until_signal(server, thread, server.worker.base_url)
    return 0


def _serve_until_signal(server: _Server, thread: threading.Thread, url: str) -> None:
    """Print the ``listening on URL`` line a parent waits for, serve until SIGTERM or SIGINT, stop."""
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    print(f"listening on {url}", flush=True)
    # The main thread only waits, so the signal handler runs promptly; shutdown() must not be
    # called from the serving thread itself.
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


if __name__ == "__main__":
    sys.exit(main())
