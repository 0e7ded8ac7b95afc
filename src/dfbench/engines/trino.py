"""Trino through its own client (``trino`` from PyPI, the ``trino`` extra), as an EngineClient.

Each statement is one Trino query: ``POST /v1/statement``, then the client follows ``nextUri``
until the last page. A query's time is Trino's own ``stats.elapsedTimeMillis`` of its last page
(as the CDK tooling's trino-bench took it), its rows are those fetched: every row travels to
dfbench, which TPC-H's small results make cheap. ``/v1/info`` tells the server's version.
Trino answers one statement per query, so the text is split here, every statement sent in turn
and the last one's answer returned, as the worker's contract does.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from dfbench.engines.dialect import TRINO_CATALOG
from dfbench.errors import ConfigError, QueryFailed, WorkerUnreachable
from dfbench.sql import split_statements
from dfbench.worker.client import INFO_TIMEOUT_S, QUERY_TIMEOUT_S

# The user Trino records the queries under (no authentication: the coordinator is reached on
# loopback or through dfbench's transport).
TRINO_USER = "dfbench"


class TrinoClient:
    """One Trino coordinator at ``url`` (``http://127.0.0.1:8080``), its Hive catalog, the schema
    ``schema`` (the dataset's; see dfbench.engines.dialect.trino_schema)."""

    def __init__(self, url: str, *, schema: str, timeout: float | None = QUERY_TIMEOUT_S,
                 info_timeout: float = INFO_TIMEOUT_S) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/"):
            raise ConfigError(f"Invalid Trino URL {url!r}: give the coordinator's, such as http://127.0.0.1:8080.")
        self.url = f"{parts.scheme}://{parts.netloc}"
        self.timeout = timeout
        self.info_timeout = info_timeout
        try:
            import trino.dbapi
        except ImportError:
            raise ConfigError("Trino needs its client: pip install 'dfbench[trino]'") from None
        self._connection = trino.dbapi.connect(
            host=parts.hostname, port=parts.port or (443 if parts.scheme == "https" else 80),
            http_scheme=parts.scheme, user=TRINO_USER, catalog=TRINO_CATALOG, schema=schema,
            request_timeout=timeout if timeout is not None else QUERY_TIMEOUT_S, source="dfbench")

    def info(self) -> dict[str, Any]:
        """What the runner files as the worker's ``/info``: Trino's ``/v1/info`` and an ``engine``."""
        request = urllib.request.Request(f"{self.url}/v1/info", headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.info_timeout) as response:
                answer = json.loads(response.read().decode("utf-8", errors="replace"))
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise WorkerUnreachable(self.url, f"/v1/info: {getattr(error, 'reason', error)}") from None
        version = answer.get("nodeVersion", {}).get("version") if isinstance(answer, dict) else None
        if not version:
            raise WorkerUnreachable(self.url, "/v1/info did not name a Trino version; is this a Trino coordinator?")
        return {"worker_urls": [self.url], "git_commit_hash": f"trino-{version}", "engine": f"trino {version}",
                "errors": [], "trino": answer}

    def _run(self, sql: str) -> tuple[list[Any], list[list[Any]], dict[str, Any]]:
        """Every statement in turn; the last one's columns, rows and final stats."""
        from trino import exceptions

        statements = split_statements(sql)
        if not statements:
            raise QueryFailed("no SQL statement", status=400)
        cursor = self._connection.cursor()
        try:
            for statement in statements:
                cursor.execute(statement)
                rows = cursor.fetchall()
            return [column[0] for column in cursor.description or []], rows, dict(cursor.stats or {})
        except exceptions.TrinoQueryError as error:
            raise QueryFailed(f"{error.error_name}: {error.message}", status=500) from None
        except (exceptions.TrinoConnectionError, exceptions.HttpError, OSError) as error:
            raise WorkerUnreachable(self.url, str(error)) from None
        except Exception as error:
            # requests' ConnectionError and Timeout are OSErrors; anything else is Trino's answer.
            raise QueryFailed(f"{type(error).__name__}: {error}", status=500) from None
        finally:
            cursor.close()

    def query(self, sql: str) -> dict[str, Any]:
        _, rows, stats = self._run(sql)
        elapsed = stats.get("elapsedTimeMillis")
        if not isinstance(elapsed, int | float):
            raise QueryFailed(f"Trino's answer had no stats.elapsedTimeMillis: {sorted(stats)}", status=200)
        return {"plan": "", "count": len(rows), "elapsed_ms": float(elapsed), "tasks": 0,
                "stats_q_error_p50": None, "stats_q_error_p95": None}

    def rows(self, sql: str) -> dict[str, Any]:
        columns, rows, _ = self._run(sql)
        return {"columns": columns, "rows": [[_json_value(value) for value in row] for row in rows]}


def _json_value(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal | date | datetime) else value
