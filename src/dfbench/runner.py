"""Run a benchmark against a worker speaking the HTTP contract of ARCHITECTURE.md §5.

``run_benchmark(url=..., dataset=...)`` drives any worker reachable by URL (dfbench's local worker,
a real worker through a VPN or a tunnel you opened); ``bench_local(...)`` does the whole local path:
data, a worker subprocess, the run, the files. The arguments are
:class:`~dfbench.bench.options.RunOptions`; the files are :mod:`dfbench.bench.results`.

For each query: a warm-up execution (not part of the timings; a failing warm-up is the query's
recorded failure), then ``iterations`` timed executions, more while ``min_time_s`` has not been
spent. The time of an execution is the worker's ``elapsed_ms``. Statements around the timed one
(TPC-H q15's ``create view`` / ``drop view``) go in requests of their own, so they are never timed.
A failing iteration is recorded (ARCHITECTURE.md §7's error iteration) and the run moves on to the
next query. A request that gets no answer at all (the worker died, the tunnel closed) is such a
failure too; the runner then checks ``/info`` once (5 s at most): a worker that answers gets its
settings and tables again (a restarted one has a new session) and the run goes on; otherwise every
remaining query is recorded as failed (``worker unreachable: ...``) without a request, and the run
finishes with ``run.json`` saying ``status: "worker lost"``. Arguments (dataset, query ids,
settings) are all checked before the worker is contacted. Row counts of TPC-H queries are checked
against the known answers; a mismatch marks the query ``wrong rows`` without failing the run.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dfbench.bench import results
from dfbench.bench.machine import default_engine_name, machine_info
from dfbench.bench.options import RunOptions
from dfbench.bench.queries import Query, expected_rows, select_queries
from dfbench.bench.results import Iteration, QueryOutcome
from dfbench.bench.settings import settings_sql, table_sql
from dfbench.data import (
    DEFAULT_DATA_DIR,
    TPCH_TABLES,
    LocalDataset,
    benchmark_of,
    checked_dataset,
    format_scale_factor,
    generate_tpch,
    local_dataset,
    make_command,
    read_manifest,
    scale_factor_of,
    tpch_dataset_name,
)
from dfbench.engines.base import EngineClient
from dfbench.errors import ConfigError, DfbenchError, QueryFailed, WorkerUnreachable
from dfbench.sql import quoted_identifier
from dfbench.worker.client import INFO_TIMEOUT_S, WorkerClient
from dfbench.worker.process import LocalWorkerProcess

if TYPE_CHECKING:
    from rich.table import Table

    from dfbench.models import Cluster
    from dfbench.worker.artifacts import PublishedWorker


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
    run_id: str = ""  # written into every query file of the run and into run.json
    partial: bool = False  # query ids were selected: older files stay, previous-* merged
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


def dfbench_version() -> str:
    try:
        from importlib.metadata import version

        return version("dfbench")
    except Exception:
        from dfbench import __version__

        return __version__


class QueryRunner:
    def __init__(self, client: EngineClient, query: Query) -> None:
        self.client = client
        self.query = query
        # Set when a request got no answer at all (the worker died, the tunnel closed): the
        # run then checks the worker once before sending anything else.
        self.unreachable: WorkerUnreachable | None = None

    def _statements(self, statements: Sequence[str]) -> None:
        for statement in statements:
            self.client.query(statement + ";")

    def execute(self) -> Iteration:
        """Setup, the timed statement, teardown; the iteration (a failed one on failure, a
        connection failure included: then :attr:`unreachable` is set). KeyboardInterrupt
        passes through."""
        try:
            return self._execute()
        except WorkerUnreachable as error:
            self.unreachable = error
            return Iteration.failure(f"worker unreachable: {error.detail or error}")

    def _execute(self) -> Iteration:
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
            return Iteration.failure(f"setup failed: {error.text}")
        try:
            record = Iteration.from_response(self.client.query(q.statement + ";"))
        except QueryFailed as error:
            record = Iteration.failure(error.text)
        try:
            self._statements(q.teardown)
        except QueryFailed as error:
            if record.ok:
                record = Iteration.failure(f"teardown failed: {error.text}")
        return record


@dataclass(frozen=True)
class Target:
    """What the options resolve to before any request: where the worker finds the tables, which
    tables, the scale factor (None when unknown), the queries and whether their row counts are known
    (the bundled TPC-H set's)."""

    location: str
    tables: list[str]
    scale_factor: Any
    check_rows: bool
    queries: list[Query]


def run_benchmark(**options: Any) -> BenchmarkRun:
    """Benchmark ``dataset``'s queries (see :func:`~dfbench.bench.queries.select_queries`) on the
    worker at ``url``, or on ``cluster``; the keyword arguments are
    :class:`~dfbench.bench.options.RunOptions`' fields, and the module docstring says how a run goes.

    For a cluster dfbench opens its own way in, checks that every worker knows every peer and
    runs the same commit, creates the tables on ``s3://<bucket>/<dataset>/`` (synced with
    ``dfbench data sync``), runs, and closes the connection.

    Results go to ``.results-remote`` for a cluster or a worker other than dfbench's local one,
    ``.results-local`` otherwise.
    A worker that stops answering does not end the run with an exception: the remaining queries
    are recorded as failed, ``run.worker_lost`` says why, and ``run.json`` has ``status: "worker
    lost"`` (no ``previous-*.json``: such a run is no baseline). On KeyboardInterrupt the finished
    queries' files stay, ``run.json`` says ``interrupted`` and the interrupt is re-raised;
    ``previous-*.json`` is written only by a complete run. A run of selected ids (``queries="q3"``)
    rewrites those queries' files only and merges them into ``previous-*.json``; every file names
    its run (``runId``), and compare names an engine folder (or a previous run) that mixes runs.
    """
    checked = RunOptions(**options)
    target = resolve_target(checked)

    from rich.console import Console

    from dfbench.transport.base import DirectTransport
    from dfbench.transport.connection import ClusterConnection

    with ExitStack() as stack:
        connection: ClusterConnection | DirectTransport
        info_timeout_s = INFO_TIMEOUT_S
        if checked.url is not None:
            connection = stack.enter_context(DirectTransport(checked.url))
        else:
            cluster = checked.cluster
            assert cluster is not None
            with Console(stderr=True, quiet=not checked.progress).status(
                    f"reaching the {len(cluster.instances)} worker(s) of {cluster.name} and checking them…"):
                connection = stack.enter_context(ClusterConnection(cluster, via=checked.via, profile=checked.profile,
                                                                   **dict(checked.transport_options or {})))
            info_timeout_s = connection.info_timeout_s
        return _run(connection, checked, target, info_timeout_s=info_timeout_s)


def resolve_target(options: RunOptions) -> Target:
    """The dataset and the queries, checked before the worker is contacted: a typo costs no
    request, and no query runs before an error that would stop the run anyway."""
    dataset, data_dir, cluster, location = options.dataset, options.data_dir, options.cluster, options.location
    local_data: LocalDataset | None = None
    remote_tables: list[str] | None = None
    if cluster is not None:
        from dfbench.transport.choice import choose

        choose(cluster, options.via)  # an impossible transport is refused before any AWS call
        if location is None:
            # The tables the workers read are the bucket's (`dfbench data sync`), not a local copy.
            from dfbench.data import remote_tables as bucket_tables

            remote_tables = [t.name for t in bucket_tables(None, dataset, cluster=cluster, profile=options.profile)]
            location = f"s3://{cluster.bucket}"
    if location is None:
        local_data = _local_data(dataset, data_dir)
        location = str(data_dir.resolve())
    else:
        manifest = read_manifest(data_dir / dataset)
        if manifest is not None:
            local_data = LocalDataset(name=dataset, path=data_dir / dataset, manifest=manifest, generated=False)
    tables = (remote_tables if remote_tables is not None else
              list(local_data.manifest.tables) if local_data is not None else list(TPCH_TABLES))
    for table in tables:
        quoted_identifier(table)  # a bucket listing's names too: all checked before any SQL is sent
    scale_factor = local_data.manifest.scale_factor if local_data is not None else None
    if scale_factor is None:
        try:
            scale_factor = float(scale_factor_of(dataset))
        except ConfigError:
            scale_factor = None
    # Known row counts belong to the bundled TPC-H text only: another folder's q3 may differ.
    check_rows = options.queries_dir is None and benchmark_of(dataset) == "tpch"
    return Target(location=location, tables=tables, scale_factor=scale_factor, check_rows=check_rows,
                   queries=select_queries(dataset, options.queries, options.queries_dir))


def _run(connection: Any, options: RunOptions, target: Target, *, info_timeout_s: float) -> BenchmarkRun:
    """The run itself, on a worker reached through ``connection`` (a DirectTransport, or an open
    ClusterConnection to ``options.cluster``)."""
    dataset, cluster, location = options.dataset, options.cluster, target.location
    client = WorkerClient(connection.url, timeout=options.query_timeout_s, info_timeout=info_timeout_s)
    info = client.info()
    is_local_worker = str(info.get("engine", "")).startswith("datafusion-python")
    resolved = options.settings_for(is_local_worker)
    engine_name = results.safe_engine_name(options.engine) if options.engine else default_engine_name(info)
    # Remote means "not dfbench's local worker": a `--url` to a real worker is filed, compared and
    # given the default iterations as a cluster run is (ARCHITECTURE.md §7).
    remote = cluster is not None or not is_local_worker
    iterations = options.iterations_for(remote)
    options = dataclasses.replace(options, iterations=iterations)
    folder = results.results_dir(options.data_dir, dataset, engine_name, remote=remote)
    start_time = time.time()
    run = BenchmarkRun(dataset=dataset, engine=engine_name, url=client.url, remote=remote, results_dir=folder,
                       start_time=start_time, settings=resolved, worker_info=info,
                       run_id=results.new_run_id(start_time),
                       partial=options.selects_ids)
    published = _published_worker(cluster, options.profile) if cluster is not None else None

    from rich.console import Console

    console = Console(stderr=True, quiet=not options.progress, highlight=False)
    lost: dict[str, str] = {}  # set when the worker stopped answering: {"during": query id, "error": text}

    def manifest(status: str, error: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "dfbench_version": dfbench_version(), "run_id": run.run_id, "partial": run.partial, "status": status,
            "interrupted": run.interrupted,
            "start_time": run.start_time, "end_time": run.end_time, "dataset": dataset,
            "scale_factor": target.scale_factor, "engine": engine_name, "iterations": options.iterations,
            "min_time_s": options.min_time_s, "warmup": options.warmup, "settings": resolved, "url": client.url,
            "reached_by": connection.description, "location": location, "worker_info": info,
            "machine": machine_info() if is_local_worker and cluster is None else None,
            "cluster": None if cluster is None else _cluster_record(cluster, connection, published),
            "queries": {q.id: q.summary() for q in run.queries},
            "worker_lost": dict(lost) or None,
        }
        if error:
            data["error"] = error
        data.update(options.extra_manifest or {})
        return data

    def prepare() -> None:
        prepare_worker(client, resolved, target, dataset)

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
        console.print(f"[bold]{dataset}[/] on {client.url} as [bold]{engine_name}[/]: {len(target.queries)} queries, "
                      f"{options.iterations} iterations"
                      + (f", ≥{options.min_time_s:g}s each" if options.min_time_s else ""))
        for query in target.queries:
            expected = expected_rows(query.id, target.scale_factor) if target.check_rows else None
            outcome = QueryOutcome(id=query.id, dataset=dataset, engine=engine_name, expected_rows=expected,
                                   run_id=run.run_id, sql_sha256=results.sql_sha256(query.sql))
            if lost:
                outcome.status = "failed: worker unreachable"
                outcome.iterations.append(Iteration.failure(f"worker unreachable: not run, {lost['error']}"))
            else:
                query_runner = QueryRunner(client, query)
                run_query(outcome, query_runner, options, iterations)
            run.queries.append(outcome)
            results.write_query_result(folder, outcome)
            console.print(f"  {query.id:>4}  p50 {_ms(outcome.p50):>10}  {outcome.status}",
                          style=None if outcome.status == "ok" else "red")
            if not lost and query_runner.unreachable is not None:
                recheck(query.id, query_runner.unreachable)
            if options.on_query_done is not None:
                options.on_query_done(outcome)
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
        if status == "complete":  # a partial run merges its queries in (ARCHITECTURE.md §7)
            results.write_previous(options.data_dir, dataset, engine_name, run.start_time, run.queries,
                                   remote=remote, merge=run.partial)
    return run


def prepare_worker(client: WorkerClient, settings: Mapping[str, str], target: Target, dataset: str) -> None:
    """Settings and tables: the worker's session state, lost when it restarts."""
    if settings:
        try:
            client.query(settings_sql(settings))
        except QueryFailed as error:
            raise DfbenchError(f"The worker rejected the settings: {error.text}") from None
    for table in target.tables:
        try:
            client.query(table_sql(table, f"{target.location.rstrip('/')}/{dataset}/{table}/"))
        except QueryFailed as error:
            raise DfbenchError(f"Could not create table {table} on the worker: {error.text}") from None


def _published_worker(cluster: Cluster, profile: str | None) -> PublishedWorker:
    """The worker's kind, package and features as its deploy recorded them with the published
    artifact: /info tells none of them (both kinds list http://IP:9001/ peers)."""
    from dfbench.aws.session import connect
    from dfbench.errors import aws_errors
    from dfbench.worker.artifacts import published_worker

    with aws_errors(profile):
        return published_worker(connect(region=cluster.region, profile=profile).client("s3"), cluster.bucket)


def _cluster_record(cluster: Cluster, connection: Any, published: PublishedWorker | None) -> dict[str, Any]:
    """What produced a remote run's numbers: the hardware, the workers' kind, cargo package and
    features (None/empty: not published by a dfbench deploy that records them) and health."""
    if published is None:
        from dfbench.worker.artifacts import PublishedWorker

        published = PublishedWorker()
    return {"name": cluster.name, "region": cluster.region, "ami_id": cluster.ami_id, "worker_kind": published.kind,
            "worker_package": published.package, "worker_features": list(published.features),
            "instances": [i.model_dump(mode="json", include={"instance_id", "instance_type", "availability_zone",
                                                              "spot", "private_ip"}) for i in cluster.instances],
            "coordinator": connection.instance.instance_id, "transport": connection.kind,
            "health": [h.model_dump(mode="json") for h in connection.health]}


def _local_data(dataset: str, data_dir: Path) -> LocalDataset:
    """The complete local copy of ``dataset``, or a ConfigError saying how to make it (a missing
    data folder is the same answer: the dataset is not there)."""
    if not (data_dir / dataset).is_dir():
        raise ConfigError(_missing_dataset(dataset, data_dir))
    return local_dataset(dataset, data_dir)  # a ConfigError saying how to complete it


def _missing_dataset(dataset: str, data_dir: Path) -> str:
    command = make_command(dataset)
    if command is None:
        return (f"No dataset {dataset!r} in {data_dir}: datasets are named tpch_sf<SF>, tpcds_sf<SF> (made with "
                "`dfbench data generate`) or clickbench_<START>-<END> (`dfbench data clickbench`); for data only "
                "the worker sees, pass its --location.")
    option = "" if data_dir == Path(DEFAULT_DATA_DIR) else f" --data-dir {data_dir}"
    make = f" (or `make data SF={format_scale_factor(dataset)}`)" if benchmark_of(dataset) == "tpch" else ""
    return (f"No dataset {dataset!r} in {data_dir}: make it with `{command}{option}`{make}, or pass --location if "
            "only the worker has it.")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} ms"


def run_query(outcome: QueryOutcome, runner: QueryRunner, options: RunOptions, iterations: int) -> None:
    """The warm-up and the timed iterations of one query into ``outcome``, and its status."""
    if options.warmup:
        outcome.warmup = runner.execute()
        if not outcome.warmup.ok:
            # The file must show the failure: the failed warm-up is the query's one iteration.
            outcome.iterations.append(outcome.warmup)
    if not outcome.iterations:
        started = time.monotonic()
        while len(outcome.iterations) < iterations or time.monotonic() - started < options.min_time_s:
            record = runner.execute()
            outcome.iterations.append(record)
            if not record.ok:
                break
    expected = outcome.expected_rows
    if outcome.first_error is not None:
        outcome.status = f"failed: {_first_line(outcome.first_error)}"
    else:
        counts = sorted({i.row_count for i in outcome.iterations})
        if expected is not None and counts != [expected]:
            outcome.status = f"wrong rows: {', '.join(map(str, counts))} (expected {expected})"
        elif len(counts) > 1:
            outcome.status = f"wrong rows: differs between iterations ({', '.join(map(str, counts))})"


# ---------------------------------------------------------------------------------------------
# the local path: data, a worker subprocess, the run


def bench_local(*, scale_factor: Any = 1, partitions: int = 16, iterations: int | None = None,
                queries: Sequence[str | Query] | str | None = None, engine: str | None = None,
                data_dir: str | Path = DEFAULT_DATA_DIR, dataset: str | None = None,
                queries_dir: str | Path | None = None,
                settings: Mapping[str, Any] | Iterable[str] | str | None = None, warmup: bool = True,
                min_time_s: float = 0, progress: bool = True,
                on_query_done: Callable[[QueryOutcome], None] | None = None) -> BenchmarkRun:
    """A dataset of ``data_dir`` on a local worker subprocess, end to end: ``dataset`` (any
    benchmark's, e.g. ``tpcds_sf0.1``, made beforehand) or TPC-H at ``scale_factor``.

    Generates the TPC-H dataset when ``data_dir`` has no complete copy (an existing one is used
    whatever its partitioning), starts ``python -m dfbench.worker.local`` on a free loopback port, runs
    :func:`run_benchmark` against it (results in ``.results-local``), stops the worker (SIGTERM)
    whatever happens, and returns the run. The engine defaults to ``datafusion-python-<version>``.
    """
    name = checked_dataset(dataset) if dataset else tpch_dataset_name(scale_factor)
    select_queries(name, queries, queries_dir)  # a typo in the selection costs no generation
    if dataset is None:
        try:
            local_dataset(name, data_dir)
        except ConfigError:
            generate_tpch(scale_factor, partitions=partitions, data_dir=data_dir, progress=progress)
    else:
        _local_data(name, Path(data_dir))  # before the worker starts, which needs the folder to exist
    worker = LocalWorkerProcess(data_dir=data_dir)  # the only folder it may read
    try:
        url = worker.start()
        return run_benchmark(dataset=name, engine=engine, iterations=iterations, queries=queries,
                             queries_dir=queries_dir, warmup=warmup, settings=settings, min_time_s=min_time_s,
                             url=url, data_dir=data_dir, progress=progress, on_query_done=on_query_done,
                             extra_manifest={"reached_by": "local worker subprocess"})
    finally:
        worker.stop()
