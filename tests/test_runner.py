"""The benchmark runner against a real local worker and real (tiny) TPC-H data."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from dfbench.bench.queries import Query, expected_rows, select_queries
from dfbench.bench.results import QueryOutcome
from dfbench.bench.settings import DISTRIBUTED_DEFAULTS, resolve_settings
from dfbench.data import generate_tpch
from dfbench.errors import ConfigError, DfbenchError, QueryFailed, WorkerUnreachable
from dfbench.runner import bench_local, run_benchmark
from dfbench.worker.client import WorkerClient
from dfbench.worker.local import serve

DATASET = "tpch_sf0.01"
ITERATION_KEYS = {"elapsed", "rowCount", "plan", "tasks", "metrics"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    dataset = generate_tpch(0.01, partitions=2, data_dir=folder, progress=False)
    assert dataset.name == DATASET
    return folder


@pytest.fixture(scope="module")
def worker_url(data_dir: Path) -> Iterator[str]:
    server, thread = serve("127.0.0.1", 0, quiet=True, data_dir=data_dir)
    url = server.worker.base_url
    assert url.startswith("http://127.0.0.1:") and thread.is_alive()
    yield url
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def run(worker_url: str, data_dir: Path, results_dir: Path, **kwargs):
    """A run whose results go to their own folder; the tables come from the shared dataset."""
    return run_benchmark(dataset=DATASET, url=worker_url, data_dir=results_dir, location=str(data_dir),
                         progress=False, **kwargs)


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_run_writes_cdk_tooling_compatible_files(worker_url: str, data_dir: Path) -> None:
    result = run_benchmark(dataset=DATASET, url=worker_url, data_dir=data_dir, queries=["q1", "q3", "q6"],
                           iterations=2, progress=False)

    engine = result.engine
    assert engine.startswith("datafusion-python-")  # the local worker's default engine name
    folder = data_dir / DATASET / ".results-local" / engine
    assert result.results_dir == folder
    assert sorted(p.name for p in folder.iterdir()) == ["q1.json", "q3.json", "q6.json", "run.json"]
    for query_id, rows in (("q1", 4), ("q3", 138), ("q6", 1)):
        document = load(folder / f"{query_id}.json")
        assert set(document) == {"id", "dataset", "engine", "runId", "sqlSha256", "iterations"}
        assert document["runId"] == result.run_id
        assert document["sqlSha256"] == hashlib.sha256(next(q for q in select_queries(DATASET, query_id, None)).sql
                                                       .encode()).hexdigest()
        assert (document["id"], document["dataset"], document["engine"]) == (query_id, DATASET, engine)
        assert len(document["iterations"]) == 2  # the warm-up is not among them
        for iteration in document["iterations"]:
            assert set(iteration) == ITERATION_KEYS  # no null statsQError*, no error key
            assert iteration["elapsed"] > 0 and iteration["rowCount"] == rows and iteration["tasks"] == 1
            assert iteration["plan"]
            # The local worker's plan is DataFusion's own display, not upstream's: metrics unknown.
            assert iteration["metrics"] == {}
        assert result.outcome(query_id).status == "ok"

    previous = load(data_dir / DATASET / "previous-local.json")
    assert set(previous) == {"startTime", "dataset", "engine", "results"}
    assert isinstance(previous["startTime"], int) and (previous["dataset"], previous["engine"]) == (DATASET, engine)
    assert previous["results"] == [load(folder / f"{q}.json") for q in ("q1", "q3", "q6")]

    manifest = load(folder / "run.json")
    assert manifest["status"] == "complete" and manifest["interrupted"] is False
    assert manifest["run_id"] == result.run_id and manifest["partial"] is True
    assert manifest["settings"] == {}  # nothing is sent to the local worker by default
    assert manifest["url"] == worker_url and manifest["worker_info"]["engine"].startswith("datafusion-python")
    assert manifest["machine"]["cpu_count"] >= 1 and manifest["machine"]["memory_bytes"] > 0
    assert manifest["scale_factor"] == 0.01 and manifest["iterations"] == 2
    assert manifest["end_time"] >= manifest["start_time"] and manifest["dfbench_version"]
    assert manifest["queries"]["q1"]["p50_ms"] > 0

    table = result.table()
    assert [c.header for c in table.columns] == ["query", "p50 ms", "min", "max", "CV %", "rows", "status"]
    assert table.row_count == 3


def test_q15_times_only_the_query_and_drops_its_view(worker_url: str, data_dir: Path, tmp_path: Path) -> None:
    client = WorkerClient(worker_url)
    # A view left by an interrupted run: the runner cleans it up instead of failing q15.
    client.query(f"DROP TABLE IF EXISTS lineitem; CREATE EXTERNAL TABLE lineitem STORED AS PARQUET "
                 f"LOCATION '{data_dir / DATASET / 'lineitem'}/';")
    client.query("create view revenue0 as select l_suppkey as supplier_no from lineitem;")

    result = run(worker_url, data_dir, tmp_path, queries=["q15"], iterations=2, engine="e")

    iterations = load(tmp_path / DATASET / ".results-local" / "e" / "q15.json")["iterations"]
    assert len(iterations) == 2
    for iteration in iterations:
        # Sent as one request the worker would time (and count) only the final DROP VIEW.
        assert iteration["rowCount"] == 1 and "error" not in iteration
        assert "DropView" not in iteration["plan"] and "CreateView" not in iteration["plan"]
    assert result.outcome("q15").status == "ok"
    with pytest.raises(QueryFailed, match="revenue0"):
        client.query("select * from revenue0;")


def test_failures_are_recorded_and_the_run_moves_on(worker_url: str, data_dir: Path, tmp_path: Path) -> None:
    bad = Query(id="qbad", statement="select * from no_such_table")
    not_q6 = Query(id="q6", statement="select 1 union all select 2")  # q6 answers one row
    result = run(worker_url, data_dir, tmp_path, queries=["q1", bad, not_q6], iterations=3, warmup=False,
                 engine="e")

    folder = tmp_path / DATASET / ".results-local" / "e"
    failed = load(folder / "qbad.json")["iterations"]
    assert len(failed) == 1  # no retries after a failure
    assert {k: v for k, v in failed[0].items() if k != "error"} == {"elapsed": 0, "rowCount": 0, "plan": "",
                                                                     "tasks": 0}
    assert "no_such_table" in failed[0]["error"]
    assert result.outcome("qbad").status.startswith("failed: ")
    assert len(load(folder / "q1.json")["iterations"]) == 3 and result.outcome("q1").status == "ok"
    assert result.outcome("q6").status == "wrong rows: 2 (expected 1)"
    assert len(load(folder / "q6.json")["iterations"]) == 3  # a wrong count does not stop the query

    # A failing warm-up is the query's failure: the file must show it.
    result = run(worker_url, data_dir, tmp_path, queries=[bad, "q6"], iterations=2, engine="w")
    failed = load(tmp_path / DATASET / ".results-local" / "w" / "qbad.json")["iterations"]
    assert len(failed) == 1 and "no_such_table" in failed[0]["error"]
    assert result.outcome("q6").status == "ok" and len(result.outcome("q6").iterations) == 2


def test_settings_are_sent(worker_url: str, data_dir: Path, tmp_path: Path) -> None:
    result = run(worker_url, data_dir, tmp_path, queries=["q6"], iterations=1,
                 settings={"distributed.compression": "lz4"}, engine="e")
    assert WorkerClient(worker_url).info()["settings"]["distributed.compression"] == "lz4"
    assert result.settings == {"distributed.compression": "lz4"}
    assert load(tmp_path / DATASET / ".results-local" / "e" / "run.json")["settings"] == result.settings

    assert resolve_settings(["distributed", "distributed.compression=zstd"]) == {
        **DISTRIBUTED_DEFAULTS, "distributed.compression": "zstd"}
    assert len(DISTRIBUTED_DEFAULTS) == 14
    with pytest.raises(DfbenchError, match="key=value"):
        resolve_settings("compression")


def test_min_time_keeps_iterating(worker_url: str, data_dir: Path, tmp_path: Path) -> None:
    result = run(worker_url, data_dir, tmp_path, queries=["q6"], iterations=1, min_time_s=0.3, warmup=False)
    assert len(result.outcome("q6").iterations) > 1


def test_unreachable_worker_is_one_clear_error(data_dir: Path, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(WorkerUnreachable) as caught:
        run(url, data_dir, tmp_path, queries=["q1"], iterations=1)
    message = str(caught.value)
    assert f"No worker at {url}" in message and "dfbench worker" in message and "tunnel" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert not (tmp_path / DATASET).exists()  # nothing written


def test_interrupt_keeps_finished_queries(worker_url: str, data_dir: Path, tmp_path: Path) -> None:
    done: list[str] = []

    def stop_after_two(outcome: QueryOutcome) -> None:
        done.append(outcome.id)
        if len(done) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(worker_url, data_dir, tmp_path, queries=["q1", "q3", "q6"], iterations=1, engine="e",
            on_query_done=stop_after_two)

    folder = tmp_path / DATASET / ".results-local" / "e"
    assert sorted(p.name for p in folder.iterdir()) == ["q1.json", "q3.json", "run.json"]
    manifest = load(folder / "run.json")
    assert manifest["interrupted"] is True and manifest["status"] == "interrupted"
    assert sorted(manifest["queries"]) == ["q1", "q3"]
    assert not (tmp_path / DATASET / "previous-local.json").exists()  # a partial run is no baseline


def test_bench_local_end_to_end(tmp_path: Path) -> None:
    result = bench_local(scale_factor=0.01, partitions=2, iterations=2, queries="q1,q6", data_dir=tmp_path,
                         progress=False)
    assert [(q.id, q.rows, q.status) for q in result.queries] == [("q1", 4, "ok"), ("q6", 1, "ok")]
    assert (tmp_path / DATASET / "manifest.json").is_file()  # generated because it was missing
    assert (result.results_dir / "q1.json").is_file() and result.results_dir.parent.name == ".results-local"
    assert load(result.results_dir / "run.json")["reached_by"] == "local worker subprocess"
    with pytest.raises(WorkerUnreachable):  # the worker subprocess was stopped
        WorkerClient(result.url).info()


def test_expected_rows_are_the_repository_sets() -> None:
    # The datafusion-distributed repository's TPC-H set at SF1 (no LIMITs, Q11 at 0.0001).
    assert [expected_rows(q, 1) for q in ("q2", "q3", "q10", "q21", "q11", "q18")] == [460, 11620, 37967, 411,
                                                                                       1048, 57]
    assert expected_rows("q1", 0.01) == 4 and expected_rows("q22", 100) == 7 and expected_rows("q9", 10) == 175
    assert expected_rows("q3", 0.1) == 1216 and expected_rows("q3", 10) is None and expected_rows("q2", 0.2) is None
    assert expected_rows("qbad", 1) is None


def test_partial_run_keeps_older_files_merges_previous_and_compare_names_the_mixture(
        worker_url: str, data_dir: Path, tmp_path: Path) -> None:
    from dfbench.comparison import compare_results, load_previous, load_results, render

    first = run(worker_url, data_dir, tmp_path, queries="q1,q6", iterations=1, engine="e")
    second = run(worker_url, data_dir, tmp_path, queries="q6", iterations=1, engine="e")
    folder = tmp_path / DATASET / ".results-local" / "e"
    assert sorted(p.name for p in folder.iterdir()) == ["q1.json", "q6.json", "run.json"]  # nothing removed
    assert [load(folder / f"{q}.json")["runId"] for q in ("q1", "q6")] == [first.run_id, second.run_id]
    previous = load(tmp_path / DATASET / "previous-local.json")
    assert [(d["id"], d["runId"]) for d in previous["results"]] == [("q1", first.run_id), ("q6", second.run_id)]
    engine, base = load_previous(tmp_path, DATASET, "local")
    comparison = compare_results(base, load_results(tmp_path, DATASET, "e", "local"), dataset=DATASET,
                                 base_name=engine, new_name="e")
    mixed = f"results from 2 runs mixed: run {first.run_id}: q1; run {second.run_id}: q6"
    assert f"e (new): {mixed}" in render(comparison, "text").splitlines()


def test_local_default_is_three_iterations_remote_five(worker_url: str, data_dir: Path, tmp_path: Path) -> None:
    from dfbench.bench.options import RunOptions

    result = run(worker_url, data_dir, tmp_path, queries="q6", engine="e")
    assert len(result.outcome("q6").iterations) == 3
    options = RunOptions(dataset=DATASET, url=worker_url)
    assert (options.iterations_for(remote=True), options.iterations_for(remote=False)) == (5, 3)
    assert RunOptions(dataset=DATASET, url=worker_url, iterations=2).iterations_for(remote=True) == 2


def test_bench_url_of_the_local_worker_is_filed_and_compared_as_local(
        worker_url: str, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dfbench.cli import main

    command = ["bench", "--url", worker_url, "--location", str(data_dir), "--dataset", DATASET, "--queries", "q6",
               "--iterations", "1", "--engine", "e", "--data-dir", str(tmp_path)]
    assert main(command) == 0
    assert "no previous run to compare with (local)" in capsys.readouterr().out
    assert main(command) == 0
    second = capsys.readouterr().out
    assert "=== Comparing tpch_sf0.01 results from engine 'e' [prev] with 'e' [new] ===" in second
    assert (tmp_path / DATASET / ".results-local" / "e" / "q6.json").is_file()
    assert not (tmp_path / DATASET / ".results-remote").exists()


def test_queries_dir_runs_any_folder_without_tpch_row_checks(worker_url: str, data_dir: Path,
                                                              tmp_path: Path) -> None:
    folder = tmp_path / "queries"
    folder.mkdir()
    (folder / "q3.sql").write_text("-- not TPC-H's q3: known TPC-H row counts must not apply\nselect * from region;\n")
    (folder / "q10.sql").write_text("select count(*) from nation;")
    (folder / "README.md").write_text("not a query")
    (folder / "q2.sql.bak").write_text("select 1;")
    result = run(worker_url, data_dir, tmp_path / "results", queries_dir=folder, iterations=1)
    assert [(q.id, q.rows, q.status) for q in result.queries] == [("q3", 5, "ok"), ("q10", 1, "ok")]
    only = run(worker_url, data_dir, tmp_path / "only", queries_dir=str(folder), queries="10", iterations=1)
    assert [q.id for q in only.queries] == ["q10"]


@pytest.mark.parametrize(("make", "message"), [
    (lambda root: root / "missing", "is not a directory"),
    (lambda root: root, "holds no qN.sql file"),
    (lambda root: (root / "q1.sql").write_text("select 1;") and root / "q1.sql", "is not a directory"),
])
def test_queries_dir_is_checked_before_the_worker_is_contacted(tmp_path: Path, make, message: str) -> None:
    folder = make(tmp_path)
    with pytest.raises(ConfigError, match=message):
        # Port 9 on loopback: nothing answers there, and nothing is asked before the check.
        run_benchmark(dataset=DATASET, url="http://127.0.0.1:9", location=str(tmp_path), data_dir=tmp_path,
                      queries_dir=folder, progress=False)


def test_unknown_id_in_a_queries_dir_names_the_folder_and_its_range(tmp_path: Path) -> None:
    for n in (0, 42):
        (tmp_path / f"q{n}.sql").write_text("select 1;")
    with pytest.raises(ConfigError, match=r"Unknown .* query q7: choose among q0 … q42"):
        run_benchmark(dataset="clickbench_0-1", url="http://127.0.0.1:9", location=str(tmp_path), data_dir=tmp_path,
                      queries_dir=tmp_path, queries="q7", progress=False)
    with pytest.raises(ConfigError, match="has no bundled query set"):
        run_benchmark(dataset="hits", url="http://127.0.0.1:9", location=str(tmp_path), data_dir=tmp_path,
                      progress=False)
