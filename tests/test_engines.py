"""Engines beside DataFusion without Spark: each engine's SQL (dialect), the rows check, the totals
table and chart, and Trino's adapter (the real trino client) against the protocol stand-in, whose
engine is DataFusion, so every adapted TPC-H query must return DataFusion's rows there."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pyarrow.parquet as parquet
import pytest
from datafusion import SessionContext

from dfbench.bench.queries import Query, tpch_queries
from dfbench.bench.results import Iteration, QueryResult
from dfbench.cli import main
from dfbench.comparison.engines import engine_totals, render_totals
from dfbench.data import generate_tpch
from dfbench.engines.dialect import adapt_query, adapt_statement, parse_engines, table_statements, trino_columns
from dfbench.engines.rows import rows_difference
from dfbench.engines.trino import TrinoClient
from dfbench.errors import ConfigError, QueryFailed, WorkerUnreachable
from dfbench.worker.process import LocalWorkerProcess
from dfbench_testing import TrinoStandIn

DATASET = "tpch_sf0.01"
# TPC-H Q15's view as the specification writes it (and upstream's testdata): a column list.
Q15_SPEC_VIEW = ("create view revenue0 (supplier_no, total_revenue) as select l_suppkey, "
                 "sum(l_extendedprice * (1 - l_discount)) from lineitem where l_shipdate >= date '1996-01-01' "
                 "and l_shipdate < date '1996-01-01' + interval '3' month group by l_suppkey")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("engines") / "data"
    generate_tpch(0.01, partitions=2, data_dir=folder, progress=False)
    return folder


def _datafusion_rows(data: Path, query: Query) -> list[list[object]]:
    context = SessionContext()
    for table in (data / DATASET).iterdir():
        if table.is_dir() and not table.name.startswith("."):
            context.register_parquet(table.name, str(table))
    for statement in query.setup:
        context.sql(statement)
    table = context.sql(query.statement).to_arrow_table()
    return [[v if isinstance(v, int | float | str | None) else str(v) for v in row]
            for row in zip(*(c.to_pylist() for c in table.columns), strict=True)]


def _trino(data: Path, standin: TrinoStandIn) -> TrinoClient:
    client = TrinoClient(standin.url, schema=DATASET)
    for table in sorted(p.name for p in (data / DATASET).iterdir() if p.is_dir() and not p.name.startswith(".")):
        columns = trino_columns(parquet.read_schema(next((data / DATASET / table).glob("*.parquet"))))
        for statement in table_statements("trino", DATASET, table, str(data / DATASET / table), columns):
            client.query(statement)
    return client


# ---------------------------------------------------------------------------------------------
# each engine's SQL


def test_date_literals_get_the_date_keyword_on_spark_and_trino_only():
    text = "select * from orders where o_orderdate >= '1995-03-15' and o_orderdate < date '1995-04-01'"
    for engine in ("spark", "trino"):
        assert adapt_statement(engine, text) == ("select * from orders where o_orderdate >= DATE '1995-03-15' and "
                                                 "o_orderdate < date '1995-04-01'")
    assert adapt_statement("datafusion", text) == text
    stamp = "select timestamp '2020-01-01' + interval '1' day"
    assert adapt_statement("trino", stamp) == stamp


def test_to_timestamp_seconds_becomes_each_engines_function():
    text = "select extract(minute from to_timestamp_seconds(EventTime)) from hits"
    assert adapt_statement("trino", text) == "select extract(minute from from_unixtime(EventTime)) from hits"
    assert adapt_statement("spark", text) == "select extract(minute from timestamp_seconds(EventTime)) from hits"


def test_trino_views_lose_their_column_list_and_spark_views_are_temporary():
    adapted = adapt_statement("trino", Q15_SPEC_VIEW)
    assert adapted.startswith("CREATE VIEW revenue0 AS SELECT l_suppkey AS supplier_no, "
                              "sum(l_extendedprice * (1 - l_discount)) AS total_revenue from lineitem")
    assert adapt_statement("spark", "create view revenue0 as select 1").startswith(
        "CREATE OR REPLACE TEMPORARY VIEW revenue0 as select 1")


def test_engine_names_are_checked():
    assert parse_engines("DataFusion, spark") == ["datafusion", "spark"]
    for bad, says in (("datafusion,duckdb", "Unknown engine 'duckdb'"), ("spark,spark", "more than once"),
                      (" , ", "No name given")):
        with pytest.raises(ConfigError, match=says):
            parse_engines(bad)


def test_rows_difference_tolerates_scales_not_values():
    expected = [["A", "1.50", 3], ["B", "2.25", 4]]
    assert rows_difference(expected, [["B", 2.25, 4], ["A", "1.500000", 3]]) is None  # order, scale
    assert rows_difference(expected, [["A", "1.50", 3]]) == "1 rows instead of 2"
    assert "instead of" in str(rows_difference(expected, [["A", "1.50", 3], ["B", "2.35", 4]]))
    assert "instead of" in str(rows_difference(expected, [["A", "1.50", 3], ["C", "2.25", 4]]))


# ---------------------------------------------------------------------------------------------
# the totals


def _result(query: str, engine: str, times: list[float], failed: bool = False) -> QueryResult:
    iterations = [Iteration(elapsed=t, row_count=1) for t in times]
    if failed:
        iterations.append(Iteration.failure("boom"))
    return QueryResult(id=query, dataset=DATASET, engine=engine, iterations=iterations)


def test_totals_count_only_the_queries_every_engine_completed():
    results = {
        "df": {"q1": _result("q1", "df", [100, 120, 110]), "q2": _result("q2", "df", [50]),
               "q3": _result("q3", "df", [10])},
        "spark": {"q1": _result("q1", "spark", [300]), "q2": _result("q2", "spark", [100], failed=True),
                  "q3": _result("q3", "spark", [40])},
        "trino": {"q1": _result("q1", "trino", [220]), "q3": _result("q3", "trino", [20])},
    }
    totals = engine_totals(DATASET, results)
    assert totals.compared == ["q1", "q3"]
    assert [t.total_ms for t in totals.totals] == [120, 340, 240]
    assert [t.ratio for t in totals.totals] == [1.0, pytest.approx(340 / 120), 2.0]
    text = render_totals([totals])
    assert "2 of 3" in text and "(2.83x)" in text and "spark did not complete q2" in text
    markdown = render_totals([totals], "markdown")
    assert markdown.splitlines()[0] == "| Dataset | df | spark | trino | Queries compared |"
    assert json.loads(render_totals([totals], "json"))[0]["compared"] == ["q1", "q3"]


# ---------------------------------------------------------------------------------------------
# Trino's adapter against the protocol stand-in


def test_every_tpch_query_adapted_for_trino_returns_datafusions_rows(data: Path):
    with TrinoStandIn(data, page_rows=50) as standin:  # q3's and q11's rows come over several pages
        client = _trino(data, standin)
        assert client.info()["engine"].startswith("trino ")
        for query in tpch_queries():
            adapted = adapt_query("trino", query)
            for statement in adapted.setup:
                client.query(statement)
            answer = client.query(adapted.statement)
            rows = client.rows(adapted.statement)["rows"]
            for statement in adapted.teardown:
                client.query(statement)
            expected = _datafusion_rows(data, query)
            assert answer["count"] == len(expected), query.id
            assert answer["elapsed_ms"] >= 0
            assert rows_difference(expected, rows) is None, query.id
        assert max(standin.pages.values()) >= 3  # q3's 138 rows came in pages of 50


def test_trino_refuses_datafusions_dialect_and_the_adapter_says_why(data: Path):
    with TrinoStandIn(data) as standin:
        client = _trino(data, standin)
        for sql, name in ((Q15_SPEC_VIEW, "SYNTAX_ERROR"),
                          ("select count(*) from lineitem where l_shipdate < '1995-01-01'", "TYPE_MISMATCH"),
                          ("select count(*) from no_such_table", "TABLE_NOT_FOUND")):
            with pytest.raises(QueryFailed, match=name):
                client.query(sql)
        # One statement per Trino query, without the ';' Trino's grammar refuses.
        assert client.query("select count(*) from nation;")["count"] == 1
        assert standin.statements[-1] == "select count(*) from nation"
        # What the dialect makes of the first two runs.
        assert client.query(adapt_statement("trino", Q15_SPEC_VIEW))["count"] == 0
        assert client.query("drop view revenue0")["count"] == 0
        assert client.query(adapt_statement(
            "trino", "select count(*) from lineitem where l_shipdate < '1995-01-01'"))["count"] == 1


def test_trino_gone_is_unreachable_not_a_failed_query(data: Path):
    with TrinoStandIn(data) as standin:
        url = standin.url
    with pytest.raises(WorkerUnreachable):
        TrinoClient(url, schema=DATASET).info()


def test_bench_engines_with_trino_files_both_and_compare_draws_them(data: Path, capsys: pytest.CaptureFixture[str],
                                                                   tmp_path: Path):
    with TrinoStandIn(data) as standin:
        code = main(["bench", "--engines", "datafusion,trino", "--trino-url", standin.url, "--dataset", DATASET,
                     "--data-dir", str(data), "--iterations", "1", "--queries", "q1,q3,q15", "--engine", "df"])
        # Trino's tables are the Hive connector's, over the same folders the worker reads.
        created = [s for s in standin.statements if s.startswith("CREATE TABLE")]
        assert len(created) == 8 and all(f"'{data.resolve()}/{DATASET}/" in s for s in created)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "3 of 3" in out and "rows: 3 of 3 queries returned the same rows on every engine" in out
    for engine in ("df", "trino"):
        files = sorted(p.name for p in (data / DATASET / ".results-local" / engine).glob("q*.json"))
        assert files == ["q1.json", "q15.json", "q3.json"]
        manifest = json.loads((data / DATASET / ".results-local" / engine / "run.json").read_text())
        assert manifest["engines"]["compared_with"] == [{"df": "trino", "trino": "df"}[engine]]
        assert manifest["status"] == "complete" and manifest["queries"]["q3"]["rows"] == 138
    picture = tmp_path / "engines.png"
    code = main(["compare", "--engines", "df,trino", "--dataset", DATASET, "--data-dir", str(data),
                 "--results", "local", "--format", "json", "--plot", str(picture)])
    document = json.loads(capsys.readouterr().out)
    assert code == 0 and document[0]["compared"] == ["q1", "q3", "q15"]
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and picture.stat().st_size > 10_000


@pytest.mark.parametrize(("argv", "says"), [
    (["bench", "--engines", "datafusion,duckdb"], "Unknown engine 'duckdb'"),
    (["bench", "--engines", "datafusion,trino", "--dataset", DATASET], "needs --trino-url"),
    (["bench", "--engines", "datafusion,spark", "--url", "http://127.0.0.1:9"], "--url not with --engines"),
    (["bench", "--trino-url", "http://127.0.0.1:9"], "only with --engines"),
    (["compare", "--dataset", DATASET], "give BASE and NEW"),
    (["compare", "--dataset", DATASET, "--engines", "a,a"], "more than once"),
    (["compare", "--dataset", DATASET, "--engines", "a,../b"], "Invalid engine name"),
])
def test_bad_engine_input_is_one_line_and_exit_2(argv: list[str], says: str, capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path):
    code = main(argv + ["--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and says in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_the_local_worker_answers_rows(data: Path):
    with LocalWorkerProcess(data_dir=data) as worker:
        assert worker.url is not None
        create = quote(f"CREATE EXTERNAL TABLE nation STORED AS PARQUET LOCATION '{DATASET}/nation/'", safe="")
        urllib.request.urlopen(f"{worker.url}/?sql={create}", timeout=30).read()
        select = quote("select n_name from nation order by n_nationkey limit 2", safe="")
        with urllib.request.urlopen(f"{worker.url}/rows?sql={select}", timeout=30) as response:
            answer = json.loads(response.read())
        assert answer == {"columns": ["n_name"], "rows": [["ALGERIA"], ["ARGENTINA"]]}
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(f"{worker.url}/rows?sql={select}",
                                                          headers={"Host": "evil.example"}), timeout=30)
        assert refused.value.code == 403


def test_the_chart_has_a_group_per_dataset_and_refuses_other_suffixes(tmp_path: Path):
    from dfbench.comparison.engines_plot import write_engines_plot

    totals = []
    for dataset, factor in (("tpch_sf1", 1.0), ("tpch_sf10", 8.0)):
        results = {engine: {f"q{n}": _result(f"q{n}", engine, [n * factor * scale]) for n in range(1, 23)}
                   for engine, scale in (("df", 10.0), ("trino", 25.0), ("spark", 40.0))}
        totals.append(engine_totals(dataset, results))
    picture = write_engines_plot(totals, tmp_path / "chart.svg")
    svg = picture.read_text()
    assert "How much slower than df?" in svg and "tpch_sf10" in svg and "2.50x" in svg and "4.00x" in svg
    with pytest.raises(ConfigError, match=r"\.png or \.svg"):
        write_engines_plot(totals, tmp_path / "chart.pdf")
    empty = engine_totals(DATASET, {"df": {"q1": _result("q1", "df", [1])}, "spark": {}})
    with pytest.raises(ConfigError, match="nothing to draw"):
        write_engines_plot([empty], tmp_path / "empty.png")


def test_spark_without_java_is_refused_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]):
    pytest.importorskip("pyspark")
    monkeypatch.setenv("PATH", str(tmp_path))  # no java on it
    monkeypatch.delenv("JAVA_HOME", raising=False)
    code = main(["bench", "--engines", "datafusion,spark", "--sf", "0.01", "--data-dir", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == 2 and "Java 17 or 21 runtime" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "data").exists()  # nothing generated
