"""The instance metadata service, IMDSv2 only, on loopback: what the POD_IP helper asks before
every start of the worker."""

from __future__ import annotations

import http.server
import threading
from types import TracebackType


class Imds:
    """IMDSv2 on loopback: a token from PUT /latest/api/token (with its TTL header), then
    local-ipv4 only with that token, as the instance metadata service answers (401 otherwise;
    https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instance-metadata-v2-how-it-works.html).
    ``address`` is the instance's private address, and may change (a stop and start);
    ``requests`` lists (method, path) as they came. A context manager: leaving it stops the server."""

    TOKEN = "AQAEAtoken"

    def __init__(self, address: str) -> None:
        self.address = address
        self.requests: list[tuple[str, str]] = []
        imds = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                imds.requests.append(("PUT", self.path))
                ok = self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
                self._answer(200 if ok else 400, imds.TOKEN if ok else "")

            def do_GET(self) -> None:
                imds.requests.append(("GET", self.path))
                if self.headers.get("X-aws-ec2-metadata-token") != imds.TOKEN:
                    self._answer(401, "")
                else:
                    self._answer(200 if self.path == "/latest/meta-data/local-ipv4" else 404, imds.address)

            def _answer(self, status: int, body: str) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *_: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Imds:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
