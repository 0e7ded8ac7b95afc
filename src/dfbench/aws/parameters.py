"""SSM Parameter Store, read for names only: which of the worker's secret parameters exist.

dfbench never reads a parameter's value (the instances do, at every start of the worker):
DescribeParameters answers with names and types, never values, so the check needs none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# DescribeParameters' ParameterFilters take at most 50 values per filter (API reference,
# ParameterStringFilter.Values).
_FILTER_VALUES = 50


def parameter_types(ssm: Any, names: Sequence[str]) -> dict[str, str]:
    """{name: Type} for those of ``names`` that exist (String, StringList or SecureString)."""
    found: dict[str, str] = {}
    unique = sorted(set(names))
    for start in range(0, len(unique), _FILTER_VALUES):
        chunk = unique[start:start + _FILTER_VALUES]
        pages = ssm.get_paginator("describe_parameters").paginate(
            ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": chunk}])
        for page in pages:
            found.update({p["Name"]: p["Type"] for p in page["Parameters"]})
    return found
