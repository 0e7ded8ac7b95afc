"""The relay transport: no Session Manager plugin and no open port. Each HTTP request to the local
URL runs on the instance as an SSM Run Command (AWS-RunShellScript) that curls the worker on
``http://127.0.0.1:<remote_port><path>`` and prints a header line and the body; the answer comes
back through GetCommandInvocation, or through S3 when it is longer than the 24,000 characters
that call returns. Slow (a command round trip, about a second a request) but needs nothing on the
user's machine beyond boto3.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from dfbench.aws import ssm as remote
from dfbench.errors import DfbenchError, TransportError, WaitTimeout, aws_errors
from dfbench.transport.base import local_listener

log = logging.getLogger("dfbench")

HEADER = "DFBENCH-RELAY"
_HEADER_LINE = re.compile(rf"{HEADER} (\d{{1,3}}) (\d+)")
# SendCommand's delivery timeout: how long SSM keeps trying to reach the instance's agent. The
# API's minimum is 30 s; an interactive request should not wait the 10 minutes a deploy allows.
DELIVERY_TIMEOUT_S = 60
# The agent's execution timeout is the request timeout plus this: curl (--max-time) gives up
# first, so a slow worker shows as curl's timeout message, not as a killed command.
_EXECUTION_MARGIN_S = 60
# After the command's own timeouts, room for SSM to report the final status.
_STATUS_MARGIN_S = 60


@dataclass(frozen=True)
class RelayAnswer:
    """What the relay script printed: the worker's HTTP status (0: curl could not get an answer,
    and ``body`` is curl's message), the body, and whether the body is all of it."""

    status: int
    body: str
    declared_bytes: int
    complete: bool


def relay_script(path: str, *, remote_port: int = 9000, timeout_s: float) -> str:
    """Bash that GETs ``http://127.0.0.1:<remote_port><path>`` on the instance and prints
    ``DFBENCH-RELAY <http status> <body byte length>``, a newline, then the body bytes exactly.

    A curl failure (connection refused, timeout) prints status 0 and curl's error message as the
    body. The script exits 0 either way: the HTTP status is data, not a command failure, so SSM
    reports Failed only when the script itself could not run."""
    if not path.startswith("/") or any(ord(c) < 0x21 or c == "\x7f" for c in path):
        raise ValueError(f"not a request path: {path!r}")
    url = shlex.quote(f"http://127.0.0.1:{int(remote_port)}") + shlex.quote(path)
    max_time = max(1, round(timeout_s))
    return f"""#!/bin/bash
# dfbench relay: one HTTP GET to the worker on this instance (see dfbench.transport.relay).
body=$(mktemp) && error=$(mktemp) || exit 1
trap 'rm -f "$body" "$error"' EXIT
# The request path is single-quoted data: nothing in it ($, backquotes, quotes) is expanded.
# shellcheck disable=SC2016
url={url}
if status=$(curl --silent --show-error --globoff --max-time {max_time} --output "$body" \\
    --write-out '%{{http_code}}' "$url" 2>"$error"); then
  out=$body
else
  status=0
  out=$error
fi
printf '{HEADER} %s %s\\n' "$status" "$(wc -c <"$out" | tr -d ' ')"
cat "$out"
exit 0
"""


def parse_relay_output(stdout: str | bytes) -> RelayAnswer:
    """Parse what ``relay_script`` printed. ``complete`` is False when the body is shorter than its
    declared byte length (SSM cut the output); raises TransportError when there is no header (the
    script did not run as written)."""
    data = stdout.encode("utf-8") if isinstance(stdout, str) else stdout
    first, newline, rest = data.partition(b"\n")
    match = _HEADER_LINE.fullmatch(first.decode("utf-8", errors="replace").strip())
    if not newline or not match:
        shown = data[:200].decode("utf-8", errors="replace")
        raise TransportError("relay", f"The relay command printed no {HEADER} header: {shown!r}")
    declared = int(match.group(2))
    return RelayAnswer(status=int(match.group(1)), body=rest.decode("utf-8", errors="replace"),
                       declared_bytes=declared, complete=len(rest) == declared)


class RelayError(TransportError):
    """A relayed request got no answer from the worker: ``status`` is the HTTP status the local
    server answers with (502, or 504 when SSM did not report in time)."""

    def __init__(self, message: str, status: int = HTTPStatus.BAD_GATEWAY) -> None:
        self.status = status
        super().__init__("relay", message)


class RelayTransport:
    """A local HTTP server whose GETs run on the instance as SSM commands (see the module text)."""

    kind = "relay"

    def __init__(self, *, ssm: Any, s3: Any, instance_id: str, bucket: str, remote_port: int = 9000,
                 request_timeout_s: float = 3600.0, output_prefix: str = remote.OUTPUT_PREFIX,
                 local_port: int = 0) -> None:
        self.ssm, self.s3 = ssm, s3
        self.instance_id = instance_id
        self.bucket = bucket
        self.remote_port = remote_port
        self.request_timeout_s = request_timeout_s
        self.output_prefix = output_prefix.strip("/")
        self.local_port = local_port
        self.url = ""
        self.description = (f"relay: each request runs as an SSM command (AWS-RunShellScript, curl to "
                            f"127.0.0.1:{remote_port}) on {instance_id}; slow, about 1 s per request")
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- one request --------------------------------------------------------------------------

    def fetch(self, path: str) -> RelayAnswer:
        """Run one GET on the instance; the worker's answer, whole. Raises RelayError when no
        answer came back (the command failed, SSM did not report, the output is incomplete)."""
        script = relay_script(path, remote_port=self.remote_port, timeout_s=self.request_timeout_s)
        execution_timeout_s = int(self.request_timeout_s) + _EXECUTION_MARGIN_S
        try:
            with aws_errors():
                command_id = remote.send_to_instance(
                    self.ssm, instance_id=self.instance_id, script=script, comment=f"dfbench relay GET {path}",
                    execution_timeout_s=execution_timeout_s, output_bucket=self.bucket,
                    output_prefix=self.output_prefix, delivery_timeout_s=DELIVERY_TIMEOUT_S)
                invocation = remote.wait_invocation(
                    self.ssm, command_id, self.instance_id,
                    deadline_s=DELIVERY_TIMEOUT_S + execution_timeout_s + _STATUS_MARGIN_S,
                    output_bucket=self.bucket, output_prefix=self.output_prefix)
        except WaitTimeout as error:
            raise RelayError(f"No answer from {self.instance_id} through SSM: {error}",
                             HTTPStatus.GATEWAY_TIMEOUT) from None
        if not invocation.ok:
            raise RelayError(self._failure(invocation))
        answer = parse_relay_output(invocation.stdout)
        if not answer.complete and invocation.output_url:
            # Longer than GetCommandInvocation returns: the agent wrote all of it to S3.
            answer = parse_relay_output(self._read(invocation.output_url))
        if not answer.complete:
            raise RelayError(f"The answer of {self.instance_id} to GET {path} came back incomplete "
                             f"({len(answer.body.encode())} of {answer.declared_bytes} bytes); its full output "
                             f"should be at {invocation.output_url}.")
        return answer

    def _failure(self, invocation: remote.Invocation) -> str:
        code = "no exit code" if invocation.exit_code is None else f"exit code {invocation.exit_code}"
        details = invocation.status_details
        if details and details != invocation.status:
            code = f"{details}, {code}"
        hint = remote.failure_hint(invocation.status, details)
        text = (f"The relay command on {self.instance_id} ended {invocation.status} ({code})"
                + (f": {hint}" if hint else "") + ".")
        tail = "\n".join((invocation.stderr or invocation.stdout).strip().splitlines()[-10:])
        return text + (f"\n{tail}" if tail else "")

    def _read(self, url: str) -> bytes:
        bucket, _, key = url.removeprefix("s3://").partition("/")
        try:
            with aws_errors():
                return bytes(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except DfbenchError as error:
            raise RelayError(f"The answer of {self.instance_id} is longer than SSM returns, and reading it "
                             f"from {url} failed: {error}") from None

    # --- the local server ---------------------------------------------------------------------

    def __enter__(self) -> Self:
        if self._server is not None:
            return self
        listener = local_listener(self.kind, self.local_port)
        server = ThreadingHTTPServer(listener.getsockname(), _handler(self), bind_and_activate=False)
        server.socket.close()
        server.socket = listener  # bound here so that a taken port is a TransportError
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="dfbench-relay", daemon=True)
        self._thread.start()
        host, port = listener.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        log.info("relay to %s:%d listening on %s", self.instance_id, self.remote_port, self.url)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None


def _handler(transport: RelayTransport) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if not self.path.startswith("/"):
                self._send(HTTPStatus.BAD_REQUEST, f"not a request path: {self.path}")
                return
            try:
                answer = transport.fetch(self.path)
            except RelayError as error:
                self._send(error.status, str(error))
                return
            except Exception as error:
                log.warning("relay GET %s failed: %s", self.path, error)
                self._send(HTTPStatus.BAD_GATEWAY, f"relay to {transport.instance_id} failed: {error}")
                return
            if answer.status == 0:
                self._send(HTTPStatus.BAD_GATEWAY, f"the worker on {transport.instance_id} (127.0.0.1:"
                           f"{transport.remote_port}) did not answer: {answer.body.strip()}")
                return
            self._send(answer.status, answer.body)

        def _not_allowed(self) -> None:
            self._send(HTTPStatus.METHOD_NOT_ALLOWED, "the relay forwards GET requests only",
                       extra={"Allow": "GET"})

        do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _not_allowed

        def _send(self, status: int, body: str, extra: dict[str, str] | None = None) -> None:
            data = body.encode("utf-8")
            try:
                json.loads(body)
                kind = "application/json"
            except ValueError:
                kind = "text/plain; charset=utf-8"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("relay %s: " + format, transport.instance_id, *args)

    return Handler
