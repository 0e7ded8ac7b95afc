"""SSM Parameter Store: which of the worker's secret parameters exist, read for names only; and
the probe parameters ``dfbench verify-aws`` writes and deletes.

dfbench never reads a parameter's value (the instances do, at every start of the worker):
DescribeParameters answers with names and types, never values, so the check needs none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from dfbench.aws.tags import tag_list
from dfbench.errors import error_code

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


def put_secure_parameter(ssm: Any, *, name: str, value: str, tags: dict[str, str]) -> None:
    """A SecureString under the account's AWS managed key, tagged by the same call. Written again
    with the same value when it exists (PutParameter refuses Tags with Overwrite, so a second
    write keeps the first one's tags)."""
    try:
        ssm.put_parameter(Name=name, Value=value, Type="SecureString", Tags=tag_list(tags))
    except ClientError as error:
        if error_code(error) != "ParameterAlreadyExists":
            raise
        ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)


def delete_parameters(ssm: Any, names: Sequence[str]) -> list[str]:
    """Delete ``names`` (those that exist); returns the names deleted. DeleteParameters takes at
    most 10 names per call and lists the absent ones instead of failing."""
    deleted: list[str] = []
    unique = sorted(set(names))
    for start in range(0, len(unique), 10):
        deleted += ssm.delete_parameters(Names=unique[start:start + 10]).get("DeletedParameters", [])
    return deleted
