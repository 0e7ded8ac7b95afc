"""TPC-H generation, the shipped queries, and the bucket sync (S3 through moto)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from dfbench.bench.queries import expected_rows, tpch_queries
from dfbench.data import (
    MANIFEST,
    TPCH_FIXED_ROWS,
    TPCH_ROWS_PER_SF,
    TPCH_TABLES,
    generate_tpch,
    is_complete,
    list_datasets,
    local_dataset,
    read_manifest,
    remote_tables,
    sync_dataset,
    tpch_dataset_name,
)
from dfbench.errors import ConfigError, DfbenchError
from dfbench.models import Cluster

SF = 0.01
PARTS = 2
NAME = "tpch_sf0.01"
BUCKET = "dfbench-datasets-test"
# dbgen's (and tpchgen's, which reproduces dbgen row for row) lineitem count at SF 0.01.
LINEITEM_ROWS_SF001 = 60_175


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory):
    data_dir = tmp_path_factory.mktemp("data")
    return generate_tpch(SF, partitions=PARTS, data_dir=data_dir, progress=False)


@pytest.fixture
def data_dir(generated, tmp_path: Path) -> Path:
    """A private copy of the generated dataset, for tests that change or sync it."""
    target = tmp_path / "data"
    shutil.copytree(generated.path.parent, target, copy_function=shutil.copy2)
    return target


@pytest.fixture
def bucket(inspector) -> str:
    inspector.client("s3").create_bucket(Bucket=BUCKET)
    return BUCKET


def _keys(inspector, prefix: str = "") -> dict[str, int]:
    s3 = inspector.client("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", [])}


def _duck(folder: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for table in TPCH_TABLES:
        con.execute(f"create view {table} as select * from read_parquet('{folder / table}/*.parquet')")
    return con


# --- generation ----------------------------------------------------------------------------------


def test_dataset_names_follow_the_cdk_tooling() -> None:
    assert [tpch_dataset_name(sf) for sf in (1, 10, 0.1, "0.01", 1.0, 100)] == [
        "tpch_sf1", "tpch_sf10", "tpch_sf0.1", "tpch_sf0.01", "tpch_sf1", "tpch_sf100"]


def test_layout_one_folder_of_numbered_parquet_files_per_table(generated) -> None:
    assert generated.name == NAME and generated.path.name == NAME and generated.generated
    folder = generated.path
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == sorted(TPCH_TABLES)
    for table in TPCH_TABLES:
        names = sorted(p.name for p in (folder / table).iterdir())
        expected = 1 if table in ("nation", "region") else PARTS
        assert names == [f"{n}.parquet" for n in range(1, expected + 1)], table
    assert not list(folder.parent.glob(".*partial*"))


def test_row_counts_match_the_tpch_definition(generated) -> None:
    con = _duck(generated.path)
    counts = {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in TPCH_TABLES}
    expected = {**TPCH_FIXED_ROWS, **{t: round(n * SF) for t, n in TPCH_ROWS_PER_SF.items()}}
    assert {t: counts[t] for t in expected} == expected
    # no duplicated nation/region rows (they must not be written once per partition)
    assert con.execute("select count(distinct n_nationkey) from nation").fetchone()[0] == 25
    assert con.execute("select count(distinct r_regionkey) from region").fetchone()[0] == 5
    # lineitem: 1 to 7 lines for every order, and dbgen's exact total
    assert counts["lineitem"] == LINEITEM_ROWS_SF001
    per_order = con.execute("select count(distinct l_orderkey), min(c), max(c) from "
                            "(select l_orderkey, count(*) c from lineitem group by l_orderkey)").fetchone()
    assert per_order == (counts["orders"], 1, 7)
    # the manifest says the same
    assert {t: info.rows for t, info in generated.manifest.tables.items()} == counts


def test_manifest_lists_every_file_with_size_and_checksum(generated) -> None:
    folder = generated.path
    on_disk = json.loads((folder / MANIFEST).read_text())
    assert on_disk["scale_factor"] == SF and on_disk["partitions"] == PARTS
    assert on_disk["generator"]["name"] == "tpchgen-cli" and on_disk["generator"]["version"][0].isdigit()
    files = [f for table in on_disk["tables"].values() for f in table["files"]]
    assert sorted(f["path"] for f in files) == sorted(
        str(p.relative_to(folder)) for p in folder.glob("*/*.parquet"))
    for item in files:
        data = (folder / item["path"]).read_bytes()
        assert item["size"] == len(data)
        assert item["sha256"] == hashlib.sha256(data).hexdigest()
    for table in on_disk["tables"].values():
        assert table["bytes"] == sum(f["size"] for f in table["files"])


def test_second_generation_does_nothing(generated) -> None:
    folder = generated.path
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    again = generate_tpch(SF, partitions=PARTS, data_dir=folder.parent, progress=False)
    assert not again.generated
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} == before


def test_other_settings_for_an_existing_dataset_are_refused(generated) -> None:
    with pytest.raises(ConfigError, match="partitions"):
        generate_tpch(SF, partitions=PARTS + 1, data_dir=generated.path.parent, progress=False)


@pytest.mark.parametrize("sf,parts", [(0, 4), (-1, 4), (1, 0), ("x", 4), (0, 0)])
def test_bad_scale_factor_or_partitions_is_one_config_error(tmp_path: Path, sf, parts) -> None:
    with pytest.raises(ConfigError) as error:
        generate_tpch(sf, partitions=parts, data_dir=tmp_path, progress=False)
    assert str(error.value).count("Cannot generate") == 1
    assert not any(tmp_path.iterdir())


def test_missing_tpchgen_names_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "nowhere" / "python"))
    with pytest.raises(ConfigError, match="pip install tpchgen-cli"):
        generate_tpch(SF, partitions=PARTS, data_dir=tmp_path / "data", progress=False)


def test_killed_generation_leaves_nothing_that_looks_complete(tmp_path: Path) -> None:
    data = tmp_path / "data"
    script = textwrap.dedent(f"""
        from dfbench.data import generate_tpch
        generate_tpch({SF}, partitions={PARTS}, data_dir={str(data)!r}, progress=False)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not list(data.glob(".tpch_sf0.01.partial-*/*")) and time.monotonic() < deadline:
            assert process.poll() is None, "generation ended before it could be interrupted"
            time.sleep(0.01)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the generator and its tpchgen-cli child
        process.wait()
    assert list(data.glob(".tpch_sf0.01.partial-*"))
    assert not (data / NAME / MANIFEST).exists()
    assert [d.complete for d in list_datasets(data)] in ([], [False])
    with pytest.raises(ConfigError):
        local_dataset(NAME, data)
    # the next run starts over, cleans up, and completes
    again = generate_tpch(SF, partitions=PARTS, data_dir=data, progress=False)
    assert again.generated and is_complete(again.path)
    assert not list(data.glob(".*partial*"))


def test_failure_while_finishing_leaves_no_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    generated) -> None:
    data = tmp_path / "data"
    # an earlier dataset folder with benchmark results in it: they must survive regeneration
    results = data / NAME / ".results-remote" / "engine" / "q1.json"
    results.parent.mkdir(parents=True)
    results.write_text("{}")
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst).name == MANIFEST:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="No space"):
        generate_tpch(SF, partitions=PARTS, data_dir=data, progress=False)
    monkeypatch.setattr(os, "replace", real_replace)
    assert read_manifest(data / NAME) is None and not is_complete(data / NAME)
    assert not list(data.glob(".*partial*"))
    done = generate_tpch(SF, partitions=PARTS, data_dir=data, progress=False)
    assert done.generated and is_complete(done.path) and results.read_text() == "{}"


# --- queries -------------------------------------------------------------------------------------


def test_queries_are_the_repositorys_22_in_order_with_q15_split() -> None:
    queries = tpch_queries()
    assert [q.id for q in queries] == [f"q{n}" for n in range(1, 23)]
    assert all("{" not in q.sql and "--" not in q.sql for q in queries)
    # The datafusion-distributed repository's set: no LIMIT, Q11's fraction 0.0001 at every scale.
    assert not [q.id for q in queries if re.search(r"\blimit\b", q.sql, re.IGNORECASE)]
    assert "* 0.0001\n" in queries[10].statement
    q15 = queries[14]
    assert q15.setup[0].startswith("create view revenue0") and q15.teardown == ("drop view revenue0",)
    assert q15.statement.startswith("select") and q15.sql.count(";") == 3
    assert [q.id for q in tpch_queries(only=["q3", "1"])] == ["q1", "q3"]
    with pytest.raises(ConfigError, match="q23"):
        tpch_queries(only=["q23"])


def test_all_queries_run_on_duckdb_and_datafusion_and_agree(generated) -> None:
    import datafusion

    duck = _duck(generated.path)
    ctx = datafusion.SessionContext()
    for table in TPCH_TABLES:
        ctx.register_parquet(table, f"{generated.path / table}/")
    counts = {}
    for query in tpch_queries():
        for statement in query.setup:
            duck.execute(statement)
            ctx.sql(statement).collect()
        reference = duck.execute(query.statement).fetchall()
        batches = ctx.sql(query.statement).collect()
        for statement in query.teardown:
            duck.execute(statement)
            ctx.sql(statement).collect()
        rows = sum(b.num_rows for b in batches)
        assert rows == len(reference), query.id
        counts[query.id] = rows
    # The row counts the runner checks a run against are this text's answers.
    assert counts == {q: expected_rows(q, SF) for q in counts}, counts


# --- sync ----------------------------------------------------------------------------------------


def test_first_sync_uploads_everything_and_the_manifest_last(aws, recorder, inspector, bucket, data_dir) -> None:
    report = sync_dataset(NAME, bucket=bucket, data_dir=data_dir, progress=False,
                          multipart_threshold=256 * 1024, multipart_chunksize=5 * 1024 * 1024)
    manifest = read_manifest(data_dir / NAME)
    assert report.uploaded_files == len(manifest.files) and report.skipped_files == 0
    assert report.uploaded_bytes == manifest.total_bytes
    remote = _keys(inspector)
    assert remote == {**{f"{NAME}/{f.path}": f.size for f in manifest.files}, f"{NAME}/{MANIFEST}": remote[
        f"{NAME}/{MANIFEST}"]}
    s3 = inspector.client("s3")
    for item in manifest.files:
        body = s3.get_object(Bucket=bucket, Key=f"{NAME}/{item.path}")
        assert hashlib.sha256(body["Body"].read()).hexdigest() == item.sha256
        assert body["Metadata"]["sha256"] == item.sha256
    writes = [c for c in recorder.calls if c.operation in ("PutObject", "CompleteMultipartUpload")]
    assert any(c.operation == "CompleteMultipartUpload" for c in writes)  # large files went multipart
    assert writes[-1].operation == "PutObject" and writes[-1].params["Key"] == f"{NAME}/{MANIFEST}"
    assert [c.params["Key"] for c in writes].count(f"{NAME}/{MANIFEST}") == 1
    assert len(recorder.named("ListObjectsV2")) == 1


def test_unchanged_resync_uploads_nothing_with_one_listing(aws, recorder, bucket, data_dir) -> None:
    sync_dataset(NAME, bucket=bucket, data_dir=data_dir, progress=False)
    recorder.clear()
    report = sync_dataset(NAME, bucket=bucket, data_dir=data_dir, progress=False)
    assert (report.uploaded_files, report.uploaded_bytes, report.deleted_files) == (0, 0, 0)
    assert report.skipped_files == len(read_manifest(data_dir / NAME).files)
    assert not report.manifest_uploaded
    assert [c.operation for c in recorder.calls] == ["ListObjectsV2", "GetObject"]


def test_changed_content_of_the_same_size_is_uploaded_again(aws, inspector, bucket, data_dir) -> None:
    sync_dataset(NAME, bucket=bucket, data_dir=data_dir, progress=False)
    path = data_dir / NAME / "lineitem" / "1.parquet"
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 8] = bytes(b ^ 0xFF for b in data[middle:middle + 8])  # footer intact
    path.write_bytes(bytes(data))
    report = sync_dataset(NAME, bucket=bucket, data_dir=data_dir, progress=False)
    assert report.uploaded == ["lineitem/1.parquet"] and report.uploaded_bytes == len(data)
    s3 = inspector.client("s3")
    assert s3.get_object(Bucket=bucket, Key=f"{NAME}/lineitem/1.parquet")["Body"].read() == bytes(data)
    remote = json.loads(s3.get_object(Bucket=bucket, Key=f"{NAME}/{MANIFEST}")["Body"].read())
    entry = next(f for f in remote["tables"]["lineitem"]["files"] if f["path"] == "lineitem/1.parquet")
    assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert sync_dataset(NAME, bucket=bucket, data_dir=data_dir, progress=False).uploaded_files == 0


def test_delete_removes_exactly_the_stale_objects(aws, inspector, bucket, data_dir) -> None:
    sync_dataset(NAME, bucket=bucket, data_dir=data_dir, progress=False)
    s3 = inspector.client("s3")
    stale = [f"{NAME}/lineitem/99.parquet", f"{NAME}/old_table/1.parquet"]
    keep = ["other/keep.parquet", f"{NAME}x/1.parquet"]
    for key in stale + keep:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    before = _keys(inspector)
    kept = sync_dataset(NAME, bucket=bucket, data_dir=data_dir, progress=False)
    assert kept.deleted_files == 0 and _keys(inspector) == before
    report = sync_dataset(NAME, bucket=bucket, data_dir=data_dir, delete=True, progress=False)
    assert sorted(report.deleted) == sorted(stale) and report.uploaded_files == 0
    assert _keys(inspector) == {k: v for k, v in before.items() if k not in stale}


def test_a_failed_sync_leaves_no_manifest_and_the_next_one_resumes(aws, faults, recorder, inspector, bucket,
                                                                   data_dir) -> None:
    total = len(read_manifest(data_dir / NAME).files)
    faults.error("s3", "PutObject", "AccessDenied", "injected", status=403, times=1)
    with pytest.raises(DfbenchError, match="AccessDenied"):
        sync_dataset(NAME, bucket=bucket, data_dir=data_dir, progress=False, max_concurrency=2)
    uploaded_before = {k for k in _keys(inspector) if k.startswith(f"{NAME}/")}
    assert f"{NAME}/{MANIFEST}" not in uploaded_before
    recorder.clear()
    report = sync_dataset(NAME, bucket=bucket, data_dir=data_dir, progress=False)
    assert report.skipped_files == len(uploaded_before) and report.uploaded_files == total - len(uploaded_before)
    assert len(recorder.named("HeadObject")) == len(uploaded_before)  # only objects no manifest vouches for
    assert f"{NAME}/{MANIFEST}" in _keys(inspector)


def test_a_changing_resync_removes_the_old_manifest_first(aws, recorder, bucket, data_dir) -> None:
    sync_dataset(NAME, bucket=bucket, data_dir=data_dir, progress=False)
    path = data_dir / NAME / "orders" / "2.parquet"
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    recorder.clear()
    sync_dataset(NAME, bucket=bucket, data_dir=data_dir, progress=False)
    order = [(c.operation, c.params.get("Key")) for c in recorder.mutating]
    assert order[0] == ("DeleteObject", f"{NAME}/{MANIFEST}")
    assert order[-1] == ("PutObject", f"{NAME}/{MANIFEST}")


def test_sync_takes_the_bucket_from_a_cluster_or_benchmark_bucket(aws, inspector, bucket, data_dir,
                                                                  monkeypatch) -> None:
    cluster = Cluster(name="c", region="us-east-1", account="123456789012", bucket=bucket, vpc_id=None,
                      subnet_id=None, internet_gateway_id=None, route_table_id=None, security_group_id=None,
                      role_name="r", instance_profile_name="r", ami_id=None, instances=[])
    assert sync_dataset(NAME, cluster=cluster, data_dir=data_dir, progress=False).bucket == bucket
    monkeypatch.setenv("BENCHMARK_BUCKET", bucket)
    report = sync_dataset(NAME, data_dir=data_dir, progress=False)
    assert report.bucket == bucket and report.uploaded_files == 0


def test_sync_errors_are_clear(aws, bucket, data_dir) -> None:
    with pytest.raises(ConfigError, match="generate"):
        sync_dataset("tpch_sf7", bucket=bucket, data_dir=data_dir, progress=False)
    (data_dir / "tpch_sf3" / "lineitem").mkdir(parents=True)
    with pytest.raises(ConfigError, match="manifest"):
        sync_dataset("tpch_sf3", bucket=bucket, data_dir=data_dir, progress=False)
    with pytest.raises(ConfigError, match=r"does not exist.*dfbench provision.*BENCHMARK_BUCKET"):
        sync_dataset(NAME, bucket="no-such-bucket-here", data_dir=data_dir, progress=False)


def test_remote_tables_and_listing_need_no_local_copy(aws, inspector, bucket, data_dir) -> None:
    sync_dataset(NAME, bucket=bucket, data_dir=data_dir, progress=False)
    manifest = read_manifest(data_dir / NAME)
    shutil.rmtree(data_dir)
    tables = remote_tables(bucket, NAME)
    assert {t.name: (t.rows, t.bytes) for t in tables} == {n: (t.rows, t.bytes) for n, t in manifest.tables.items()}
    assert tables[0].location == f"s3://{bucket}/{NAME}/{tables[0].name}/"
    inspector.client("s3").delete_object(Bucket=bucket, Key=f"{NAME}/{MANIFEST}")
    listed = remote_tables(bucket, NAME)
    assert {t.name: (t.rows, t.bytes) for t in listed} == {n: (None, t.bytes) for n, t in manifest.tables.items()}
    with pytest.raises(ConfigError, match="sync"):
        remote_tables(bucket, "tpch_sf1000")
    found = list_datasets(data_dir, bucket=bucket)
    assert [(d.name, d.location, d.complete, d.bytes) for d in found] == [
        (NAME, f"s3://{bucket}", False, manifest.total_bytes)]


@pytest.mark.parametrize("under", ["", "/data"])
def test_the_library_refuses_a_data_folder_that_is_a_file_in_one_line(tmp_path: Path, under: str) -> None:
    """As the command line does: a ConfigError naming the file, before anything is generated."""
    (tmp_path / "afile").write_text("x")
    from dfbench.data import download_clickbench
    from dfbench.data.pull import pull_dataset

    for call in (lambda d: generate_tpch(0.01, partitions=1, data_dir=d, progress=False),
                 lambda d: download_clickbench("0-1", d, url="http://127.0.0.1:9/", progress=False),
                 lambda d: pull_dataset("tpch_sf1", bucket="b", data_dir=d, progress=False)):
        with pytest.raises(ConfigError, match="afile is a file, not a folder"):
            call(tmp_path / f"afile{under}")
    assert (tmp_path / "afile").read_text() == "x"
