"""A stand-in for a Trino coordinator's client protocol, on loopback, answering SQL with DataFusion.

Trino's server cannot be installed from the registries these machines reach, so dfbench's Trino
adapter (the real ``trino`` client from PyPI) is tested against this. It speaks the protocol as
Trino documents it (docs/develop/client-protocol): ``POST /v1/statement`` with the SQL as the body
and ``X-Trino-User`` (``X-Trino-Catalog`` / ``X-Trino-Schema`` name the session's), answered with a
``QueryResults`` document (``id``, ``infoUri``, ``nextUri``, ``stats``) in state QUEUED; ``GET
nextUri`` runs the query and pages its rows (``columns`` with ``type`` and ``typeSignature``,
``data`` with decimals, dates and timestamps as text), at most ``page_rows`` per page, the last
page without ``nextUri`` and with ``stats.state`` FINISHED and ``elapsedTimeMillis``; a failure
is an ``error`` object (``message``, ``errorCode``, ``errorName``, ``errorType``,
``failureInfo``) with state FAILED; ``DELETE nextUri`` cancels; ``GET /v1/info`` names the version
and whether this is the coordinator.

What Trino refuses and DataFusion accepts is refused here the way Trino refuses it, so that text
in DataFusion's dialect fails as it would on Trino: one statement per query with no trailing ``;``
(SYNTAX_ERROR), a view with a column list (SYNTAX_ERROR), a date compared with a bare string
(TYPE_MISMATCH), ``to_timestamp_seconds`` (FUNCTION_NOT_FOUND), a table outside an existing
schema of the ``hive`` catalog (SCHEMA_NOT_FOUND). Tables are the Hive connector's: ``CREATE
TABLE hive."<schema>"."<t>" (<columns>) WITH (external_location = '<folder>', format = 'PARQUET')``
registers the folder's parquet files (under ``data_dir``, or under a folder ``buckets`` maps an
``s3://<bucket>/`` location to), after checking that the declared columns are the files'
columns, in order, as Trino's Hive connector reads them by name. ``system.runtime.nodes`` holds
``nodes`` active nodes (``node_id``, ``http_uri``, ``node_version``, ``coordinator``, ``state``),
the first the coordinator: nothing announces itself here, the number is what the stand-in was told.

Started by a stand-in release's ``bin/launcher run`` (trino_release.py), it serves one instance of
an installed cluster; made in a test, the coordinator of one.

Not emulated: authentication, transactions, session properties, spooled segments, the real
planner and its type rules beyond the refusals above (see docs/ARCHITECTURE.md §5a).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

TRINO_VERSION = "476"

_ERRORS = {  # errorName → (errorCode, errorType), from Trino's StandardErrorCode
    "SYNTAX_ERROR": (1, "USER_ERROR"),
    "FUNCTION_NOT_FOUND": (44, "USER_ERROR"),
    "TABLE_NOT_FOUND": (46, "USER_ERROR"),
    "SCHEMA_NOT_FOUND": (47, "USER_ERROR"),
    "TYPE_MISMATCH": (58, "USER_ERROR"),
    "NOT_SUPPORTED": (13, "USER_ERROR"),
    "GENERIC_INTERNAL_ERROR": (65536, "INTERNAL_ERROR"),
}
_IDENT = r'"(?P<{0}>[^"]+)"|(?P<{0}_bare>[A-Za-z_][A-Za-z0-9_]*)'
_CREATE_SCHEMA = re.compile(r"CREATE\s+SCHEMA\s+(IF\s+NOT\s+EXISTS\s+)?hive\.(" + _IDENT.format("schema") + r")"
                            r"(\s+WITH\s*\(.*\))?", re.IGNORECASE | re.DOTALL)
_DROP_TABLE = re.compile(r"DROP\s+TABLE\s+(?P<if_exists>IF\s+EXISTS\s+)?hive\.(" + _IDENT.format("schema") + r")\.("
                         + _IDENT.format("table") + ")", re.IGNORECASE)
_CREATE_TABLE = re.compile(r"CREATE\s+TABLE\s+hive\.(" + _IDENT.format("schema") + r")\.(" + _IDENT.format("table")
                           + r")\s*\((?P<columns>.*)\)\s*WITH\s*\(\s*external_location\s*=\s*'(?P<location>[^']*)'"
                           r"\s*,\s*format\s*=\s*'PARQUET'\s*\)", re.IGNORECASE | re.DOTALL)
_VIEW_WITH_COLUMNS = re.compile(r"CREATE\s+(OR\s+REPLACE\s+)?VIEW\s+\S+\s*\(", re.IGNORECASE)
_SYSTEM_NODES = re.compile(r"\bsystem\.runtime\.nodes\b", re.IGNORECASE)
_BARE_DATE = re.compile(r"(?<!date )(?<!timestamp )'\d{4}-\d{2}-\d{2}'", re.IGNORECASE)


def _name(match: re.Match[str], group: str) -> str:
    return str(match[group] or match[f"{group}_bare"]).lower()


class TrinoError(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


@dataclass
class _Query:
    id: str
    sql: str
    schema: str | None
    created: float
    slug: str
    state: str = "QUEUED"
    columns: list[dict[str, Any]] | None = None
    rows: list[list[Any]] = field(default_factory=list)
    sent: int = 0
    token: int = 0
    error: dict[str, Any] | None = None
    update_type: str | None = None
    finished: float | None = None


class TrinoStandIn:
    """A node on 127.0.0.1 (``url``; ``port`` 0: any free one), its Hive catalog over ``data_dir``'s
    parquet files and the folders ``buckets`` {bucket: folder} stand for."""

    def __init__(self, data_dir: str | os.PathLike[str], *, page_rows: int = 100, port: int = 0,
                 version: str = TRINO_VERSION, coordinator: bool = True, nodes: int = 1,
                 buckets: dict[str, str | os.PathLike[str]] | None = None) -> None:
        self.data_dir = os.path.realpath(data_dir)
        self.page_rows = page_rows
        self.port = port
        self.version = version
        self.coordinator = coordinator
        self.nodes = nodes
        self.buckets = {name: os.path.realpath(folder) for name, folder in (buckets or {}).items()}
        self.queries: dict[str, _Query] = {}
        self.statements: list[str] = []  # every statement received, in order
        self.pages: dict[str, int] = {}  # query id → pages of rows served
        self.schemas: dict[str, Any] = {}  # schema → DataFusion SessionContext of its tables
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    def start(self) -> str:
        standin = self

        class Handler(_Handler):
            owner = standin

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, name="trino-standin", daemon=True).start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> TrinoStandIn:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the protocol -------------------------------------------------------------------------

    def submit(self, sql: str, schema: str | None) -> dict[str, Any]:
        now = datetime.now(UTC)
        query = _Query(id=f"{now:%Y%m%d_%H%M%S}_{next(self._counter):05d}_dfbch", sql=sql, schema=schema,
                       created=time.monotonic(), slug=f"y{os.urandom(6).hex()}")
        self.queries[query.id] = query
        self.statements.append(sql)
        return self._results(query, f"/v1/statement/queued/{query.id}/{query.slug}/{query.token}")

    def advance(self, query_id: str, slug: str, token: int) -> dict[str, Any] | None:
        query = self.queries.get(query_id)
        if query is None or query.slug != slug or token != query.token:
            return None
        if query.state == "QUEUED":
            self._execute(query)
        query.token += 1
        if query.state == "FAILED":
            return self._results(query, None)
        page = query.rows[query.sent:query.sent + self.page_rows]
        query.sent += len(page)
        if page:
            self.pages[query.id] = self.pages.get(query.id, 0) + 1
        done = query.sent >= len(query.rows)
        if done:
            query.state = "FINISHED"
            query.finished = query.finished or time.monotonic()
        following = None if done else f"/v1/statement/executing/{query.id}/{query.slug}/{query.token}"
        return self._results(query, following, page)

    def cancel(self, query_id: str) -> bool:
        query = self.queries.get(query_id)
        if query is None:
            return False
        if query.state not in ("FINISHED", "FAILED"):
            query.state = "FAILED"
            query.error = _error("GENERIC_INTERNAL_ERROR", "Query was canceled")
        return True

    def _results(self, query: _Query, following: str | None, page: list[list[Any]] | None = None) -> dict[str, Any]:
        end = query.finished or time.monotonic()
        elapsed = int((end - query.created) * 1000)
        document: dict[str, Any] = {
            "id": query.id, "infoUri": f"{self.url}/ui/query.html?{query.id}",
            "stats": {"state": query.state, "queued": query.state == "QUEUED", "scheduled": query.state != "QUEUED",
                      "nodes": 1, "totalSplits": 1, "queuedSplits": 0, "runningSplits": 0,
                      "completedSplits": int(query.state == "FINISHED"), "cpuTimeMillis": elapsed,
                      "wallTimeMillis": elapsed, "queuedTimeMillis": 0, "elapsedTimeMillis": elapsed,
                      "processedRows": len(query.rows), "processedBytes": 0, "physicalInputBytes": 0,
                      "peakMemoryBytes": 0, "spilledBytes": 0},
            "warnings": [],
        }
        if following is not None:
            document["nextUri"] = self.url + following
        if query.columns is not None and query.state != "QUEUED":
            document["columns"] = query.columns
        if page:
            document["data"] = page
        if query.error is not None:
            document["error"] = query.error
        if query.update_type is not None:
            document["updateType"] = query.update_type
        return document

    # -- the engine ---------------------------------------------------------------------------

    def _execute(self, query: _Query) -> None:
        try:
            with self._lock:
                self._run(query)
            query.state = "RUNNING"
        except TrinoError as error:
            query.state, query.error = "FAILED", _error(error.name, str(error))
        except Exception as error:
            # DataFusion's words for a missing table; Trino names that error.
            missing = re.search(r"table '?([\w.]+)'? not found", str(error), re.IGNORECASE)
            query.state, query.error = "FAILED", (
                _error("TABLE_NOT_FOUND", f"line 1:1: Table 'hive.{query.schema}.{missing[1]}' does not exist")
                if missing else _error("GENERIC_INTERNAL_ERROR", str(error)))
        query.finished = time.monotonic()

    def _run(self, query: _Query) -> None:
        sql = query.sql.strip()
        if ";" in sql:
            raise TrinoError("SYNTAX_ERROR", "line 1:1: mismatched input ';'. Expecting: <EOF>")
        match = _CREATE_SCHEMA.fullmatch(sql)
        if match:
            from datafusion import SessionContext

            self.schemas.setdefault(_name(match, "schema"), SessionContext())
            query.update_type = "CREATE SCHEMA"
            return
        match = _DROP_TABLE.fullmatch(sql)
        if match:
            context = self._schema(_name(match, "schema"))
            table = _name(match, "table")
            if not context.table_exist(table):
                if not match["if_exists"]:
                    raise TrinoError("TABLE_NOT_FOUND", f"line 1:1: Table 'hive.{_name(match, 'schema')}.{table}' "
                                                        "does not exist")
            else:
                context.deregister_table(table)
            query.update_type = "DROP TABLE"
            return
        match = _CREATE_TABLE.fullmatch(sql)
        if match:
            self._create_table(_name(match, "schema"), _name(match, "table"), match["columns"], match["location"])
            query.update_type = "CREATE TABLE"
            return
        if _VIEW_WITH_COLUMNS.match(sql):
            raise TrinoError("SYNTAX_ERROR", "line 1:1: mismatched input '('. Expecting: 'AS', 'COMMENT', 'SECURITY'")
        if _BARE_DATE.search(sql):
            raise TrinoError("TYPE_MISMATCH", "Cannot apply operator: date < varchar(10)")
        if re.search(r"\bto_timestamp_seconds\s*\(", sql, re.IGNORECASE):
            raise TrinoError("FUNCTION_NOT_FOUND", "line 1:1: Function 'to_timestamp_seconds' not registered")
        if _SYSTEM_NODES.search(sql):
            context, sql = self._system_nodes(), _SYSTEM_NODES.sub("nodes", sql)
        elif query.schema is None:
            raise TrinoError("NOT_SUPPORTED", "Schema must be specified when session schema is not set")
        else:
            context = self._schema(query.schema)
        # Trino's from_unixtime is DataFusion's to_timestamp_seconds.
        frame = context.sql(re.sub(r"\bfrom_unixtime\s*\(", "to_timestamp_seconds(", sql, flags=re.IGNORECASE))
        table = frame.to_arrow_table()
        if sql.lower().startswith(("create view", "create or replace view", "drop view")):
            query.update_type = sql.split()[0].upper() + " VIEW"
            return
        query.columns = [_column(f.name, f.type) for f in table.schema]
        query.rows = [[_value(value) for value in row]
                      for row in zip(*(column.to_pylist() for column in table.columns), strict=True)]

    def _system_nodes(self) -> Any:
        from datafusion import SessionContext

        context = SessionContext()
        names = ["coordinator"] + [f"worker-{index}" for index in range(1, self.nodes)]
        context.from_pydict({"node_id": names, "http_uri": [self.url] * self.nodes,
                             "node_version": [self.version] * self.nodes,
                             "coordinator": [index == 0 for index in range(self.nodes)],
                             "state": ["active"] * self.nodes}, name="nodes")
        return context

    def _location(self, location: str) -> str:
        """The local folder of an external location: ``file://`` or bare paths under ``data_dir``,
        ``s3://<bucket>/<key>`` under the folder ``buckets`` maps the bucket to."""
        roots = [self.data_dir]
        path = location.removeprefix("file://")
        if location.startswith("s3://"):
            bucket, _, key = location.removeprefix("s3://").partition("/")
            if bucket not in self.buckets:
                raise TrinoError("GENERIC_INTERNAL_ERROR", f"No bucket {bucket!r} behind the stand-in: {location}")
            roots, path = [self.buckets[bucket]], os.path.join(self.buckets[bucket], key)
        path = os.path.realpath(path)
        if not any(path.startswith(root + os.sep) for root in roots):
            raise TrinoError("GENERIC_INTERNAL_ERROR", f"External location outside the stand-in's data: {location}")
        return path

    def _schema(self, schema: str) -> Any:
        if schema not in self.schemas:
            raise TrinoError("SCHEMA_NOT_FOUND", f"Schema '{schema}' does not exist")
        return self.schemas[schema]

    def _create_table(self, schema: str, table: str, columns: str, location: str) -> None:
        import pyarrow.parquet as parquet

        context = self._schema(schema)
        path = self._location(location)
        files = sorted(f for f in os.listdir(path) if f.endswith(".parquet")) if os.path.isdir(path) else []
        if not files:
            raise TrinoError("GENERIC_INTERNAL_ERROR", f"External location must be a directory: {location}")
        declared = [part.strip().split()[0].strip('"').lower() for part in columns.split(",\n")]
        found = [name.lower() for name in parquet.read_schema(os.path.join(path, files[0])).names]
        if declared != found:
            raise TrinoError("GENERIC_INTERNAL_ERROR", f"declared columns {declared} are not the files' {found}")
        if context.table_exist(table):
            raise TrinoError("GENERIC_INTERNAL_ERROR", f"Table 'hive.{schema}.{table}' already exists")
        context.register_parquet(table, path)


def _error(name: str, message: str) -> dict[str, Any]:
    code, kind = _ERRORS[name]
    return {"message": message, "errorCode": code, "errorName": name, "errorType": kind,
            "failureInfo": {"type": "io.trino.spi.TrinoException", "message": message, "suppressed": [],
                            "stack": []}}


def _column(name: str, arrow: Any) -> dict[str, Any]:
    text = str(arrow)
    decimal = re.fullmatch(r"decimal128\((\d+), (\d+)\)", text)
    if decimal:
        kind = f"decimal({decimal[1]},{decimal[2]})"
        signature = {"rawType": "decimal", "arguments": [{"kind": "LONG", "value": int(decimal[1])},
                                                         {"kind": "LONG", "value": int(decimal[2])}]}
        return {"name": name, "type": kind, "typeSignature": signature}
    kind = {"int64": "bigint", "int32": "integer", "int16": "smallint", "int8": "tinyint", "double": "double",
            "float": "real", "bool": "boolean", "date32[day]": "date", "string": "varchar",
            "large_string": "varchar", "string_view": "varchar"}.get(text)
    if kind is None and text.startswith("timestamp"):
        kind = "timestamp(6)"
    if kind is None:
        raise TrinoError("NOT_SUPPORTED", f"the stand-in has no Trino type for {text}")
    # A parametric type carries its parameters: an unbounded varchar its largest length, a
    # timestamp its precision (the client reads arguments[0] of both).
    arguments = ([{"kind": "LONG", "value": 2147483647}] if kind == "varchar" else
                 [{"kind": "LONG", "value": 6}] if kind == "timestamp(6)" else [])
    return {"name": name, "type": kind, "typeSignature": {"rawType": kind.split("(")[0], "arguments": arguments}}


def _value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return str(value)  # Decimal and date as Trino sends them: text


class _Handler(BaseHTTPRequestHandler):
    owner: TrinoStandIn
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8")
        if urlsplit(self.path).path != "/v1/statement":
            self._send(HTTPStatus.NOT_FOUND, "not found")
        elif not self.headers.get("X-Trino-User"):
            self._send(HTTPStatus.BAD_REQUEST, "User must be set")
        elif self.headers.get("X-Trino-Catalog", "hive") != "hive":
            self._send(HTTPStatus.OK, {"id": "x", "infoUri": "", "stats": {"state": "FAILED"},
                                       "error": _error("NOT_SUPPORTED", "only the hive catalog exists here")})
        elif not body.strip():
            self._send(HTTPStatus.BAD_REQUEST, "SQL statement is empty")
        else:
            self._send(HTTPStatus.OK, self.owner.submit(body, self.headers.get("X-Trino-Schema")))

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/v1/info":
            self._send(HTTPStatus.OK, {"nodeVersion": {"version": self.owner.version},
                                       "environment": "dfbench-standin", "coordinator": self.owner.coordinator,
                                       "starting": False, "uptime": "1.00m"})
            return
        parts = path.strip("/").split("/")
        answer = None
        if len(parts) == 6 and parts[:2] == ["v1", "statement"] and parts[5].isdigit():
            answer = self.owner.advance(parts[3], parts[4], int(parts[5]))
        if answer is None:
            self._send(HTTPStatus.NOT_FOUND, "Query not found")
        else:
            self._send(HTTPStatus.OK, answer)

    def do_DELETE(self) -> None:
        parts = urlsplit(self.path).path.strip("/").split("/")
        found = len(parts) >= 4 and self.owner.cancel(parts[3])
        self._send(HTTPStatus.NO_CONTENT if found else HTTPStatus.NOT_FOUND, "")

    def _send(self, status: HTTPStatus, body: str | dict[str, Any]) -> None:
        data = (json.dumps(body) if isinstance(body, dict) else body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if isinstance(body, dict) else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass
