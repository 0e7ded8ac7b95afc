"""ClickBench: partitions downloaded from a loopback stand-in for the public host (resumable,
verified against Content-Length, sha256 in the manifest, written last), listed, and queried on
the real local worker with the bundled q0-q42."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import pytest

from dfbench import cli
from dfbench.bench.queries import bundled_queries
from dfbench.data import MANIFEST, download_clickbench, list_datasets, remote_tables, sync_dataset
from dfbench.errors import DfbenchError
from dfbench.runner import bench_local
from dfbench_testing.clickbench import HITS_COLUMNS, hits_server, write_hits_partition
from dfbench_testing.reference import reference_rows

ROWS = 300


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("public")
    for n in range(4):
        write_hits_partition(folder / f"hits_{n}.parquet", n, ROWS)
    return folder


def _assert_same_hits_with_event_date_as_date(got: Path, published: Path) -> None:
    """The published rows, with EventDate (days since 1970 in a uint16) as Date32."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    mine, theirs = pq.read_table(got), pq.read_table(published)
    assert mine.schema.field("EventDate").type == pa.date32() and theirs.schema.field("EventDate").type == pa.uint16()
    assert mine.drop_columns(["EventDate"]).equals(theirs.drop_columns(["EventDate"]))
    days = [(d - date(1970, 1, 1)).days for d in mine.column("EventDate").to_pylist()]
    assert days == theirs.column("EventDate").to_pylist()


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_download_verifies_records_sha256_and_resumes_nothing_when_complete(source: Path, tmp_path: Path,
                                                                           capsys) -> None:
    with hits_server(source) as (url, handler):
        code, out, _ = _run(capsys, "data", "clickbench", "--partitions", "1-4", "--url", url,
                            "--data-dir", str(tmp_path))
        assert code == 0 and "clickbench_1-4" in out
        folder = tmp_path / "clickbench_1-4"
        assert sorted(p.name for p in (folder / "hits").iterdir()) == ["1.parquet", "2.parquet", "3.parquet"]
        for n in (1, 2, 3):
            _assert_same_hits_with_event_date_as_date(folder / "hits" / f"{n}.parquet", source / f"hits_{n}.parquet")
        manifest = json.loads((folder / MANIFEST).read_text())
        assert manifest["benchmark"] == "clickbench" and manifest["partitions"] == 3
        assert manifest["scale_factor"] is None and manifest["generator"] == {"name": "download", "version": url}
        for item in manifest["tables"]["hits"]["files"]:
            assert item["sha256"] == hashlib.sha256((folder / item["path"]).read_bytes()).hexdigest()
        assert manifest["tables"]["hits"]["rows"] == 3 * ROWS
        assert sorted(n for method, n, _ in handler.requests if method == "GET") == [
            "hits_1.parquet", "hits_2.parquet", "hits_3.parquet"]
        handler.requests.clear()
        again = download_clickbench("1-4", tmp_path, url=url, progress=False)
        assert not again.generated and handler.requests == []  # finished partitions cost no request
    listed = {d.name: d for d in list_datasets(tmp_path)}
    assert listed["clickbench_1-4"].complete and listed["clickbench_1-4"].files == 3


def test_a_broken_download_leaves_no_manifest_and_the_next_run_continues_it(source: Path, tmp_path: Path) -> None:
    with hits_server(source) as (url, handler):
        handler.cut.add("hits_0.parquet")
        with pytest.raises(DfbenchError, match=r"run it again to resume|announced"):
            download_clickbench("0-2", tmp_path, url=url, workers=1, progress=False)
        folder = tmp_path / "clickbench_0-2"
        assert not (folder / MANIFEST).exists()
        part = folder / "hits" / "0.parquet.part"
        kept = part.stat().st_size
        assert 0 < kept < (source / "hits_0.parquet").stat().st_size
        handler.requests.clear()
        done = download_clickbench("0-2", tmp_path, url=url, workers=1, progress=False)
        ranges = [r for method, n, r in handler.requests if method == "GET" and n == "hits_0.parquet"]
        assert ranges == [f"bytes={kept}-"]  # continued, not started over
    assert done.generated and not part.exists()
    _assert_same_hits_with_event_date_as_date(folder / "hits" / "0.parquet", source / "hits_0.parquet")
    assert not list(folder.glob("hits/.*"))
    assert (folder / MANIFEST).is_file()


@pytest.mark.parametrize("partitions", ["3-3", "0-101", "x", "-1-2"])
def test_bad_partitions_are_one_line_exit_2(partitions: str, tmp_path: Path, capsys) -> None:
    code, out, err = _run(capsys, "data", "clickbench", f"--partitions={partitions}", "--url", "http://127.0.0.1:9/",
                          "--data-dir", str(tmp_path))
    assert code == 2 and out == "" and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "START-END" in lines[0]
    assert not any(tmp_path.iterdir())


def test_the_bundled_43_queries_run_on_the_local_worker_with_duckdbs_rows(source: Path, tmp_path: Path) -> None:
    assert len(HITS_COLUMNS) == 105
    with hits_server(source) as (url, _):
        download_clickbench("0-2", tmp_path, url=url, progress=False)
    run = bench_local(dataset="clickbench_0-2", iterations=1, warmup=False, data_dir=tmp_path, progress=False)
    assert [(q.id, q.status) for q in run.queries] == [(f"q{n}", "ok") for n in range(43)]
    expected = reference_rows(tmp_path / "clickbench_0-2", bundled_queries("clickbench"))
    assert {q.id: q.rows for q in run.queries} == expected
    # Stand-in rows match no Google URL nor CounterID 62: what they can show is that q7 groups
    # (96 engines), the date-literal comparisons of q36-q42 type-check, and every query runs.
    assert expected["q0"] == 1 and expected["q7"] > 1


def test_sync_and_the_bucket_listing_treat_clickbench_like_tpch(source: Path, tmp_path: Path, aws,
                                                                 inspector) -> None:
    with hits_server(source) as (url, _):
        download_clickbench("0-2", tmp_path, url=url, progress=False)
    inspector.client("s3").create_bucket(Bucket="dfbench-clickbench-test")
    report = sync_dataset("clickbench_0-2", bucket="dfbench-clickbench-test", data_dir=tmp_path, progress=False)
    assert report.uploaded_files == 2
    listed = {d.name: d for d in list_datasets(tmp_path, bucket="dfbench-clickbench-test")
              if d.location.startswith("s3://")}
    assert listed["clickbench_0-2"].complete and listed["clickbench_0-2"].files == 2
    tables = remote_tables("dfbench-clickbench-test", "clickbench_0-2")
    assert [(t.name, t.files, t.rows) for t in tables] == [("hits", 2, 2 * ROWS)]
