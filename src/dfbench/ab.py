"""``dfbench ab BASE NEW``: an interleaved A/B of two running workers (``run_ab``), or of two worker
builds deployed alternately on one cluster (``run_ab_cluster``).

Two sequential runs (main, then the branch) carry any drift of the machine or cluster between
them into the comparison, and no statistic over two runs can tell it from a real change. Here the
sides take turns within rounds, and **the round is the unit**: each round runs every query once
on each side, base and new are paired within the round, and the verdicts come from the rounds
(:mod:`dfbench.comparison.stats`): the suite's from the per-round geometric-mean ratios (new/base over
the queries of that round) and their spread across rounds, each query's from its paired per-round
differences. Whatever a stretch of time shares (load, clock frequency, a neighbour's burst) then
falls on both sides of a pair where it lasts, and is counted in the rounds' spread where it
does not. A warm-up execution of each query on each side comes first and is not recorded.

Two schedules, one statistic:

* **pairs** (``run_ab``: both workers run all along): each query runs on both sides back to back.
  Real noise on a shared machine is slow: consecutive executions' times are correlated (0.37 at
  lag 1, 0.16 eight executions apart, on a loaded 2-core machine, ``benchmarks/aa_real.py``), so a
  pair one query apart shares more of it than two passes through all the queries do (there, the
  rounds' log ratios spread by 0.31 with pairs against 0.44 with passes). The side that goes first
  alternates from query to query and from round to round (base first in round 1's first pair,
  new first in its second, new first in round 2's first pair, …): an advantage of going first
  or second is spread evenly over the sides.
* **passes** (``run_ab_cluster``: a change of side is a deploy): each side runs all its queries in
  turn, the rounds in ABBA order (base then new, new then base, …), so a drift over time falls on
  both sides alike (asv's interleaved rounds).

The query order is drawn anew for every round (pairs) or pass (passes) from a seed the A/B
records (``seed``; ``--seed`` repeats it). ``rounds`` rounds run (6 by default: an even number, so
each side goes first as often as the other); with ``until``, more rounds run, two at a time, until
the suite interval's half-width is at most ``until`` or ``max_rounds`` have run, with a progress
line after each pair of rounds. The comparison says how many rounds ran and the smallest change
they could detect.

Both sides are filed as two engines in the usual result files (a query file per query, its
iterations one per round, ``runId`` and ``sqlSha256`` as any run's; ``run.json`` records the A/B:
schedule, seed, the query orders and every execution in the order it ran), under
``.results-local`` when both are dfbench's local worker and ``.results-remote`` otherwise;
``previous-*.json`` is left alone (an A/B is not a baseline). The comparison is made on this A/B's
results only, whatever older files the engine folders hold.

On a cluster, BASE and NEW are worker binaries or datafusion-distributed checkouts (built with
:mod:`dfbench.worker.build`). Both are published to the bucket once (by sha256, so a binary
already there is not uploaded again), then the rounds run as passes in ABBA order, each change of
side being ONE SendCommand that installs that side's worker on every instance (the deploy's own
install, :func:`dfbench.worker_deploy.install_deployment`), a bounded wait until every worker is
healthy (a :class:`~dfbench.transport.connection.ClusterConnection` judging every ``/info``), and
the worker's session prepared again (settings, tables: a restart loses them) and warmed up. A side
that runs twice in a row (…, new | new, …) is deployed once. ``latest`` is left as it was: the
cluster ends running the side that ran last, and instances booting later install what the last
``dfbench deploy`` published.
"""

from __future__ import annotations

import math
import random
import secrets
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
from dfbench.comparison.stats import assess_rounds, round_log_ratios
from dfbench.errors import ClusterUnhealthy, ConfigError, WorkerUnreachable
from dfbench.runner import QueryRunner, Target, dfbench_version, prepare_worker, resolve_target
from dfbench.worker.client import WorkerClient

if TYPE_CHECKING:
    from dfbench.models import Cluster
    from dfbench.worker_deploy import Deployment

# Six rounds: an even number, so each side goes first in as many rounds as the other, and five
# degrees of freedom for the interval (three rounds give two: an interval about 2.5 times as wide).
# On a cluster a round is minutes; `until` is how a user buys precision (BENCHMARKS.md, "A/A on
# real local workers", measures the false alarms at this default).
DEFAULT_ROUNDS = 6
DEFAULT_MAX_ROUNDS = 30
SCHEDULES = ("pairs", "passes")
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
    seed: int = 0  # of the query orders (``orders``)
    orders: list[list[str]] = field(default_factory=list)  # the query ids of each round (pairs) or pass (passes)
    sequence: list[str] = field(default_factory=list)  # every execution in the order it ran: "base q3", …


@dataclass(frozen=True)
class RoundPlan:
    """How many rounds: ``rounds``, then with ``until`` (a fraction) more, a pair at a time, until the
    suite interval's half-width is at most ``until`` or ``max_rounds`` have run. ``seed`` draws the
    query order of every pass (a new one when None; the A/B records it)."""

    rounds: int = DEFAULT_ROUNDS
    until: float | None = None
    max_rounds: int = DEFAULT_MAX_ROUNDS
    seed: int | None = None
    schedule: str = "pairs"  # "pairs" (both workers running) or "passes" (a cluster); see the module docstring

    def check(self) -> None:
        _check_rounds(self.rounds)
        if self.until is not None and (isinstance(self.until, bool) or not isinstance(self.until, (int, float))
                                       or not 0 < self.until < 1):
            shown = f"{100 * self.until:g}" if isinstance(self.until, (int, float)) else repr(self.until)
            raise ConfigError(f"--until must be a percentage above 0 and below 100 (the suite interval's half-width "
                              f"to reach, e.g. 2 for ±2%), not {shown}")
        if isinstance(self.max_rounds, bool) or not isinstance(self.max_rounds, int) or self.max_rounds < self.rounds:
            raise ConfigError(f"--max-rounds must be a whole number no smaller than --rounds ({self.rounds}), "
                              f"not {self.max_rounds!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0):
            raise ConfigError(f"--seed must be a whole number of at least 0, not {self.seed!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}")


def abba_order(rounds: int) -> list[str]:
    """base, new | new, base | base, new | …: each side goes first in every other round."""
    return [role for number in range(rounds) for role in round_order(number)]


def round_order(number: int) -> tuple[str, str]:
    """The sides of round ``number`` (from 0) in the order they run."""
    return ("base", "new") if number % 2 == 0 else ("new", "base")


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
           until: float | None = None, max_rounds: int = DEFAULT_MAX_ROUNDS, seed: int | None = None,
           queries: Any = None, queries_dir: str | Path | None = None,
           base_name: str | None = None, new_name: str | None = None,
           data_dir: str | Path = "benchmarks/data", location: str | None = None, settings: Any = None,
           warmup: bool = True, progress: bool = True, schedule: str = "pairs") -> ABRun:
    """Interleave rounds (:class:`RoundPlan`: ``rounds``, ``until``, ``max_rounds``, ``seed``) on the
    workers at ``base_url`` and ``new_url``; see the module docstring. ``schedule="passes"`` runs
    them as a cluster A/B must (``benchmarks/aa_real.py`` compares the two). Arguments are checked
    (rounds, dataset, queries, settings) before either worker is contacted."""
    plan = RoundPlan(rounds, until, max_rounds, seed, schedule)
    plan.check()
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

    return _interleave(sides, options, target, first_time_only, plan, remote=not sides["base"].is_local_worker,
                       base_name=base_name, new_name=new_name)


def run_ab_cluster(*, cluster: Cluster | str, base: str | Path, new: str | Path, dataset: str,
                   rounds: int = DEFAULT_ROUNDS, until: float | None = None, max_rounds: int = DEFAULT_MAX_ROUNDS,
                   seed: int | None = None, queries: Any = None, queries_dir: str | Path | None = None,
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

    plan = RoundPlan(rounds, until, max_rounds, seed, schedule="passes")
    plan.check()
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
        return _interleave(sides, options, target, switch, plan, remote=True, base_name=base_name,
                           new_name=new_name, cluster=found)


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


def _interleave(sides: dict[str, Side], options: RunOptions, target: Target, switch: Callable[[Side], bool],
                plan: RoundPlan, *, remote: bool, base_name: str | None, new_name: str | None,
                cluster: Cluster | None = None) -> ABRun:
    """The rounds (``plan`` says how many), each running every query once on each side, in an order
    drawn for the round (pairs) or the pass (passes). Before a side runs, ``switch`` makes it the
    running one (True when its worker is new: the session is then prepared and the queries
    warmed up). Then both sides are filed and compared round by round.

    Schedules (module docstring): with both workers running (``pairs``, run_ab), each query runs on
    both sides back to back, the side that goes first alternating from query to query and from
    round to round; on a cluster (``passes``, where a change of side is a deploy), each side runs all
    its queries in turn, in ABBA order."""
    from rich.console import Console

    dataset, warmup = options.dataset, options.warmup
    console = Console(stderr=True, quiet=not options.progress, highlight=False, soft_wrap=True)
    start_time = time.time()
    run_id = results.new_run_id(start_time)
    seed = plan.seed if plan.seed is not None else secrets.randbits(32)
    shuffle = random.Random(seed)
    for side in sides.values():
        for query in target.queries:
            # Filed under the role until both workers' /info name the engines.
            side.outcomes[query.id] = QueryOutcome(id=query.id, dataset=dataset, engine=side.role,
                                                   run_id=f"{run_id}-{side.role}",
                                                   sql_sha256=results.sql_sha256(query.sql))

    def activate(side: Side) -> None:
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

    def execute(side: Side, query_id: str) -> None:
        outcome = side.outcomes[query_id]
        sequence.append(f"{side.role} {query_id}")
        if not outcome.failed:  # as in a run: a query stops at its first failure
            outcome.iterations.append(side.runners[query_id].execute())

    def drawn() -> list[str]:
        # A fresh order each round or pass: no query always follows the same one (what it leaves
        # in caches and memory), and no query always runs at the same point.
        ids = [query.id for query in shuffle.sample(target.queries, len(target.queries))]
        orders.append(ids)
        return ids

    orders: list[list[str]] = []
    sequence: list[str] = []
    goal = "" if plan.until is None else f" (until ±{100 * plan.until:g}%, at most {plan.max_rounds})"
    number = 0
    while True:
        shown = f"round {number + 1}/{plan.rounds if number < plan.rounds else '…'}{goal}"
        if plan.schedule == "pairs":
            for role in round_order(number):
                activate(sides[role])
            console.print(shown)
            for position, query_id in enumerate(drawn()):
                first = round_order(number)[position % 2]
                for role in (first, "new" if first == "base" else "base"):
                    execute(sides[role], query_id)
        else:
            for role in round_order(number):
                activate(sides[role])
                console.print(f"{shown}: {role}")
                for query_id in drawn():
                    execute(sides[role], query_id)
        number += 1
        if not _more_rounds(plan, number, sides, console):
            break
    order = abba_order(number)
    rounds = number
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
                              "other_url": other.client.url, "schedule": plan.schedule, "seed": seed,
                              "orders": orders, "sequence": sequence,
                              "until": plan.until, "max_rounds": plan.max_rounds if plan.until is not None else None}
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
                                 base_name=sides["base"].engine, new_name=sides["new"].engine, paired=True)
    return ABRun(run_id, dataset, rounds, order, sides["base"], sides["new"], comparison, remote, seed, orders,
                 sequence)


def _more_rounds(plan: RoundPlan, done: int, sides: dict[str, Side], console: Any) -> bool:
    """Whether another round runs: until ``plan.rounds``; with ``plan.until``, then while the suite
    interval is wider than asked and ``plan.max_rounds`` allows, judged after an even number of
    rounds (each side first as often as the other) and at the last one allowed, with a progress
    line each time. The stop depends on the interval's width, not on where it lies, so it does not
    steer the verdict."""
    if done < plan.rounds or plan.until is None:
        return done < plan.rounds
    last = done >= plan.max_rounds
    if done % 2 and not last:
        return True
    pairs = {query_id: (outcome.timings, sides["new"].outcomes[query_id].timings)
             for query_id, outcome in sides["base"].outcomes.items()
             if not outcome.failed and not sides["new"].outcomes[query_id].failed}
    suite = assess_rounds(round_log_ratios(pairs), queries=len(pairs))
    if suite.half_width is None:
        console.print(f"after {done} rounds: no interval yet (no query succeeded on both sides, or one round)")
        return not last and bool(pairs)
    half = math.expm1(suite.half_width)
    reached = half <= plan.until
    outcome = ", reached" if reached else f", not reached within --max-rounds {plan.max_rounds}" if last else ""
    console.print(f"after {done} rounds: geomean ratio {suite.geomean_ratio:.3f} ±{100 * half:.1f}% "
                  f"(target ±{100 * plan.until:g}%{outcome})")
    return not reached and not last


def _folder(path: str | Path | None) -> Path | None:
    """The library takes a str or a Path for a folder; RunOptions holds a Path."""
    return None if path is None else Path(path)
