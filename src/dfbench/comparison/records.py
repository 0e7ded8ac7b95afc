"""The records of a comparison: each query's verdict with both sides' results, the suite's
verdict, and the whole comparison with what decides the exit code. Rendering them is
:mod:`dfbench.comparison.render`; making them from result files, :mod:`dfbench.comparison.runs`."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dfbench.bench.results import QueryResult
from dfbench.comparison.stats import RunToRun, Verdict

RESULTS_KINDS = ("remote", "local")
FORMATS = ("text", "markdown", "json")


def round_half_up(value: float) -> int:
    # The CDK tooling is JavaScript (Math.round: halves go up); Python's round() goes to even.
    return math.floor(value + 0.5)


def query_sort_key(query_id: str) -> tuple[int, int, str]:
    """q1, q2, …, q10 (by the first number in the id), ids without a number last."""
    match = re.search(r"\d+", query_id)
    return (0, int(match.group()), query_id) if match else (1, 0, query_id)


@dataclass
class QueryComparison:
    id: str
    verdict: Verdict
    base: QueryResult | None
    new: QueryResult | None
    ratio: float | None = None  # geometric-mean ratio new/base of the successful iterations
    p_value: float | None = None
    ci_low: float | None = None  # the ratio's 95% interval from the (moderated) iteration noise
    ci_high: float | None = None

    @property
    def base_p50_ms(self) -> int | None:
        """The CDK tooling's p50 of the base side: median of the successful iterations, rounded half up
        to whole ms; None when it has none."""
        return _tooling_p50(self.base)

    @property
    def new_p50_ms(self) -> int | None:
        return _tooling_p50(self.new)

    @property
    def newly_failed(self) -> bool:
        """Succeeded on base (every iteration), fails now (some iteration): the tooling's
        "Previously succeeded, but now failed"."""
        return self.in_both and self.new.failed and not self.base.failed  # type: ignore[union-attr]

    @property
    def in_both(self) -> bool:
        return self.base is not None and self.new is not None

    @property
    def rows_differ(self) -> bool:
        """Both sides answered, with different row counts: a correctness difference, not speed."""
        if not self.in_both:
            return False
        base_rows, new_rows = self.base.rows, self.new.rows  # type: ignore[union-attr]
        return base_rows is not None and new_rows is not None and base_rows != new_rows

    @property
    def sql_differs(self) -> bool:
        """Both files record the sha256 of the SQL they ran, and they differ."""
        if not self.in_both:
            return False
        base_sha, new_sha = self.base.sql_sha256, self.new.sql_sha256  # type: ignore[union-attr]
        return base_sha is not None and new_sha is not None and base_sha != new_sha


def _tooling_p50(result: QueryResult | None) -> int | None:
    if result is None or result.p50 is None:
        return None
    return round_half_up(result.p50)


def runs_of(results: list[QueryResult]) -> dict[str, list[str]]:
    """Query ids by the run that wrote them (``unrecorded`` for files without ``runId``), in
    query order; more than one key means the engine folder mixes runs."""
    runs: dict[str, list[str]] = {}
    for result in sorted(results, key=lambda result: query_sort_key(result.id)):
        runs.setdefault(result.run_id or "unrecorded", []).append(result.id)
    return runs


@dataclass
class Suite:
    verdict: Verdict
    geomean_ratio: float | None
    ci_low: float | None
    ci_high: float | None
    failed: int  # queries that failed on at least one side (left out of TOTAL and of the stats)
    missing: int  # queries with a result file on one side only
    queries: int  # queries in the statistics (succeeded on both sides)
    detectable: float | None = None  # smallest uniform change (fraction) this comparison would have called
    rounds: int | None = None  # an interleaved A/B's rounds (the paired design); None for two runs
    run_to_run: RunToRun | None = None  # two runs: the run-to-run offsets their verdicts allowed for


@dataclass
class Comparison:
    dataset: str
    base: str
    new: str
    queries: list[QueryComparison]
    suite: Suite
    format: str = "text"  # what render() gives by default: the format compare() was asked for
    fail_on_regression: bool = False
    # side ("base"/"new") -> run id -> query ids, only for a side whose queries come from several runs
    mixed_runs: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def ids(self, condition: Callable[[QueryComparison], bool]) -> list[str]:
        return [query.id for query in self.queries if condition(query)]

    @property
    def regressed(self) -> bool:
        """Suite slower, a query that succeeded on base fails now, or a query's rows differ."""
        return self.suite.verdict == "slower" or any(query.newly_failed or query.rows_differ
                                                     for query in self.queries)

    @property
    def exit_code(self) -> int:
        return 1 if self.fail_on_regression and self.regressed else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "base": self.base,
            "new": self.new,
            "queries": [{"id": query.id, "verdict": query.verdict, "base_p50_ms": query.base_p50_ms,
                         "new_p50_ms": query.new_p50_ms, "ratio": query.ratio, "p_value": query.p_value,
                         "ci_low": query.ci_low, "ci_high": query.ci_high, "newly_failed": query.newly_failed,
                         "base_rows": None if query.base is None else query.base.rows,
                         "new_rows": None if query.new is None else query.new.rows,
                         "rows_differ": query.rows_differ, "sql_differs": query.sql_differs}
                        for query in self.queries],
            "suite": {"verdict": self.suite.verdict, "geomean_ratio": self.suite.geomean_ratio,
                      "ci_low": self.suite.ci_low, "ci_high": self.suite.ci_high,
                      "failed": self.suite.failed, "missing": self.suite.missing,
                      "detectable_change": self.suite.detectable,
                      "design": "rounds" if self.suite.rounds is not None else "two runs",
                      "rounds": self.suite.rounds,
                      "run_to_run": None if self.suite.run_to_run is None else {
                          "suite": self.suite.run_to_run.suite, "query": self.suite.run_to_run.query,
                          "source": self.suite.run_to_run.source}},
            "left_out_of_total": {"failed": self.ids(lambda q: q.verdict in ("failed", "fixed")),
                                  "missing": self.ids(lambda q: q.verdict == "missing")},
            "rows_differ": self.ids(lambda q: q.rows_differ),
            "sql_differs": self.ids(lambda q: q.sql_differs),
            "mixed_runs": self.mixed_runs,
            "regressed": self.regressed,
        }
