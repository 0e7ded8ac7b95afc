"""Whether two engines returned the same rows: compared as multisets (the order is not compared:
ties in an ORDER BY may come in any order), numbers with a tolerance (engines give decimals and
averages different scales), everything else as text."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

# A difference in a number this small against its size, or under a cent, is not a difference.
RELATIVE_TOLERANCE = 1e-9
ABSOLUTE_TOLERANCE = 0.01
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")


def _value(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    text = str(value)
    return float(text) if _NUMBER.fullmatch(text) else text


def _key(row: Sequence[Any]) -> tuple[tuple[int, Any], ...]:
    # Numbers rounded for sorting only, so that two engines' 0.1 + 0.2 sort alike.
    return tuple((0, "") if v is None else (1, round(v, 1)) if isinstance(v, float) else (2, str(v)) for v in row)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=RELATIVE_TOLERANCE, abs_tol=ABSOLUTE_TOLERANCE)
    return bool(a == b)


def rows_difference(expected: Sequence[Sequence[Any]], actual: Sequence[Sequence[Any]]) -> str | None:
    """None when ``actual`` holds the rows of ``expected``; else what differs, in one line."""
    if len(expected) != len(actual):
        return f"{len(actual)} rows instead of {len(expected)}"
    left = sorted(([_value(v) for v in row] for row in expected), key=_key)
    right = sorted(([_value(v) for v in row] for row in actual), key=_key)
    for number, (a, b) in enumerate(zip(left, right, strict=True)):
        if len(a) != len(b):
            return f"{len(b)} columns instead of {len(a)}"
        if not all(_equal(x, y) for x, y in zip(a, b, strict=True)):
            return f"row {number + 1} (in sorted order) is {b} instead of {a}"
    return None
