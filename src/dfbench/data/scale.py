"""Scale factors and the dataset names that carry them (``tpch_sf10``, ``tpch_sorted_sf10``,
``tpcds_sf1``), parsed in one place so that a name, a number, a manifest and a folder all give the
same exact decimal; the benchmark a dataset's name says (``clickbench_0-100`` → clickbench), as the
CDK tooling chose its query set by the name's prefix; and upstream's spellings of the same
datasets (``tpch/sf10``, :func:`canonical_dataset`)."""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from dfbench.errors import ConfigError
from dfbench.files import checked_dataset_name

# tpch_sf10, tpcds_sf1, and TPC-H's sorted variant tpch_sorted_sf10 (upstream #646; no TPC-DS one).
_DATASET_NAME = re.compile(r"^(?:(?P<benchmark>tpcds)_|(?P<tpch>tpch)_(?P<sorted>sorted_)?)sf(?P<sf>\d+(?:\.\d+)?)$")
_PARTITIONED_NAME = re.compile(r"^(?P<benchmark>clickbench)_(?P<start>\d+)-(?P<end>\d+)$")
# Upstream's spelling (its benchmarks' --dataset, its PR bot, its testdata/ folders): <suite>/<variant>.
_UPSTREAM_NAME = re.compile(r"^(?:testdata/)?(?P<suite>[a-z]+)/(?P<variant>[A-Za-z0-9._-]+)$")
_UPSTREAM_VARIANT = re.compile(r"^(?P<sorted>sorted_)?sf(?P<sf>\d+(?:\.\d+)?)$")
_RANGE = re.compile(r"^(?P<start>\d+)-(?P<end>\d+)$")


def checked_dataset(name: str) -> str:
    """The dataset's canonical name (:func:`canonical_dataset`) once it can be a folder of the data
    folder and a prefix of the bucket (:func:`dfbench.files.checked_dataset_name`)."""
    return checked_dataset_name(canonical_dataset(name))


def _generated(name: str) -> tuple[str, bool, str] | None:
    """(benchmark, sorted, scale factor text) of a generated dataset's name, or None."""
    match = _DATASET_NAME.match(name.strip())
    if not match:
        return None
    return match["benchmark"] or match["tpch"], bool(match["sorted"]), match["sf"]


def canonical_dataset(name: str) -> str:
    """dfbench's name (and folder, and bucket prefix) of a dataset named either way: upstream's
    ``tpch/sf10``, ``tpch/sorted_sf10``, ``tpcds/sf1``, ``clickbench/0-100`` (and the same under
    ``testdata/``) become ``tpch_sf10``, ``tpch_sorted_sf10``, ``tpcds_sf1``, ``clickbench_0-100``,
    so results of either spelling are one dataset. A name without ``/`` is returned as it is; one
    with ``/`` that is no upstream dataset dfbench knows is a ConfigError."""
    text = name.strip() if isinstance(name, str) else name
    if not isinstance(text, str) or "/" not in text:
        return text
    match = _UPSTREAM_NAME.match(text)
    if match:
        suite, variant = match["suite"], match["variant"]
        generated = _UPSTREAM_VARIANT.match(variant)
        if suite in ("tpch", "tpcds") and generated and (suite == "tpch" or not generated["sorted"]):
            return dataset_name(suite, generated["sf"], sorted=bool(generated["sorted"]))
        ranged = _RANGE.match(variant)
        if suite == "clickbench" and ranged:
            return f"clickbench_{int(ranged['start'])}-{int(ranged['end'])}"
    raise ConfigError(f"Invalid dataset name {name!r}: a '/' is only in upstream's names, tpch/sf<SF>, "
                      "tpch/sorted_sf<SF>, tpcds/sf<SF> and clickbench/<START>-<END> (also under testdata/); "
                      "dfbench's are tpch_sf<SF>, tpch_sorted_sf<SF>, tpcds_sf<SF>, clickbench_<START>-<END> or any "
                      "folder name of letters, digits, '.', '_' and '-'.")


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
        generated = _generated(value)
        if generated:
            return _to_decimal(generated[2])
    return _to_decimal(value)



def format_scale_factor(scale_factor: Any) -> str:
    """1 → "1", 10.0 → "10", 0.1 → "0.1" (as the CDK tooling names its folders)."""
    return format_decimal(scale_factor_of(scale_factor))


def dataset_name(benchmark: str, scale_factor: Any, *, sorted: bool = False) -> str:
    """``tpch_sf10``, ``tpcds_sf0.1``, ``tpch_sorted_sf1``: a generated dataset's folder name."""
    return f"{benchmark}_{'sorted_' if sorted else ''}sf{format_scale_factor(scale_factor)}"


def tpch_dataset_name(scale_factor: Any) -> str:
    return dataset_name("tpch", scale_factor)


def benchmark_of(dataset: str) -> str | None:
    """``tpch`` for ``tpch_sf10`` and ``tpch_sorted_sf10``, ``tpcds`` for ``tpcds_sf1``,
    ``clickbench`` for ``clickbench_0-100``; None for a name of no known benchmark."""
    generated = _generated(dataset)
    if generated:
        return generated[0]
    match = _PARTITIONED_NAME.match(dataset.strip())
    return match["benchmark"] if match else None


def is_sorted(dataset: str) -> bool:
    """A sorted TPC-H dataset's name (``tpch_sorted_sf10``)."""
    generated = _generated(dataset)
    return generated is not None and generated[1]


def make_command(dataset: str) -> str | None:
    """The dfbench command that makes a dataset of this name, or None for a name of no benchmark."""
    name = dataset.strip()
    generated = _generated(name)
    if generated:
        benchmark, sorted_, sf = generated
        option = " --benchmark tpcds" if benchmark == "tpcds" else " --sorted" if sorted_ else ""
        return f"dfbench data generate{option} --sf {format_scale_factor(sf)}"
    match = _PARTITIONED_NAME.match(name)
    return f"dfbench data clickbench --partitions {match['start']}-{match['end']}" if match else None
