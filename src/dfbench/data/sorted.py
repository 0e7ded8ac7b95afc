"""Sorted TPC-H (``tpch_sorted_sf<SF>``, upstream's ``tpch/sorted_sf<SF>``): the same rows as
``tpch_sf<SF>``, each file declaring its table's sort key in the Parquet footer
(``sorting_columns``), so DataFusion can take the files' order as given and plan without sorting.

Followed: upstream datafusion-distributed PR #646, commit 26040dcb ("write sorted TPC-H as
tpch/sorted_sf1 in one pass"), ``benchmarks/src/datasets/tpch.rs`` (``TABLE_SORT_KEYS`` and the
writer properties built from it) and ``benchmarks/gen-tpch-sorted.sh``. Upstream does not re-sort:
it writes tpchgen's rows as generated and records the columns tpchgen already emits in ascending
order (``partsupp`` only ``ps_partkey``: its ``ps_suppkey`` wraps within each part). dfbench does
the same from tpchgen-cli's files, rewriting each one row group for row group with the key
recorded; it also checks the order while it writes, and a file that is not in that order (a
tpchgen-cli that changed its output) is sorted before it is written, so the footer never claims an
order the rows do not have.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dfbench.errors import ConfigError

# Upstream's TABLE_SORT_KEYS (PR #646, 26040dcb): ascending, nulls last (the keys have no nulls).
SORT_KEYS: dict[str, tuple[str, ...]] = {
    "region": ("r_regionkey",), "nation": ("n_nationkey",), "customer": ("c_custkey",),
    "supplier": ("s_suppkey",), "part": ("p_partkey",), "partsupp": ("ps_partkey",),
    "orders": ("o_orderkey",), "lineitem": ("l_orderkey", "l_linenumber"),
}
# tpchgen-cli's --compression spelling (SNAPPY, ZSTD(3), GZIP(6), UNCOMPRESSED) → pyarrow's.
_COMPRESSION = re.compile(r"^(?P<codec>[A-Za-z0-9_]+)(?:\((?P<level>\d+)\))?$")
_CODECS = {"UNCOMPRESSED": "none", "SNAPPY": "snappy", "GZIP": "gzip", "BROTLI": "brotli", "ZSTD": "zstd",
           "LZ4": "lz4", "LZ4_RAW": "lz4"}


def pyarrow_compression(compression: str) -> tuple[str, int | None]:
    """pyarrow's codec and level for a tpchgen-cli compression."""
    match = _COMPRESSION.match(compression.strip())
    codec = _CODECS.get(match["codec"].upper()) if match else None
    if match is None or codec is None:
        raise ConfigError(f"Cannot write sorted TPC-H with compression {compression!r}: use one of "
                           f"{', '.join(sorted(_CODECS))} (a level in parentheses where the codec takes one)")
    return codec, int(match["level"]) if match["level"] else None


def _in_order(table: Any, keys: Sequence[str], previous: tuple[Any, ...] | None) -> bool:
    """Are ``table``'s rows in ascending ``keys`` order, after the last key of the row group before?
    Each row against the next, in one pass: (k1, k2) <= (k1', k2') when k1 < k1', or k1 == k1' and
    k2 <= k2'."""
    import pyarrow.compute as pc

    if table.num_rows == 0:
        return True
    first = tuple(table.column(k)[0].as_py() for k in keys)
    if previous is not None and previous > first:
        return False
    if table.num_rows == 1:
        return True
    columns = [table.column(k) for k in keys]
    heads = [c.slice(0, table.num_rows - 1) for c in columns]
    tails = [c.slice(1) for c in columns]
    ordered = pc.less_equal(heads[-1], tails[-1])
    for head, tail in zip(reversed(heads[:-1]), reversed(tails[:-1]), strict=True):
        ordered = pc.or_(pc.less(head, tail), pc.and_(pc.equal(head, tail), ordered))
    return bool(pc.all(ordered).as_py())


def write_sorted(path: Path, table_name: str, compression: str) -> bool:
    """Rewrite the tpchgen-cli file ``path`` of ``table_name`` with its sort key in the footer, row
    group for row group; True when its rows were already in key order, False when they had to be
    sorted first."""
    import pyarrow.parquet as pq

    keys = SORT_KEYS[table_name]
    codec, level = pyarrow_compression(compression)
    source = pq.ParquetFile(path)
    schema = source.schema_arrow
    sorting = [pq.SortingColumn(schema.get_field_index(k)) for k in keys]
    temporary = path.with_name(f".{path.name}.sorted")
    previous: tuple[Any, ...] | None = None
    ordered = True
    with pq.ParquetWriter(temporary, schema, compression=codec, compression_level=level,
                          sorting_columns=sorting) as writer:
        for index in range(source.num_row_groups):
            group = source.read_row_group(index)
            if not _in_order(group, keys, previous):
                ordered = False
                break
            writer.write_table(group, row_group_size=max(group.num_rows, 1))
            if group.num_rows:
                previous = tuple(group.column(k)[-1].as_py() for k in keys)
    if not ordered:
        whole = source.read().sort_by([(k, "ascending") for k in keys])
        pq.write_table(whole, temporary, compression=codec, compression_level=level, sorting_columns=sorting,
                       row_group_size=source.metadata.row_group(0).num_rows or None)
    os.replace(temporary, path)
    return ordered


def sort_tables(folder: Path, files: Sequence[str], compression: str, *, threads: int = 1) -> list[str]:
    """Every ``<table>/<k>.parquet`` of ``files`` (relative to ``folder``) rewritten by
    :func:`write_sorted`, ``threads`` files at a time (pyarrow reads, compresses and writes
    without the GIL); the files that had to be sorted."""
    from concurrent.futures import ThreadPoolExecutor

    chosen = [rel for rel in files if rel.split("/", 1)[0] in SORT_KEYS]
    with ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="dfbench-sort") as pool:
        ordered = list(pool.map(lambda rel: write_sorted(folder / rel, rel.split("/", 1)[0], compression), chosen))
    return [rel for rel, in_order in zip(chosen, ordered, strict=True) if not in_order]
