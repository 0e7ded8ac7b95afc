"""Benchmark queries shipped as package data (``tpch/*.sql``), ready to send to a worker."""

from dfbench.bench.queries.catalog import (TPCH_QUERY_COUNT, Query, expected_rows, select_queries, tpch_queries)

__all__ = ["TPCH_QUERY_COUNT", "Query", "expected_rows", "select_queries", "tpch_queries"]
