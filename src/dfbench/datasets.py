"""TPC-H datasets: generation with tpchgen-cli, dataset manifests, and the bucket sync.

Layout (compatible with the seed's ``gen-tpch.sh`` / ``sync-bucket``)::

    <data_dir>/tpch_sf<SF>/<table>/<n>.parquet      one folder per table, parquet files only
    <data_dir>/tpch_sf<SF>/manifest.json            written last: its presence means "complete"
    s3://<bucket>/tpch_sf<SF>/...                   the same tree; manifest.json uploaded last

A dataset folder may also hold the seed-compatible results (``.results-remote/``,
``previous-remote.json``, …): generation replaces only table folders and the manifest, and the
sync uploads only the files the manifest lists.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq
from boto3.s3.transfer import TransferConfig
from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from s3transfer.manager import TransferManager
from s3transfer.subscribers import BaseSubscriber

from dfbench.aws.bucket import default_bucket_name
from dfbench.aws.session import Aws, connect, default_region

from dfbench.errors import ConfigError, DfbenchError, aws_errors, error_code
from dfbench.bench.queries import format_decimal, scale_factor_of

if TYPE_CHECKING:
    from dfbench.models import Cluster

log = logging.getLogger("dfbench")

MANIFEST = "manifest.json"
CHECKSUM_CACHE = ".checksums.json"  # local only: sha256 by (size, mtime) so a sync need not re-hash
MANIFEST_FORMAT = 1
DEFAULT_DATA_DIR = "benchmarks/data"
TPCH_TABLES = ("customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier")
# Rows per unit of scale factor (TPC-H spec 4.2.5); lineitem varies (1-7 lines per order).
TPCH_FIXED_ROWS = {"nation": 25, "region": 5}
TPCH_ROWS_PER_SF = {"supplier": 10_000, "customer": 150_000, "part": 200_000, "partsupp": 800_000,
                    "orders": 1_500_000}
# Share of the bytes each table takes (measured at SF1, snappy): weights of the progress bar.
_TABLE_WEIGHT = {"lineitem": 228_604, "orders": 62_068, "partsupp": 43_836, "customer": 13_740, "part": 7_236,
                 "supplier": 964, "nation": 8, "region": 8}
TPCHGEN = "tpchgen-cli"
TPCHGEN_INSTALL = "pip install tpchgen-cli"
_HASH_CHUNK = 8 * 1024 * 1024


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class DatasetFile(_Model):
    path: str  # relative to the dataset folder, "/"-separated: "lineitem/1.parquet"
    size: int
    sha256: str
    rows: int


class TableInfo(_Model):
    rows: int
    bytes: int
    files: list[DatasetFile]


class Generator(_Model):
    name: str
    version: str


class Manifest(_Model):
    """What a complete dataset holds. The copy in the bucket also maps each file to the ETag S3
    gave it (``etags``), so the next sync can tell from one listing which objects are unchanged."""

    format: int = MANIFEST_FORMAT
    dataset: str
    benchmark: str = "tpch"
    scale_factor: float
    partitions: int
    compression: str | None = None
    generator: Generator
    created_at: str
    tables: dict[str, TableInfo]
    etags: dict[str, str] = Field(default_factory=dict)

    @property
    def files(self) -> list[DatasetFile]:
        return [f for table in self.tables.values() for f in table.files]

    @property
    def total_bytes(self) -> int:
        return sum(t.bytes for t in self.tables.values())

    def dump(self) -> str:
        data = self.model_dump(mode="json")
        if not data["etags"]:
            del data["etags"]
        return json.dumps(data, indent=2, sort_keys=True) + "\n"


class LocalDataset(_Model):
    name: str
    path: Path
    manifest: Manifest
    generated: bool  # False when it was already complete and nothing was done


class SyncReport(_Model):
    dataset: str
    bucket: str
    uploaded_files: int
    uploaded_bytes: int
    skipped_files: int
    deleted_files: int
    uploaded: list[str]
    deleted: list[str]
    manifest_uploaded: bool


class RemoteTable(_Model):
    name: str
    location: str  # s3://bucket/dataset/table/
    files: int
    bytes: int
    rows: int | None  # known from the manifest only


class DatasetInfo(_Model):
    name: str
    location: str  # "local" or "s3://bucket"
    complete: bool
    files: int
    bytes: int
    scale_factor: float | None


# ---------------------------------------------------------------------------------------------
# names and manifests


def format_scale_factor(scale_factor: Any) -> str:
    """1 → "1", 10.0 → "10", 0.1 → "0.1" (as the seed names its folders)."""
    return format_decimal(scale_factor_of(scale_factor))


def tpch_dataset_name(scale_factor: Any) -> str:
    return f"tpch_sf{format_scale_factor(scale_factor)}"


def read_manifest(folder: Path) -> Manifest | None:
    path = folder / MANIFEST
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValueError as error:
        log.warning("ignoring unreadable %s: %s", path, error)
        return None


def is_complete(folder: Path, manifest: Manifest | None = None) -> bool:
    """A manifest, and every file it lists present with its size: the cheap completeness check."""
    manifest = manifest or read_manifest(folder)
    if manifest is None:
        return False
    for item in manifest.files:
        try:
            if (folder / item.path).stat().st_size != item.size:
                return False
        except FileNotFoundError:
            return False
    return True


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _parquet_rows(path: Path) -> int:
    try:
        return int(pq.read_metadata(path).num_rows)
    except Exception as error:  # noqa: BLE001 - any reader failure means the same to the user
        raise DfbenchError(f"{path} is not a readable parquet file ({error}); regenerate the dataset.") from None


class _ChecksumCache:
    """sha256 of local files keyed by (size, mtime_ns), kept in the dataset folder (not synced)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / CHECKSUM_CACHE
        try:
            self.entries: dict[str, dict[str, Any]] = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            self.entries = {}
        self._lock = threading.Lock()

    def lookup(self, rel: str, stat: os.stat_result) -> str | None:
        entry = self.entries.get(rel)
        if entry and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
            return str(entry["sha256"])
        return None

    def store(self, rel: str, stat: os.stat_result, sha: str) -> None:
        with self._lock:
            self.entries[rel] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha}

    def save(self) -> None:
        _write_atomically(self.path, json.dumps(self.entries, sort_keys=True))


def _describe_files(folder: Path, rels: list[str], cache: _ChecksumCache, *, threads: int,
                    advance: Callable[[int], None] = lambda n: None,
                    known: dict[str, DatasetFile] | None = None) -> dict[str, DatasetFile]:
    """size, sha256 and row count of each file, hashed in parallel (hashlib releases the GIL).
    A ``known`` entry with the same size and checksum is reused (no parquet footer read)."""

    def one(rel: str) -> DatasetFile:
        path = folder / rel
        stat = path.stat()
        sha = cache.lookup(rel, stat)
        if sha is None:
            sha = sha256_file(path)
            cache.store(rel, stat, sha)
        advance(stat.st_size)
        previous = (known or {}).get(rel)
        if previous is not None and previous.size == stat.st_size and previous.sha256 == sha:
            return previous
        return DatasetFile(path=rel, size=stat.st_size, sha256=sha, rows=_parquet_rows(path))

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        return {item.path: item for item in pool.map(one, rels)}


def _tables_from(files: Iterable[DatasetFile]) -> dict[str, TableInfo]:
    grouped: dict[str, list[DatasetFile]] = {}
    for item in files:
        grouped.setdefault(item.path.split("/", 1)[0], []).append(item)
    tables = {}
    for name in sorted(grouped):
        items = sorted(grouped[name], key=lambda f: _natural_key(f.path))
        tables[name] = TableInfo(rows=sum(f.rows for f in items), bytes=sum(f.size for f in items), files=items)
    return tables


def _natural_key(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


# ---------------------------------------------------------------------------------------------
# generation


def _progress(enabled: bool, *, transfer: bool = False) -> Any:
    """A rich progress display on stderr (rendered only when stderr is a terminal)."""
    columns: list[Any] = [TextColumn("[bold]{task.description}"), BarColumn()]
    if transfer:
        columns += [DownloadColumn(), TransferSpeedColumn(), TextColumn("{task.fields[files]}")]
    else:
        columns += [TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn()]
    columns.append(TimeRemainingColumn())
    return Progress(*columns, console=Console(stderr=True), disable=not enabled)


def find_tpchgen() -> str:
    """The tpchgen-cli executable: on PATH, or next to this Python (a venv not activated)."""
    found = shutil.which(TPCHGEN) or shutil.which(TPCHGEN, path=str(Path(sys.executable).parent))
    if not found:
        raise ConfigError(f"{TPCHGEN} is not installed. Install it into dfbench's environment with "
                          f"`{TPCHGEN_INSTALL}` (for this checkout: `.venv/bin/{TPCHGEN_INSTALL}`).")
    return found


def tpchgen_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    return out.split()[-1] if out else "unknown"


def _validate(scale_factor: Any, partitions: Any) -> Decimal:
    problems = []
    sf: Decimal | None = None
    try:
        sf = scale_factor_of(scale_factor)
    except ConfigError:
        problems.append(f"scale factor must be a positive number (got {scale_factor!r})")
    if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
        problems.append(f"partitions must be a whole number of at least 1 (got {partitions!r})")
    if problems:
        raise ConfigError("Cannot generate TPC-H data: " + "; ".join(problems) + ".")
    assert sf is not None
    return sf


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_partials(data_dir: Path, name: str) -> None:
    for partial in data_dir.glob(f".{name}.partial-*"):
        pid = partial.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue  # another generation of the same dataset is running
        log.info("removing %s left by an interrupted generation", partial)
        shutil.rmtree(partial, ignore_errors=True)


_GENERATED = re.compile(r"Generated table (?P<table>\w+) to (?P<file>\S+)")


def _run_tpchgen(command: list[str], on_file: Callable[[str, str], None]) -> None:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "info")})
    tail: list[str] = []
    try:
        assert process.stderr is not None
        for line in process.stderr:
            tail = (tail + [line.rstrip()])[-30:]
            match = _GENERATED.search(line)
            if match:
                on_file(match["table"], match["file"])
        code = process.wait()
    except BaseException:
        process.kill()
        process.wait()
        raise
    if code != 0:
        details = "\n".join(line for line in tail if " INFO " not in line) or "\n".join(tail)
        raise DfbenchError(f"{Path(command[0]).name} failed (exit code {code}):\n{details}")


def generate_tpch(scale_factor: Any, partitions: int = 16, data_dir: str | Path = DEFAULT_DATA_DIR,
                  compression: str = "SNAPPY", *, threads: int | None = None, force: bool = False,
                  progress: bool = True) -> LocalDataset:
    """Generate TPC-H parquet data into ``<data_dir>/tpch_sf<SF>/<table>/<n>.parquet``.

    Idempotent: a complete dataset with the same settings is left alone. The data is written to a
    hidden sibling folder and moved into place at the end, and ``manifest.json`` is written last,
    so an interrupted run never leaves a folder that looks complete (the next run starts over).
    """
    sf = _validate(scale_factor, partitions)
    name = tpch_dataset_name(sf)
    data_dir = Path(data_dir)
    final = data_dir / name
    threads = threads or os.cpu_count() or 1
    existing = read_manifest(final)
    if existing is not None and is_complete(final, existing):
        same = (existing.partitions == partitions and (existing.compression or "").upper() == compression.upper())
        if not force:
            if not same:
                raise ConfigError(
                    f"{final} already holds TPC-H SF {format_decimal(sf)} with {existing.partitions} partitions "
                    f"({existing.compression}); asked for {partitions} ({compression}). Delete the folder or "
                    "pass force=True to replace it.")
            log.info("%s is complete: nothing to do", final)
            return LocalDataset(name=name, path=final, manifest=existing, generated=False)

    binary = find_tpchgen()
    version = tpchgen_version(binary)
    data_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(data_dir, name)
    partial = data_dir / f".{name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    command = [binary, "parquet", "--scale-factor", format_decimal(sf), "--parts", str(partitions),
               "--output-dir", str(partial), "--compression", compression, "--num-threads", str(threads),
               "--no-progress", "--verbose"]
    weights = {t: (w if t in TPCH_FIXED_ROWS else w / partitions) for t, w in _TABLE_WEIGHT.items()}
    total = sum(w * (1 if t in TPCH_FIXED_ROWS else partitions) for t, w in weights.items())
    ok = False
    try:
        with _progress(progress) as bar:
            task = bar.add_task(f"generate {name} ({partitions} parts, {threads} threads)", total=total)
            _run_tpchgen(command, lambda table, _file: bar.advance(task, weights.get(table, 0)))
            bar.update(task, completed=total)
            rels = _normalise_layout(partial)
            cache = _ChecksumCache(partial)
            size = sum((partial / rel).stat().st_size for rel in rels)
            check = bar.add_task("checksums", total=size)
            described = _describe_files(partial, rels, cache, threads=threads,
                                        advance=lambda n: bar.advance(check, n))
        manifest = Manifest(dataset=name, scale_factor=float(sf), partitions=partitions, compression=compression,
                            generator=Generator(name=TPCHGEN, version=version),
                            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                            tables=_tables_from(described.values()))
        _install(partial, final, manifest, cache)
        ok = True
    finally:
        if not ok:
            shutil.rmtree(partial, ignore_errors=True)
    log.info("generated %s: %d files, %d bytes", final, len(manifest.files), manifest.total_bytes)
    return LocalDataset(name=name, path=final, manifest=manifest, generated=True)


def _normalise_layout(folder: Path) -> list[str]:
    """tpchgen writes ``<table>/<table>.<k>.parquet`` (or ``<table>.parquet`` without parts):
    rename to ``<table>/<k>.parquet``, the layout the seed's datasets use."""
    rels = []
    for table_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for file in sorted(table_dir.iterdir()):
            match = re.fullmatch(rf"{re.escape(table_dir.name)}(?:\.(\d+))?\.parquet", file.name)
            if not match:
                raise DfbenchError(f"unexpected file from {TPCHGEN}: {file}")
            target = table_dir / f"{match[1] or 1}.parquet"
            if target != file:
                os.rename(file, target)
            rels.append(f"{table_dir.name}/{target.name}")
    for file in folder.iterdir():
        if file.is_file() and file.suffix == ".parquet":  # without --parts each table is one file
            table = file.stem
            (folder / table).mkdir(exist_ok=True)
            os.rename(file, folder / table / "1.parquet")
            rels.append(f"{table}/1.parquet")
    missing = [t for t in TPCH_TABLES if not (folder / t).is_dir()]
    if missing:
        raise DfbenchError(f"{TPCHGEN} produced no data for table(s) {', '.join(missing)}")
    return sorted(rels, key=_natural_key)


def _install(partial: Path, final: Path, manifest: Manifest, cache: _ChecksumCache) -> None:
    """Move the generated tables into place, then write the manifest (last)."""
    cache.path = final / CHECKSUM_CACHE
    if not final.exists():
        os.rename(partial, final)
    else:
        # The folder may hold results of earlier runs: replace only the tables and the manifest.
        (final / MANIFEST).unlink(missing_ok=True)
        for table_dir in sorted(p for p in partial.iterdir() if p.is_dir()):
            target = final / table_dir.name
            if target.exists():
                shutil.rmtree(target)
            os.rename(table_dir, target)
        shutil.rmtree(partial)
    cache.entries = {rel: entry for rel, entry in cache.entries.items() if (final / rel).exists()}
    cache.save()
    _write_atomically(final / MANIFEST, manifest.dump())


def local_dataset(dataset: str, data_dir: str | Path = DEFAULT_DATA_DIR) -> LocalDataset:
    """A complete local dataset, or a ConfigError saying how to get one."""
    folder = Path(data_dir) / dataset
    if not folder.is_dir():
        raise ConfigError(f"No dataset {dataset!r} in {data_dir}: generate it first, e.g. "
                          f"`dfbench data generate --sf 10` (dfbench.generate_tpch(scale_factor=10)).")
    manifest = read_manifest(folder)
    if manifest is None:
        raise ConfigError(f"{folder} has no {MANIFEST}: its generation was interrupted or another tool made it. "
                          "Run the generation again (it replaces the tables and keeps results).")
    if not is_complete(folder, manifest):
        raise ConfigError(f"{folder} does not match its {MANIFEST} (files missing or resized): "
                          "generate it again with force=True.")
    return LocalDataset(name=dataset, path=folder, manifest=manifest, generated=False)


def _refresh(dataset: LocalDataset, threads: int, advance: Callable[[int], None]) -> Manifest:
    """Re-check the local files against the manifest (hashing only files whose size or mtime
    changed since they were last hashed); a changed file updates the local manifest."""
    cache = _ChecksumCache(dataset.path)
    rels = [f.path for f in dataset.manifest.files]
    manifest = dataset.manifest
    known = {f.path: f for f in manifest.files}
    described = _describe_files(dataset.path, rels, cache, threads=threads, advance=advance, known=known)
    cache.save()
    changed = [rel for rel in rels if described[rel] is not known[rel]]
    if changed:
        log.warning("%s: %d file(s) changed since the manifest was written (%s); updating it",
                    dataset.name, len(changed), ", ".join(changed[:5]))
        manifest = manifest.model_copy(update={"tables": _tables_from(described.values())})
        _write_atomically(dataset.path / MANIFEST, manifest.dump())
    return manifest


# ---------------------------------------------------------------------------------------------
# the bucket


def _connect(region: str | None, cluster: Cluster | None, profile: str | None) -> Aws:
    return connect(region=default_region(region or (cluster.region if cluster else None)), profile=profile)


def _bucket(aws: Any, bucket: str | None, cluster: Cluster | None) -> str:
    if cluster is not None:
        if bucket and bucket != cluster.bucket:
            raise ConfigError(f"bucket {bucket!r} differs from cluster {cluster.name!r}'s bucket {cluster.bucket!r}")
        return cluster.bucket
    if bucket:
        return bucket
    if os.environ.get("BENCHMARK_BUCKET"):
        return os.environ["BENCHMARK_BUCKET"]
    return default_bucket_name(aws.account(), aws.region)


def _missing_bucket(bucket: str) -> ConfigError:
    return ConfigError(f"S3 bucket {bucket!r} does not exist. `dfbench provision` creates it; or set "
                       "BENCHMARK_BUCKET (or pass the bucket) to an existing bucket you can write to.")


class _Object(BaseModel):
    key: str
    size: int
    etag: str


def _list(s3: Any, bucket: str, prefix: str) -> dict[str, _Object]:
    objects = {}
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                objects[item["Key"]] = _Object(key=item["Key"], size=item["Size"], etag=item["ETag"])
    except Exception as error:
        if error_code(error) == "NoSuchBucket":
            raise _missing_bucket(bucket) from None
        raise
    return objects


def _remote_manifest(s3: Any, bucket: str, key: str) -> Manifest | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as error:
        if error_code(error) in {"NoSuchKey", "404"}:
            return None
        raise
    try:
        return Manifest.model_validate_json(body)
    except ValueError:
        log.warning("s3://%s/%s is not a dfbench manifest; ignoring it", bucket, key)
        return None


class _EtagCapture:
    """ETags S3 returns for our uploads (PutObject, CompleteMultipartUpload), by key."""

    def __init__(self, s3: Any, keys: set[str]) -> None:
        self.s3 = s3
        self.keys = keys
        self.etags: dict[str, str] = {}
        self._lock = threading.Lock()
        self._id = f"dfbench-etags-{id(self)}"

    def _params(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["dfbench_key"] = params.get("Key")

    def _after(self, parsed: dict[str, Any], context: dict[str, Any], http_response: Any = None, **_: Any) -> None:
        key = context.get("dfbench_key")
        if key in self.keys and parsed.get("ETag") and (http_response is None or http_response.status_code < 300):
            with self._lock:
                self.etags[key] = parsed["ETag"]

    def __enter__(self) -> _EtagCapture:
        events = self.s3.meta.events
        for op in ("PutObject", "CompleteMultipartUpload"):
            events.register(f"before-parameter-build.s3.{op}", self._params, unique_id=f"{self._id}-p-{op}")
            events.register(f"after-call.s3.{op}", self._after, unique_id=f"{self._id}-a-{op}")
        return self

    def __exit__(self, *_: Any) -> None:
        events = self.s3.meta.events
        for op in ("PutObject", "CompleteMultipartUpload"):
            events.unregister(f"before-parameter-build.s3.{op}", unique_id=f"{self._id}-p-{op}")
            events.unregister(f"after-call.s3.{op}", unique_id=f"{self._id}-a-{op}")


def _known_checksums(s3: Any, bucket: str, prefix: str, remote: dict[str, _Object], old: Manifest | None,
                     manifest: Manifest, max_concurrency: int) -> dict[str, str]:
    """sha256 of the remote objects whose content is known, by key.

    The remote manifest vouches for every object whose ETag and size are still the ones it
    recorded (one listing proves that); objects uploaded since the last complete sync (an
    interrupted run) carry their sha256 as metadata, read with one HeadObject each."""
    known = {}
    if old is not None:
        for item in old.files:
            key = prefix + item.path
            if key in remote and old.etags.get(item.path) == remote[key].etag and remote[key].size == item.size:
                known[key] = item.sha256
    to_head = [prefix + f.path for f in manifest.files
               if prefix + f.path in remote and prefix + f.path not in known and remote[prefix + f.path].size == f.size]

    def head(key: str) -> tuple[str, str | None]:
        return key, s3.head_object(Bucket=bucket, Key=key).get("Metadata", {}).get("sha256")

    with ThreadPoolExecutor(max_workers=max_concurrency) as pool:
        known.update({key: sha for key, sha in pool.map(head, to_head) if sha})
    return known


def _upload(s3: Any, bucket: str, prefix: str, folder: Path, files: list[DatasetFile], config: TransferConfig,
            bar: Progress) -> dict[str, str]:
    """Upload ``files`` in parallel (multipart above the threshold); returns their ETags by path."""
    task = bar.add_task(f"upload → s3://{bucket}/{prefix}", total=sum(f.size for f in files),
                        files=f"0/{len(files)} files")
    done = 0
    lock = threading.Lock()

    class Advance(BaseSubscriber):  # type: ignore[misc]
        def on_progress(self, future: Any, bytes_transferred: int, **_: Any) -> None:
            bar.advance(task, bytes_transferred)

        def on_done(self, future: Any, **_: Any) -> None:
            nonlocal done
            with lock:
                done += 1
                bar.update(task, files=f"{done}/{len(files)} files")

    with _EtagCapture(s3, {prefix + f.path for f in files}) as capture, TransferManager(s3, config) as manager:
        futures = [manager.upload(str(folder / f.path), bucket, prefix + f.path,
                                  extra_args={"Metadata": {"sha256": f.sha256},
                                              "ContentType": "application/vnd.apache.parquet"},
                                  subscribers=[Advance()]) for f in files]
        for future in futures:
            future.result()
    return {f.path: capture.etags[prefix + f.path] for f in files if prefix + f.path in capture.etags}


def _delete_keys(s3: Any, bucket: str, keys: list[str]) -> None:
    for start in range(0, len(keys), 1000):  # the DeleteObjects limit
        batch = keys[start:start + 1000]
        answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
        if answer.get("Errors"):
            first = answer["Errors"][0]
            raise DfbenchError(f"could not delete {len(answer['Errors'])} stale object(s), e.g. "
                               f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}")


def sync_dataset(dataset: str, *, bucket: str | None = None, cluster: Cluster | None = None,
                 data_dir: str | Path = DEFAULT_DATA_DIR, delete: bool = False, region: str | None = None,
                 profile: str | None = None, max_concurrency: int = 16, multipart_threshold: int = 16 * 1024 * 1024,
                 multipart_chunksize: int = 16 * 1024 * 1024, progress: bool = True) -> SyncReport:
    """Upload ``<data_dir>/<dataset>/`` to ``s3://<bucket>/<dataset>/``; unchanged objects are skipped.

    An object is unchanged when its size matches and its sha256 is known to equal the local file's
    (see :func:`_known_checksums`): content, not size and time. Before anything changes the old
    remote manifest is deleted, and the new one is uploaded last: a remote dataset with a
    manifest is always complete. Running it again resumes.
    """
    local = local_dataset(dataset, data_dir)
    aws = _connect(region, cluster, profile)
    with aws_errors(profile):
        s3 = aws.client("s3")
        bucket = _bucket(aws, bucket, cluster)
        prefix = f"{dataset}/"
        manifest_key = prefix + MANIFEST
        remote = _list(s3, bucket, prefix)

    with _progress(progress, transfer=True) as bar, aws_errors(profile):
        check = bar.add_task(f"check {dataset}", total=local.manifest.total_bytes, files="")
        manifest = _refresh(local, max(1, os.cpu_count() or 1), lambda n: bar.advance(check, n))
        bar.remove_task(check)

        old = _remote_manifest(s3, bucket, manifest_key) if manifest_key in remote else None
        known = _known_checksums(s3, bucket, prefix, remote, old, manifest, max_concurrency)
        uploads = [f for f in manifest.files if known.get(prefix + f.path) != f.sha256]
        skipped = [f for f in manifest.files if known.get(prefix + f.path) == f.sha256]
        local_keys = {prefix + f.path for f in manifest.files} | {manifest_key}
        stale = sorted(k for k in remote if k not in local_keys) if delete else []
        etags = {f.path: remote[prefix + f.path].etag for f in skipped}

        if (uploads or stale) and manifest_key in remote:
            s3.delete_object(Bucket=bucket, Key=manifest_key)  # no longer true once anything changes
        if uploads:
            config = TransferConfig(multipart_threshold=multipart_threshold, multipart_chunksize=multipart_chunksize,
                                    max_concurrency=max_concurrency, use_threads=True)
            etags.update(_upload(s3, bucket, prefix, local.path, uploads, config, bar))
        _delete_keys(s3, bucket, stale)

        final = manifest.model_copy(update={"etags": dict(sorted(etags.items()))})
        manifest_needed = bool(uploads or stale) or old is None or old.dump() != final.dump()
        if manifest_needed:
            body = final.dump().encode()
            s3.put_object(Bucket=bucket, Key=manifest_key, Body=body, ContentType="application/json",
                          Metadata={"sha256": hashlib.sha256(body).hexdigest()})
    report = SyncReport(dataset=dataset, bucket=bucket, uploaded_files=len(uploads),
                        uploaded_bytes=sum(f.size for f in uploads), skipped_files=len(skipped),
                        deleted_files=len(stale), uploaded=[f.path for f in uploads], deleted=stale,
                        manifest_uploaded=manifest_needed)
    log.info("synced %s to s3://%s/%s: %d uploaded (%d bytes), %d unchanged, %d deleted", dataset, bucket, prefix,
             report.uploaded_files, report.uploaded_bytes, report.skipped_files, report.deleted_files)
    return report


# ---------------------------------------------------------------------------------------------
# discovery


def remote_tables(bucket: str | None, dataset: str, *, cluster: Cluster | None = None, region: str | None = None,
                  profile: str | None = None) -> list[RemoteTable]:
    """The tables of a dataset in the bucket, from its manifest (or a listing when it has none):
    benchmarking a remote dataset needs no local copy."""
    aws = _connect(region, cluster, profile)
    with aws_errors(profile):
        s3 = aws.client("s3")
        bucket = _bucket(aws, bucket, cluster)
        prefix = f"{dataset}/"
        objects = _list(s3, bucket, prefix)
        manifest = _remote_manifest(s3, bucket, prefix + MANIFEST) if prefix + MANIFEST in objects else None
    if manifest is not None:
        return [RemoteTable(name=name, location=f"s3://{bucket}/{prefix}{name}/", files=len(t.files), bytes=t.bytes,
                            rows=t.rows) for name, t in manifest.tables.items()]
    grouped: dict[str, list[_Object]] = {}
    for key, item in objects.items():
        parts = key[len(prefix):].split("/")
        if len(parts) == 2 and parts[1].endswith(".parquet"):
            grouped.setdefault(parts[0], []).append(item)
    if not grouped:
        raise ConfigError(f"No dataset {dataset!r} in s3://{bucket}/: sync it first with "
                          f"`dfbench data sync {dataset}`.")
    return [RemoteTable(name=name, location=f"s3://{bucket}/{prefix}{name}/", files=len(items),
                        bytes=sum(i.size for i in items), rows=None) for name, items in sorted(grouped.items())]


def list_datasets(data_dir: str | Path = DEFAULT_DATA_DIR, bucket: str | None = None, *,
                  cluster: Cluster | None = None, region: str | None = None,
                  profile: str | None = None) -> list[DatasetInfo]:
    """Local datasets (folders of ``data_dir``) and, with a bucket or cluster, the bucket's."""
    found = []
    folder = Path(data_dir)
    if folder.is_dir():
        for path in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            manifest = read_manifest(path)
            if manifest is not None:
                found.append(DatasetInfo(name=path.name, location="local", complete=is_complete(path, manifest),
                                         files=len(manifest.files), bytes=manifest.total_bytes,
                                         scale_factor=manifest.scale_factor))
                continue
            files = [p for p in path.glob("*/*.parquet")]
            if files:
                found.append(DatasetInfo(name=path.name, location="local", complete=False, files=len(files),
                                         bytes=sum(p.stat().st_size for p in files), scale_factor=None))
    if bucket is None and cluster is None:
        return found
    aws = _connect(region, cluster, profile)
    with aws_errors(profile):
        s3 = aws.client("s3")
        bucket = _bucket(aws, bucket, cluster)
        objects = _list(s3, bucket, "")
        by_dataset: dict[str, list[_Object]] = {}
        for key, item in objects.items():
            parts = key.split("/")
            if len(parts) == 3 and parts[2].endswith(".parquet") or (len(parts) == 2 and parts[1] == MANIFEST):
                by_dataset.setdefault(parts[0], []).append(item)
        for name, items in sorted(by_dataset.items()):
            manifest = _remote_manifest(s3, bucket, f"{name}/{MANIFEST}") \
                if any(i.key.endswith("/" + MANIFEST) for i in items) else None
            data = [i for i in items if i.key.endswith(".parquet")]
            found.append(DatasetInfo(name=name, location=f"s3://{bucket}", complete=manifest is not None,
                                     files=len(data), bytes=sum(i.size for i in data),
                                     scale_factor=manifest.scale_factor if manifest else None))
    return found
