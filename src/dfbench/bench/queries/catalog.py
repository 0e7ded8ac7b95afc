"""The queries a benchmark runs: the Query record, TPC-H's 22 shipped as package data with their
known answers, and the checked selection of a run's queries.

TPC-H: ``queries/tpch/q1.sql`` … ``q22.sql`` with the specification's validation (qualification)
substitution parameters. The only parameter that depends on the data is Q11's FRACTION, which the
specification defines as 0.0001 / SF; it is written ``{q11_fraction}`` in the file and filled in
here (with the fixed 0.0001 the query returns no rows at SF >= 10).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, localcontext
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict

from dfbench.data.scale import format_decimal, scale_factor_of
from dfbench.errors import ConfigError
from dfbench.sql import split_statements

TPCH_QUERY_COUNT = 22

# TPC-H answer row counts, checked with DuckDB on tpchgen-cli data at SF 0.01, 0.1 and 1.
# Independent of the scale factor (groups of fixed domains, one-row aggregates, LIMITs reached):
_ROWS_ANY_SF = {"q1": 4, "q3": 10, "q4": 5, "q5": 5, "q6": 1, "q7": 4, "q8": 2, "q10": 20, "q12": 2,
                "q14": 1, "q15": 1, "q17": 1, "q19": 1, "q22": 7}
# Reached from SF 1 up (LIMIT 100 filled; all 25 nations x 7 years present); fewer below.
_ROWS_FROM_SF1 = {"q2": 100, "q9": 175, "q21": 100}
# Grow or shrink with the data: known at SF 1 only.
_ROWS_AT_SF1 = {"q11": 1048, "q13": 42, "q16": 18314, "q18": 57, "q20": 186}
_MIN_CHECKED_SF = Decimal("0.01")


class Query(BaseModel):
    """One benchmark query. ``statement`` is the one to time; ``setup`` runs before it and
    ``teardown`` after it (Q15: create view / query / drop view). ``sql`` is every statement in
    order, each ending with ``;``, as the worker's ``GET /?sql=`` expects."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    setup: tuple[str, ...] = ()
    statement: str
    teardown: tuple[str, ...] = ()

    @property
    def statements(self) -> tuple[str, ...]:
        return (*self.setup, self.statement, *self.teardown)

    @property
    def sql(self) -> str:
        return "\n".join(f"{s};" for s in self.statements)

    @property
    def number(self) -> int:
        return int(self.id.lstrip("q"))


def tpch_query_ids() -> list[str]:
    return [f"q{n}" for n in range(1, TPCH_QUERY_COUNT + 1)]


def tpch_queries(dataset_or_sf: Any, *, only: list[str] | None = None) -> list[Query]:
    """The 22 TPC-H queries for a dataset (or scale factor), in numeric order.

    ``only`` selects some of them (``["q1", "q3"]`` or ``["1", "3"]``); an unknown id is a
    ConfigError naming the valid ones.
    """
    sf = scale_factor_of(dataset_or_sf)
    with localcontext() as context:
        context.prec = 10  # 0.0001/3 needs no 28 digits, and long literals strain decimal precision
        fraction = format_decimal(Decimal("0.0001") / sf)
    ids = tpch_query_ids()
    if only is not None:
        wanted = [q.strip().lower() for q in only if q.strip()]
        wanted = [q if q.startswith("q") else f"q{q}" for q in wanted]
        unknown = [q for q in wanted if q not in ids]
        if unknown:
            raise ConfigError(f"Unknown TPC-H quer{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}: "
                              f"choose among q1 … q{TPCH_QUERY_COUNT}.")
        ids = [q for q in ids if q in set(wanted)]
    folder = resources.files("dfbench.bench.queries") / "tpch"
    queries = []
    for query_id in ids:
        text = (folder / f"{query_id}.sql").read_text(encoding="utf-8").replace("{q11_fraction}", fraction)
        statements = split_statements(text)
        if len(statements) == 1:
            queries.append(Query(id=query_id, statement=statements[0]))
        else:
            # Only the one SELECT is timed; view DDL around it is setup / teardown.
            main = next(i for i, s in enumerate(statements) if s.lower().startswith(("select", "with")))
            queries.append(Query(id=query_id, setup=tuple(statements[:main]), statement=statements[main],
                                 teardown=tuple(statements[main + 1:])))
    return queries


def expected_rows(query_id: str, scale_factor: Any) -> int | None:
    """The TPC-H answer's row count for a query at a scale factor, or None when not known."""
    try:
        sf = scale_factor_of(scale_factor)
    except ConfigError:
        return None
    if sf == 1 and query_id in _ROWS_AT_SF1:
        return _ROWS_AT_SF1[query_id]
    if sf >= 1 and query_id in _ROWS_FROM_SF1:
        return _ROWS_FROM_SF1[query_id]
    if sf >= _MIN_CHECKED_SF and query_id in _ROWS_ANY_SF:
        return _ROWS_ANY_SF[query_id]
    return None


def select_queries(dataset: str, queries: Sequence[str | Query] | str | None, scale_factor: Any) -> list[Query]:
    """The queries of a run; a ConfigError (naming the valid ids) for an unknown id, an empty or a
    repeated selection. ``scale_factor`` (None when unknown) fills in TPC-H Q11's parameter."""
    if isinstance(queries, str):
        queries = [q for q in queries.split(",") if q.strip()]
    if queries is not None:
        queries = [q.strip() if isinstance(q, str) else q for q in queries]
        queries = [q for q in queries if not isinstance(q, str) or q]
        if not queries:
            raise ConfigError(f"No queries selected: give TPC-H ids such as q1,q3 (q1 … q{TPCH_QUERY_COUNT}), "
                              "or leave the selection out for all of them.")
    ids = None if queries is None else [q for q in queries if isinstance(q, str)]
    by_id: dict[str, Query] = {}
    if ids is None or ids:
        if scale_factor is None:
            raise ConfigError(f"Dataset {dataset!r} is not named tpch_sf<SF> (e.g. tpch_sf10) and has no "
                              "manifest.json giving its scale factor, so its TPC-H queries are unknown.")
        by_id = {q.id: q for q in tpch_queries(scale_factor, only=ids)}
    if queries is None:
        return list(by_id.values())
    chosen = []
    for q in queries:
        if isinstance(q, Query):
            chosen.append(q)
        else:
            key = q.lower()
            chosen.append(by_id[key if key.startswith("q") else f"q{key}"])
    repeated = sorted({q.id for q in chosen if [c.id for c in chosen].count(q.id) > 1})
    if repeated:
        raise ConfigError(f"Query {', '.join(repeated)} selected more than once: each query has one result file.")
    return chosen
