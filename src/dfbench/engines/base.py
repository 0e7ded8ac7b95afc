"""What the runner needs of an engine (ARCHITECTURE.md §5a): one small protocol, which the
DataFusion worker's HTTP client (dfbench.worker.client.WorkerClient, also Spark's service) and
the Trino adapter (dfbench.engines.trino) both satisfy."""

from __future__ import annotations

from typing import Any, Protocol


class EngineClient(Protocol):
    """``query`` answers as the worker's ``GET /?sql=`` does (``elapsed_ms``, ``count``, ``plan``);
    an error answer is QueryFailed, no answer WorkerUnreachable. ``rows`` answers ``columns`` and
    ``rows`` of the last statement, untimed."""

    url: str

    def info(self) -> dict[str, Any]: ...

    def query(self, sql: str) -> dict[str, Any]: ...

    def rows(self, sql: str) -> dict[str, Any]: ...
