"""Spark on this machine, speaking the worker's HTTP contract (ARCHITECTURE.md §5, §5a).

Run it with ``python -m dfbench.engines.spark_service --port 0 --data-dir DIR`` (the ``spark``
extra: ``pip install 'dfbench[spark]'``, and a Java 17 or 21 runtime). One Spark session lives as
long as the process, local mode by default; the HTTP side is the local worker's server
(:func:`dfbench.worker.local.serve`), so a foreign ``Host``, an ``Origin`` or a browser's
``Sec-Fetch-Site`` is refused the same way, and it binds loopback only.

On a cluster (dfbench.engines.spark_setup) it is the driver of a standalone cluster:
``--master spark://IP:7077 --driver-host IP --data-url s3a://BUCKET/``. The driver then listens
on the instance's private address, where the executors of the other instances reach it, while
the HTTP side stays on loopback (dfbench reaches it through a tunnel). It runs there from Spark's
own ``pyspark.zip`` and a zip of dfbench's sources, so importing this module loads nothing beyond
the standard library and dfbench's modules that need nothing else (pyspark only once a session
starts).

``GET /?sql=`` splits the statements on ``;``, runs all but the last untimed and times the last:
Spark plans it, executes the whole plan into Spark's ``noop`` sink (nothing is written or sent
back) and counts its rows on the way (an ``Observation``), so ``elapsed_ms`` is the query's own
execution, every column computed, as the DataFusion worker streams and counts. ``GET /rows?sql=``
answers the last statement's rows instead, to check that engines agree.

Spark SQL can read any file and run programs (``SELECT ... FROM parquet.`/path```,
``TRANSFORM ... USING 'cmd'``, ``reflect``), so the service accepts only:

- ``CREATE OR REPLACE TEMPORARY VIEW name USING parquet OPTIONS (path '...')``, with a path under
  ``--data-dir`` or ``--data-url`` (dfbench.engines.dialect writes the tables this way); done
  through the DataFrame reader, not as SQL;
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
from dfbench.worker.contract import QueryResult, RequestError

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
_LOCAL_MASTER = re.compile(r"local(\[(\d+|\*)\])?")
# A standalone master as Spark spells it: spark://host:port, one master (no HA list).
_STANDALONE_MASTER = re.compile(r"spark://(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?):(?P<port>\d{1,5})")
_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)")
# s3a://<bucket>/ with an optional prefix of plain segments; the bucket in S3's naming shape.
_DATA_URL = re.compile(r"s3a://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/(?:[A-Za-z0-9._=-]+/)*")
# What a table path under --data-url may hold: S3 key characters dfbench's datasets use, no glob
# (Spark expands *?[]{} in paths) and no other scheme.
_DATA_URL_PATH = re.compile(r"[A-Za-z0-9._=/-]*")


def _view_name(match: re.Match[str]) -> str:
    return str(match["qname"] or match["bname"] or match["name"]).lower()


def view_statement(statement: str) -> tuple[str, str, str] | None:
    """The view statements the service runs itself: ``("parquet", view, path)``,
    ``("query", view, query)``, ``("drop", view, "IF EXISTS" or "")``; None for anything else."""
    if match := _PARQUET_VIEW.fullmatch(statement):
        return "parquet", _view_name(match), match["path"].replace("''", "'")
    if match := _QUERY_VIEW.fullmatch(statement):
        return "query", _view_name(match), match["query"]
    if match := _DROP_VIEW.fullmatch(statement):
        return "drop", _view_name(match), "IF EXISTS" if match["if_exists"] else ""
    return None


class SparkWorker:
    """One local Spark session driven by SQL text, answering as the local worker does."""

    def __init__(self, spark: Any, *, data: TableLocations, base_url: str, master: str) -> None:
        self.spark = spark
        self.data = data
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
                "master": self.master, "settings": {}, "data_dir": self.data.data_dir,
                "data_url": self.data.data_url}

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
        view = view_statement(statement)
        if view is None:
            return self._query(statement)
        kind, name, value = view
        if kind == "parquet":
            self.spark.read.parquet(self.data.readable(value)).createOrReplaceTempView(name)
        elif kind == "query":
            self._query(value).createOrReplaceTempView(name)
        elif not self.spark.catalog.dropTempView(name) and not value:
            raise RequestError(f"no view {name}")
        return None

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


class TableLocations:
    """Where the service's tables may be: a local folder (``--data-dir``), an S3 prefix
    (``--data-url s3a://bucket/``), or both."""

    def __init__(self, data_dir: str | None = None, data_url: str | None = None) -> None:
        self.data_dir = os.path.realpath(data_dir) if data_dir is not None else None
        self.data_url = data_url

    def readable(self, path: str) -> str:
        """``path`` when it is a folder under --data-dir (symlinks followed) or under --data-url,
        else RequestError."""
        if not path.isprintable():
            raise RequestError(f"path {path!r}: not a path")
        if path.startswith("s3a://"):
            return self._in_bucket(path)
        if self.data_dir is None:
            raise RequestError(f"path {path!r}: this service reads no local files (only under {self.data_url})")
        if not path.startswith("/"):
            raise RequestError(f"path {path!r}: an absolute folder under {self.data_dir} is read, nothing else")
        real = os.path.realpath(path)
        if real != self.data_dir and not real.startswith(self.data_dir.rstrip(os.sep) + os.sep):
            raise RequestError(f"path {path!r} is outside this service's data folder {self.data_dir}")
        return real

    def _in_bucket(self, path: str) -> str:
        if self.data_url is None:
            raise RequestError(f"path {path!r}: this service reads no S3 paths (only under {self.data_dir})")
        rest = path[len(self.data_url):] if path.startswith(self.data_url) else None
        # S3 has no folders to resolve: "." and ".." are refused rather than interpreted.
        if rest is None or not _DATA_URL_PATH.fullmatch(rest) or any(
                part in (".", "..") for part in rest.split("/")) or "//" in rest:
            raise RequestError(f"path {path!r} is outside this service's data {self.data_url}")
        return path


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal | date | datetime):
        return str(value)
    return value


def start_session(master: str, driver_memory: str, shuffle_partitions: int, driver_host: str = "127.0.0.1") -> Any:
    """The Spark session: the driver on ``driver_host`` (loopback in local mode; the instance's
    private address for a standalone master's executors), no UI, SQL on files off, reflection
    removed."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError("Spark needs the spark extra: pip install 'dfbench[spark]' (and a Java 17 runtime: "
                          "apt-get install openjdk-17-jre-headless)") from None
    spark = (SparkSession.builder.master(master).appName("dfbench-spark")
             .config("spark.driver.host", driver_host).config("spark.driver.bindAddress", driver_host)
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


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The service's options, checked (ConfigError naming the fix). ``locations`` is their
    :class:`TableLocations`."""
    parser = _Parser(prog="python -m dfbench.engines.spark_service",
                     description="A Spark session speaking the benchmark worker's HTTP contract.")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9003, help="port (default 9003, the CDK tooling's; 0: any free)")
    parser.add_argument("--data-dir", help="the folder table paths may name")
    parser.add_argument("--data-url", help="the S3 prefix table paths may name, s3a://BUCKET/")
    parser.add_argument("--master", default=f"local[{os.cpu_count() or 1}]",
                        help="local[N] (default local[CPUs]) or a standalone master spark://HOST:PORT")
    parser.add_argument("--driver-host", help="with a spark:// master: this machine's address the executors reach")
    parser.add_argument("--driver-memory", default="4g", help="the JVM's heap (default 4g)")
    parser.add_argument("--shuffle-partitions", type=int, default=2 * (os.cpu_count() or 1),
                        help="spark.sql.shuffle.partitions (default twice the CPUs)")
    parser.add_argument("--quiet", action="store_true", help="do not log each request to stderr")
    args = parser.parse_args(argv)
    standalone = _STANDALONE_MASTER.fullmatch(args.master)
    if standalone is None and not _LOCAL_MASTER.fullmatch(args.master):
        raise ConfigError(f"--master {args.master!r}: give local[N] or a standalone master spark://HOST:PORT")
    if standalone is not None and not 1 <= int(standalone["port"]) <= 65535:
        raise ConfigError(f"--master {args.master!r}: the port must be 1-65535")
    if standalone is not None and args.driver_host is None:
        raise ConfigError("--master spark://...: give --driver-host, this machine's address the executors reach")
    if standalone is None and args.driver_host is not None:
        raise ConfigError("--driver-host is for a spark:// master; a local master's driver stays on loopback")
    if args.driver_host is not None and not _IPV4.fullmatch(args.driver_host):
        raise ConfigError(f"--driver-host {args.driver_host!r}: give this machine's IPv4 address")
    if not re.fullmatch(r"\d+[kmgKMG]", args.driver_memory):
        raise ConfigError(f"--driver-memory {args.driver_memory!r}: give a size such as 4g")
    if args.shuffle_partitions < 1:
        raise ConfigError(f"--shuffle-partitions {args.shuffle_partitions}: give at least 1")
    if args.data_dir is None and args.data_url is None:
        raise ConfigError("give --data-dir FOLDER or --data-url s3a://BUCKET/ (or both): where tables may be read")
    if args.data_dir is not None and not os.path.isdir(args.data_dir):
        raise ConfigError(f"--data-dir {args.data_dir!r} is not a directory")
    if args.data_url is not None and not _DATA_URL.fullmatch(args.data_url):
        raise ConfigError(f"--data-url {args.data_url!r}: give an S3 prefix such as s3a://my-bucket/ (ending with /)")
    args.locations = TableLocations(args.data_dir, args.data_url)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """The service until SIGTERM or SIGINT; 2 with one line on stderr for bad arguments."""
    from dfbench.worker.local import run_service, serve

    try:
        args = parse_arguments(argv)
        spark = start_session(args.master, args.driver_memory, args.shuffle_partitions,
                              args.driver_host or "127.0.0.1")
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    try:  # the session stops however the service ends, a port it could not bind included
        return run_service(args.host, args.port, lambda: serve(
            args.host, args.port, quiet=args.quiet,
            make_worker=lambda url: SparkWorker(spark, data=args.locations, base_url=url, master=args.master)))
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main())
