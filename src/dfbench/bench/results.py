"""Result files of benchmark runs, in the CDK tooling's layout (ARCHITECTURE.md §7) so history stays comparable,
and the one record of a query's result that the runner writes and the comparator reads.

Layout, per dataset folder ``<data_dir>/<dataset>/``::

    .results-local/<engine>/<query>.json     one file per query, written as soon as it finishes
    .results-local/<engine>/run.json         how the numbers were produced (dfbench's addition)
    previous-local.json                      every query of the last complete run (a partial run's merged in)

``.results-remote`` / ``previous-remote.json`` are the same for a distributed (real) worker.

A query file is ``{"id", "dataset", "engine", "iterations": [...]}`` plus dfbench's optional
``runId`` (the run that wrote it: a folder holding files of several runs is named by compare) and
``sqlSha256`` (sha256 of the query's SQL text, so compare can tell when the sides ran different
SQL); the CDK tooling's reader (zod's default object schema) drops keys it does not know. An iteration is
``{"elapsed" (ms), "rowCount", "plan", "tasks"}`` plus ``statsQErrorP50`` / ``statsQErrorP95`` when the
worker reports them and ``error`` for a failed iteration (then elapsed 0, rowCount 0, plan "",
tasks 0). :class:`QueryResult` and :class:`Iteration` are that format: ``to_json`` writes it key
for key, ``from_json`` reads it (numbers kept as written, so a file read and written again is the
same file). Every file is written atomically (:mod:`dfbench.files`), so a reader never sees half a
file, even when a run is interrupted.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dfbench.bench.plan_metrics import parse_plan_metrics
from dfbench.data.scale import checked_dataset
from dfbench.errors import ConfigError
from dfbench.files import write_json_atomically

RUN_MANIFEST = "run.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def kind_name(remote: bool) -> str:
    return "remote" if remote else "local"


def engines_dir(data_dir: str | Path, dataset: str, *, remote: bool) -> Path:
    """``<data_dir>/<dataset>/.results-{local,remote}``: one folder per engine inside."""
    return Path(data_dir) / checked_dataset(dataset) / f".results-{kind_name(remote)}"


def results_dir(data_dir: str | Path, dataset: str, engine: str, *, remote: bool) -> Path:
    """``<data_dir>/<dataset>/.results-{local,remote}/<engine>``."""
    return engines_dir(data_dir, dataset, remote=remote) / engine


def previous_path(data_dir: str | Path, dataset: str, *, remote: bool) -> Path:
    return Path(data_dir) / checked_dataset(dataset) / f"previous-{kind_name(remote)}.json"


def new_run_id(start_time: float) -> str:
    """The id a run writes into each of its files: its UTC start and a random suffix (two runs
    started in the same second stay apart)."""
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(start_time))}-{secrets.token_hex(3)}"


def sql_sha256(sql: str) -> str:
    """What ``sqlSha256`` records: the sha256 of the query's SQL text as sent."""
    return hashlib.sha256(sql.encode()).hexdigest()


def safe_engine_name(name: str) -> str:
    """An engine name usable as one folder name (``/`` and spaces become ``-``)."""
    cleaned = _UNSAFE.sub("-", name.strip()).strip("-.")
    return cleaned or "engine"


# ---------------------------------------------------------------------------------------------
# the records


def _number(value: Any, what: str, source: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{source}: {what} must be a number, got {value!r}")
    return value


def _count(value: Any, what: str, source: Path) -> int:
    """A whole number a result file may leave out (None or absent: 0)."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{source}: {what} must be a whole number, got {value!r}")
    return value


def _text(value: Any, what: str, source: Path, default: str | None) -> str | None:
    if value is None:
        return default
    if not isinstance(value, str):
        raise ConfigError(f"{source}: {what} must be a string, got {value!r}")
    return value


def _metrics(value: Any, source: Path) -> dict[str, int] | None:
    """An iteration's optional ``metrics``: an object of whole numbers (names it does not know are
    kept: a newer dfbench may record more)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: metrics must be an object, got {value!r}")
    return {str(name): _count(number, f"metrics.{name}", source) for name, number in value.items()}


@dataclass(frozen=True)
class Iteration:
    """One timed execution of a query: the worker's ``elapsed_ms`` and what it answered, or why
    it failed (``error``; the other fields are then 0 and empty)."""

    elapsed: float
    row_count: int = 0
    plan: str = ""
    tasks: int = 0
    stats_q_error_p50: float | None = None
    stats_q_error_p95: float | None = None
    error: str | None = None
    # What the plan shows the query did (dfbench.bench.plan_metrics.METRICS); None in files written
    # before dfbench recorded it, empty when the plan was in no format the parser reads.
    metrics: dict[str, int] | None = None

    @property
    def ok(self) -> bool:
        # The CDK tooling tests `iter.error` for truth: an empty error string is a success there.
        return not self.error

    @classmethod
    def failure(cls, error: str) -> Iteration:
        # Never an empty error: the tooling (and ``ok``) would read it as a success.
        return cls(elapsed=0, error=error or "failed (no message)")

    @classmethod
    def from_response(cls, response: Mapping[str, Any]) -> Iteration:
        """The iteration of a worker's ``GET /?sql=`` answer."""
        plan = str(response.get("plan", ""))
        return cls(elapsed=float(response["elapsed_ms"]), row_count=int(response["count"]),
                   plan=plan, tasks=int(response.get("tasks", 0)),
                   stats_q_error_p50=response.get("stats_q_error_p50"),
                   stats_q_error_p95=response.get("stats_q_error_p95"), metrics=parse_plan_metrics(plan))

    def to_json(self) -> dict[str, Any]:
        """The file's iteration object; optional keys appear only when they have a value."""
        record: dict[str, Any] = {"elapsed": self.elapsed, "rowCount": self.row_count, "plan": self.plan,
                                  "tasks": self.tasks}
        if self.stats_q_error_p50 is not None:
            record["statsQErrorP50"] = self.stats_q_error_p50
        if self.stats_q_error_p95 is not None:
            record["statsQErrorP95"] = self.stats_q_error_p95
        if self.error is not None:
            record["error"] = self.error
        if self.metrics is not None:
            record["metrics"] = dict(self.metrics)
        return record

    @classmethod
    def from_json(cls, raw: Any, *, source: Path, index: int) -> Iteration:
        """Iteration ``index`` of the file ``source``; a ConfigError naming both when malformed.
        Only ``elapsed`` is required: files of the CDK tooling may leave the rest out."""
        if not isinstance(raw, dict) or "elapsed" not in raw:
            raise ConfigError(f"{source}: iteration {index} has no \"elapsed\"")
        optional = {key: _number(raw[key], key, source) if raw.get(key) is not None else None
                    for key in ("statsQErrorP50", "statsQErrorP95")}
        return cls(elapsed=_number(raw["elapsed"], "elapsed", source),
                   row_count=_count(raw.get("rowCount"), "rowCount", source),
                   plan=_text(raw.get("plan"), "plan", source, "") or "",
                   tasks=_count(raw.get("tasks"), "tasks", source),
                   stats_q_error_p50=optional["statsQErrorP50"], stats_q_error_p95=optional["statsQErrorP95"],
                   error=_text(raw.get("error"), "error", source, None),
                   metrics=_metrics(raw.get("metrics"), source))


@dataclass
class QueryResult:
    """One query of one engine's run on a dataset: its recorded iterations (the warm-up is not
    among them). Statistics are over the successful iterations only."""

    id: str
    dataset: str
    engine: str
    iterations: list[Iteration] = field(default_factory=list)
    run_id: str | None = None
    sql_sha256: str | None = None

    @property
    def successes(self) -> list[Iteration]:
        return [iteration for iteration in self.iterations if iteration.ok]

    @property
    def timings(self) -> list[float]:
        """Elapsed ms of the successful iterations."""
        return [iteration.elapsed for iteration in self.successes]

    @property
    def failed(self) -> bool:
        """At least one iteration failed: the meaning of the CDK tooling, and the one compare uses
        (such a query gets a failure line and stays out of TOTAL and the statistics). The runner
        stops a query at its first failure, so the failing iteration is then the last one."""
        return any(not iteration.ok for iteration in self.iterations)

    @property
    def failed_iterations(self) -> int:
        return sum(1 for iteration in self.iterations if not iteration.ok)

    @property
    def first_error(self) -> str | None:
        return next((iteration.error for iteration in self.iterations if iteration.error is not None), None)

    @property
    def rows(self) -> int | None:
        ok = self.successes
        return ok[0].row_count if ok else None

    @property
    def p50(self) -> float | None:
        """The median of the successful times (ms), unrounded."""
        times = self.timings
        return statistics.median(times) if times else None

    @property
    def min(self) -> float | None:
        times = self.timings
        return min(times) if times else None

    @property
    def max(self) -> float | None:
        times = self.timings
        return max(times) if times else None

    @property
    def cv_percent(self) -> float | None:
        """Coefficient of variation (sample standard deviation / mean) of the successful times."""
        times = [float(time) for time in self.timings]
        if len(times) < 2 or statistics.fmean(times) == 0:
            return None
        return statistics.stdev(times) / statistics.fmean(times) * 100

    def to_json(self) -> dict[str, Any]:
        """The query file's document; ``runId`` and ``sqlSha256`` only when known."""
        document: dict[str, Any] = {"id": self.id, "dataset": self.dataset, "engine": self.engine}
        if self.run_id is not None:
            document["runId"] = self.run_id
        if self.sql_sha256 is not None:
            document["sqlSha256"] = self.sql_sha256
        document["iterations"] = [iteration.to_json() for iteration in self.iterations]
        return document

    @classmethod
    def from_json(cls, data: Any, *, source: Path, dataset: str, engine: str) -> QueryResult:
        """A query document read from ``source`` (a query file, or ``previous-*.json`` holding it);
        ``dataset`` and ``engine`` fill in what the document leaves out, its file name the id."""
        if not isinstance(data, dict) or not isinstance(data.get("iterations"), list):
            raise ConfigError(f"{source} is not a benchmark result (no \"iterations\" list)")
        iterations = [Iteration.from_json(raw, source=source, index=index)
                      for index, raw in enumerate(data["iterations"])]
        optional = {key: _text(data.get(key), key, source, None) for key in ("runId", "sqlSha256")}
        return cls(id=_text(data.get("id"), "id", source, None) or source.stem,
                   dataset=_text(data.get("dataset"), "dataset", source, dataset) or dataset,
                   engine=_text(data.get("engine"), "engine", source, engine) or engine, iterations=iterations,
                   run_id=optional["runId"], sql_sha256=optional["sqlSha256"])


@dataclass
class QueryOutcome(QueryResult):
    """A query of the run in progress: its result plus the runner's verdict (``status``: ``ok``,
    ``failed: …`` or ``wrong rows: …``) and the warm-up, which ``run.json`` records."""

    warmup: Iteration | None = None
    expected_rows: int | None = None
    status: str = "ok"

    def summary(self) -> dict[str, Any]:
        """The query's entry in ``run.json``."""
        return {"status": self.status, "iterations": len(self.iterations), "p50_ms": self.p50,
                "min_ms": self.min, "max_ms": self.max, "cv_percent": self.cv_percent, "rows": self.rows,
                "expected_rows": self.expected_rows,
                "warmup": None if self.warmup is None else {k: v for k, v in self.warmup.to_json().items()
                                                            if k != "plan"}}


# ---------------------------------------------------------------------------------------------
# writing


def write_query_result(folder: Path, result: QueryResult) -> Path:
    path = folder / f"{result.id}.json"
    write_json_atomically(path, result.to_json())
    return path


def write_previous(data_dir: str | Path, dataset: str, engine: str, start_time: float,
                   results: Sequence[QueryResult], *, remote: bool, merge: bool = False) -> Path:
    """``previous-{local,remote}.json``: the run's start (unix seconds) and every query document.

    ``merge`` (a partial run, ``--queries q3``): the file keeps the queries of its earlier runs
    that this run did not run, and replaces those it did; each document names its run
    (``runId``), so a comparison with it names the mixture."""
    ran = {result.id for result in results}
    kept: list[QueryResult] = []
    if merge:
        found = read_previous(data_dir, dataset, remote=remote)
        kept = [result for result in found[1] if result.id not in ran] if found is not None else []
    documents = [result.to_json() for result in [*kept, *results]]
    path = previous_path(data_dir, dataset, remote=remote)
    write_json_atomically(path, {"startTime": int(start_time), "dataset": dataset, "engine": engine,
                                 "results": documents})
    return path


def write_run_manifest(folder: Path, manifest: Mapping[str, Any]) -> Path:
    path = folder / RUN_MANIFEST
    write_json_atomically(path, dict(manifest))
    return path


# ---------------------------------------------------------------------------------------------
# reading


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"Cannot read result file {path}: {error}") from error


def read_query_result(path: Path, *, dataset: str, engine: str) -> QueryResult:
    """One query file; a one-line ConfigError naming the file when it is unreadable or malformed."""
    return QueryResult.from_json(_read_json(path), source=path, dataset=dataset, engine=engine)


def read_query_results(folder: Path, *, dataset: str, engine: str) -> list[QueryResult]:
    """Every query file of one engine's results folder (``run.json`` describes the run, it is not
    a query; dot files are temporary ones), in no particular order."""
    return [read_query_result(path, dataset=dataset, engine=engine) for path in folder.glob("*.json")
            if path.name != RUN_MANIFEST and not path.name.startswith(".")]


def read_previous(data_dir: str | Path, dataset: str, *, remote: bool) -> tuple[str, list[QueryResult]] | None:
    """The engine and the results of the last complete run (``previous-{local,remote}.json``), or
    None when there is none (or it holds no query)."""
    path = previous_path(data_dir, dataset, remote=remote)
    if not path.is_file():
        return None
    data = _read_json(path)
    engine = (_text(data.get("engine"), "engine", path, None) if isinstance(data, dict) else None) or "previous"
    documents = data.get("results") if isinstance(data, dict) else None
    if not isinstance(documents, list) or not documents:
        return None
    return engine, [QueryResult.from_json(document, source=path, dataset=dataset, engine=engine)
                    for document in documents]
