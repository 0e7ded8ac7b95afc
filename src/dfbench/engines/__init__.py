"""Engines beside DataFusion (ARCHITECTURE.md §5a, §5b): the protocol the runner drives (base),
each engine's SQL (dialect), Spark's service (spark_service) and its install on a cluster
(spark_setup), Trino's adapter (trino) and its install (trino_setup), whether two engines' rows
agree (rows), and what every engine's install shares (setup).

This package's face imports nothing: ``python -m dfbench.engines.spark_service`` runs on an
instance whose Python has only the standard library and Spark's own pyspark (spark_setup), and
importing it loads this file first. Import each module by its name.
"""
