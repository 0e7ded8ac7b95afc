"""Engines beside DataFusion (ARCHITECTURE.md §5a): the protocol the runner drives, each engine's
SQL, Spark's local service, Trino's adapter, and whether two engines' rows agree."""

from dfbench.engines.base import EngineClient
from dfbench.engines.dialect import ENGINES, adapt_query, adapt_statement, parse_engines, table_statements
from dfbench.engines.rows import rows_difference

__all__ = ["ENGINES", "EngineClient", "adapt_query", "adapt_statement", "parse_engines", "rows_difference",
           "table_statements"]
