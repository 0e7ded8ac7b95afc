"""``dfbench ab BASE NEW``: an interleaved A/B of two running workers.

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
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dfbench.bench import results
from dfbench.bench.machine import default_engine_name
from dfbench.bench.options import RunOptions
from dfbench.bench.results import QueryOutcome
from dfbench.comparison import Comparison, compare_results
from dfbench.errors import ConfigError
from dfbench.runner import QueryRunner, dfbench_version, prepare_worker, resolve_target
from dfbench.worker.client import WorkerClient

DEFAULT_ROUNDS = 5


@dataclass
class Side:
    """One side of the A/B: its worker, the name it is filed under and its results so far."""

    role: str  # "base" or "new"
    client: WorkerClient
    info: dict[str, Any]
    engine: str
    settings: dict[str, str]
    outcomes: dict[str, QueryOutcome] = field(default_factory=dict)
    runners: dict[str, QueryRunner] = field(default_factory=dict)

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
    base = results.safe_engine_name(base_name) if base_name else default_engine_name(base_info)
    new = results.safe_engine_name(new_name) if new_name else default_engine_name(new_info)
    if base == new:
        if base_name and new_name:
            raise ConfigError(f"--base-name and --new-name are both {base!r}: give two names.")
        base = base if base_name else f"{base}-base"
        new = new if new_name else f"{new}-new"
    return base, new


def run_ab(*, base_url: str, new_url: str, dataset: str, rounds: int = DEFAULT_ROUNDS,
           queries: Any = None, base_name: str | None = None, new_name: str | None = None,
           data_dir: str | Path = "benchmarks/data", location: str | None = None, settings: Any = None,
           warmup: bool = True, progress: bool = True) -> ABRun:
    """Interleave ``rounds`` rounds on the workers at ``base_url`` and ``new_url``; see the module
    docstring. Arguments are checked (dataset, queries, settings) before either worker is contacted."""
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ConfigError(f"rounds must be a whole number of at least 1 (got {rounds!r}).")
    options = RunOptions(dataset=dataset, url=base_url, queries=queries, data_dir=Path(data_dir),
                         location=location, settings=settings, iterations=rounds, warmup=warmup, progress=progress)
    target = resolve_target(options)
    clients = {"base": WorkerClient(base_url), "new": WorkerClient(new_url)}
    if clients["base"].url == clients["new"].url:
        raise ConfigError(f"BASE and NEW are the same worker ({base_url}): give two running workers.")
    infos = {role: client.info() for role, client in clients.items()}
    names = dict(zip(("base", "new"), _names(infos["base"], infos["new"], base_name, new_name), strict=True))
    sides = {role: Side(role, clients[role], infos[role], names[role], {}) for role in clients}
    if sides["base"].is_local_worker != sides["new"].is_local_worker:
        raise ConfigError("BASE and NEW are different kinds of worker (one is dfbench's local worker): "
                          "compare two builds of the same engine.")
    remote = not sides["base"].is_local_worker
    start_time = time.time()
    run_id = results.new_run_id(start_time)
    for side in sides.values():
        side.settings = options.settings_for(side.is_local_worker)
        prepare_worker(side.client, side.settings, target, dataset)
        for query in target.queries:
            side.runners[query.id] = QueryRunner(side.client, query)
            side.outcomes[query.id] = QueryOutcome(
                id=query.id, dataset=dataset, engine=side.engine, run_id=f"{run_id}-{side.role}",
                sql_sha256=results.sql_sha256(query.sql))

    from rich.console import Console

    console = Console(stderr=True, quiet=not progress, highlight=False)
    if warmup:
        for role in ("base", "new"):
            for query in target.queries:
                outcome = sides[role].outcomes[query.id]
                outcome.warmup = sides[role].runners[query.id].execute()
                if not outcome.warmup.ok:
                    outcome.iterations.append(outcome.warmup)  # the failure is the query's record
    order = abba_order(rounds)
    for index, role in enumerate(order):
        side = sides[role]
        console.print(f"round {index // 2 + 1}/{rounds}: {role} ({side.engine})")
        for query in target.queries:
            outcome = side.outcomes[query.id]
            if outcome.failed:  # as in a run: a query stops at its first failure
                continue
            outcome.iterations.append(side.runners[query.id].execute())
    end_time = time.time()
    for side in sides.values():
        other = sides["new" if side.role == "base" else "base"]
        folder = results.results_dir(data_dir, dataset, side.engine, remote=remote)
        for outcome in side.outcomes.values():
            if outcome.failed:
                outcome.status = "failed"
            results.write_query_result(folder, outcome)
        results.write_run_manifest(folder, {
            "dfbench_version": dfbench_version(), "run_id": f"{run_id}-{side.role}", "partial": options.selects_ids,
            "status": "complete", "start_time": start_time, "end_time": end_time, "dataset": dataset,
            "scale_factor": target.scale_factor, "engine": side.engine, "iterations": rounds,
            "warmup": warmup, "settings": side.settings, "url": side.client.url, "location": target.location,
            "worker_info": side.info, "queries": {q.id: q.summary() for q in side.outcomes.values()},
            "ab": {"role": side.role, "rounds": rounds, "order": order, "other_engine": other.engine,
                   "other_url": other.client.url},
        })
    comparison = compare_results(dict(sides["base"].outcomes), dict(sides["new"].outcomes), dataset=dataset,
                                 base_name=sides["base"].engine, new_name=sides["new"].engine)
    return ABRun(run_id, dataset, rounds, order, sides["base"], sides["new"], comparison, remote)
