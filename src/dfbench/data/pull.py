"""Fetch a complete dataset from the bucket into the data folder (``pull_dataset``): the reverse of
the sync, for a dataset generated on the cluster (or synced from another machine) that is wanted
locally.

Only a dataset with a manifest (complete) is fetched, and only the files its manifest lists;
each file is checked against the manifest's sha256 before it takes its name, files already
present with that content are kept, and the local manifest is written last, so an interrupted
pull never looks complete and the next one fetches only what is missing.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from dfbench.aws.objects import download_file, transfer_progress
from dfbench.data.catalog import DEFAULT_DATA_DIR, LocalDataset, connect_to_data, data_bucket
from dfbench.data.manifest import MANIFEST, ChecksumCache, DatasetFile, file_in, read_remote_manifest
from dfbench.data.scale import checked_dataset
from dfbench.errors import ConfigError, DfbenchError, aws_errors
from dfbench.files import checked_folder, sha256_file, write_atomically

if TYPE_CHECKING:
    from dfbench.models import Cluster

log = logging.getLogger("dfbench")


def pull_dataset(dataset: str, *, bucket: str | None = None, cluster: Cluster | None = None,
                 data_dir: str | Path = DEFAULT_DATA_DIR, region: str | None = None, profile: str | None = None,
                 max_concurrency: int = 8, progress: bool = True) -> LocalDataset:
    """Download ``s3://<bucket>/<dataset>/`` into ``<data_dir>/<dataset>/`` as its manifest lists
    it; returns the local dataset (``generated`` is False when nothing had to be fetched)."""
    name = checked_dataset(dataset)
    folder = checked_folder(data_dir, write=True) / name
    aws = connect_to_data(region, cluster, profile)
    with aws_errors(profile):
        s3 = aws.client("s3")
        bucket = data_bucket(aws, bucket, cluster)
        manifest = read_remote_manifest(s3, bucket, f"{name}/{MANIFEST}")
        if manifest is None:
            raise ConfigError(f"s3://{bucket}/{name}/ has no manifest, so it is not a complete dataset: generate it "
                              f"(`dfbench data generate --on-cluster`) or sync it first.")
        if manifest.dataset != name:
            raise ConfigError(f"s3://{bucket}/{name}/{MANIFEST} describes {manifest.dataset!r}, not {name!r}.")
        folder.mkdir(parents=True, exist_ok=True)
        cache = ChecksumCache(folder)
        missing = [f for f in manifest.files if not _present(folder, f, cache)]
        if missing:
            (folder / MANIFEST).unlink(missing_ok=True)  # untrue until every file is in place
            with transfer_progress(progress) as bar:
                task = bar.add_task(f"pull s3://{bucket}/{name}/", total=sum(f.size for f in missing),
                                    files=f"0/{len(missing)} files")
                done = 0

                def fetch(item: DatasetFile) -> None:
                    nonlocal done
                    target = file_in(folder, item.path)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
                    try:
                        download_file(s3, bucket, f"{name}/{item.path}", partial,
                                      on_bytes=lambda n: bar.advance(task, n))
                        got = sha256_file(partial)
                        if got != item.sha256:
                            raise DfbenchError(f"s3://{bucket}/{name}/{item.path} has sha256 {got}, its manifest "
                                               f"says {item.sha256}: the bucket's copy changed; generate or sync "
                                               "the dataset again.")
                        os.replace(partial, target)
                    finally:
                        partial.unlink(missing_ok=True)
                    cache.store(item.path, target.stat(), item.sha256)
                    done += 1
                    bar.update(task, files=f"{done}/{len(missing)} files")

                with ThreadPoolExecutor(max_workers=max(1, max_concurrency)) as pool:
                    list(pool.map(fetch, missing))
    # Files of the manifest's tables it does not list (an earlier dataset of more partitions).
    listed = {f.path for f in manifest.files}
    for table in manifest.tables:
        for stale in sorted((folder / table).glob("*.parquet")):
            if f"{table}/{stale.name}" not in listed:
                stale.unlink()
    cache.entries = {rel: entry for rel, entry in cache.entries.items() if rel in listed}
    cache.save()
    local = manifest.model_copy(update={"etags": {}})
    if missing or not (folder / MANIFEST).exists():
        write_atomically(folder / MANIFEST, local.dump())
    log.info("pulled s3://%s/%s/ to %s: %d file(s) fetched, %d already there", bucket, name, folder, len(missing),
             len(manifest.files) - len(missing))
    return LocalDataset(name=name, path=folder, manifest=local, generated=bool(missing))


def _present(folder: Path, item: DatasetFile, cache: ChecksumCache) -> bool:
    """The file is there with the manifest's size and sha256 (hashed only when the cache does
    not know it for its size and modification time)."""
    path = file_in(folder, item.path)
    try:
        stat = path.stat()
    except FileNotFoundError:
        return False
    if stat.st_size != item.size:
        return False
    sha = cache.lookup(item.path, stat)
    if sha is None:
        sha = sha256_file(path)
        cache.store(item.path, stat, sha)
    return sha == item.sha256
