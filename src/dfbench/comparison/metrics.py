"""What each query did on each side of a comparison, beside its time: the TASKS line (the sum of
the per-query average task counts, as upstream's successor of the CDK tooling's compare prints
it), and for each query whose time changed, what changed in what it did ("q9 1.42× slower: bytes
moved 2.10×, tasks 48 → 96").

Each iteration's ``metrics`` (:mod:`dfbench.bench.plan_metrics`) are read from the result file;
files written before dfbench recorded them have their plans parsed here instead, so older runs
explain themselves too. A query's value is the mean over its successful iterations that have it.
"""

from __future__ import annotations

import statistics
from typing import Any

from dfbench.bench.plan_metrics import METRICS, parse_plan_metrics
from dfbench.bench.results import QueryResult
from dfbench.comparison.records import Comparison, QueryComparison

LABELS = {"bytesMoved": "bytes moved", "messages": "messages", "networkRows": "rows moved", "spills": "spills",
          "spilledBytes": "bytes spilled", "bytesScanned": "bytes scanned", "stages": "stages", "tasks": "tasks"}
# Counted things shown as "before → after"; the others (amounts) as the ratio new/base.
_COUNTED = ("stages", "tasks", "spills")
# Displayed values carry three significant digits (DataFusion's human-readable form): a smaller
# change of an amount is the display's rounding, not a change.
_SAME = 0.02
_TIME_CHANGED = ("faster", "slower")


def query_metrics(result: QueryResult | None) -> dict[str, float]:
    """The mean of each metric over the successful iterations that have it."""
    if result is None:
        return {}
    values: dict[str, list[float]] = {}
    for iteration in result.successes:
        metrics = iteration.metrics if iteration.metrics is not None else parse_plan_metrics(iteration.plan)
        for key, value in metrics.items():
            values.setdefault(key, []).append(value)
    return {key: statistics.fmean(values[key]) for key in METRICS if key in values}


def average_tasks(result: QueryResult | None) -> float | None:
    """The worker's ``tasks`` averaged over the successful iterations."""
    successes = result.successes if result is not None else []
    return statistics.fmean(i.tasks for i in successes) if successes else None


def _number(value: float) -> str:
    return str(round(value)) if abs(value - round(value)) < 0.005 else f"{value:.2f}"


def tasks_totals(comparison: Comparison) -> tuple[float, float] | None:
    """The sums of the per-query average tasks over the queries in TOTAL (succeeded on both
    sides); None when no worker reported tasks (dfbench's local worker)."""
    prev = new = 0.0
    for query in comparison.queries:
        if not query.in_both or query.base.failed or query.new.failed:  # type: ignore[union-attr]
            continue
        prev += average_tasks(query.base) or 0.0
        new += average_tasks(query.new) or 0.0
    return (prev, new) if prev or new else None


def tasks_line(comparison: Comparison) -> str | None:
    totals = tasks_totals(comparison)
    if totals is None:
        return None
    return f"{'TASKS'.rjust(8)}: prev={_number(totals[0])}, new={_number(totals[1])}"


def changes(query: QueryComparison) -> list[str]:
    """What changed between the sides in what the query did, in :data:`METRICS` order."""
    base, new = query_metrics(query.base), query_metrics(query.new)
    found = []
    for key in METRICS:
        if key not in base or key not in new:
            continue
        before, after = base[key], new[key]
        if key in _COUNTED:
            if _number(before) != _number(after):
                found.append(f"{LABELS[key]} {_number(before)} → {_number(after)}")
        elif before == 0 or after == 0:
            if before != after:
                found.append(f"{LABELS[key]} {_number(before)} → {_number(after)}")
        elif abs(after / before - 1) > _SAME:
            found.append(f"{LABELS[key]} {after / before:.2f}×")
    return found


def explanation(query: QueryComparison) -> str | None:
    """``q9 1.42× slower: bytes moved 2.10×, tasks 48 → 96`` for a query whose time changed and
    whose plans on both sides show metrics."""
    if query.verdict not in _TIME_CHANGED or not query.ratio:
        return None
    factor = query.ratio if query.verdict == "slower" else 1 / query.ratio
    head = f"{query.id} {factor:.2f}× {query.verdict}"
    if not query_metrics(query.base) or not query_metrics(query.new):
        return None  # plans in no format the parser reads (dfbench's local worker): nothing to say
    found = changes(query)
    return f"{head}: {', '.join(found)}" if found else f"{head}: the plans' metrics did not change"


def explanations(comparison: Comparison) -> list[str]:
    return [line for line in map(explanation, comparison.queries) if line is not None]


def metrics_json(comparison: Comparison) -> dict[str, Any]:
    """The same facts for the JSON: the TASKS sums and, per query, both sides' metrics and what
    changed."""
    totals = tasks_totals(comparison)
    return {
        "tasks": None if totals is None else {"prev": totals[0], "new": totals[1]},
        "metrics": {query.id: {"base": query_metrics(query.base), "new": query_metrics(query.new),
                               "changes": changes(query), "explanation": explanation(query)}
                    for query in comparison.queries},
    }
