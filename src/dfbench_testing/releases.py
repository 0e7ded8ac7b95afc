"""The engines' release sites (repo1.maven.org, archive.apache.org), on loopback: what an engine's
step scripts download from when ``DFBENCH_DOWNLOAD_BASE`` is this site's ``base``
(dfbench.engines.setup). A file published at ``repo1.maven.org/maven2/x.jar`` is served at
``<base>/repo1.maven.org/maven2/x.jar``, with its checksums beside it (``.sha1``, ``.sha512``, as
those sites publish them: the hex digest, then for Apache's two spaces and the file name).

``requests`` lists the paths asked for, in order, so a test sees what a second install downloaded
again (nothing, when it converges). ``damage(path)`` serves other bytes under a published path, as
a broken mirror would; ``broken`` makes every request answer 503.
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


class ReleaseSite:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.broken = False
        self._lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.lstrip("/")
                with site._lock:
                    site.requests.append(path)
                    body = site.files.get(path)
                if site.broken or body is None:
                    self.send_response(503 if site.broken else 404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="release-site")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def publish(self, path: str, body: bytes) -> None:
        """``path`` (``host/...``, no scheme) with its ``.sha1`` and ``.sha512`` beside it."""
        name = path.rsplit("/", 1)[-1]
        self.files[path] = body
        self.files[f"{path}.sha1"] = hashlib.sha1(body).hexdigest().encode()
        self.files[f"{path}.sha512"] = f"{hashlib.sha512(body).hexdigest()}  {name}\n".encode()

    def damage(self, path: str) -> None:
        self.files[path] = self.files[path] + b"damaged"

    def downloads(self, suffix: str = "") -> list[str]:
        """The files asked for (checksums left out), those ending with ``suffix``."""
        return [p for p in self.requests if not p.endswith((".sha1", ".sha512")) and p.endswith(suffix)]

    def __enter__(self) -> ReleaseSite:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
