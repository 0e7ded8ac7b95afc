"""TPC-H data generated with tpchgen-cli into ``<data_dir>/tpch_sf<SF>/<table>/<n>.parquet``
(see :mod:`dfbench.data.generate`).

tpcgen-cli (which also makes TPC-DS) writes the same TPC-H data (checked at SF 0.01: every
table's rows and schema equal); tpchgen-cli stays TPC-H's generator so that existing manifests
keep naming the tool that made them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from dfbench.data.catalog import DEFAULT_DATA_DIR, LocalDataset
from dfbench.data.generate import GeneratorSpec, generate

TPCH_TABLES = ("customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier")
# Rows per unit of scale factor (TPC-H spec 4.2.5); lineitem varies (1-7 lines per order).
TPCH_FIXED_ROWS = {"nation": 25, "region": 5}
TPCH_ROWS_PER_SF = {"supplier": 10_000, "customer": 150_000, "part": 200_000, "partsupp": 800_000,
                    "orders": 1_500_000}
# Share of the bytes each table takes (measured at SF1, snappy): weights of the progress bar.
_TABLE_WEIGHT = {"lineitem": 228_604, "orders": 62_068, "partsupp": 43_836, "customer": 13_740, "part": 7_236,
                 "supplier": 964, "nation": 8, "region": 8}
TPCHGEN = "tpchgen-cli"

TPCH = GeneratorSpec(
    benchmark="tpch", label="TPC-H", binary=TPCHGEN, install=f"pip install {TPCHGEN}", tables=TPCH_TABLES,
    weights=_TABLE_WEIGHT, single_file=frozenset(TPCH_FIXED_ROWS),
    command=lambda sf, parts, out, compression, threads: [
        "parquet", "--scale-factor", sf, "--parts", str(parts), "--output-dir", str(out), "--compression",
        compression, "--num-threads", str(threads), "--no-progress", "--verbose"])


# Upstream's tpch/sorted_sf<SF> (#646): the same generator, each file's sort key in its footer.
TPCH_SORTED = dataclasses.replace(TPCH, label="sorted TPC-H", sorted=True)


def generate_tpch(scale_factor: Any, partitions: int = 16, data_dir: str | Path = DEFAULT_DATA_DIR,
                  compression: str = "SNAPPY", *, threads: int | None = None, force: bool = False,
                  progress: bool = True, sorted: bool = False) -> LocalDataset:
    """Generate TPC-H parquet data into ``<data_dir>/tpch_sf<SF>/<table>/<n>.parquet`` (with
    ``sorted``: ``tpch_sorted_sf<SF>``, :mod:`dfbench.data.sorted`): see
    :func:`dfbench.data.generate.generate`."""
    return generate(TPCH_SORTED if sorted else TPCH, scale_factor, partitions, data_dir, compression,
                    threads=threads, force=force, progress=progress)
