"""Scale factors and the dataset names that carry them (``tpch_sf10``, ``tpcds_sf1``), parsed in one
place so that a name, a number, a manifest and a folder all give the same exact decimal; and the
benchmark a dataset's name says (``clickbench_0-100`` → clickbench), as the CDK tooling chose its
query set by the name's prefix."""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from dfbench.errors import ConfigError

_DATASET_NAME = re.compile(r"^(?P<benchmark>tpch|tpcds)_sf(?P<sf>\d+(?:\.\d+)?)$")
_PARTITIONED_NAME = re.compile(r"^(?P<benchmark>clickbench)_(?P<start>\d+)-(?P<end>\d+)$")


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
            return _to_decimal(json.loads(manifest.read_text())["scale_factor"])
        value = name
    if isinstance(value, str):
        match = _DATASET_NAME.match(value.strip())
        if match:
            return _to_decimal(match["sf"])
    return _to_decimal(value)



def format_scale_factor(scale_factor: Any) -> str:
    """1 → "1", 10.0 → "10", 0.1 → "0.1" (as the CDK tooling names its folders)."""
    return format_decimal(scale_factor_of(scale_factor))


def dataset_name(benchmark: str, scale_factor: Any) -> str:
    """``tpch_sf10``, ``tpcds_sf0.1``: a generated dataset's folder name."""
    return f"{benchmark}_sf{format_scale_factor(scale_factor)}"


def tpch_dataset_name(scale_factor: Any) -> str:
    return dataset_name("tpch", scale_factor)


def benchmark_of(dataset: str) -> str | None:
    """``tpch`` for ``tpch_sf10``, ``tpcds`` for ``tpcds_sf1``, ``clickbench`` for
    ``clickbench_0-100``; None for a name of no known benchmark."""
    match = _DATASET_NAME.match(dataset.strip()) or _PARTITIONED_NAME.match(dataset.strip())
    return match["benchmark"] if match else None


def make_command(dataset: str) -> str | None:
    """The dfbench command that makes a dataset of this name, or None for a name of no benchmark."""
    name = dataset.strip()
    match = _DATASET_NAME.match(name)
    if match:
        option = " --benchmark tpcds" if match["benchmark"] == "tpcds" else ""
        return f"dfbench data generate{option} --sf {format_scale_factor(match['sf'])}"
    match = _PARTITIONED_NAME.match(name)
    return f"dfbench data clickbench --partitions {match['start']}-{match['end']}" if match else None
