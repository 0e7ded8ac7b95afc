"""Benchmark queries shipped as package data, ready to send to a worker.

TPC-H: ``queries/tpch/q1.sql`` … ``q22.sql`` with the specification's validation (qualification)
substitution parameters. The only parameter that depends on the data is Q11's FRACTION, which the
specification defines as 0.0001 / SF; it is written ``{q11_fraction}`` in the file and filled in
here (with the fixed 0.0001 the query returns no rows at SF >= 10).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation, localcontext
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from dfbench.errors import ConfigError
from dfbench.sql import split_statements

TPCH_QUERY_COUNT = 22
_DATASET_NAME = re.compile(r"^tpch_sf(?P<sf>\d+(?:\.\d+)?)$")


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


def format_decimal(value: Decimal) -> str:
    """A plain decimal literal both DuckDB and DataFusion parse (never ``1E-5``)."""
    return format(value.normalize(), "f")


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ConfigError(f"Invalid scale factor {value!r}: give a positive number such as 1, 10 or 0.1.")
    try:
        sf = Decimal(str(value))
    except InvalidOperation:
        raise ConfigError(f"Invalid scale factor {value!r}: give a positive number such as 1, 10 or 0.1.") from None
    if not sf.is_finite() or sf <= 0:
        raise ConfigError(f"Invalid scale factor {value!r}: it must be a positive number such as 1, 10 or 0.1.")
    return sf


def scale_factor_of(dataset_or_sf: Any) -> Decimal:
    """The scale factor of a number, a dataset name (``tpch_sf10``), a dataset folder holding a
    ``manifest.json``, or any object with a ``scale_factor`` (a manifest, a generated dataset)."""
    value = dataset_or_sf
    if hasattr(value, "manifest") and hasattr(value.manifest, "scale_factor"):
        value = value.manifest.scale_factor
    elif hasattr(value, "scale_factor"):
        value = value.scale_factor
    if isinstance(value, Path) or (isinstance(value, str) and ("/" in value or value.endswith(".json"))):
        path = Path(value)
        name = path.name if path.name != "manifest.json" else path.parent.name
        manifest = path / "manifest.json" if path.is_dir() else path
        if manifest.is_file():
            import json

            return _to_decimal(json.loads(manifest.read_text())["scale_factor"])
        value = name
    if isinstance(value, str):
        match = _DATASET_NAME.match(value.strip())
        if match:
            return _to_decimal(match["sf"])
    return _to_decimal(value)


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
