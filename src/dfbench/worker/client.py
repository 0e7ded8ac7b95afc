"""The worker's HTTP contract (ARCHITECTURE.md §5) from the client side: ``GET /info`` and
``GET /?sql=``, with the standard library only."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

from dfbench.errors import ConfigError, QueryFailed, WorkerUnreachable

# /info is answered at once by a live worker: a short wait tells a dead one quickly.
INFO_TIMEOUT_S = 5.0
QUERY_TIMEOUT_S = 3600.0


class WorkerClient:
    """``GET /info`` and ``GET /?sql=`` of one worker, with the standard library only."""

    def __init__(self, url: str, timeout: float | None = QUERY_TIMEOUT_S,
                 info_timeout: float = INFO_TIMEOUT_S) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"Invalid worker URL {url!r}: give one such as http://127.0.0.1:9000.")
        self.url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self.timeout = timeout
        self.info_timeout = info_timeout

    def _get(self, path: str, timeout: float | None) -> tuple[int, str]:
        request = urllib.request.Request(self.url + path, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read().decode("utf-8", errors="replace")
        except urllib.error.HTTPError as error:
            body = error.read().decode("utf-8", errors="replace") if error.fp is not None else ""
            return error.code, body
        except TimeoutError:
            raise
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            reason = getattr(error, "reason", error)
            raise WorkerUnreachable(self.url, str(reason)) from None

    def info(self) -> dict[str, Any]:
        """The worker's ``/info``; WorkerUnreachable when nothing (or no worker) answers."""
        try:
            status, body = self._get("/info", self.info_timeout)
        except TimeoutError:
            raise WorkerUnreachable(self.url, f"no answer to /info within {self.info_timeout:.0f}s") from None
        if status != 200:
            raise WorkerUnreachable(self.url, f"/info answered HTTP {status}: {body[:200].strip()}")
        try:
            info = json.loads(body)
        except ValueError:
            info = None
        if not isinstance(info, dict):
            raise WorkerUnreachable(self.url, "/info did not answer a JSON object; is this a benchmark worker?")
        return info

    def query(self, sql: str) -> dict[str, Any]:
        """Run SQL (the worker plans every statement and executes the last). An error answer is
        QueryFailed with the worker's text; no answer is WorkerUnreachable."""
        return self._sql("/", sql, lambda answer: "elapsed_ms" in answer and "count" in answer)

    def rows(self, sql: str) -> dict[str, Any]:
        """``GET /rows?sql=``: the last statement's ``columns`` and ``rows``, untimed (dfbench's
        local worker and Spark service answer it; a real worker does not)."""
        return self._sql("/rows", sql, lambda answer: isinstance(answer.get("rows"), list))

    def _sql(self, path: str, sql: str, complete: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """``GET <path>?sql=``'s JSON object, when ``complete`` accepts it; QueryFailed otherwise."""
        try:
            status, body = self._get(f"{path}?sql={quote(sql, safe='')}", self.timeout)
        except TimeoutError:
            raise QueryFailed(f"no answer within {self.timeout:.0f}s (timeout)", status=0) from None
        if status != 200:
            raise QueryFailed(body.strip() or f"HTTP {status}", status=status)
        try:
            answer = json.loads(body)
            if not isinstance(answer, dict) or not complete(answer):
                raise ValueError
        except ValueError:
            raise QueryFailed(f"unexpected answer from the worker: {body[:200]!r}", status=status) from None
        return answer
