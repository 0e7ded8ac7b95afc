"""The bucket sync: upload a complete local dataset to ``s3://<bucket>/<dataset>/``, skipping
objects whose content is known to be the same, with the manifest uploaded last.

Only the files the manifest lists are uploaded: results kept in a dataset folder stay local.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dfbench.aws.objects import StoredObject, Transfer, Upload, list_objects, transfer_progress, upload_files
from dfbench.data.catalog import DEFAULT_DATA_DIR, LocalDataset, connect_to_data, data_bucket, local_dataset
from dfbench.data.manifest import (
    MANIFEST,
    ChecksumCache,
    DataRecord,
    Manifest,
    describe_files,
    file_in,
    read_remote_manifest,
    tables_from,
    write_remote_manifest,
)
from dfbench.errors import DfbenchError, aws_errors
from dfbench.files import write_atomically

if TYPE_CHECKING:
    from dfbench.models import Cluster

log = logging.getLogger("dfbench")

PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"


class SyncReport(DataRecord):
    dataset: str
    bucket: str
    uploaded_files: int
    uploaded_bytes: int
    skipped_files: int
    deleted_files: int
    uploaded: list[str]
    deleted: list[str]
    manifest_uploaded: bool


def _refresh(dataset: LocalDataset, threads: int, advance: Callable[[int], None]) -> Manifest:
    """Re-check the local files against the manifest (hashing only files whose size or mtime
    changed since they were last hashed); a changed file updates the local manifest."""
    cache = ChecksumCache(dataset.path)
    rels = [f.path for f in dataset.manifest.files]
    manifest = dataset.manifest
    known = {f.path: f for f in manifest.files}
    described = describe_files(dataset.path, rels, cache, threads=threads, advance=advance, known=known)
    cache.save()
    changed = [rel for rel in rels if described[rel] is not known[rel]]
    if changed:
        log.warning("%s: %d file(s) changed since the manifest was written (%s); updating it",
                    dataset.name, len(changed), ", ".join(changed[:5]))
        manifest = manifest.model_copy(update={"tables": tables_from(described.values())})
        write_atomically(dataset.path / MANIFEST, manifest.dump())
    return manifest


def _known_checksums(s3: Any, bucket: str, prefix: str, remote: dict[str, StoredObject], old: Manifest | None,
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


def delete_keys(s3: Any, bucket: str, keys: list[str]) -> None:
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
    dataset = local.name  # upstream's spelling (tpch/sf10) syncs to dfbench's prefix (tpch_sf10/)
    aws = connect_to_data(region, cluster, profile)
    with aws_errors(profile):
        s3 = aws.client("s3")
        bucket = data_bucket(aws, bucket, cluster)
        prefix = f"{dataset}/"
        manifest_key = prefix + MANIFEST
        remote = list_objects(s3, bucket, prefix)

    with transfer_progress(progress) as bar, aws_errors(profile):
        check = bar.add_task(f"check {dataset}", total=local.manifest.total_bytes, files="")
        manifest = _refresh(local, max(1, os.cpu_count() or 1), lambda n: bar.advance(check, n))
        bar.remove_task(check)

        old = read_remote_manifest(s3, bucket, manifest_key) if manifest_key in remote else None
        known = _known_checksums(s3, bucket, prefix, remote, old, manifest, max_concurrency)
        uploads = [f for f in manifest.files if known.get(prefix + f.path) != f.sha256]
        skipped = [f for f in manifest.files if known.get(prefix + f.path) == f.sha256]
        local_keys = {prefix + f.path for f in manifest.files} | {manifest_key}
        stale = sorted(k for k in remote if k not in local_keys) if delete else []
        etags = {f.path: remote[prefix + f.path].etag for f in skipped}

        if (uploads or stale) and manifest_key in remote:
            s3.delete_object(Bucket=bucket, Key=manifest_key)  # no longer true once anything changes
        if uploads:
            transfer = Transfer(threshold=multipart_threshold, chunksize=multipart_chunksize,
                                concurrency=max_concurrency)
            sent = upload_files(s3, bucket, [Upload(path=file_in(local.path, f.path), key=prefix + f.path, size=f.size,
                                                    sha256=f.sha256, content_type=PARQUET_CONTENT_TYPE)
                                             for f in uploads],
                                transfer=transfer, bar=bar, description=f"upload → s3://{bucket}/{prefix}")
            etags.update({f.path: sent[prefix + f.path] for f in uploads if prefix + f.path in sent})
        delete_keys(s3, bucket, stale)

        final = manifest.model_copy(update={"etags": dict(sorted(etags.items()))})
        manifest_needed = bool(uploads or stale) or old is None or old.dump() != final.dump()
        if manifest_needed:
            write_remote_manifest(s3, bucket, manifest_key, final)
    report = SyncReport(dataset=dataset, bucket=bucket, uploaded_files=len(uploads),
                        uploaded_bytes=sum(f.size for f in uploads), skipped_files=len(skipped),
                        deleted_files=len(stale), uploaded=[f.path for f in uploads], deleted=stale,
                        manifest_uploaded=manifest_needed)
    log.info("synced %s to s3://%s/%s: %d uploaded (%d bytes), %d unchanged, %d deleted", dataset, bucket, prefix,
             report.uploaded_files, report.uploaded_bytes, report.skipped_files, report.deleted_files)
    return report
