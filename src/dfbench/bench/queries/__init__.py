"""Benchmark queries shipped as package data (``<benchmark>/qN.sql``) or read from a folder, ready
to send to a worker."""

from dfbench.bench.queries.catalog import (
                                           BUNDLED_SETS,
                                           TPCH_QUERY_COUNT,
                                           Query,
                                           bundled_queries,
                                           expected_rows,
                                           queries_from_dir,
                                           select_queries,
                                           tpch_queries,
)

__all__ = ["BUNDLED_SETS", "TPCH_QUERY_COUNT", "Query", "bundled_queries", "expected_rows", "queries_from_dir",
           "select_queries", "tpch_queries"]
