"""The records of a comparison: each query's verdict with both sides' results, the suite's
verdict, and the whole comparison with what decides the exit code. Rendering them is
:mod:`dfbench.comparison.render`; making them from result files, :mod:`dfbench.comparison.runs`."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from dfbench.bench.results import QueryResult
from dfbench.comparison.stats import Verdict

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
        return self.verdict == "failed" and self.base is not None and not self.base.every_iteration_failed

    @property
    def in_both(self) -> bool:
        return self.base is not None and self.new is not None


def _tooling_p50(result: QueryResult | None) -> int | None:
    if result is None or result.p50 is None:
        return None
    return round_half_up(result.p50)


@dataclass
class Suite:
    verdict: Verdict
    geomean_ratio: float | None
    ci_low: float | None
    ci_high: float | None
    failed: int  # queries that failed on at least one side (left out of TOTAL and of the stats)
    missing: int  # queries with a result file on one side only
    queries: int  # queries in the statistics (succeeded on both sides)


@dataclass
class Comparison:
    dataset: str
    base: str
    new: str
    queries: list[QueryComparison]
    suite: Suite
    format: str = "text"  # what render() gives by default: the format compare() was asked for
    fail_on_regression: bool = False

    @property
    def regressed(self) -> bool:
        """Suite slower, or a query that succeeded on base fails now."""
        return self.suite.verdict == "slower" or any(query.newly_failed for query in self.queries)

    @property
    def exit_code(self) -> int:
        return 1 if self.fail_on_regression and self.regressed else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "base": self.base,
            "new": self.new,
            "queries": [{"id": query.id, "verdict": query.verdict, "base_p50_ms": query.base_p50_ms,
                         "new_p50_ms": query.new_p50_ms, "ratio": query.ratio, "p_value": query.p_value}
                        for query in self.queries],
            "suite": {"verdict": self.suite.verdict, "geomean_ratio": self.suite.geomean_ratio,
                      "ci_low": self.suite.ci_low, "ci_high": self.suite.ci_high,
                      "failed": self.suite.failed, "missing": self.suite.missing},
        }
