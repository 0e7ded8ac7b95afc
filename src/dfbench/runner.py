"""Run a benchmark against a worker speaking the HTTP contract of DESIGN section 5.

``run_benchmark(url=..., dataset=...)`` drives any worker reachable by URL (dfbench's local worker,
a real worker through a VPN or a tunnel you opened); ``bench_local(...)`` does the whole local path:
data, a worker subprocess, the run, the files. Results are written by :mod:`dfbench.results`.

For each query: a warm-up execution (not part of the timings; a failing warm-up is the query's
recorded failure), then ``iterations`` timed executions, more while ``min_time_s`` has not been
spent. The time of an execution is the worker's ``elapsed_ms``. Statements around the timed one
(TPC-H q15's ``create view`` / ``drop view``) go in requests of their own, so they are never timed.
A failing iteration is recorded (DESIGN section 7's error iteration) and the run moves on to the
next query. A request that gets no answer at all (the worker died, the tunnel closed) is such a
failure too; the runner then checks ``/info`` once (5 s at most): a worker that answers gets its
settings and tables again (a restarted one has a new session) and the run goes on; otherwise every
remaining query is recorded as failed (``worker unreachable: ...``) without a request, and the run
finishes with ``run.json`` saying ``status: "worker lost"``. Arguments (dataset, query ids,
settings) are all checked before the worker is contacted. Row counts of TPC-H queries are checked
against the known answers; a mismatch marks the query ``wrong rows`` without failing the run.
"""

from __future__ import annotations

import http.client
import json
import queue
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from dfbench import results
from dfbench.datasets import (DEFAULT_DATA_DIR, TPCH_TABLES, LocalDataset, generate_tpch, local_dataset,
                              read_manifest, tpch_dataset_name)
from dfbench.errors import ConfigError, DfbenchError, QueryFailed, WorkerUnreachable
from dfbench.queries import TPCH_QUERY_COUNT, Query, scale_factor_of, tpch_queries

if TYPE_CHECKING:
    from rich.table import Table

    from dfbench.models import Cluster

INFO_TIMEOUT_S = 5.0
QUERY_TIMEOUT_S = 3600.0
WORKER_START_TIMEOUT_S = 60.0

# The seed's settings for the distributed engine (DESIGN section 5). Sent by default to a real
# worker; dfbench's local worker gets none unless asked (``settings="distributed"``): it records
# ``distributed.*`` and applies ``datafusion.*``, which would change what a local run measures.
DISTRIBUTED_DEFAULTS: dict[str, str] = {
    "distributed.file_scan_config_bytes_per_partition": "16777216",
    "distributed.cardinality_task_count_factor": "1",
    "datafusion.execution.batch_size": "32768",
    "distributed.shuffle_batch_size": "0",
    "distributed.collect_metrics": "true",
    "distributed.compression": "lz4",
    "distributed.children_isolator_unions": "true",
    "distributed.broadcast_joins": "true",
    "distributed.partial_reduce": "false",
    "distributed.dynamic_task_count": "false",
    "distributed.dynamic_bytes_per_partition": "16777216",
    "distributed.max_tasks_per_stage": "0",
    "datafusion.optimizer.repartition_file_min_size": "10485760",
    "datafusion.execution.target_partitions": "8",
}
SETTING_PRESETS: dict[str, dict[str, str]] = {"distributed": DISTRIBUTED_DEFAULTS, "none": {}}

# TPC-H answer row counts, checked with DuckDB on tpchgen-cli data at SF 0.01, 0.1 and 1.
# Independent of the scale factor (groups of fixed domains, one-row aggregates, LIMITs reached):
_ROWS_ANY_SF = {"q1": 4, "q3": 10, "q4": 5, "q5": 5, "q6": 1, "q7": 4, "q8": 2, "q10": 20, "q12": 2,
                "q14": 1, "q15": 1, "q17": 1, "q19": 1, "q22": 7}
# Reached from SF 1 up (LIMIT 100 filled; all 25 nations x 7 years present); fewer below.
_ROWS_FROM_SF1 = {"q2": 100, "q9": 175, "q21": 100}
# Grow or shrink with the data: known at SF 1 only.
_ROWS_AT_SF1 = {"q11": 1048, "q13": 42, "q16": 18314, "q18": 57, "q20": 186}
_MIN_CHECKED_SF = Decimal("0.01")


def expected_rows(query_id: str, scale_factor: Any) -> int | None:
    """The TPC-H answer's row count for a query at a scale factor, or None when not known."""
    try:
        sf = scale_factor_of(scale_factor)
    except ConfigError:
        return None
    if sf == 1 and query_id in _ROWS_AT_SF1:
        return _ROWS_AT_SF1[query_id]
    if sf >= 1 and query_id in _ROWS_FROM_SF1:
        return _ROWS_FROM_SF1[query_id]
    if sf >= _MIN_CHECKED_SF and query_id in _ROWS_ANY_SF:
        return _ROWS_ANY_SF[query_id]
    return None


# ---------------------------------------------------------------------------------------------
# the worker's HTTP contract


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
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) only
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
        try:
            status, body = self._get(f"/?sql={quote(sql, safe='')}", self.timeout)
        except TimeoutError:
            raise QueryFailed(f"no answer within {self.timeout:.0f}s (timeout)", status=0) from None
        if status != 200:
            raise QueryFailed(body.strip() or f"HTTP {status}", status=status)
        try:
            answer = json.loads(body)
            if not isinstance(answer, dict) or "elapsed_ms" not in answer or "count" not in answer:
                raise ValueError
        except ValueError:
            raise QueryFailed(f"unexpected answer from the worker: {body[:200]!r}", status=status) from None
        return answer


# ---------------------------------------------------------------------------------------------
# settings


_SETTING_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)+$")
_BARE_VALUE = re.compile(r"^[A-Za-z0-9_.+-]+$")


def _setting_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def resolve_settings(settings: Mapping[str, Any] | Iterable[str] | str | None,
                     default: Mapping[str, str] | None = None) -> dict[str, str]:
    """Settings as ``{key: value}``.

    ``None`` gives ``default``. A mapping is taken as is. A string or a list of strings holds preset
    names (``distributed``: the seed's 14 defaults, ``none``) and ``key=value`` overrides, applied
    in order: ``["distributed", "distributed.compression=zstd"]``.
    """
    if settings is None:
        return dict(default or {})
    resolved: dict[str, str] = {}
    if isinstance(settings, Mapping):
        items: list[tuple[str, Any]] = list(settings.items())
    else:
        items = []
        for entry in [settings] if isinstance(settings, str) else settings:
            for part in (p.strip() for p in str(entry).split(",")):
                if not part:
                    continue
                if "=" in part:
                    key, value = part.split("=", 1)
                    items.append((key.strip(), value.strip()))
                elif part.lower() in SETTING_PRESETS:
                    items.extend(SETTING_PRESETS[part.lower()].items())
                else:
                    raise ConfigError(f"Invalid setting {part!r}: not a preset ({', '.join(SETTING_PRESETS)}) "
                                      "and not key=value (e.g. distributed.compression=zstd).")
    for key, value in items:
        if not _SETTING_KEY.match(key):
            raise ConfigError(f"Invalid setting name {key!r}: expected a dotted name such as "
                              "distributed.compression or datafusion.execution.batch_size.")
        if _setting_value(value).strip() == "":
            raise ConfigError(f"Setting {key} has no value: give {key}=<value>.")
        resolved[key] = _setting_value(value)
    return resolved


def settings_sql(settings: Mapping[str, str]) -> str:
    lines = []
    for key, value in settings.items():
        literal = value if _BARE_VALUE.match(value) else "'" + value.replace("'", "''") + "'"
        lines.append(f"SET {key} = {literal};")
    return "\n".join(lines)


def table_sql(table: str, location: str) -> str:
    location = location.rstrip("/") + "/"
    return (f"DROP TABLE IF EXISTS {table};\n"
            f"CREATE EXTERNAL TABLE IF NOT EXISTS {table} STORED AS PARQUET "
            f"LOCATION '{location.replace(chr(39), chr(39) * 2)}';")


# ---------------------------------------------------------------------------------------------
# outcomes


@dataclass
class QueryOutcome:
    """One query of a run: its warm-up, its recorded iterations and its verdict."""

    id: str
    iterations: list[dict[str, Any]] = field(default_factory=list)
    warmup: dict[str, Any] | None = None
    expected_rows: int | None = None
    status: str = "ok"

    @property
    def successes(self) -> list[dict[str, Any]]:
        return [i for i in self.iterations if "error" not in i]

    @property
    def failed(self) -> bool:
        return any("error" in i for i in self.iterations) or not self.iterations

    @property
    def error(self) -> str | None:
        return next((i["error"] for i in self.iterations if "error" in i), None)

    @property
    def rows(self) -> int | None:
        ok = self.successes
        return ok[0]["rowCount"] if ok else None

    def _times(self) -> list[float]:
        return [float(i["elapsed"]) for i in self.successes]

    @property
    def p50(self) -> float | None:
        times = self._times()
        return statistics.median(times) if times else None

    @property
    def min(self) -> float | None:
        times = self._times()
        return min(times) if times else None

    @property
    def max(self) -> float | None:
        times = self._times()
        return max(times) if times else None

    @property
    def cv_percent(self) -> float | None:
        """Coefficient of variation (sample standard deviation / mean) of the successful times."""
        times = self._times()
        if len(times) < 2 or statistics.fmean(times) == 0:
            return None
        return statistics.stdev(times) / statistics.fmean(times) * 100

    def summary(self) -> dict[str, Any]:
        return {"status": self.status, "iterations": len(self.iterations), "p50_ms": self.p50,
                "min_ms": self.min, "max_ms": self.max, "cv_percent": self.cv_percent, "rows": self.rows,
                "expected_rows": self.expected_rows,
                "warmup": None if self.warmup is None else {k: v for k, v in self.warmup.items() if k != "plan"}}


@dataclass
class BenchmarkRun:
    dataset: str
    engine: str
    url: str
    remote: bool
    results_dir: Path
    start_time: float
    end_time: float | None = None
    settings: dict[str, str] = field(default_factory=dict)
    worker_info: dict[str, Any] = field(default_factory=dict)
    queries: list[QueryOutcome] = field(default_factory=list)
    interrupted: bool = False
    worker_lost: str | None = None  # why the queries after a dead worker were not sent

    @property
    def ok(self) -> bool:
        return not self.interrupted and self.worker_lost is None and all(q.status == "ok" for q in self.queries)

    def outcome(self, query_id: str) -> QueryOutcome:
        return next(q for q in self.queries if q.id == query_id)

    def table(self) -> Table:
        from rich.table import Table

        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value:,.1f}"

        table = Table(title=f"{self.dataset} · {self.engine}" + (" (interrupted)" if self.interrupted else "")
                      + (" (worker lost)" if self.worker_lost else ""))
        table.add_column("query")
        for name in ("p50 ms", "min", "max", "CV %", "rows"):
            table.add_column(name, justify="right")
        table.add_column("status")
        for q in self.queries:
            style = "green" if q.status == "ok" else ("yellow" if q.status.startswith("wrong rows") else "red")
            table.add_row(q.id, ms(q.p50), ms(q.min), ms(q.max),
                          "-" if q.cv_percent is None else f"{q.cv_percent:.1f}",
                          "-" if q.rows is None else str(q.rows), f"[{style}]{q.status}[/]")
        return table


# ---------------------------------------------------------------------------------------------
# running


def _first_line(text: str, limit: int = 120) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "error"
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("dfbench")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        from dfbench import __version__

        return __version__


def _queries_for(dataset: str, queries: Sequence[str | Query] | str | None, scale_factor: Any) -> list[Query]:
    """The queries of a run; a ConfigError (naming the valid ids) for an unknown id, an empty or a
    repeated selection. ``scale_factor`` (None when unknown) fills in TPC-H Q11's parameter."""
    if isinstance(queries, str):
        queries = [q for q in queries.split(",") if q.strip()]
    if queries is not None:
        queries = [q.strip() if isinstance(q, str) else q for q in queries]
        queries = [q for q in queries if not isinstance(q, str) or q]
        if not queries:
            raise ConfigError(f"No queries selected: give TPC-H ids such as q1,q3 (q1 … q{TPCH_QUERY_COUNT}), "
                              "or leave the selection out for all of them.")
    ids = None if queries is None else [q for q in queries if isinstance(q, str)]
    by_id: dict[str, Query] = {}
    if ids is None or ids:
        if scale_factor is None:
            raise ConfigError(f"Dataset {dataset!r} is not named tpch_sf<SF> (e.g. tpch_sf10) and has no "
                              "manifest.json giving its scale factor, so its TPC-H queries are unknown.")
        by_id = {q.id: q for q in tpch_queries(scale_factor, only=ids)}
    if queries is None:
        return list(by_id.values())
    chosen = []
    for q in queries:
        if isinstance(q, Query):
            chosen.append(q)
        else:
            key = q.lower()
            chosen.append(by_id[key if key.startswith("q") else f"q{key}"])
    repeated = sorted({q.id for q in chosen if [c.id for c in chosen].count(q.id) > 1})
    if repeated:
        raise ConfigError(f"Query {', '.join(repeated)} selected more than once: each query has one result file.")
    return chosen


class _Runner:
    def __init__(self, client: WorkerClient, query: Query) -> None:
        self.client = client
        self.query = query
        # Set when a request got no answer at all (the worker died, the tunnel closed): the
        # run then checks the worker once before sending anything else.
        self.unreachable: WorkerUnreachable | None = None

    def _statements(self, statements: Sequence[str]) -> None:
        for statement in statements:
            self.client.query(statement + ";")

    def execute(self) -> dict[str, Any]:
        """Setup, the timed statement, teardown; the iteration object (an error one on failure,
        a connection failure included: then :attr:`unreachable` is set). KeyboardInterrupt
        passes through."""
        try:
            return self._execute()
        except WorkerUnreachable as error:
            self.unreachable = error
            return results.error_iteration(f"worker unreachable: {error.detail or error}")

    def _execute(self) -> dict[str, Any]:
        q = self.query
        try:
            try:
                self._statements(q.setup)
            except QueryFailed:
                if not q.setup or not q.teardown:
                    raise
                # Left over by an interrupted run (e.g. q15's view exists): clean up, try once more.
                try:
                    self._statements(q.teardown)
                except QueryFailed:
                    pass
                self._statements(q.setup)
        except QueryFailed as error:
            return results.error_iteration(f"setup failed: {error.text}")
        try:
            record = results.iteration_from_response(self.client.query(q.statement + ";"))
        except QueryFailed as error:
            record = results.error_iteration(error.text)
        try:
            self._statements(q.teardown)
        except QueryFailed as error:
            if "error" not in record:
                record = results.error_iteration(f"teardown failed: {error.text}")
        return record


def run_benchmark(*, dataset: str, engine: str | None = None, iterations: int = 5,
                  queries: Sequence[str | Query] | str | None = None, warmup: bool = True,
                  settings: Mapping[str, Any] | Iterable[str] | str | None = None, min_time_s: float = 0,
                  url: str | None = None, cluster: Cluster | None = None, via: str = "auto",
                  profile: str | None = None, transport_options: Mapping[str, Any] | None = None,
                  data_dir: str | Path = DEFAULT_DATA_DIR, progress: bool = True, location: str | None = None,
                  query_timeout_s: float | None = QUERY_TIMEOUT_S,
                  on_query_done: Callable[[QueryOutcome], None] | None = None,
                  extra_manifest: Mapping[str, Any] | None = None) -> BenchmarkRun:
    """Benchmark ``dataset``'s TPC-H queries on the worker at ``url``, or on ``cluster``; see the
    module docstring.

    - ``cluster``: a provisioned cluster (``dfbench.status(...)``). dfbench opens its own way in
      (``via``: auto, ssh, ssm or relay; see :mod:`dfbench.transport`; ``transport_options`` are
      :class:`~dfbench.transport.ClusterConnection`'s keyword arguments), checks that every worker
      knows every peer and runs the same commit, creates the tables on ``s3://<bucket>/<dataset>/``
      (synced with ``dfbench data sync``), runs, and closes the connection. ``profile``: the AWS
      profile for that.
    - ``queries``: ids (``["q1", "q3"]`` or ``"q1,q3"``) and/or :class:`Query` objects (custom SQL);
      all 22 TPC-H queries by default.
    - ``settings``: see :func:`resolve_settings`. Default: none for dfbench's local worker, the
      seed's :data:`DISTRIBUTED_DEFAULTS` for a real worker.
    - ``location``: the folder (or ``s3://bucket``) holding ``<dataset>/<table>/``, as the worker
      sees it; by default the absolute path of ``data_dir``, which must then hold the dataset.
    - ``engine``: the name results are filed under; see :func:`results.default_engine_name`.
    - ``on_query_done``: called with each finished query once its file is written, the queries
      recorded as not run after a lost worker included (an exception it raises stops the run like
      one of the runner's own, KeyboardInterrupt included).

    Results go to ``.results-remote`` for a cluster or a worker other than dfbench's local one,
    ``.results-local`` otherwise.
    A worker that stops answering does not end the run with an exception: the remaining queries
    are recorded as failed, ``run.worker_lost`` says why, and ``run.json`` has ``status: "worker
    lost"`` (no ``previous-*.json``: such a run is no baseline). On KeyboardInterrupt the finished queries' files stay, ``run.json`` says ``interrupted`` and
    the interrupt is re-raised; ``previous-*.json`` is written only by a complete run.
    """
    if cluster is not None and url is not None:
        raise ConfigError("Give a worker url= or a cluster=, not both.")
    if cluster is None and url is None:
        raise ConfigError("No worker: pass cluster= (a provisioned cluster) or url= (e.g. http://127.0.0.1:9000 "
                          "for `dfbench worker`).")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ConfigError(f"iterations must be a whole number of at least 1 (got {iterations!r}).")
    if min_time_s < 0:
        raise ConfigError(f"min_time_s must not be negative (got {min_time_s!r}).")
    # Everything the caller gave is checked here, before the worker is contacted: a typo costs
    # no request, and no query runs before an error that would stop the run anyway.
    requested = None if settings is None else resolve_settings(settings)
    data_dir = Path(data_dir)
    local_data: LocalDataset | None = None
    remote_tables: list[str] | None = None
    if cluster is not None:
        from dfbench.transport import choose

        choose(cluster, via)  # an impossible transport is refused before any AWS call
        if location is None:
            # The tables the workers read are the bucket's (`dfbench data sync`), not a local copy.
            from dfbench.datasets import remote_tables as bucket_tables

            remote_tables = [t.name for t in bucket_tables(None, dataset, cluster=cluster, profile=profile)]
            location = f"s3://{cluster.bucket}"
    if location is None:
        if not (data_dir / dataset).is_dir():
            raise ConfigError(_missing_dataset(dataset, data_dir))
        local_data = local_dataset(dataset, data_dir)  # a ConfigError saying how to get it
        location = str(data_dir.resolve())
    else:
        manifest = read_manifest(data_dir / dataset)
        if manifest is not None:
            local_data = LocalDataset(name=dataset, path=data_dir / dataset, manifest=manifest, generated=False)
    tables = (remote_tables if remote_tables is not None else
              list(local_data.manifest.tables) if local_data is not None else list(TPCH_TABLES))
    scale_factor = local_data.manifest.scale_factor if local_data is not None else None
    if scale_factor is None:
        try:
            scale_factor = float(scale_factor_of(dataset))
        except ConfigError:
            scale_factor = None
    selected = _queries_for(dataset, queries, scale_factor)

    from rich.console import Console

    from dfbench.transport import ClusterConnection, DirectTransport

    with ExitStack() as stack:
        connection: ClusterConnection | DirectTransport
        info_timeout_s = INFO_TIMEOUT_S
        if url is not None:
            connection = stack.enter_context(DirectTransport(url))
        else:
            assert cluster is not None
            with Console(stderr=True, quiet=not progress).status(
                    f"reaching the {len(cluster.instances)} worker(s) of {cluster.name} and checking them…"):
                connection = stack.enter_context(ClusterConnection(cluster, via=via, profile=profile,
                                                                   **dict(transport_options or {})))
            info_timeout_s = connection.info_timeout_s
        return _run(connection, cluster, info_timeout_s=info_timeout_s, dataset=dataset, engine=engine, iterations=iterations, selected=selected,
                    warmup=warmup, requested=requested, min_time_s=min_time_s, data_dir=data_dir,
                    progress=progress, location=location, tables=tables, scale_factor=scale_factor,
                    query_timeout_s=query_timeout_s, on_query_done=on_query_done, extra_manifest=extra_manifest)


def _run(connection: Any, cluster: Cluster | None, *, info_timeout_s: float, dataset: str, engine: str | None,
         iterations: int, selected: list[Query],
         warmup: bool, requested: dict[str, str] | None, min_time_s: float, data_dir: Path, progress: bool,
         location: str, tables: list[str], scale_factor: Any, query_timeout_s: float | None,
         on_query_done: Callable[[QueryOutcome], None] | None,
         extra_manifest: Mapping[str, Any] | None) -> BenchmarkRun:
    """The run itself, on a worker reached through ``connection`` (a DirectTransport, or an open
    ClusterConnection to ``cluster``); its arguments are checked."""
    client = WorkerClient(connection.url, timeout=query_timeout_s, info_timeout=info_timeout_s)
    info = client.info()
    is_local_worker = str(info.get("engine", "")).startswith("datafusion-python")
    resolved = requested if requested is not None else ({} if is_local_worker else dict(DISTRIBUTED_DEFAULTS))
    engine_name = results.safe_engine_name(engine) if engine else results.default_engine_name(info)
    remote = cluster is not None or not is_local_worker
    folder = results.results_dir(data_dir, dataset, engine_name, remote=remote)
    run = BenchmarkRun(dataset=dataset, engine=engine_name, url=client.url, remote=remote, results_dir=folder,
                       start_time=time.time(), settings=resolved, worker_info=info)

    from rich.console import Console

    console = Console(stderr=True, quiet=not progress, highlight=False)
    lost: dict[str, str] = {}  # set when the worker stopped answering: {"during": query id, "error": text}

    def manifest(status: str, error: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "dfbench_version": _version(), "status": status, "interrupted": run.interrupted,
            "start_time": run.start_time, "end_time": run.end_time, "dataset": dataset,
            "scale_factor": scale_factor, "engine": engine_name, "iterations": iterations,
            "min_time_s": min_time_s, "warmup": warmup, "settings": resolved, "url": client.url,
            "reached_by": connection.description, "location": location, "worker_info": info,
            "machine": results.machine_info() if is_local_worker and cluster is None else None,
            "cluster": None if cluster is None else _cluster_record(cluster, connection),
            "queries": {q.id: q.summary() for q in run.queries},
            "worker_lost": dict(lost) or None,
        }
        if error:
            data["error"] = error
        data.update(extra_manifest or {})
        return data

    def prepare() -> None:
        """Settings and tables: the worker's session state, lost when it restarts."""
        if resolved:
            try:
                client.query(settings_sql(resolved))
            except QueryFailed as error:
                raise DfbenchError(f"The worker rejected the settings: {error.text}") from None
        for table in tables:
            try:
                client.query(table_sql(table, f"{location.rstrip('/')}/{dataset}/{table}/"))
            except QueryFailed as error:
                raise DfbenchError(f"Could not create table {table} on the worker: {error.text}") from None

    def recheck(query_id: str, failure: WorkerUnreachable) -> None:
        """After a request got no answer: one /info (INFO_TIMEOUT_S at most). A worker that answers
        may have been restarted (systemd does), with a new session: settings and tables are sent
        again. One that does not, or cannot take them, is lost: ``lost`` is filled in."""
        try:
            client.info()
            prepare()
        except DfbenchError as error:
            detail = error.detail if isinstance(error, WorkerUnreachable) else str(error)
            lost.update(during=query_id, error=f"the worker at {client.url} stopped answering during {query_id} "
                                               f"({failure.detail or failure}); then: {detail}")
            run.worker_lost = lost["error"]
            console.print(f"worker unreachable: {lost['error']}; the remaining queries are recorded as failed "
                          "without being sent", style="red")
        else:
            console.print(f"the worker answered again after {query_id}'s connection failure: settings and "
                          "tables sent again", style="yellow")

    results.write_run_manifest(folder, manifest("running"))
    status = "failed"
    error_text: str | None = None
    try:
        prepare()
        if cluster is not None:
            checked = (f"{len(cluster.instances)} healthy worker(s) on one commit" if connection.health
                       else "workers not checked (--no-check)")
            console.print(f"{cluster.name}: {checked}; queries go to {connection.instance.instance_id} through "
                          f"{connection.description}")
        console.print(f"[bold]{dataset}[/] on {client.url} as [bold]{engine_name}[/]: {len(selected)} queries, "
                      f"{iterations} iterations" + (f", ≥{min_time_s:g}s each" if min_time_s else ""))
        for query in selected:
            expected = expected_rows(query.id, scale_factor)
            if lost:
                outcome = QueryOutcome(id=query.id, expected_rows=expected, status="failed: worker unreachable",
                                       iterations=[results.error_iteration(
                                           f"worker unreachable: not run, {lost['error']}")])
            else:
                query_runner = _Runner(client, query)
                outcome = _run_query(query, query_runner, iterations=iterations, warmup=warmup,
                                     min_time_s=min_time_s, expected=expected)
            run.queries.append(outcome)
            results.write_query_result(folder, results.query_document(query.id, dataset, engine_name,
                                                                      outcome.iterations))
            console.print(f"  {query.id:>4}  p50 {_ms(outcome.p50):>10}  {outcome.status}",
                          style=None if outcome.status == "ok" else "red")
            if not lost and query_runner.unreachable is not None:
                recheck(query.id, query_runner.unreachable)
            if on_query_done is not None:
                on_query_done(outcome)
        status = "worker lost" if lost else "complete"
    except KeyboardInterrupt:
        run.interrupted = True
        status = "interrupted"
        console.print(f"interrupted: {len(run.queries)} finished queries kept in {folder}", style="yellow")
        raise
    except Exception as error:
        error_text = str(error) if isinstance(error, DfbenchError) else f"{type(error).__name__}: {error}"
        raise
    finally:
        run.end_time = time.time()
        results.write_run_manifest(folder, manifest(status, error_text or lost.get("error")))
        if status == "complete":
            results.write_previous(data_dir, dataset, engine_name, run.start_time,
                                   [results.query_document(q.id, dataset, engine_name, q.iterations)
                                    for q in run.queries], remote=remote)
    return run


def _cluster_record(cluster: Cluster, connection: Any) -> dict[str, Any]:
    """What produced a remote run's numbers: the hardware and the workers' health."""
    return {"name": cluster.name, "region": cluster.region, "ami_id": cluster.ami_id,
            "instances": [i.model_dump(mode="json", include={"instance_id", "instance_type", "availability_zone",
                                                              "spot", "private_ip"}) for i in cluster.instances],
            "coordinator": connection.instance.instance_id, "transport": connection.kind,
            "health": [h.model_dump(mode="json") for h in connection.health]}


def _missing_dataset(dataset: str, data_dir: Path) -> str:
    try:
        sf = format(scale_factor_of(dataset).normalize(), "f")
    except ConfigError:
        return (f"No dataset {dataset!r} in {data_dir}: TPC-H datasets are named tpch_sf<SF> and made with "
                "`dfbench data generate --sf <SF>` (or `make data SF=<SF>`); for data only the worker sees, "
                "pass its --location.")
    option = "" if data_dir == Path(DEFAULT_DATA_DIR) else f" --data-dir {data_dir}"
    return (f"No dataset {dataset!r} in {data_dir}: generate it with `dfbench data generate --sf {sf}{option}` "
            f"(or `make data SF={sf}`), or pass --location if only the worker has it.")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} ms"


def _run_query(query: Query, runner: _Runner, *, iterations: int, warmup: bool, min_time_s: float,
               expected: int | None) -> QueryOutcome:
    outcome = QueryOutcome(id=query.id, expected_rows=expected)
    if warmup:
        outcome.warmup = runner.execute()
        if "error" in outcome.warmup:
            # The file must show the failure: the failed warm-up is the query's one iteration.
            outcome.iterations.append(outcome.warmup)
    if not outcome.iterations:
        started = time.monotonic()
        while len(outcome.iterations) < iterations or time.monotonic() - started < min_time_s:
            record = runner.execute()
            outcome.iterations.append(record)
            if "error" in record:
                break
    if outcome.error is not None:
        outcome.status = f"failed: {_first_line(outcome.error)}"
    else:
        counts = sorted({i["rowCount"] for i in outcome.iterations})
        if expected is not None and counts != [expected]:
            outcome.status = f"wrong rows: {', '.join(map(str, counts))} (expected {expected})"
        elif len(counts) > 1:
            outcome.status = f"wrong rows: differs between iterations ({', '.join(map(str, counts))})"
    return outcome


# ---------------------------------------------------------------------------------------------
# the local path: data, a worker subprocess, the run


class LocalWorkerProcess:
    """``python -m dfbench.localworker --port 0`` on loopback, stopped with SIGTERM. ``args`` are
    more of its options (``--worker-urls``, ``--commit``)."""

    def __init__(self, data_dir: str | Path | None = None, start_timeout_s: float = WORKER_START_TIMEOUT_S,
                 args: Sequence[str] = ()) -> None:
        self.data_dir = data_dir
        self.args = list(args)
        self.start_timeout_s = start_timeout_s
        self.process: subprocess.Popen[str] | None = None
        self.url: str | None = None
        self._stderr = tempfile.TemporaryFile(mode="w+", prefix="dfbench-worker-")

    def start(self) -> str:
        command = [sys.executable, "-m", "dfbench.localworker", "--host", "127.0.0.1", "--port", "0", "--quiet"]
        if self.data_dir is not None:
            command += ["--data-dir", str(self.data_dir)]
        command += self.args
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
                                        stdin=subprocess.DEVNULL)
        lines: queue.Queue[str | None] = queue.Queue()
        stdout = self.process.stdout
        assert stdout is not None

        def read() -> None:
            for line in stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read, name="localworker-stdout", daemon=True).start()
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                raise DfbenchError(f"The local worker did not start within {self.start_timeout_s:.0f}s."
                                   + self._stderr_tail())
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                code = self.process.wait()
                raise DfbenchError(f"The local worker exited (code {code}) before listening." + self._stderr_tail())
            match = re.search(r"listening on (\S+)", line)
            if match:
                self.url = match.group(1)
                return self.url

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        tail = self._stderr.read()[-2000:].strip()
        return f"\n{tail}" if tail else ""

    def stop(self, timeout: float = 10.0) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process is not None and process.stdout is not None:
            process.stdout.close()
        self._stderr.close()

    def __enter__(self) -> LocalWorkerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def bench_local(*, scale_factor: Any = 1, partitions: int = 16, iterations: int = 3,
                queries: Sequence[str | Query] | str | None = None, engine: str | None = None,
                data_dir: str | Path = DEFAULT_DATA_DIR,
                settings: Mapping[str, Any] | Iterable[str] | str | None = None, warmup: bool = True,
                min_time_s: float = 0, progress: bool = True,
                on_query_done: Callable[[QueryOutcome], None] | None = None) -> BenchmarkRun:
    """TPC-H at ``scale_factor`` on a local worker subprocess, end to end.

    Generates the dataset when ``data_dir`` has no complete copy (an existing one is used whatever
    its partitioning), starts ``python -m dfbench.localworker`` on a free loopback port, runs
    :func:`run_benchmark` against it (results in ``.results-local``), stops the worker (SIGTERM)
    whatever happens, and returns the run. The engine defaults to ``datafusion-python-<version>``.
    """
    name = tpch_dataset_name(scale_factor)
    try:
        local_dataset(name, data_dir)
    except ConfigError:
        generate_tpch(scale_factor, partitions=partitions, data_dir=data_dir, progress=progress)
    worker = LocalWorkerProcess(data_dir=data_dir)  # the only folder it may read
    try:
        url = worker.start()
        return run_benchmark(dataset=name, engine=engine, iterations=iterations, queries=queries, warmup=warmup,
                             settings=settings, min_time_s=min_time_s, url=url, data_dir=data_dir,
                             progress=progress, on_query_done=on_query_done,
                             extra_manifest={"reached_by": "local worker subprocess"})
    finally:
        worker.stop()
