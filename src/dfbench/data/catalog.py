"""Which datasets there are and where: dataset names, the complete local dataset a run or sync
needs, the datasets of the data folder and of the bucket, and a remote dataset's tables.

Layout (compatible with the CDK tooling's ``gen-tpch.sh`` / ``sync-bucket``), the same for every
benchmark's dataset (``tpch_sf10``, ``tpcds_sf1``, ``clickbench_0-100``)::

    <data_dir>/<dataset>/<table>/<n>.parquet        one folder per table, parquet files only
    <data_dir>/<dataset>/manifest.json              written last: its presence means "complete"
    s3://<bucket>/<dataset>/...                     the same tree; manifest.json uploaded last
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from dfbench.aws.objects import StoredObject, list_objects
from dfbench.aws.session import Aws, connect, default_bucket_name, default_region
from dfbench.data.manifest import MANIFEST, DataRecord, Manifest, is_complete, read_manifest, read_remote_manifest
from dfbench.data.scale import checked_dataset, make_command
from dfbench.errors import ConfigError, aws_errors
from dfbench.sql import quoted_identifier

if TYPE_CHECKING:
    from dfbench.models import Cluster

DEFAULT_DATA_DIR = "benchmarks/data"


class LocalDataset(DataRecord):
    name: str
    path: Path
    manifest: Manifest
    generated: bool  # False when it was already complete and nothing was done


class RemoteTable(DataRecord):
    name: str
    location: str  # s3://bucket/dataset/table/
    files: int
    bytes: int
    rows: int | None  # known from the manifest only


class DatasetInfo(DataRecord):
    name: str
    location: str  # "local" or "s3://bucket"
    complete: bool
    files: int
    bytes: int
    scale_factor: float | None


def local_dataset(dataset: str, data_dir: str | Path = DEFAULT_DATA_DIR) -> LocalDataset:
    """A complete local dataset, or a ConfigError saying how to get one."""
    dataset = checked_dataset(dataset)
    folder = Path(data_dir) / dataset
    if not folder.is_dir():
        command = make_command(dataset) or "dfbench data generate --sf 10"
        raise ConfigError(f"No dataset {dataset!r} in {data_dir}: make it first, e.g. `{command}`.")
    manifest = read_manifest(folder)
    if manifest is None:
        raise ConfigError(f"{folder} has no valid {MANIFEST} (see any warning above): its generation was interrupted "
                          "or another tool made it. Run the generation again (it replaces the tables and keeps "
                          "results).")
    if not is_complete(folder, manifest):
        raise ConfigError(f"{folder} does not match its {MANIFEST} (files missing or resized): "
                          "generate it again with force=True.")
    return LocalDataset(name=dataset, path=folder, manifest=manifest, generated=False)


def connect_to_data(region: str | None, cluster: Cluster | None, profile: str | None) -> Aws:
    """The AWS session for the datasets' bucket: in the cluster's region when a cluster is given."""
    return connect(region=default_region(region or (cluster.region if cluster else None)), profile=profile)


def data_bucket(aws: Aws, bucket: str | None, cluster: Cluster | None) -> str:
    """The bucket that holds the datasets: the cluster's, the one given, BENCHMARK_BUCKET, or the
    account's default bucket in the session's region."""
    if cluster is not None:
        if bucket and bucket != cluster.bucket:
            raise ConfigError(f"bucket {bucket!r} differs from cluster {cluster.name!r}'s bucket {cluster.bucket!r}")
        return cluster.bucket
    if bucket:
        return bucket
    if os.environ.get("BENCHMARK_BUCKET"):
        return os.environ["BENCHMARK_BUCKET"]
    return default_bucket_name(aws.account(), aws.region)


def remote_tables(bucket: str | None, dataset: str, *, cluster: Cluster | None = None, region: str | None = None,
                  profile: str | None = None) -> list[RemoteTable]:
    """The tables of a dataset in the bucket, from its manifest (or a listing when it has none):
    benchmarking a remote dataset needs no local copy."""
    aws = connect_to_data(region, cluster, profile)
    with aws_errors(profile):
        s3 = aws.client("s3")
        bucket = data_bucket(aws, bucket, cluster)
        dataset = checked_dataset(dataset)
        prefix = f"{dataset}/"
        objects = list_objects(s3, bucket, prefix)
        manifest = read_remote_manifest(s3, bucket, prefix + MANIFEST) if prefix + MANIFEST in objects else None
    if manifest is not None:
        return [RemoteTable(name=name, location=f"s3://{bucket}/{prefix}{name}/", files=len(t.files), bytes=t.bytes,
                            rows=t.rows) for name, t in manifest.tables.items()]
    grouped: dict[str, list[StoredObject]] = {}
    for key, item in objects.items():
        parts = key[len(prefix):].split("/")
        if len(parts) == 2 and parts[1].endswith(".parquet"):
            grouped.setdefault(parts[0], []).append(item)
    for name in grouped:
        quoted_identifier(name)  # the names become SQL identifiers: a crafted key stops here
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
    aws = connect_to_data(region, cluster, profile)
    with aws_errors(profile):
        s3 = aws.client("s3")
        bucket = data_bucket(aws, bucket, cluster)
        objects = list_objects(s3, bucket, "")
        by_dataset: dict[str, list[StoredObject]] = {}
        for key, item in objects.items():
            parts = key.split("/")
            if (len(parts) == 3 and parts[2].endswith(".parquet")) or (len(parts) == 2 and parts[1] == MANIFEST):
                by_dataset.setdefault(parts[0], []).append(item)
        for name, items in sorted(by_dataset.items()):
            manifest = read_remote_manifest(s3, bucket, f"{name}/{MANIFEST}") \
                if any(i.key.endswith("/" + MANIFEST) for i in items) else None
            data = [i for i in items if i.key.endswith(".parquet")]
            found.append(DatasetInfo(name=name, location=f"s3://{bucket}", complete=manifest is not None,
                                     files=len(data), bytes=sum(i.size for i in data),
                                     scale_factor=manifest.scale_factor if manifest else None))
    return found
