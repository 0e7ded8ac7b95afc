"""``dfbench ab BASE NEW``: an interleaved A/B of two running workers (``run_ab``), or of two worker
builds deployed alternately on one cluster (``run_ab_cluster``).

Two sequential runs (main, then the branch) carry any drift of the machine or cluster between
them into the comparison, and no statistic over two runs can tell it from a real change. Here the
sides take turns: ``rounds`` rounds in ABBA order (base then new, new then base, …), each side
running every query once per round, so a drift over time falls on both sides alike (asv's
interleaved rounds, for two workers). A warm-up execution of each query on each side comes first
and is not recorded.

Both sides are filed as two engines in the usual result files (a query file per query, its
iterations one per round, ``runId`` and ``sqlSha256`` as any run's; ``run.json`` records the A/B and
the order), under ``.results-local`` when both are dfbench's local worker and ``.results-remote``
otherwise; ``previous-*.json`` is left alone (an A/B is not a baseline). The comparison is made on
this A/B's results only, whatever older files the engine folders hold.

On a cluster, BASE and NEW are worker binaries or datafusion-distributed checkouts (built with
:mod:`dfbench.worker.build`). Both are published to the bucket once (by sha256, so a binary
already there is not uploaded again), then the rounds run in the same ABBA order, each change of
side being ONE SendCommand that installs that side's worker on every instance (the deploy's own
install, :func:`dfbench.worker_deploy.install_deployment`), a bounded wait until every worker is
healthy (a :class:`~dfbench.transport.connection.ClusterConnection` judging every ``/info``), and
the worker's session prepared again (settings, tables: a restart loses them) and warmed up. A side
that runs twice in a row (…, new | new, …) is deployed once. ``latest`` is left as it was: the
cluster ends running the side that ran last, and instances booting later install what the last
``dfbench deploy`` published.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dfbench.bench import results
from dfbench.bench.machine import default_engine_name
from dfbench.bench.options import RunOptions
from dfbench.bench.results import QueryOutcome
from dfbench.comparison import Comparison, compare_results
from dfbench.errors import ClusterUnhealthy, ConfigError, WorkerUnreachable
from dfbench.runner import QueryRunner, Target, dfbench_version, prepare_worker, resolve_target
from dfbench.worker.client import WorkerClient

if TYPE_CHECKING:
    from dfbench.models import Cluster
    from dfbench.worker_deploy import Deployment

DEFAULT_ROUNDS = 5
# A deployed side's workers: healthy (every peer known, one commit) within this, or the A/B stops.
HEALTH_TIMEOUT_S = 120


@dataclass
class Side:
    """One side of the A/B: its worker, the name it is filed under and its results so far. On a
    cluster, ``deployment`` is its published worker and ``deploys`` the SendCommand of each time
    it was installed; ``client`` and ``info`` are those of its latest deploy."""

    role: str  # "base" or "new"
    client: WorkerClient | None = None
    info: dict[str, Any] = field(default_factory=dict)
    engine: str = ""
    settings: dict[str, str] = field(default_factory=dict)
    outcomes: dict[str, QueryOutcome] = field(default_factory=dict)
    runners: dict[str, QueryRunner] = field(default_factory=dict)
    deployment: Deployment | None = None
    deploys: list[str] = field(default_factory=list)

    @property
    def is_local_worker(self) -> bool:
        return str(self.info.get("engine", "")).startswith("datafusion-python")


@dataclass
class ABRun:
    run_id: str
    dataset: str
    rounds: int
    order: list[str]  # the roles in the order they ran, round by round
    base: Side
    new: Side
    comparison: Comparison
    remote: bool


def abba_order(rounds: int) -> list[str]:
    """base, new | new, base | base, new | …: each side goes first in every other round."""
    return [role for number in range(rounds) for role in (("base", "new") if number % 2 == 0 else ("new", "base"))]


def _names(base_info: dict[str, Any], new_info: dict[str, Any], base_name: str | None,
           new_name: str | None) -> tuple[str, str]:
    """The engines both sides are filed under: given, else derived from each worker's /info;
    equal derived names (two builds of one engine) get ``-base`` / ``-new``."""
    _check_names(base_name, new_name)
    base = results.safe_engine_name(base_name) if base_name else default_engine_name(base_info)
    new = results.safe_engine_name(new_name) if new_name else default_engine_name(new_info)
    if base == new:
        base = base if base_name else f"{base}-base"
        new = new if new_name else f"{new}-new"
    return base, new


def _check_names(base_name: str | None, new_name: str | None) -> None:
    if base_name and new_name and results.safe_engine_name(base_name) == results.safe_engine_name(new_name):
        raise ConfigError(f"--base-name and --new-name are both {base_name!r}: give two names.")


def _check_rounds(rounds: Any) -> None:
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ConfigError(f"rounds must be a whole number of at least 1 (got {rounds!r}).")


def run_ab(*, base_url: str, new_url: str, dataset: str, rounds: int = DEFAULT_ROUNDS,
           queries: Any = None, queries_dir: str | Path | None = None,
           base_name: str | None = None, new_name: str | None = None,
           data_dir: str | Path = "benchmarks/data", location: str | None = None, settings: Any = None,
           warmup: bool = True, progress: bool = True) -> ABRun:
    """Interleave ``rounds`` rounds on the workers at ``base_url`` and ``new_url``; see the module
    docstring. Arguments are checked (dataset, queries, settings) before either worker is contacted."""
    _check_rounds(rounds)
    _check_names(base_name, new_name)
    options = RunOptions(dataset=dataset, url=base_url, queries=queries, queries_dir=_folder(queries_dir),
                         data_dir=Path(data_dir), location=location, settings=settings, iterations=rounds,
                         warmup=warmup, progress=progress)
    target = resolve_target(options)
    clients = {"base": WorkerClient(base_url), "new": WorkerClient(new_url)}
    if clients["base"].url == clients["new"].url:
        raise ConfigError(f"BASE and NEW are the same worker ({base_url}): give two running workers.")
    sides = {role: Side(role, client=client, info=client.info()) for role, client in clients.items()}
    if sides["base"].is_local_worker != sides["new"].is_local_worker:
        raise ConfigError("BASE and NEW are different kinds of worker (one is dfbench's local worker): "
                          "compare two builds of the same engine.")

    def first_time_only(side: Side) -> bool:
        return not side.runners  # a running worker: prepared and warmed up once

    return _interleave(sides, options, target, first_time_only, remote=not sides["base"].is_local_worker,
                       base_name=base_name, new_name=new_name)


def run_ab_cluster(*, cluster: Cluster | str, base: str | Path, new: str | Path, dataset: str,
                   rounds: int = DEFAULT_ROUNDS, queries: Any = None, queries_dir: str | Path | None = None,
                   base_name: str | None = None, new_name: str | None = None,
                   data_dir: str | Path = "benchmarks/data", location: str | None = None, settings: Any = None,
                   warmup: bool = True, progress: bool = True, via: str = "auto", region: str | None = None,
                   profile: str | None = None, args: Sequence[str] = (), env: Mapping[str, str] | None = None,
                   secrets: Mapping[str, str] | None = None, worker_kind: str | None = None,
                   transport_options: Mapping[str, Any] | None = None,
                   health_timeout_s: float = HEALTH_TIMEOUT_S, package: str | None = None,
                   features: Sequence[str] | str | None = None) -> ABRun:
    """Interleave ``rounds`` rounds of two worker builds on ``cluster``: ``base`` and ``new`` are
    each a worker binary or a datafusion-distributed checkout; see the module docstring. Each side
    runs with ``args``, ``env`` and ``secrets`` as :func:`dfbench.worker_deploy.deploy_worker` takes
    them. A checkout builds its workspace package with a ``worker`` bin (each side's own, so a
    checkout from before upstream's move of the worker compares with one from after), or
    ``package``, with ``features``. Everything local (rounds, dataset, queries, settings, both
    sources and the packages they build, the secrets' references) is checked before any AWS call."""
    from dfbench.bench.queries import select_queries
    from dfbench.bench.settings import resolve_settings
    from dfbench.data import checked_dataset
    from dfbench.worker.secrets import secret_parameters
    from dfbench.worker_deploy import check_source, find_cluster, prepare_deployment

    _check_rounds(rounds)
    _check_names(base_name, new_name)
    dataset = checked_dataset(dataset)
    select_queries(dataset, queries, queries_dir)
    if settings is not None:
        resolve_settings(settings)
    sources = {"base": Path(base), "new": Path(new)}
    if sources["base"].resolve() == sources["new"].resolve():
        raise ConfigError(f"BASE and NEW are the same worker ({base}): give two binaries or checkouts.")
    where = {role: {"build_dir" if path.is_dir() else "binary": path} for role, path in sources.items()}
    parameters = secret_parameters(secrets, cluster=cluster if isinstance(cluster, str) else cluster.name, env=env)
    kinds = {role: check_source(source.get("binary"), source.get("build_dir"), worker_kind,
                                package=package if "build_dir" in source else None,
                                features=features if "build_dir" in source else None)
             for role, source in where.items()}
    if package is not None or features:
        if not any("build_dir" in source for source in where.values()):
            raise ConfigError("--package and --features choose what a checkout builds: BASE and NEW are binaries.")
    found, instances = find_cluster(cluster, region, profile)
    options = RunOptions(dataset=dataset, cluster=found, via=via, profile=profile, queries=queries,
                         queries_dir=_folder(queries_dir), data_dir=Path(data_dir), location=location,
                         settings=settings, iterations=rounds, warmup=warmup, progress=progress,
                         transport_options=transport_options)
    target = resolve_target(options)  # the transport and the bucket's tables, before anything is built or uploaded
    sides = {role: Side(role, deployment=prepare_deployment(
        found, instances, kind=kinds[role], worker_kind=worker_kind, args=args, env=env, secrets=parameters,
        profile=profile, progress=progress, binary=where[role].get("binary"), build_dir=where[role].get("build_dir"),
        package=package if "build_dir" in where[role] else None,
        features=features if "build_dir" in where[role] else None)) for role in ("base", "new")}
    if sides["base"].deployment.artifact.sha256 == sides["new"].deployment.artifact.sha256:  # type: ignore[union-attr]
        raise ConfigError("BASE and NEW are the same build (one sha256): an A/B needs two.")
    with ExitStack() as connections:
        switch = _cluster_switch(found, options, connections, profile=profile, health_timeout_s=health_timeout_s)
        return _interleave(sides, options, target, switch, remote=True, base_name=base_name, new_name=new_name,
                           cluster=found)


def _cluster_switch(cluster: Cluster, options: RunOptions, connections: ExitStack, *, profile: str | None,
                    health_timeout_s: float) -> Callable[[Side], bool]:
    """What makes a side the one the cluster runs: when another ran last, install its worker (ONE
    SendCommand), wait until every worker is healthy, and reach the coordinator anew."""
    from dfbench.transport.connection import ClusterConnection
    from dfbench.waiting import poll
    from dfbench.worker_deploy import install_deployment

    running: list[str] = []

    def switch(side: Side) -> bool:
        if running and running[-1] == side.role:
            return False
        deployment = side.deployment
        assert deployment is not None
        connections.close()  # the previous side's way in: its worker is about to be replaced
        report = install_deployment(deployment, verify=False, point_latest_after=False, profile=profile)
        report.raise_for_failures()
        side.deploys.append(report.command_id)
        running.append(side.role)

        def healthy() -> tuple[bool, Any]:
            connection = ClusterConnection(cluster, via=options.via, profile=profile,
                                           **dict(options.transport_options or {}))
            try:
                return True, connection.__enter__()
            except ClusterUnhealthy as error:
                # By worker: what each one lacks, its /info errors (peers it could not connect to).
                return False, "; ".join(f"{instance}: {problem}" for instance, problem in error.problems.items())
            except WorkerUnreachable as error:
                return False, str(error).splitlines()[0]

        connection = poll(healthy, what=f"the {side.role} worker ({deployment.artifact.sha256[:12]}) to be healthy on "
                          f"every instance of {cluster.name}", timeout=health_timeout_s, first=1.0, cap=5.0)
        connections.push(connection.__exit__)
        side.client = WorkerClient(connection.url, timeout=options.query_timeout_s,
                                   info_timeout=connection.info_timeout_s)
        side.info = connection.info
        return True

    return switch


def _show_info_errors(console: Any, side: Side) -> None:
    """The peers the side's worker could not connect to (its /info ``errors``), one line each."""
    errors = side.info.get("errors") if isinstance(side.info, dict) else None
    for error in errors if isinstance(errors, list) else ():
        console.print(f"{side.role} worker {side.client.url if side.client else ''}: /info reports: {error}",
                      style="yellow", markup=False, soft_wrap=True)


def _interleave(sides: dict[str, Side], options: RunOptions, target: Target, switch: Callable[[Side], bool], *,
                remote: bool, base_name: str | None, new_name: str | None, cluster: Cluster | None = None) -> ABRun:
    """The rounds in ABBA order: before a side's turn, ``switch`` makes it the running one (True
    when its worker is new: the session is then prepared and the queries warmed up); then one
    iteration of each query. Then both sides are filed and compared."""
    from rich.console import Console

    dataset, rounds, warmup = options.dataset, options.iterations or DEFAULT_ROUNDS, options.warmup
    console = Console(stderr=True, quiet=not options.progress, highlight=False)
    start_time = time.time()
    run_id = results.new_run_id(start_time)
    for side in sides.values():
        for query in target.queries:
            # Filed under the role until both workers' /info name the engines.
            side.outcomes[query.id] = QueryOutcome(id=query.id, dataset=dataset, engine=side.role,
                                                   run_id=f"{run_id}-{side.role}",
                                                   sql_sha256=results.sql_sha256(query.sql))
    order = abba_order(rounds)
    for index, role in enumerate(order):
        side = sides[role]
        if switch(side):
            assert side.client is not None
            _show_info_errors(console, side)
            side.settings = options.settings_for(side.is_local_worker)
            prepare_worker(side.client, side.settings, target, dataset)
            side.runners = {query.id: QueryRunner(side.client, query) for query in target.queries}
            if warmup:
                for query in target.queries:
                    outcome = side.outcomes[query.id]
                    outcome.warmup = side.runners[query.id].execute()
                    if not outcome.warmup.ok and not outcome.failed:
                        outcome.iterations.append(outcome.warmup)  # the failure is the query's record
        console.print(f"round {index // 2 + 1}/{rounds}: {role}")
        for query in target.queries:
            outcome = side.outcomes[query.id]
            if outcome.failed:  # as in a run: a query stops at its first failure
                continue
            outcome.iterations.append(side.runners[query.id].execute())
    end_time = time.time()
    engines = _names(sides["base"].info, sides["new"].info, base_name, new_name)
    for side, engine in zip(sides.values(), engines, strict=True):
        side.engine = engine
        for outcome in side.outcomes.values():
            outcome.engine = engine
    for side in sides.values():
        other = sides["new" if side.role == "base" else "base"]
        folder = results.results_dir(options.data_dir, dataset, side.engine, remote=remote)
        for outcome in side.outcomes.values():
            if outcome.failed:
                outcome.status = "failed"
            results.write_query_result(folder, outcome)
        assert side.client is not None and other.client is not None
        ab: dict[str, Any] = {"role": side.role, "rounds": rounds, "order": order, "other_engine": other.engine,
                              "other_url": other.client.url}
        if side.deployment is not None:
            build = side.deployment.build
            ab.update(sha256=side.deployment.artifact.sha256, kind=side.deployment.kind, deploys=side.deploys,
                      other_sha256=other.deployment.artifact.sha256 if other.deployment else None,
                      package=build.package if build else None, features=list(build.features) if build else [],
                      commit=build.commit if build else None)
        results.write_run_manifest(folder, {
            "dfbench_version": dfbench_version(), "run_id": f"{run_id}-{side.role}", "partial": options.selects_ids,
            "status": "complete", "start_time": start_time, "end_time": end_time, "dataset": dataset,
            "scale_factor": target.scale_factor, "engine": side.engine, "iterations": rounds,
            "warmup": warmup, "settings": side.settings, "url": side.client.url, "location": target.location,
            "worker_info": side.info, "queries": {q.id: q.summary() for q in side.outcomes.values()},
            "cluster": None if cluster is None else {"name": cluster.name, "region": cluster.region,
                                                     "instances": [i.instance_id for i in cluster.instances]},
            "ab": ab,
        })
    comparison = compare_results(dict(sides["base"].outcomes), dict(sides["new"].outcomes), dataset=dataset,
                                 base_name=sides["base"].engine, new_name=sides["new"].engine)
    return ABRun(run_id, dataset, rounds, order, sides["base"], sides["new"], comparison, remote)


def _folder(path: str | Path | None) -> Path | None:
    """The library takes a str or a Path for a folder; RunOptions holds a Path."""
    return None if path is None else Path(path)
