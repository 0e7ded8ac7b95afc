"""Dataset manifests: what a complete dataset holds, reading one (local or in the bucket),
the completeness check, and describing files (size, sha256, rows) with a local checksum cache.

``<dataset>/manifest.json`` is written last, locally and in the bucket: its presence means the
dataset is complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dfbench.errors import ConfigError, DfbenchError, error_code
from dfbench.files import checked_dataset_name, is_safe_name, sha256_file, write_atomically
from dfbench.sql import IDENTIFIER

log = logging.getLogger("dfbench")

MANIFEST = "manifest.json"
CHECKSUM_CACHE = ".checksums.json"  # local only: sha256 by (size, mtime) so a sync need not re-hash
MANIFEST_FORMAT = 1


class DataRecord(BaseModel):
    """The base of the dataset records: immutable, and tolerant of fields a newer dfbench added."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class DatasetFile(DataRecord):
    path: str  # relative to the dataset folder, "/"-separated: "lineitem/1.parquet"
    size: int
    sha256: str
    rows: int


class TableInfo(DataRecord):
    rows: int
    bytes: int
    files: list[DatasetFile]


class Generator(DataRecord):
    name: str
    version: str


class Manifest(DataRecord):
    """What a complete dataset holds. The copy in the bucket also maps each file to the ETag S3
    gave it (``etags``), so the next sync can tell from one listing which objects are unchanged."""

    format: int = MANIFEST_FORMAT
    dataset: str
    benchmark: str = "tpch"
    scale_factor: float | None  # None for a downloaded dataset (ClickBench), which has none
    partitions: int
    compression: str | None = None
    generator: Generator
    created_at: str
    tables: dict[str, TableInfo]
    etags: dict[str, str] = Field(default_factory=dict)

    # A manifest may come from anyone who can write to the bucket or the data folder: its names
    # become SQL identifiers, folder names and S3 keys, so each is checked before any is used.
    @field_validator("dataset")
    @classmethod
    def _safe_dataset(cls, name: str) -> str:
        try:
            return checked_dataset_name(name)
        except ConfigError as error:
            raise ValueError(str(error)) from None

    @model_validator(mode="after")
    def _confined(self) -> Manifest:
        for table, info in self.tables.items():
            if not IDENTIFIER.match(table):
                raise ValueError(f"table name {table!r} is not a lower-case SQL identifier")
            for item in info.files:
                folder, _, name = item.path.partition("/")
                if folder != table or not is_safe_name(name):
                    raise ValueError(f"file {item.path!r} of table {table} is not <table>/<file name> "
                                     "inside the dataset folder")
        return self

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


def read_manifest(folder: Path) -> Manifest | None:
    path = folder / MANIFEST
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValueError as error:
        log.warning("ignoring unreadable %s: %s", path, error)
        return None


def read_remote_manifest(s3: Any, bucket: str, key: str) -> Manifest | None:
    """The manifest at ``s3://<bucket>/<key>``; None when there is none, or not a dfbench one."""
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


def write_remote_manifest(s3: Any, bucket: str, key: str, manifest: Manifest) -> None:
    """Put ``manifest`` at ``s3://<bucket>/<key>``, its sha256 in the object's metadata as for
    every object dfbench writes. Written last: its presence says the dataset is complete."""
    body = manifest.dump().encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json",
                  Metadata={"sha256": hashlib.sha256(body).hexdigest()})


def file_in(folder: Path, rel: str) -> Path:
    """``folder / rel``, refused (ConfigError) when it resolves outside ``folder``: a table
    folder or file that is a symbolic link elsewhere is never read, hashed or uploaded."""
    path = folder / rel
    if not path.resolve().is_relative_to(folder.resolve()):
        raise ConfigError(f"{path} leads outside {folder} (a symbolic link?): dfbench reads only files inside "
                          "the dataset folder; replace the link with the files.")
    return path


def is_complete(folder: Path, manifest: Manifest | None = None) -> bool:
    """A manifest, and every file it lists present with its size: the cheap completeness check."""
    manifest = manifest or read_manifest(folder)
    if manifest is None:
        return False
    for item in manifest.files:
        try:
            if file_in(folder, item.path).stat().st_size != item.size:
                return False
        except FileNotFoundError:
            return False
    return True


def _parquet_rows(path: Path) -> int:
    try:
        # pyarrow only here: a sync of files already described never needs it, and it is the
        # slowest import of a no-op `dfbench data sync`.
        import pyarrow.parquet as pq

        return int(pq.read_metadata(path).num_rows)
    except Exception as error:
        raise DfbenchError(f"{path} is not a readable parquet file ({error}); regenerate the dataset.") from None


class ChecksumCache:
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
        write_atomically(self.path, json.dumps(self.entries, sort_keys=True))


def describe_files(folder: Path, rels: list[str], cache: ChecksumCache, *, threads: int,
                   advance: Callable[[int], None] = lambda n: None,
                   known: dict[str, DatasetFile] | None = None) -> dict[str, DatasetFile]:
    """size, sha256 and row count of each file, hashed in parallel (hashlib releases the GIL).
    A ``known`` entry with the same size and checksum is reused (no parquet footer read)."""

    def one(rel: str) -> DatasetFile:
        path = file_in(folder, rel)
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


def tables_from(files: Iterable[DatasetFile]) -> dict[str, TableInfo]:
    """The files grouped by table (their first folder), in natural order (2.parquet before 10)."""
    grouped: dict[str, list[DatasetFile]] = {}
    for item in files:
        grouped.setdefault(item.path.split("/", 1)[0], []).append(item)
    tables = {}
    for name in sorted(grouped):
        items = sorted(grouped[name], key=lambda f: natural_key(f.path))
        tables[name] = TableInfo(rows=sum(f.rows for f in items), bytes=sum(f.size for f in items), files=items)
    return tables


def natural_key(text: str) -> list[Any]:
    """Sort key that orders the numbers in ``text`` by value: "2.parquet" before "10.parquet"."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]
