"""Engines side by side, as datafusion-distributed's README compares them: per dataset, each
engine's total is the sum of its per-query p50 over the queries that every compared engine
completed, with how many queries that was, and each total's ratio to the first engine's.

A query counts as completed by an engine when its result file has no failed iteration and its
rows were not judged wrong; a query missing from one engine's results is not compared. Rendered
as text (a table), markdown (the README's table, ratios added) or json.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from dfbench.bench.results import QueryResult
from dfbench.comparison.records import FORMATS, query_sort_key
from dfbench.errors import ConfigError


@dataclass(frozen=True)
class EngineTotal:
    engine: str
    total_ms: float | None  # None when no query was compared
    ratio: float | None  # total / the first engine's total
    completed: int  # queries this engine completed, compared or not


@dataclass(frozen=True)
class DatasetTotals:
    dataset: str
    engines: list[str]
    queries: list[str]  # every query id some engine has a result for
    compared: list[str]  # those every engine completed
    totals: list[EngineTotal]
    p50_ms: dict[str, dict[str, float | None]]  # query id → engine → p50 (None: not completed)


def completed(result: QueryResult | None) -> bool:
    # A run in progress also knows whether the rows were right (QueryOutcome.status); files do not.
    return (result is not None and not result.failed and result.p50 is not None
            and not str(getattr(result, "status", "ok")).startswith("wrong rows"))


def engine_totals(dataset: str, results: Mapping[str, Mapping[str, QueryResult]]) -> DatasetTotals:
    """The totals of ``results`` (engine → query id → result; the first engine is the reference)."""
    engines = list(results)
    if not engines:
        raise ConfigError("No engine to compare: give at least one.")
    queries = sorted({query for by_id in results.values() for query in by_id}, key=query_sort_key)
    p50 = {query: {engine: (results[engine][query].p50 if completed(results[engine].get(query)) else None)
                   for engine in engines} for query in queries}
    compared = [query for query in queries if all(value is not None for value in p50[query].values())]
    sums: dict[str, float | None] = {engine: sum(p50[query][engine] or 0.0 for query in compared) if compared
                                     else None for engine in engines}
    first = sums[engines[0]]

    def ratio(total: float | None) -> float | None:
        return None if not first or total is None else total / first

    totals = [EngineTotal(engine=engine, total_ms=sums[engine], ratio=ratio(sums[engine]),
                          completed=sum(1 for query in queries if p50[query][engine] is not None))
              for engine in engines]
    return DatasetTotals(dataset=dataset, engines=engines, queries=queries, compared=compared, totals=totals,
                         p50_ms=p50)


def _seconds(total_ms: float | None) -> str:
    if total_ms is None:
        return "-"
    return f"{total_ms / 1000:.1f}s" if total_ms < 100_000 else f"{total_ms / 1000:.0f}s"


def _ratio(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def render_totals(datasets: Sequence[DatasetTotals], format: str = "text") -> str:
    """The table of every dataset's totals (one row per dataset, one column per engine)."""
    if format not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    if format == "json":
        return json.dumps([asdict(totals) for totals in datasets], indent=2) + "\n"
    engines = datasets[0].engines if datasets else []
    header = ["Dataset", *engines, "Queries compared"]
    rows = []
    for totals in datasets:
        cells = [totals.dataset]
        for total in totals.totals:
            value = _seconds(total.total_ms)
            if total.engine != totals.engines[0] and total.ratio is not None:
                value += f" ({_ratio(total.ratio)})"
            cells.append(value)
        cells.append(f"{len(totals.compared)} of {len(totals.queries)}")
        rows.append(cells)
    notes = [f"Total: the sum of per-query p50 over the queries every engine completed; (x): the total against "
             f"{engines[0]}'s." if engines else ""]
    for totals in datasets:
        for total in totals.totals:
            if total.completed < len(totals.queries):
                missing = [q for q in totals.queries if totals.p50_ms[q][total.engine] is None]
                notes.append(f"{totals.dataset}: {total.engine} did not complete {', '.join(missing)}")
    if format == "markdown":
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in rows]
        return "\n".join(lines + [""] + [f"- {note}" for note in notes if note]) + "\n"
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
             for row in [header, *rows]]
    return "\n".join(lines + [note for note in notes if note]) + "\n"
