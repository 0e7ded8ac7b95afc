"""Several engines on one dataset, upstream's headline comparison (ARCHITECTURE.md §5a): ``dfbench
bench --engines datafusion,spark``.

On this machine DataFusion is dfbench's local worker and Spark its local Spark service, both
started here on loopback and stopped at the end; Trino is a coordinator reached at ``trino_url``.
On a cluster (``cluster``) DataFusion is its workers, reached and checked as a single-engine run
reaches them (``ClusterConnection``), and Trino and Spark are what ``dfbench engine install``
put there (``dfbench.engine_setup``): each reached through its own way in to the first instance's
port the install recorded (Trino's coordinator, Spark's service), all reading the tables of the
cluster's bucket.
Every engine gets the dataset's tables over the same parquet files (``dfbench.engines.dialect``
writes each engine's statements) before any query runs. Then, query by query, the engines run in
turn (warm-up, then the timed iterations, as a single-engine run does), so that a drift of the
machine falls on all of them alike; each engine's query text is adapted in ``dialect``.

With ``check_rows`` (the default), each query's rows are then fetched once from every engine
(untimed) and compared with the first engine's (``dfbench.engines.rows``); an engine whose rows
differ gets ``wrong rows`` for that query, which keeps it out of the totals. Row counts of TPC-H
are also checked against the known answers, as in every run.

Each engine's results are filed as a run of their own (``.results-local/<engine>/``, or
``.results-remote/`` for a cluster: ``spark``, ``trino``, and the DataFusion worker under the
name a single run gives it), so ``dfbench compare``
reads them as any other; ``run.json`` names the engines compared with. ``previous-local.json``
(one engine's last run, what ``dfbench bench`` compares a new run with) is left as it was. The
totals are :mod:`dfbench.comparison.engines`'.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dfbench.bench import results
from dfbench.bench.machine import default_engine_name, machine_info
from dfbench.bench.queries import Query, expected_rows, select_queries
from dfbench.bench.results import QueryOutcome
from dfbench.comparison.engines import DatasetTotals, engine_totals
from dfbench.data import DEFAULT_DATA_DIR, generate_tpch, local_dataset, tpch_dataset_name
from dfbench.engines.base import EngineClient
from dfbench.engines.dialect import (
    DATAFUSION,
    SPARK,
    TRINO,
    adapt_query,
    parse_engines,
    table_statements,
    trino_columns,
    trino_schema,
)
from dfbench.engines.rows import rows_difference
from dfbench.errors import ConfigError, DfbenchError, QueryFailed
from dfbench.models import Cluster
from dfbench.runner import QueryRunner, dfbench_version, run_query
from dfbench.worker.client import WorkerClient
from dfbench.worker.process import LocalWorkerProcess

SPARK_START_TIMEOUT_S = 240.0


@dataclass
class EngineSide:
    """One engine of the run: what it is, how it is reached, its results."""

    kind: str  # datafusion, spark or trino
    client: EngineClient
    name: str = ""  # the engine its results are filed under
    info: dict[str, Any] = field(default_factory=dict)
    install: dict[str, Any] | None = None  # on a cluster, Trino's or Spark's install record
    outcomes: dict[str, QueryOutcome] = field(default_factory=dict)


@dataclass
class EnginesRun:
    dataset: str
    run_id: str
    sides: list[EngineSide]
    totals: DatasetTotals
    rows_checked: dict[str, dict[str, str | None]]  # query → engine → difference (None: same rows)


def bench_engines(*, engines: str | Sequence[str], dataset: str | None = None, scale_factor: Any = 1,
                  partitions: int = 16, iterations: int | None = None, queries: Any = None,
                  data_dir: str | Path = DEFAULT_DATA_DIR, trino_url: str | None = None, warmup: bool = True,
                  check_rows: bool = True, datafusion_name: str | None = None, progress: bool = True,
                  spark_url: str | None = None, spark_args: Sequence[str] = (), cluster: Cluster | None = None,
                  via: str = "auto", profile: str | None = None, transport_options: Mapping[str, Any] | None = None,
                  location: str | None = None, engine_ports: Mapping[str, int] | None = None) -> EnginesRun:
    """Benchmark ``engines`` (``"datafusion,spark"``; the first is the reference) on ``dataset``
    (or TPC-H at ``scale_factor``, generated when missing) of ``data_dir``; see the module docstring.
    ``spark_url``: a Spark service already running (``python -m dfbench.engines.spark_service``,
    reading ``data_dir``) instead of one started here with ``spark_args``.

    With ``cluster``: every engine on the cluster, ``via`` its way in (``transport_options`` as a
    single-engine run takes them), on the tables of ``location`` (default the cluster's bucket);
    ``engine_ports`` overrides the port an engine's install recorded (tests)."""
    kinds = parse_engines(engines)
    name = dataset or tpch_dataset_name(scale_factor)
    chosen = select_queries(name, queries)
    if iterations is not None and (isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1):
        raise ConfigError(f"iterations must be a whole number of at least 1 (got {iterations!r}).")
    if cluster is not None:
        return _bench_cluster(kinds, cluster, name, chosen, data_dir=Path(data_dir), iterations=iterations,
                              queries=queries, warmup=warmup, check_rows=check_rows, datafusion_name=datafusion_name,
                              progress=progress, via=via, profile=profile, location=location,
                              transport_options=dict(transport_options or {}), engine_ports=dict(engine_ports or {}),
                              trino_url=trino_url, spark_url=spark_url)
    if TRINO in kinds and not trino_url:
        raise ConfigError("--engines trino needs --trino-url: the coordinator of a Trino dfbench does not start "
                          "on this machine (e.g. http://127.0.0.1:8080 through a tunnel), or --cluster C with "
                          "Trino installed there (`dfbench engine install trino --cluster C`).")
    if trino_url and TRINO not in kinds:
        raise ConfigError("--trino-url only with trino among --engines.")
    if SPARK in kinds and not spark_url:
        _check_spark_installed()
    if dataset is None:
        try:
            local_dataset(name, data_dir)
        except ConfigError:
            generate_tpch(scale_factor, partitions=partitions, data_dir=data_dir, progress=progress)
    data = local_dataset(name, data_dir)  # a ConfigError saying how to make or complete it
    location = str(Path(data_dir).resolve())

    from rich.console import Console

    console = Console(stderr=True, quiet=not progress, highlight=False)
    with ExitStack() as stack:
        sides = []
        for kind in kinds:
            if kind == TRINO:
                from dfbench.engines.trino import TrinoClient

                assert trino_url is not None
                sides.append(EngineSide(kind, TrinoClient(trino_url, schema=trino_schema(name))))
                continue
            if kind == SPARK and spark_url:
                sides.append(EngineSide(kind, WorkerClient(spark_url)))
                continue
            if kind == SPARK:
                console.print("starting Spark (local mode; its first start takes a minute)…")
                process = LocalWorkerProcess(data_dir=data_dir, module="dfbench.engines.spark_service",
                                             name="Spark service", start_timeout_s=SPARK_START_TIMEOUT_S,
                                             args=spark_args)
            else:
                process = LocalWorkerProcess(data_dir=data_dir)
            stack.callback(process.stop)
            sides.append(EngineSide(kind, WorkerClient(process.start())))
        tables = sorted(data.manifest.tables)
        for side in sides:
            _name_side(side, datafusion_name)
            _create_tables(side, name, location, tables, _local_columns(data.path))
        return _run(sides, name, chosen, data_dir=Path(data_dir), scale_factor=data.manifest.scale_factor,
                    iterations=iterations or 3, warmup=warmup, check_rows=check_rows, console=console,
                    partial=queries is not None, remote=False, cluster=None)


def _bench_cluster(kinds: list[str], cluster: Cluster, dataset: str, chosen: list[Query], *, data_dir: Path,
                   iterations: int | None, queries: Any, warmup: bool, check_rows: bool, datafusion_name: str | None,
                   progress: bool, via: str, profile: str | None, location: str | None,
                   transport_options: dict[str, Any], engine_ports: dict[str, int], trino_url: str | None,
                   spark_url: str | None) -> EnginesRun:
    """Every engine on ``cluster``: what can be checked is, before any way in is opened."""
    from rich.console import Console

    from dfbench.aws.session import connect
    from dfbench.bench.options import REMOTE_ITERATIONS, RunOptions
    from dfbench.engine_setup import read_record
    from dfbench.runner import resolve_target
    from dfbench.transport.choice import choose, open_transport, pick_instance
    from dfbench.transport.connection import ClusterConnection

    if trino_url or spark_url:
        raise ConfigError("--trino-url not with --cluster: Trino and Spark are those installed on the cluster "
                          "(`dfbench engine install trino|spark --cluster C`).")
    kind = choose(cluster, via)  # an impossible way in is refused before any AWS call
    if TRINO in kinds and kind == "relay":
        raise ConfigError("Trino cannot be reached through the relay (its client POSTs; the relay only GETs): use "
                          "--via ssm (the Session Manager plugin) or --via ssh.")
    first = pick_instance(cluster, 0)
    records = {}
    for engine in kinds:
        if engine == DATAFUSION:
            continue
        record = read_record(cluster, engine, profile)
        if record is None:
            raise ConfigError(f"{engine} is not installed on {cluster.name!r}: `dfbench engine install {engine} "
                              f"--cluster {cluster.name} --region {cluster.region}` first.")
        if record.instance_ids[:1] != [first.instance_id] or set(record.instance_ids) != {
                i.instance_id for i in cluster.instances}:
            raise ConfigError(f"{engine} was installed on other instances than {cluster.name!r} has now: "
                              f"`dfbench engine install {engine} --cluster {cluster.name}` installs it on these.")
        records[engine] = record
    # Where the tables are, which, and the scale factor, as a single-engine run on the cluster finds them.
    target = resolve_target(RunOptions(dataset=dataset, cluster=cluster, via=via, profile=profile, location=location,
                                       data_dir=data_dir, queries=queries))
    local = data_dir / dataset
    console = Console(stderr=True, quiet=not progress, highlight=False)
    aws = connect(region=cluster.region, profile=profile)
    ssh_options = {key: value for key, value in transport_options.items()
                   if key in ("ssh_port", "ssh_user", "known_hosts", "trust_on_first_use")}
    with ExitStack() as stack:
        sides = []
        for engine in kinds:
            if engine == DATAFUSION:
                with console.status(f"reaching the {len(cluster.instances)} worker(s) of {cluster.name} and "
                                    "checking them…"):
                    connection = stack.enter_context(ClusterConnection(cluster, via=via, profile=profile,
                                                                       **transport_options))
                sides.append(EngineSide(engine, WorkerClient(connection.url, info_timeout=connection.info_timeout_s)))
                continue
            port = engine_ports.get(engine, records[engine].port)
            transport = stack.enter_context(open_transport(cluster, first, kind, aws=aws, profile=profile,
                                                           worker_port=port, **ssh_options))
            console.print(f"{engine} {records[engine].version}: {transport.description}")
            client: EngineClient
            if engine == TRINO:
                from dfbench.engines.trino import TrinoClient

                client = TrinoClient(transport.url, schema=trino_schema(dataset))
            else:
                client = WorkerClient(transport.url)
            sides.append(EngineSide(engine, client, install=records[engine].model_dump(mode="json")))
        columns = _local_columns(local) if location and local.is_dir() else None
        for side in sides:
            _name_side(side, datafusion_name)
            if side.kind == TRINO and columns is None:
                columns = _bucket_columns(aws, cluster.bucket, dataset, profile)
            _create_tables(side, dataset, target.location, target.tables, columns)
        return _run(sides, dataset, chosen, data_dir=data_dir, scale_factor=target.scale_factor,
                    iterations=iterations or REMOTE_ITERATIONS, warmup=warmup, check_rows=check_rows,
                    console=console, partial=queries is not None, remote=True, cluster=cluster)


def _check_spark_installed() -> None:
    """pyspark and a Java runtime, before any data is generated or process started."""
    import importlib.util
    import os
    import shutil

    if importlib.util.find_spec("pyspark") is None:
        raise ConfigError("Spark needs the spark extra: pip install 'dfbench[spark]' (make bench-engines installs it).")
    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and os.access(os.path.join(java_home, "bin", "java"), os.X_OK)) and not shutil.which("java"):
        raise ConfigError("Spark needs a Java 17 or 21 runtime: apt-get install openjdk-17-jre-headless "
                          "(make spark-tools, as root), or set JAVA_HOME.")


def _name_side(side: EngineSide, datafusion_name: str | None) -> None:
    side.info = side.client.info()
    if side.kind != DATAFUSION:
        side.name = side.kind
    else:
        side.name = results.safe_engine_name(datafusion_name) if datafusion_name else default_engine_name(side.info)


def _local_columns(folder: Path) -> Any:
    """A function from a table to its (name, Trino type) columns, read from its first local file."""
    def columns(table: str) -> list[tuple[str, str]]:
        import pyarrow.parquet as parquet

        first = min((folder / table).glob("*.parquet"), default=None)
        if first is None:
            raise ConfigError(f"{folder / table} holds no parquet file.")
        return trino_columns(parquet.read_schema(first))
    return columns


def _bucket_columns(aws: Any, bucket: str, dataset: str, profile: str | None) -> Any:
    """Like :func:`_local_columns`, from the footer of each table's first file in the bucket (two
    ranged GETs at most per table; the data is never downloaded)."""
    from dfbench.aws.objects import list_objects
    from dfbench.data.footers import footer_schema, read_footer
    from dfbench.errors import aws_errors

    def columns(table: str) -> list[tuple[str, str]]:
        with aws_errors(profile):
            s3 = aws.client("s3")
            listed = sorted((key, item) for key, item in list_objects(s3, bucket, f"{dataset}/{table}/").items()
                            if key.endswith(".parquet"))
            if not listed:
                raise ConfigError(f"s3://{bucket}/{dataset}/{table}/ holds no parquet file.")
            key, item = listed[0]
            return trino_columns(footer_schema(read_footer(s3, bucket, key, item.size)))
    return columns


def _create_tables(side: EngineSide, dataset: str, location: str, tables: Sequence[str], columns: Any) -> None:
    """Every table over ``<location>/<dataset>/<table>/`` on the engine; Trino's columns from
    ``columns(table)``."""
    for table in tables:
        declared = columns(table) if side.kind == TRINO else []
        for statement in table_statements(side.kind, dataset, table, f"{location}/{dataset}/{table}/", declared):
            try:
                side.client.query(statement)
            except QueryFailed as error:
                raise DfbenchError(f"{side.kind} could not create table {table}: {error.text}") from None


def _query_rows(client: EngineClient, query: Query) -> list[list[Any]]:
    """The rows of the query's timed statement, its setup before and its teardown after."""
    for statement in query.setup:
        client.query(statement)
    try:
        return list(client.rows(query.statement)["rows"])
    finally:
        for statement in query.teardown:
            client.query(statement)


def _run(sides: list[EngineSide], dataset: str, queries: list[Query], *, data_dir: Path, scale_factor: Any,
         iterations: int, warmup: bool, check_rows: bool, console: Any, partial: bool, remote: bool,
         cluster: Cluster | None) -> EnginesRun:
    """The queries, each engine in turn; each query's files written as soon as every engine ran it,
    each engine's ``run.json`` saying ``running``, then ``complete`` (or ``interrupted``, the
    finished queries' files kept, and the interrupt raised again)."""
    from dfbench.bench.options import RunOptions

    start_time = time.time()
    run_id = results.new_run_id(start_time)
    options = RunOptions(dataset=dataset, iterations=iterations, warmup=warmup, url=sides[0].client.url)
    checked: dict[str, dict[str, str | None]] = {}
    names = [side.name for side in sides]

    def manifests(status: str) -> None:
        for side in sides:
            _manifest(side, sides, status=status, dataset=dataset, data_dir=data_dir, run_id=run_id,
                      start_time=start_time, scale_factor=scale_factor, iterations=iterations, warmup=warmup,
                      partial=partial, check_rows=check_rows, remote=remote, cluster=cluster)

    console.print(f"[bold]{dataset}[/]: {len(queries)} queries on {', '.join(names)} in turn, {iterations} "
                  "iterations each" + (", rows compared" if check_rows else ""))
    manifests("running")
    try:
        for query in queries:
            expected = expected_rows(query.id, scale_factor)
            for side in sides:
                adapted = adapt_query(side.kind, query)
                outcome = QueryOutcome(id=query.id, dataset=dataset, engine=side.name, expected_rows=expected,
                                       run_id=f"{run_id}-{side.kind}", sql_sha256=results.sql_sha256(adapted.sql))
                run_query(outcome, QueryRunner(side.client, adapted), options, iterations)
                side.outcomes[query.id] = outcome
            if check_rows:
                checked[query.id] = _check_rows(sides, query)
            for side in sides:
                results.write_query_result(results.results_dir(data_dir, dataset, side.name, remote=remote),
                                           side.outcomes[query.id])
            line = "  ".join(f"{side.name} {_ms(side.outcomes[query.id])}" for side in sides)
            bad = [f"{side.name}: {side.outcomes[query.id].status}" for side in sides
                   if side.outcomes[query.id].status != "ok"]
            console.print(f"  {query.id:>4}  {line}" + (f"  ({'; '.join(bad)})" if bad else ""),
                          style="red" if bad else None)
    except KeyboardInterrupt:
        manifests("interrupted")
        raise
    manifests("complete")
    totals = engine_totals(dataset, {side.name: side.outcomes for side in sides})
    return EnginesRun(dataset=dataset, run_id=run_id, sides=sides, totals=totals, rows_checked=checked)


def _check_rows(sides: list[EngineSide], query: Query) -> dict[str, str | None]:
    """Each engine's rows against the first engine's; a difference marks the query ``wrong rows``."""
    reference = sides[0]
    if reference.outcomes[query.id].failed:
        return {}
    try:
        expected = _query_rows(reference.client, adapt_query(reference.kind, query))
    except DfbenchError as error:
        return {reference.name: f"rows not fetched: {error}"}
    found: dict[str, str | None] = {}
    for side in sides[1:]:
        outcome = side.outcomes[query.id]
        if outcome.failed:
            continue
        try:
            difference = rows_difference(expected, _query_rows(side.client, adapt_query(side.kind, query)))
        except DfbenchError as error:
            difference = f"rows not fetched: {error}"
        found[side.name] = difference
        if difference is not None and outcome.status == "ok":
            outcome.status = f"wrong rows: {difference} (against {reference.name})"
    return found


def _manifest(side: EngineSide, sides: list[EngineSide], *, status: str, dataset: str, data_dir: Path, run_id: str,
              start_time: float, scale_factor: Any, iterations: int, warmup: bool, partial: bool,
              check_rows: bool, remote: bool, cluster: Cluster | None) -> None:
    folder = results.results_dir(data_dir, dataset, side.name, remote=remote)
    results.write_run_manifest(folder, {
        "dfbench_version": dfbench_version(), "run_id": f"{run_id}-{side.kind}", "partial": partial,
        "status": status, "interrupted": status == "interrupted", "start_time": start_time,
        "end_time": None if status == "running" else time.time(),
        "dataset": dataset, "scale_factor": scale_factor, "engine": side.name, "engine_kind": side.kind,
        "iterations": iterations, "warmup": warmup, "settings": {}, "url": side.client.url,
        "worker_info": side.info, "machine": machine_info(),
        "cluster": None if cluster is None else {
            "name": cluster.name, "region": cluster.region, "ami_id": cluster.ami_id,
            "instances": [i.model_dump(mode="json", include={"instance_id", "instance_type", "availability_zone",
                                                             "spot", "private_ip"}) for i in cluster.instances],
            "engine_install": side.install},
        "queries": {q.id: q.summary() for q in side.outcomes.values()},
        "engines": {"compared_with": [other.name for other in sides if other is not side], "order": "per query",
                    "rows_checked": check_rows},
    })


def _ms(outcome: QueryOutcome) -> str:
    return "-" if outcome.p50 is None else f"{outcome.p50:,.1f} ms"

