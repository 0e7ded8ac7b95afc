"""Spark on this machine, speaking the worker's HTTP contract (ARCHITECTURE.md §5, §5a).

Run it with ``python -m dfbench.engines.spark_service --port 0 --data-dir DIR`` (the ``spark``
extra: ``pip install 'dfbench[spark]'``, and a Java 17 or 21 runtime). One local-mode Spark session
lives as long as the process; the HTTP side is the local worker's server
(:func:`dfbench.worker.local.serve`), so a foreign ``Host``, an ``Origin`` or a browser's
``Sec-Fetch-Site`` is refused the same way, and it binds loopback only.

``GET /?sql=`` splits the statements on ``;``, runs all but the last untimed and times the last:
Spark plans it, executes the whole plan into Spark's ``noop`` sink (nothing is written or sent
back) and counts its rows on the way (an ``Observation``), so ``elapsed_ms`` is the query's own
execution, every column computed, as the DataFusion worker streams and counts. ``GET /rows?sql=``
answers the last statement's rows instead, to check that engines agree.

Spark SQL can read any file and run programs (``SELECT ... FROM parquet.`/path```,
``TRANSFORM ... USING 'cmd'``, ``reflect``), so the service accepts only:

- ``CREATE OR REPLACE TEMPORARY VIEW name USING parquet OPTIONS (path '...')``, with a path under
  ``--data-dir`` (dfbench.engines.dialect writes the tables this way); done through the
  DataFrame reader, not as SQL;
- ``CREATE OR REPLACE TEMPORARY VIEW name AS <query>`` and ``DROP VIEW [IF EXISTS] name``
  (TPC-H q15);
- a query (``SELECT``, ``WITH``, ``VALUES``, ``FROM``-less), which Spark's parser must parse as
  a query (no command), whose plan runs no script, with SQL on files turned off
  (``spark.sql.runSQLOnFiles``) and the reflection functions removed from the session.

Anything else is refused (HTTP 400) before Spark runs it.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, NoReturn

from dfbench.errors import ConfigError
from dfbench.sql import split_statements
from dfbench.worker.engine import QueryResult, RequestError

# The session's start is most of a run's first minute on a small machine (the JVM, Spark's classes).
SPARK_START_TIMEOUT_S = 180.0
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_QUOTED_NAME = rf'(?:"(?P<qname>{_NAME})"|`(?P<bname>{_NAME})`|(?P<name>{_NAME}))'
_PARQUET_VIEW = re.compile(
    rf"CREATE\s+OR\s+REPLACE\s+TEMPORARY\s+VIEW\s+{_QUOTED_NAME}\s+USING\s+parquet\s+"
    r"OPTIONS\s*\(\s*path\s+'(?P<path>(?:[^']|'')*)'\s*\)", re.IGNORECASE | re.DOTALL)
_QUERY_VIEW = re.compile(rf"CREATE\s+OR\s+REPLACE\s+TEMPORARY\s+VIEW\s+{_QUOTED_NAME}\s+AS\s+(?P<query>.*)",
                         re.IGNORECASE | re.DOTALL)
_DROP_VIEW = re.compile(rf"DROP\s+VIEW\s+(?P<if_exists>IF\s+EXISTS\s+)?{_QUOTED_NAME}", re.IGNORECASE)
_QUERY_START = re.compile(r"(?:SELECT|WITH|VALUES|\()", re.IGNORECASE)
# Plan nodes that do something other than read the session's views: commands, writes, scripts.
_REFUSED_NODES = re.compile(r"\w*Command|\w*Statement|InsertInto\w*|ScriptTransformation|Create\w*|Drop\w*|"
                            r"Alter\w*|CacheTable\w*|Set\w*|Add\w*|Load\w*")
# A node of a plan's tree string: each line is the tree's drawing, an unresolved node's quote, its name.
_NODE = re.compile(r"[\s:|+\-]*'?(\w+)")
# Functions that call any Java static method: removed from the session.
_REFLECTION = ("reflect", "java_method", "try_reflect")


def _view_name(match: re.Match[str]) -> str:
    return str(match["qname"] or match["bname"] or match["name"]).lower()


class SparkWorker:
    """One local Spark session driven by SQL text, answering as the local worker does."""

    def __init__(self, spark: Any, *, data_dir: str | None, base_url: str, master: str) -> None:
        self.spark = spark
        self.data_dir = os.path.realpath(data_dir) if data_dir is not None else None
        self.base_url = base_url
        self.master = master
        self.version = str(spark.version)
        self.started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        # One session, one statement at a time: views are session state, and concurrent queries
        # would compete for the same cores.
        self._lock = threading.Lock()

    def info(self) -> dict[str, Any]:
        return {"worker_urls": [self.base_url], "git_commit_hash": f"local-spark-{self.version}",
                "build_time_utc": self.started, "errors": [], "engine": f"spark {self.version}",
                "master": self.master, "settings": {}, "data_dir": self.data_dir}

    def run(self, sql: str) -> QueryResult:
        """Every statement but the last untimed, the last timed (see the module docstring)."""
        with self._lock:
            last = self._before_last(sql)
            start = time.perf_counter()
            frame = self._statement(last)
            if frame is None:
                return QueryResult(plan=f"done: {last}", count=0, elapsed_ms=(time.perf_counter() - start) * 1000)
            from pyspark.sql import Observation, functions

            observed = Observation("dfbench")
            frame.observe(observed, functions.count(functions.lit(1)).alias("rows")) \
                .write.format("noop").mode("overwrite").save()
            count = int(observed.get["rows"])
            elapsed_ms = (time.perf_counter() - start) * 1000
            plan = str(frame._jdf.queryExecution().executedPlan().toString())
            return QueryResult(plan=plan, count=count, elapsed_ms=elapsed_ms)

    def rows(self, sql: str) -> dict[str, Any]:
        """The last statement's columns and rows (JSON values: decimals and dates as text)."""
        with self._lock:
            frame = self._statement(self._before_last(sql))
            if frame is None:
                return {"columns": [], "rows": []}
            return {"columns": list(frame.columns), "rows": [[_json_value(v) for v in row] for row in frame.collect()]}

    def _before_last(self, sql: str) -> str:
        statements = split_statements(sql)
        if not statements:
            raise RequestError("no SQL statement in the request")
        for statement in statements[:-1]:
            self._statement(statement)
        return statements[-1]

    def _statement(self, statement: str) -> Any:
        """Run a view statement now (None), or the checked query's DataFrame, not yet executed."""
        match = _PARQUET_VIEW.fullmatch(statement)
        if match:
            path = self._readable(match["path"].replace("''", "'"))
            self.spark.read.parquet(path).createOrReplaceTempView(_view_name(match))
            return None
        match = _QUERY_VIEW.fullmatch(statement)
        if match:
            self._query(match["query"]).createOrReplaceTempView(_view_name(match))
            return None
        match = _DROP_VIEW.fullmatch(statement)
        if match:
            dropped = self.spark.catalog.dropTempView(_view_name(match))
            if not dropped and not match["if_exists"]:
                raise RequestError(f"no view {_view_name(match)}")
            return None
        return self._query(statement)

    def _query(self, statement: str) -> Any:
        if not _QUERY_START.match(statement.lstrip()):
            raise RequestError("only queries and the temporary views of dfbench's tables are run here: "
                               f"{statement[:60]!r}")
        jvm_session = self.spark._jsparkSession
        # Every node of the parsed plan, subqueries and CTEs included, before Spark runs anything:
        # a command anywhere (WITH ... INSERT, say) or a script is refused.
        parsed = str(jvm_session.sessionState().sqlParser().parsePlan(statement).treeString())
        nodes = {match[1] for line in parsed.splitlines() if (match := _NODE.match(line))}
        refused = sorted(node for node in nodes if _REFUSED_NODES.fullmatch(node))
        if refused:
            raise RequestError(f"only queries are run here, not {', '.join(refused)}")
        return self.spark.sql(statement)

    def _readable(self, path: str) -> str:
        """``path`` when it is a folder under --data-dir (symlinks followed), else RequestError."""
        if self.data_dir is None:
            raise RequestError("this service reads no files (start it with --data-dir FOLDER)")
        if not path.startswith("/") or not path.isprintable():
            raise RequestError(f"path {path!r}: an absolute folder under {self.data_dir} is read, nothing else")
        real = os.path.realpath(path)
        if real != self.data_dir and not real.startswith(self.data_dir.rstrip(os.sep) + os.sep):
            raise RequestError(f"path {path!r} is outside this service's data folder {self.data_dir}")
        return real


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal | date | datetime):
        return str(value)
    return value


def start_session(master: str, driver_memory: str, shuffle_partitions: int) -> Any:
    """The local Spark session: loopback only (no UI), SQL on files off, reflection removed."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError("Spark needs the spark extra: pip install 'dfbench[spark]' (and a Java 17 runtime: "
                          "apt-get install openjdk-17-jre-headless)") from None
    spark = (SparkSession.builder.master(master).appName("dfbench-spark")
             .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.ui.enabled", "false").config("spark.driver.memory", driver_memory)
             .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
             .config("spark.sql.runSQLOnFiles", "false")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    registry = spark._jsparkSession.sessionState().functionRegistry()
    jvm: Any = spark._jvm
    for name in _REFLECTION:
        # Spark 4 names built-in functions in three parts: system.builtin.<name>.
        identifier = jvm.org.apache.spark.sql.catalyst.FunctionIdentifier(
            name, jvm.scala.Option.apply("builtin"), jvm.scala.Option.apply("system"))
        if not registry.dropFunction(identifier):
            raise ConfigError(f"Spark {spark.version}: could not remove the function {name} from the session")
    return spark


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (see --help)")


def main(argv: Sequence[str] | None = None) -> int:
    """The service until SIGTERM or SIGINT; 2 with one line on stderr for bad arguments."""
    from dfbench.worker.local import run_service, serve

    parser = _Parser(prog="python -m dfbench.engines.spark_service",
                     description="A local Spark session speaking the benchmark worker's HTTP contract.")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9003, help="port (default 9003, the CDK tooling's; 0: any free)")
    parser.add_argument("--data-dir", help="the folder table paths may name")
    parser.add_argument("--master", default=f"local[{os.cpu_count() or 1}]", help="Spark master (default local[CPUs])")
    parser.add_argument("--driver-memory", default="4g", help="the JVM's heap (default 4g)")
    parser.add_argument("--shuffle-partitions", type=int, default=2 * (os.cpu_count() or 1),
                        help="spark.sql.shuffle.partitions (default twice the CPUs)")
    parser.add_argument("--quiet", action="store_true", help="do not log each request to stderr")
    try:
        args = parser.parse_args(argv)
        if not re.fullmatch(r"local(\[(\d+|\*)\])?", args.master):
            raise ConfigError(f"--master {args.master!r}: this service runs Spark in local mode (local[N])")
        if not re.fullmatch(r"\d+[kmgKMG]", args.driver_memory):
            raise ConfigError(f"--driver-memory {args.driver_memory!r}: give a size such as 4g")
        if args.data_dir is not None and not os.path.isdir(args.data_dir):
            raise ConfigError(f"--data-dir {args.data_dir!r} is not a directory")
        spark = start_session(args.master, args.driver_memory, args.shuffle_partitions)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    try:  # the session stops however the service ends, a port it could not bind included
        return run_service(args.host, args.port, lambda: serve(
            args.host, args.port, quiet=args.quiet,
            make_worker=lambda url: SparkWorker(spark, data_dir=args.data_dir, base_url=url, master=args.master)))
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main())
