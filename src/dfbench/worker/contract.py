"""The worker's HTTP answers without an engine behind them (ARCHITECTURE.md §5): what the local
worker's server (dfbench.worker.local) and every engine speaking its contract share. Nothing here
imports DataFusion, so dfbench's Spark service runs on an instance whose Python has only pyspark
(dfbench.engines.spark_setup ships it there)."""

from __future__ import annotations

from dataclasses import dataclass


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
