"""TPC-DS data generated with tpcgen-cli into ``<data_dir>/tpcds_sf<SF>/<table>/<n>.parquet``
(see :mod:`dfbench.data.generate`): the 24 tables the queries read (not dsdgen's dbgen_version).
Tables under a million rows are written whole (as dsdgen does), so they have one file whatever
the partition count."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dfbench.data.catalog import DEFAULT_DATA_DIR, LocalDataset
from dfbench.data.generate import GeneratorSpec, generate

# Thousands of bytes each table takes at SF 0.1 (snappy): weights of the progress bar.
_TABLE_WEIGHT = {"call_center": 16, "catalog_page": 761, "catalog_returns": 1626, "catalog_sales": 14871,
                 "customer": 689, "customer_address": 164, "customer_demographics": 8960, "date_dim": 2557,
                 "household_demographics": 47, "income_band": 5, "inventory": 624, "item": 227, "promotion": 13,
                 "reason": 7, "ship_mode": 7, "store": 15, "store_returns": 1641, "store_sales": 11945,
                 "time_dim": 1586, "warehouse": 9, "web_page": 9, "web_returns": 691, "web_sales": 5580,
                 "web_site": 14}
TPCDS_TABLES = tuple(sorted(_TABLE_WEIGHT))
TPCGEN = "tpcgen-cli"

TPCDS = GeneratorSpec(
    benchmark="tpcds", label="TPC-DS", binary=TPCGEN, install=f"pip install {TPCGEN}", tables=TPCDS_TABLES,
    weights=_TABLE_WEIGHT, single_file=frozenset(),
    command=lambda sf, parts, out, compression, threads: [
        "tpcds", "parquet", "--scale-factor", sf, "--parts", str(parts), "--output-dir", str(out), "--compression",
        compression, "--num-threads", str(threads), "--tables", ",".join(TPCDS_TABLES), "--no-progress",
        "--verbose"])


def generate_tpcds(scale_factor: Any, partitions: int = 16, data_dir: str | Path = DEFAULT_DATA_DIR,
                   compression: str = "SNAPPY", *, threads: int | None = None, force: bool = False,
                   progress: bool = True) -> LocalDataset:
    """Generate TPC-DS parquet data into ``<data_dir>/tpcds_sf<SF>/<table>/<n>.parquet``: see
    :func:`dfbench.data.generate.generate`."""
    return generate(TPCDS, scale_factor, partitions, data_dir, compression, threads=threads, force=force,
                    progress=progress)
