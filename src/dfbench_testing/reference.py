"""Reference answers from DuckDB: a dataset folder's tables as DuckDB views, and the row count DuckDB
returns for each query, to compare with what dfbench's worker returned on the same files.

The views read the files as the published ClickBench set stores them: strings as binary (read as
text, as DataFusion compares them) and ``EventTime`` as epoch seconds, which the bundled queries
read through DataFusion's ``to_timestamp_seconds`` (DuckDB's ``to_timestamp``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dfbench.bench.queries import Query


def duckdb_over(folder: Path) -> Any:
    """A DuckDB connection with one view per table folder of the dataset ``folder``."""
    import duckdb

    con = duckdb.connect()
    con.execute("create macro to_timestamp_seconds(s) as to_timestamp(s)")
    for table in sorted(p for p in folder.iterdir() if p.is_dir() and any(p.glob("*.parquet"))):
        con.execute(f"create view {table.name} as select * from read_parquet('{table}/*.parquet', "
                    "binary_as_string = true)")
    return con


def reference_rows(folder: Path, queries: Iterable[Query]) -> dict[str, int]:
    """The number of rows DuckDB returns for each query's timed statement, by query id."""
    con = duckdb_over(folder)
    return {query.id: len(con.execute(query.statement).fetchall()) for query in queries}
