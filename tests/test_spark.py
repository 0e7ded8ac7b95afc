"""Spark on this machine (make test-spark): one local Spark service for the whole session, over
TPC-H SF 0.01. Every TPC-H query adapted for Spark returns DataFusion's rows, ``bench --engines``
files Spark beside DataFusion with the rows compared, and the service refuses what is not a query over its tables,
and foreign Host/Origin headers, as the local worker does."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from datafusion import SessionContext

from dfbench.bench.queries import expected_rows, tpch_queries
from dfbench.data import TPCH_TABLES, generate_tpch
from dfbench.engine_bench import SPARK_START_TIMEOUT_S, bench_engines
from dfbench.engines.dialect import adapt_query, table_statements
from dfbench.engines.rows import rows_difference
from dfbench.worker.client import WorkerClient
from dfbench.worker.process import LocalWorkerProcess
from dfbench_testing import system_tool

pytestmark = [pytest.mark.spark, pytest.mark.timeout(1800)]
pytest.importorskip("pyspark", reason="the spark extra: pip install -e '.[spark]' (make test-spark)")

DATASET = "tpch_sf0.01"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("spark") / "data"
    generate_tpch(0.01, partitions=2, data_dir=folder, progress=False)
    return folder


@pytest.fixture(scope="module")
def spark(data: Path) -> Iterator[str]:
    """The one JVM of the session: dfbench's Spark service on loopback, two cores, small shuffles."""
    system_tool("java")
    service = LocalWorkerProcess(data_dir=data, module="dfbench.engines.spark_service", name="Spark service",
                                 start_timeout_s=SPARK_START_TIMEOUT_S,
                                 args=["--master", "local[2]", "--shuffle-partitions", "4", "--driver-memory", "2g"])
    try:
        yield service.start()
    finally:
        service.stop()


def _get(url: str, sql: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"{url}/?sql={quote(sql, safe='')}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_every_tpch_query_adapted_for_spark_returns_datafusions_rows(data: Path, spark: str):
    """Each query once on Spark (its rows through /rows), against DataFusion in this process."""
    client = WorkerClient(spark)
    for table in TPCH_TABLES:
        for statement in table_statements("spark", DATASET, table, str((data / DATASET / table).resolve())):
            client.query(statement)
    context = SessionContext()
    for table in TPCH_TABLES:
        context.register_parquet(table, str(data / DATASET / table))
    for query in tpch_queries():
        adapted = adapt_query("spark", query)
        for statement in adapted.setup:
            client.query(statement)
        rows = client.rows(adapted.statement)["rows"]
        for statement in adapted.teardown:
            client.query(statement)
        for statement in query.setup:
            context.sql(statement)
        table = context.sql(query.statement).to_arrow_table()
        for statement in query.teardown:
            context.sql(statement)
        expected = [[v if isinstance(v, int | float | str | None) else str(v) for v in row]
                    for row in zip(*(c.to_pylist() for c in table.columns), strict=True)]
        assert len(rows) == expected_rows(query.id, 0.01), query.id
        assert rows_difference(expected, rows) is None, query.id


def test_bench_engines_files_spark_beside_datafusion(data: Path, spark: str):
    """The bench path on Spark: q15 (a view around the timed query) and q3 (138 rows), rows compared."""
    run = bench_engines(engines="datafusion,spark", dataset=DATASET, data_dir=data, iterations=1, warmup=False,
                        queries="q3,q15", spark_url=spark, progress=False)
    spark_side = run.sides[1]
    assert spark_side.name == "spark" and spark_side.info["engine"].startswith("spark ")
    assert {query: outcome.status for query, outcome in spark_side.outcomes.items()} == {"q3": "ok", "q15": "ok"}
    assert spark_side.outcomes["q3"].rows == 138 and spark_side.outcomes["q15"].iterations[0].elapsed > 0
    assert run.rows_checked == {"q3": {"spark": None}, "q15": {"spark": None}}
    assert run.totals.compared == ["q3", "q15"]
    folder = data / DATASET / ".results-local" / "spark"
    assert sorted(p.name for p in folder.glob("q*.json")) == ["q15.json", "q3.json"]
    manifest = json.loads((folder / "run.json").read_text())
    assert manifest["engine_kind"] == "spark" and manifest["status"] == "complete"


@pytest.mark.parametrize(("sql", "says"), [
    ("select transform(n_name) using 'id' from nation", "ScriptTransformation"),
    ("with a as (select 1) insert overwrite directory '/tmp/x' select * from a", "InsertIntoDir"),
    ("set spark.sql.runSQLOnFiles=true", "only queries"),
    ("CREATE OR REPLACE TEMPORARY VIEW x USING parquet OPTIONS (path '/etc')", "outside this service's data folder"),
    ("CREATE OR REPLACE TEMPORARY VIEW x USING parquet OPTIONS (path '../../etc')", "an absolute folder"),
])
def test_the_service_runs_queries_over_its_tables_only(spark: str, sql: str, says: str):
    status, body = _get(spark, sql)
    assert status == 400 and says in body


def test_files_and_reflection_are_out_of_reach(spark: str):
    status, body = _get(spark, "select * from parquet.`/etc`")
    assert status == 500 and "TABLE_OR_VIEW_NOT_FOUND" in body  # SQL on files is off
    status, body = _get(spark, "select reflect('java.lang.System', 'getProperty', 'user.home')")
    assert status == 500 and "UNRESOLVED_ROUTINE" in body


def test_foreign_hosts_and_web_pages_are_refused(spark: str):
    assert _get(spark, "select 1", {"Host": "attacker.example"})[0] == 403
    assert _get(spark, "select 1", {"Origin": "http://attacker.example"})[0] == 403
    status, body = _get(spark, "select 1")
    assert status == 200 and json.loads(body)["count"] == 1


# --- on a cluster: a standalone master and tables under an s3a:// prefix ---------------------------


@pytest.mark.parametrize(("argv", "says"), [
    (["--master", "yarn", "--data-url", "s3a://bucket-a/"], "give local[N] or a standalone master"),
    (["--master", "spark://10.0.1.10:7077", "--data-url", "s3a://bucket-a/"], "give --driver-host"),
    (["--master", "spark://10.0.1.10:99999", "--driver-host", "10.0.1.10", "--data-url", "s3a://bucket-a/"],
     "1-65535"),
    (["--master", "spark://h;reboot:7077", "--driver-host", "10.0.1.10", "--data-url", "s3a://bucket-a/"],
     "give local[N]"),
    (["--master", "spark://10.0.1.10:7077", "--driver-host", "0.0.0.0 x", "--data-url", "s3a://bucket-a/"],
     "IPv4"),
    (["--master", "local[2]", "--driver-host", "10.0.1.10", "--data-url", "s3a://bucket-a/"],
     "--driver-host is for a spark:// master"),
    (["--master", "local[2]"], "give --data-dir FOLDER or --data-url"),
    (["--data-url", "s3://bucket-a/"], "--data-url 's3://bucket-a/'"),
    (["--data-url", "s3a://bucket-a"], "ending with /"),
    (["--data-url", "s3a://Bad_Bucket/"], "--data-url"),
])
def test_the_cluster_options_are_checked(argv: list[str], says: str):
    from dfbench.engines.spark_service import parse_arguments
    from dfbench.errors import ConfigError

    with pytest.raises(ConfigError) as raised:
        parse_arguments(argv)
    assert says in str(raised.value) and "\n" not in str(raised.value)


def test_a_data_url_admits_its_own_prefix_only():
    from dfbench.engines.spark_service import TableLocations, parse_arguments
    from dfbench.worker.contract import RequestError

    args = parse_arguments(["--master", "spark://10.0.1.10:7077", "--driver-host", "10.0.1.10",
                            "--data-url", "s3a://bucket-a/"])
    locations: TableLocations = args.locations
    assert locations.readable("s3a://bucket-a/tpch_sf1/lineitem/") == "s3a://bucket-a/tpch_sf1/lineitem/"
    for path in ("s3a://bucket-b/tpch_sf1/lineitem/", "s3a://bucket-a/../bucket-b/", "s3a://bucket-a/t/*",
                 "s3a://bucket-a.evil/x/", "/etc/", "file:///etc/", "s3://bucket-a/x/"):
        with pytest.raises(RequestError):
            locations.readable(path)


def test_a_service_with_a_standalone_master_reads_its_tables(data: Path, tmp_path: Path):
    """A real standalone master and worker from pip's pyspark (bin/spark-class), the service as
    their driver on loopback."""
    import os
    import socket
    import subprocess

    import pyspark

    def free_port() -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return probe.getsockname()[1]

    home = os.path.dirname(pyspark.__file__)
    port, ui = free_port(), free_port()
    env = {**os.environ, "SPARK_HOME": home, "SPARK_LOG_DIR": str(tmp_path), "SPARK_LOCAL_IP": "127.0.0.1"}
    spark_class = os.path.join(home, "bin", "spark-class")
    daemons = [subprocess.Popen([spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                 "--port", str(port), "--webui-port", str(ui)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    daemons.append(subprocess.Popen([spark_class, "org.apache.spark.deploy.worker.Worker",
                                     f"spark://127.0.0.1:{port}", "--host", "127.0.0.1", "--cores", "2",
                                     "--memory", "1g", "--webui-port", str(free_port())], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    service = LocalWorkerProcess(data_dir=data, module="dfbench.engines.spark_service", name="Spark service",
                                 start_timeout_s=SPARK_START_TIMEOUT_S,
                                 args=["--master", f"spark://127.0.0.1:{port}", "--driver-host", "127.0.0.1",
                                       "--shuffle-partitions", "2", "--driver-memory", "1g"])
    try:
        client = WorkerClient(service.start())
        assert client.info()["master"] == f"spark://127.0.0.1:{port}"
        for statement in table_statements("spark", DATASET, "nation", str((data / DATASET / "nation").resolve())):
            client.query(statement)
        assert client.query("SELECT * FROM nation")["count"] == 25
    finally:
        service.stop()
        for daemon in daemons:
            daemon.terminate()
            daemon.wait(timeout=30)
