"""Names that reach SQL, folders and S3 keys: table names, dataset names and manifest file paths
are checked (and table names quoted) before anything is sent, read or written."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from dfbench.bench.results import results_dir
from dfbench.bench.settings import table_sql
from dfbench.data import local_dataset, read_manifest, remote_tables, sync_dataset
from dfbench.data.manifest import MANIFEST, ChecksumCache, describe_files, is_complete
from dfbench.errors import ConfigError
from dfbench.runner import run_benchmark

INJECTION = "nation STORED AS PARQUET LOCATION '/'; COPY (SELECT 1) TO '/tmp/pwned.csv'; --"


class _Recorder(BaseHTTPRequestHandler):
    """A stand-in worker that answers /info and records every SQL it is sent (and fails it)."""

    seen: list[str]

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == "/info":
            body, status = json.dumps({"worker_urls": [], "errors": []}).encode(), 200
        else:
            self.server.seen.append(parse_qs(url.query).get("sql", [""])[0])  # type: ignore[attr-defined]
            body, status = b"refused by the recorder", 500
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recording_worker() -> Iterator[tuple[str, list[str]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server.seen  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _dataset(data_dir: Path, name: str, tables: dict[str, list[str]]) -> Path:
    """A dataset folder with one small file per listed path and a manifest naming them as given."""
    folder = data_dir / name
    listed = {}
    for table, paths in tables.items():
        files = []
        for rel in paths:
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                path.write_bytes(b"PAR1")
            files.append({"path": rel, "size": path.stat().st_size, "sha256": "0" * 64, "rows": 1})
        listed[table] = {"rows": len(files), "bytes": 4 * len(files), "files": files}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).write_text(json.dumps({
        "dataset": name, "scale_factor": 0.01, "partitions": 1, "generator": {"name": "test", "version": "0"},
        "created_at": "2026-01-01T00:00:00Z", "tables": listed}))
    return folder


def test_table_sql_quotes_the_name_and_refuses_anything_but_an_identifier() -> None:
    assert table_sql("lineitem", "/data/tpch_sf1/lineitem").startswith('DROP TABLE IF EXISTS "lineitem";\n'
                                                                       'CREATE EXTERNAL TABLE IF NOT EXISTS "lineitem"')
    for bad in (INJECTION, 'a"b', "Lineitem", "1table", "", "a-b", "a b"):
        with pytest.raises(ConfigError, match=r"Invalid table name"):
            table_sql(bad, "/data")


def test_a_crafted_manifest_sends_no_sql(recording_worker, tmp_path: Path) -> None:
    url, seen = recording_worker
    _dataset(tmp_path, "tpch_sf0.01", {INJECTION: ["x/1.parquet"]})
    with pytest.raises(ConfigError, match=r"no valid manifest.json"):
        run_benchmark(dataset="tpch_sf0.01", url=url, data_dir=tmp_path, progress=False)
    assert seen == []


def test_a_crafted_bucket_listing_is_refused(aws, inspector) -> None:
    """A dataset without a manifest in the bucket: its table names come from the keys."""
    s3 = inspector.client("s3")
    s3.create_bucket(Bucket="data")
    s3.put_object(Bucket="data", Key="tpch_sf1/nation/1.parquet", Body=b"PAR1")
    assert [t.name for t in remote_tables("data", "tpch_sf1")] == ["nation"]
    s3.put_object(Bucket="data", Key="tpch_sf1/x;DROP TABLE nation/1.parquet", Body=b"PAR1")
    with pytest.raises(ConfigError, match=r"Invalid table name"):
        remote_tables("data", "tpch_sf1")


@pytest.mark.parametrize("path", ["/etc/passwd", "../../outside.parquet", "nation/../../outside.parquet",
                                  "region/1.parquet", "nation/.hidden", "nation/sub/1.parquet", "nation\\..\\x"])
def test_manifest_file_paths_stay_inside_their_table_folder(tmp_path: Path, path: str) -> None:
    (tmp_path / "outside.parquet").write_bytes(b"PAR1")
    folder = tmp_path / "data" / "tpch_sf1"
    folder.mkdir(parents=True)
    (folder / MANIFEST).write_text(json.dumps({
        "dataset": "tpch_sf1", "scale_factor": 1, "partitions": 1, "generator": {"name": "t", "version": "0"},
        "created_at": "x", "tables": {"nation": {"rows": 1, "bytes": 4, "files": [
            {"path": path, "size": 4, "sha256": "0" * 64, "rows": 1}]}}}))
    assert read_manifest(folder) is None
    with pytest.raises(ConfigError, match=r"no valid manifest.json"):
        local_dataset("tpch_sf1", tmp_path / "data")


def test_a_symbolic_link_out_of_the_dataset_is_neither_read_nor_uploaded(aws, inspector, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "1.parquet").write_bytes(b"PAR1")
    folder = _dataset(tmp_path / "data", "tpch_sf1", {"nation": []})
    os.symlink(secret, folder / "nation")
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["tables"]["nation"] = {"rows": 1, "bytes": 4, "files": [
        {"path": "nation/1.parquet", "size": 4, "sha256": "0" * 64, "rows": 1}]}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match=r"leads outside"):
        is_complete(folder)
    with pytest.raises(ConfigError, match=r"leads outside"):
        describe_files(folder, ["nation/1.parquet"], ChecksumCache(folder), threads=1)
    inspector.client("s3").create_bucket(Bucket="data")
    with pytest.raises(ConfigError, match=r"leads outside"):
        sync_dataset("tpch_sf1", bucket="data", data_dir=tmp_path / "data", progress=False)
    assert "Contents" not in inspector.client("s3").list_objects_v2(Bucket="data")


@pytest.mark.parametrize("name", ["../escape", "/etc", "a/b", "..", ".hidden", "x..y", "", "tpch sf1", "a\\b"])
def test_dataset_names_never_leave_the_data_folder_or_the_prefix(aws, inspector, tmp_path: Path, name: str) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with pytest.raises(ConfigError, match=r"Invalid dataset name"):
        local_dataset(name, data_dir)
    with pytest.raises(ConfigError, match=r"Invalid dataset name"):
        results_dir(data_dir, name, "engine", remote=False)
    with pytest.raises(ConfigError, match=r"Invalid dataset name"):
        run_benchmark(dataset=name, url="http://127.0.0.1:9", data_dir=data_dir, progress=False)
    inspector.client("s3").create_bucket(Bucket="data")
    with pytest.raises(ConfigError, match=r"Invalid dataset name"):
        remote_tables("data", name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"] and not any(data_dir.iterdir())
