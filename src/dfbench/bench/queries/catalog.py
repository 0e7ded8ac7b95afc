"""The queries a benchmark runs: the Query record, the query sets shipped as package data with
TPC-H's known answers, any folder of ``qN.sql`` files, and the checked selection of a run's queries.

The bundled sets (``queries/<benchmark>/qN.sql``) return the same rows as the datafusion-distributed
repository's ``testdata/<benchmark>/queries``, which the CDK tooling ran: TPC-H without the
specification's LIMIT clauses and with Q11's FRACTION fixed at 0.0001 at every scale factor; TPC-DS
as DuckDB's 99 queries with the repository's changes (q47 and q57's monthly average ordered by month,
q72's date arithmetic); ClickBench's ``q0``-``q42`` as DataFusion runs them (``EventTime`` read as
epoch seconds). So timings and row counts compare with what the tooling recorded; ``NOTICE.md``
beside this module says where each text comes from. A dataset's name says its set: ``tpch_sf10`` →
tpch (see :func:`dfbench.data.scale.benchmark_of`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from dfbench.data.scale import benchmark_of, scale_factor_of
from dfbench.errors import ConfigError
from dfbench.sql import split_statements

TPCH_QUERY_COUNT = 22
# The query sets shipped in this package, by the dataset-name prefix that selects them.
BUNDLED_SETS = ("tpch", "tpcds", "clickbench")
_LABELS = {"tpch": "TPC-H", "tpcds": "TPC-DS", "clickbench": "ClickBench"}
_QUERY_FILE = re.compile(r"q(?P<n>\d+)\.sql")

# Row counts of the bundled TPC-H set, from DuckDB on tpchgen-cli data at SF 0.01, 0.1 and 1.
# Independent of the scale factor (groups of fixed domains, one-row aggregates):
_ROWS_ANY_SF = {"q1": 4, "q4": 5, "q5": 5, "q6": 1, "q7": 4, "q8": 2, "q12": 2, "q14": 1, "q15": 1, "q17": 1,
                "q19": 1, "q22": 7}
# All 25 nations x 7 years present from SF 1 up; fewer below.
_ROWS_FROM_SF1 = {"q9": 175}
# Grow or shrink with the data: known at the scale factors checked.
_ROWS_AT_SF = {
    Decimal("0.01"): {"q2": 4, "q3": 138, "q9": 173, "q10": 399, "q11": 359, "q13": 33, "q16": 296, "q18": 2,
                      "q20": 1, "q21": 1},
    Decimal("0.1"): {"q2": 44, "q3": 1216, "q9": 175, "q10": 3767, "q11": 2541, "q13": 37, "q16": 2762, "q18": 5,
                     "q20": 9, "q21": 47},
    Decimal("1"): {"q2": 460, "q3": 11620, "q10": 37967, "q11": 1048, "q13": 42, "q16": 18314, "q18": 57,
                   "q20": 186, "q21": 411},
}
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


def _query_files(folder: Traversable) -> dict[str, Traversable]:
    """``qN.sql`` files of a folder by id, in numeric order; other names are not queries."""
    found = {}
    for entry in folder.iterdir():
        match = _QUERY_FILE.fullmatch(entry.name)
        if match and entry.is_file():
            found[f"q{int(match['n'])}"] = entry
    return dict(sorted(found.items(), key=lambda item: int(item[0][1:])))


def _parse(query_id: str, text: str) -> Query:
    statements = split_statements(text)
    if not statements:
        raise ConfigError(f"Query {query_id} has no SQL statement.")
    if len(statements) == 1:
        return Query(id=query_id, statement=statements[0])
    # Only the one SELECT is timed; view DDL around it is setup / teardown.
    main = next((i for i, s in enumerate(statements) if s.lower().startswith(("select", "with"))), None)
    if main is None:
        raise ConfigError(f"Query {query_id} has {len(statements)} statements and none is a SELECT to time.")
    return Query(id=query_id, setup=tuple(statements[:main]), statement=statements[main],
                 teardown=tuple(statements[main + 1:]))


def _load(files: dict[str, Traversable], label: str, only: Sequence[str] | None) -> list[Query]:
    ids = list(files)
    if only is not None:
        wanted = [q.strip().lower() for q in only if q.strip()]
        wanted = [q if q.startswith("q") else f"q{q}" for q in wanted]
        unknown = [q for q in wanted if q not in files]
        if unknown:
            raise ConfigError(f"Unknown {label} quer{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}: "
                              f"choose among {ids[0]} … {ids[-1]}.")
        ids = [q for q in ids if q in set(wanted)]
    queries = []
    for query_id in ids:
        try:
            text = files[query_id].read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"Cannot read {label} query {query_id}: {error}") from None
        queries.append(_parse(query_id, text))
    return queries


def bundled_queries(benchmark: str, *, only: Sequence[str] | None = None) -> list[Query]:
    """A bundled query set (one of :data:`BUNDLED_SETS`) in numeric order; ``only`` selects some
    (``["q1", "q3"]`` or ``["1", "3"]``), an unknown id is a ConfigError naming the valid ones."""
    if benchmark not in BUNDLED_SETS:
        raise ConfigError(f"No bundled query set {benchmark!r}: choose among {', '.join(BUNDLED_SETS)}, "
                          "or give a folder of qN.sql files (--queries-dir).")
    folder = resources.files("dfbench.bench.queries") / benchmark
    return _load(_query_files(folder), _LABELS[benchmark], only)


def tpch_queries(*, only: Sequence[str] | None = None) -> list[Query]:
    """The 22 bundled TPC-H queries (the repository's semantics), in numeric order."""
    return bundled_queries("tpch", only=only)


def queries_from_dir(folder: str | Path, *, only: Sequence[str] | None = None) -> list[Query]:
    """The ``qN.sql`` files of a folder (e.g. a checkout's ``testdata/tpcds/queries``), in numeric
    order; a ConfigError when the folder is missing or holds no such file."""
    path = Path(folder)
    if not path.is_dir():
        raise ConfigError(f"Queries folder {str(path)!r} is not a directory: give a folder of qN.sql files, "
                          "e.g. a datafusion-distributed checkout's testdata/tpch/queries.")
    files = _query_files(path)
    if not files:
        raise ConfigError(f"Queries folder {str(path)!r} holds no qN.sql file (q1.sql, q2.sql, …).")
    return _load(files, f"{path}", only)


def expected_rows(query_id: str, scale_factor: Any) -> int | None:
    """The row count of a bundled TPC-H query at a scale factor, or None when not known."""
    try:
        sf = scale_factor_of(scale_factor)
    except ConfigError:
        return None
    if query_id in _ROWS_AT_SF.get(sf, {}):
        return _ROWS_AT_SF[sf][query_id]
    if sf >= 1 and query_id in _ROWS_FROM_SF1:
        return _ROWS_FROM_SF1[query_id]
    if sf >= _MIN_CHECKED_SF and query_id in _ROWS_ANY_SF:
        return _ROWS_ANY_SF[query_id]
    return None


def select_queries(dataset: str, queries: Sequence[str | Query] | str | None,
                   queries_dir: str | Path | None = None) -> list[Query]:
    """The queries of a run: from ``queries_dir`` when given, else the bundled set the dataset's
    name selects. A ConfigError (naming the valid ids) for an unknown id, an empty or a repeated
    selection, or a dataset whose name selects no set."""
    if isinstance(queries, str):
        queries = [q for q in queries.split(",") if q.strip()]
    if queries is not None:
        queries = [q.strip() if isinstance(q, str) else q for q in queries]
        queries = [q for q in queries if not isinstance(q, str) or q]
        if not queries:
            raise ConfigError("No queries selected: give ids such as q1,q3, or leave the selection out for all "
                              "of them.")
    ids = None if queries is None else [q for q in queries if isinstance(q, str)]
    by_id: dict[str, Query] = {}
    if ids is None or ids:
        if queries_dir is not None:
            found = queries_from_dir(queries_dir, only=ids)
        else:
            benchmark = benchmark_of(dataset)
            if benchmark is None:
                raise ConfigError(
                    f"Dataset {dataset!r} has no bundled query set: name it tpch_sf<SF>, tpcds_sf<SF> or "
                    "clickbench_<START>-<END> (e.g. tpch_sf10), or pass --queries-dir (queries_dir=) with a "
                    "folder of qN.sql files.")
            found = bundled_queries(benchmark, only=ids)
        by_id = {q.id: q for q in found}
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
