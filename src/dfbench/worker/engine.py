"""The local worker's engine: one DataFusion session driven by SQL text, as the real worker's
contract (ARCHITECTURE.md §5) asks, with the guards that make it safe to run any request's SQL.

- The statements are split on ``;`` (not inside quotes or comments), each one planned in order, so
  DDL and ``SET`` take effect, and only the last one executed and timed.
- ``SET distributed.<key> = <value>`` is recorded and otherwise ignored: DataFusion has no
  ``distributed`` namespace and would reject it. ``SET datafusion.*`` reaches DataFusion.
- ``tasks`` is always 1 and the q-error statistics are null: one process runs the whole plan.
- SQL runs with DataFusion's SQL options that forbid DML (``INSERT``, ``COPY ... TO``): nothing is
  ever written. DDL (external tables, views) and ``SET`` work.
- ``LOCATION`` must be a path under the data folder (relative ones resolve against it; symlinks
  followed) or ``s3://`` in a bucket it was told to read; anything else is refused before
  DataFusion reads a byte. Without a data folder it reads no local file at all. S3 is read with
  boto3's credentials and the standard ``AWS_ENDPOINT_URL(_S3)``.

The HTTP side is :mod:`dfbench.worker.local`.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import datafusion
from datafusion import SessionContext, SQLOptions
from datafusion.expr import CreateExternalTable
from datafusion.plan import LogicalPlan

from dfbench.sql import split_statements
from dfbench.worker.contract import QueryResult, RequestError


class LocationRefused(RequestError):
    """A ``LOCATION`` outside what this worker may read (HTTP 400)."""


_SET_DISTRIBUTED = re.compile(
    r"SET\s+(distributed\.[A-Za-z0-9_.]+)\s*(?:=|\s+TO\s+)\s*(.*)", re.IGNORECASE | re.DOTALL
)
_EXTERNAL_LOCATION = re.compile(
    r"^(CREATE\s+(?:UNBOUNDED\s+)?EXTERNAL\s+TABLE\b.*?\bLOCATION\s+)'((?:[^']|'')*)'",
    re.IGNORECASE | re.DOTALL,
)
# What DataFusion (the url crate) takes for a URL rather than a path: a scheme and a colon.
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
# Where ListingTableUrl starts a glob pattern.
_GLOB = re.compile(r"[*?\[]")


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1].replace(value[0] * 2, value[0])
    return value


def _plain(location: str) -> bool:
    """No spaces around it and no control character in it. The url crate drops leading and
    trailing spaces and controls and every tab and newline before parsing, so " file:///x" would
    be read as a file URL while looking like a relative path."""
    return location == location.strip() and location.isprintable()


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _external_locations(plan: LogicalPlan) -> Iterator[str]:
    """Every ``LOCATION`` of the ``CREATE EXTERNAL TABLE`` nodes of a plan (an EXPLAIN's included)."""
    variant = plan.to_variant()
    if isinstance(variant, CreateExternalTable):
        yield from variant.locations()
    for child in plan.inputs():
        yield from _external_locations(child)


class LocalWorker:
    """One DataFusion session for the process lifetime, driven by SQL text."""

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, base_url: str = "",
                 worker_urls: Sequence[str] | None = None, commit: str | None = None,
                 s3_buckets: Sequence[str] = ()) -> None:
        self.base_url = base_url
        self.worker_urls = list(worker_urls) if worker_urls is not None else None
        self.commit = commit
        # The only buckets a LOCATION may name; each gets an object store at its first use.
        self.s3_buckets = frozenset(s3_buckets)
        self._registered: set[str] = set()
        # Resolved once (symlinks followed): locations are compared with the real folder.
        self.data_dir = os.path.realpath(data_dir) if data_dir is not None else None
        self.started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.version = datafusion.__version__
        self._ctx = SessionContext()
        # Queries and SET only: DDL and DML are refused while planning, before anything runs.
        self._queries = SQLOptions().with_allow_ddl(False).with_allow_dml(False)
        # What a request may do: DDL too (once its locations are checked), never DML or COPY.
        self._no_writes = SQLOptions().with_allow_dml(False)
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

        Raises RequestError when there is no statement or a LOCATION is refused, and DataFusion's
        exception (its message is the error text) when a statement fails.
        """
        with self._lock:
            return self._execute(self._plan_all_but_last(sql))

    def rows(self, sql: str) -> dict[str, Any]:
        """Like :meth:`run`, but the last statement's ``columns`` and ``rows`` (JSON values:
        decimals, dates and times as text), untimed: what engines' answers are compared on."""
        with self._lock:
            frame = self._plan(self._plan_all_but_last(sql))
            if frame is None:
                return {"columns": [], "rows": []}
            table = frame.to_arrow_table()
        return {"columns": table.column_names,
                "rows": [[value if isinstance(value, int | float | str | None) else str(value) for value in row]
                         for row in zip(*(column.to_pylist() for column in table.columns), strict=True)]}

    def _plan_all_but_last(self, sql: str) -> str:
        """Plan every statement of ``sql`` but the last, in order (under the lock), and return the
        last; RequestError when there is none."""
        statements = split_statements(sql)
        if not statements:
            raise RequestError("no SQL statement in the request")
        for statement in statements[:-1]:
            self._plan(statement)
        return statements[-1]

    def _plan(self, statement: str) -> datafusion.DataFrame | None:
        """Plan one statement; DataFusion runs DDL and SET at this point. None for a recorded SET."""
        match = _SET_DISTRIBUTED.fullmatch(statement)
        if match:
            self._settings[match.group(1).lower()] = _unquote(match.group(2))
            return None
        statement = self._resolve_location(statement)
        try:
            return self._ctx.sql_with_options(statement, self._queries)
        except Exception as refused:
            # Not a query: DDL (refused above before it ran) or a bad statement. EXPLAIN plans it
            # without running it, so every LOCATION is known before a table is created (creating
            # one reads its files). The locations come from DataFusion's own parse, whatever the
            # quoting (E'\x2f...' escapes included), not from a pattern over the text.
            try:
                explained = self._ctx.sql_with_options(f"EXPLAIN {statement}", self._no_writes)
            except Exception:
                raise refused from None  # the statement's own error (DML refused, parse error, ...)
        for location in _external_locations(explained.logical_plan()):
            self._allow(location)
        return self._ctx.sql_with_options(statement, self._no_writes)

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
        """A relative LOCATION, written as a plain string, is read under the data folder (not the
        current directory, as DataFusion would). What may be read is decided by ``_allow``."""
        match = _EXTERNAL_LOCATION.match(statement)
        if not match or self.data_dir is None:
            return statement
        location = match.group(2).replace("''", "'")
        if location.startswith("/") or _URL_SCHEME.match(location) or not _plain(location):
            return statement
        resolved = os.path.join(self.data_dir, location).replace("'", "''")
        return f"{match.group(1)}'{resolved}'{statement[match.end():]}"

    def _allow(self, location: str) -> None:
        """Raise LocationRefused unless ``location`` is under the data folder or in an allowed
        bucket, judged as DataFusion will read it (ListingTableUrl::parse)."""
        if not _plain(location):
            raise LocationRefused(f"LOCATION {location!r}: spaces around it or control characters in it")
        if not location.startswith("/") and _URL_SCHEME.match(location):
            self._allow_url(location)
        else:
            self._allow_path(location)

    def _allow_url(self, location: str) -> None:
        parts = urlsplit(location)
        if parts.scheme.lower() != "s3" or not location[len(parts.scheme) + 1:].startswith("//"):
            raise LocationRefused(f"LOCATION {location!r}: only local paths and s3://BUCKET/... are read")
        if parts.netloc not in self.s3_buckets:
            allowed = ", ".join(sorted(self.s3_buckets)) or "none"
            raise LocationRefused(f"LOCATION {location!r}: bucket {parts.netloc!r} is not one this worker reads "
                                  f"(--s3-bucket: {allowed})")
        self._register_bucket(parts.netloc)

    def _allow_path(self, location: str) -> None:
        if self.data_dir is None:
            raise LocationRefused(f"LOCATION {location!r}: this worker reads no local files "
                                  "(start it with --data-dir FOLDER)")
        # DataFusion reads a relative path against the current directory, and a glob below the
        # folder before its first glob character.
        path = os.path.join(os.getcwd(), location)
        glob = _GLOB.search(path)
        folder = path if glob is None else path[:path.rfind("/", 0, glob.start()) + 1]
        pattern = "" if glob is None else path[len(folder):]
        # Both readings of ".." must stay inside: the url crate drops "a/.." as text (normpath),
        # the file system after following symlinks (realpath).
        inside = (_within(os.path.normpath(folder), self.data_dir) and _within(os.path.realpath(folder), self.data_dir)
                  and ".." not in pattern.split("/"))
        if not inside:
            raise LocationRefused(f"LOCATION {location!r} is outside this worker's data folder {self.data_dir}")

    def _register_bucket(self, bucket: str) -> None:
        """DataFusion reads s3:// only through an object store registered for the bucket."""
        if bucket in self._registered:
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
        self._registered.add(bucket)
