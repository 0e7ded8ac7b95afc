"""Worker binaries in the bucket: publish one, content-addressed::

    s3://<bucket>/.dfbench/artifacts/worker/<sha256>/worker    the binary, sha256 also in its metadata
    s3://<bucket>/.dfbench/artifacts/worker/latest             the sha256 of the last one deployed (or
                                                               published), then the worker.service it runs
                                                               under; its kind in the metadata

so publishing the same binary twice uploads nothing, and an instance's boot script installs
whatever ``latest`` names (see :mod:`dfbench.worker.scripts`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from dfbench.aws.objects import Transfer, Upload, missing_bucket, stored_size, transfer_progress, upload_files
from dfbench.aws.session import connect, default_region
from dfbench.errors import aws_errors, error_code
from dfbench.models import Record
from dfbench.worker.build import check_binary
from dfbench.worker.kinds import KINDS, WorkerKind
from dfbench.worker.scripts import ARTIFACT_PREFIX, LATEST_KEY, latest_record, worker_unit

log = logging.getLogger("dfbench")

# Multipart above 16 MiB (a DataFusion release binary is larger), in 8 MiB parts sent in parallel.
_TRANSFER = Transfer(threshold=16 * 1024 * 1024, chunksize=8 * 1024 * 1024, concurrency=8)


class Artifact(Record):
    """A worker binary in the bucket; ``uploaded`` is False when it was there already. ``kind``
    is the kind it was published as (``latest``'s unit runs it with that kind's arguments)."""

    sha256: str
    kind: WorkerKind
    key: str
    size: int
    uploaded: bool
    url: str


# User metadata of ``latest``: the kind its worker was published as (S3 sends it back on HEAD as
# x-amz-meta-worker-kind), so a run can say which kind produced its numbers; for a worker dfbench
# built, the cargo package and the features (comma-separated) it was built with.
KIND_METADATA = "worker-kind"
PACKAGE_METADATA = "worker-package"
FEATURES_METADATA = "worker-features"


class PublishedWorker(Record):
    """What ``latest`` says of the worker it names (None/empty where a deploy did not record it)."""

    kind: WorkerKind | None = None
    package: str | None = None
    features: tuple[str, ...] = ()


def artifact_key(sha256: str, name: str = "worker") -> str:
    """Where a binary called ``name`` is stored by content: the worker's
    ``<ARTIFACT_PREFIX>/<sha256>/worker``, any other tool's (a data generator) beside it as
    ``.dfbench/artifacts/<name>/<sha256>/<name>``."""
    return f"{ARTIFACT_PREFIX.rpartition('/')[0]}/{name}/{sha256}/{name}"


def publish_worker(binary: str | Path, *, bucket: str, region: str | None = None, profile: str | None = None,
                   args: Sequence[str] = (), env: Mapping[str, str] | None = None,
                   kind: WorkerKind = "tag-discovery", dns_name: str | None = None,
                   progress: bool = True) -> Artifact:
    """:func:`upload_worker`, then :func:`point_latest` at it with the ``worker.service`` for
    ``args`` and ``env``: what instances booting later install. A deploy does the two apart, and
    points ``latest`` only once every instance runs the new worker."""
    artifact = upload_worker(binary, bucket=bucket, region=region, profile=profile, kind=kind, progress=progress)
    point_latest(artifact.sha256, bucket=bucket, region=region, profile=profile, args=args, env=env, kind=kind,
                 dns_name=dns_name)
    return artifact


def upload_worker(binary: str | Path, *, bucket: str, region: str | None = None, profile: str | None = None,
                  kind: WorkerKind = "tag-discovery", progress: bool = True) -> Artifact:
    """Upload the worker binary (of ``kind``) to ``s3://<bucket>/.dfbench/artifacts/worker/<sha256>/worker``
    unless it is there already; ``latest`` is left as it is.

    The binary is checked first: nothing reaches S3 for a file that could not run on the cluster.
    """
    path = Path(binary)
    sha = check_binary(path)
    key, uploaded = upload_artifact(path, sha, name="worker", bucket=bucket, region=region, profile=profile,
                                    progress=progress)
    return Artifact(sha256=sha, kind=kind, key=key, size=path.stat().st_size, uploaded=uploaded,
                    url=f"s3://{bucket}/{key}")


def upload_artifact(path: Path, sha256: str, *, name: str, bucket: str, region: str | None = None,
                    profile: str | None = None, progress: bool = True) -> tuple[str, bool]:
    """Upload the checked binary ``path`` (of sha256 ``sha256``) to :func:`artifact_key` unless an
    object of its size is there already; returns the key and whether it was uploaded."""
    size = path.stat().st_size
    key = artifact_key(sha256, name)
    aws = connect(region=default_region(region), profile=profile)
    with aws_errors(profile), _bucket_named(bucket):
        s3 = aws.client("s3")
        stored = stored_size(s3, bucket, key)
        uploaded = stored != size
        if stored is not None and uploaded:
            # Same sha, other size: not what publish wrote (a foreign or damaged object).
            log.warning("s3://%s/%s holds %d bytes, not %d: uploading it again", bucket, key, stored, size)
        if uploaded:
            with transfer_progress(progress) as bar:
                upload_files(s3, bucket, [Upload(path=path, key=key, size=size, sha256=sha256,
                                                 content_type="application/octet-stream")],
                             transfer=_TRANSFER, bar=bar, description=f"upload {name} → s3://{bucket}/{key}")
    log.info("%s %s %s s3://%s/%s", name, sha256[:12], "uploaded to" if uploaded else "already in", bucket, key)
    return key, uploaded


def point_latest(sha256: str, *, bucket: str, region: str | None = None, profile: str | None = None,
                 args: Sequence[str] = (), env: Mapping[str, str] | None = None,
                 kind: WorkerKind = "tag-discovery", dns_name: str | None = None,
                 secrets: Mapping[str, str] | None = None, package: str | None = None,
                 features: Sequence[str] = ()) -> None:
    """Point ``.dfbench/artifacts/worker/latest`` at the uploaded worker ``sha256``, with the unit
    it runs under (a worker of ``kind``; ``secrets`` by their parameter names only) and the kind,
    and the cargo ``package`` and ``features`` of a build, in its metadata: every instance booting
    from now on installs it, as root."""
    region = default_region(region)
    metadata: dict[str, str] = {KIND_METADATA: kind}
    if package is not None:
        metadata.update({PACKAGE_METADATA: package, FEATURES_METADATA: ",".join(features)})
    record = latest_record(sha256, worker_unit(bucket=bucket, region=region, args=args, env=env, kind=kind,
                                               dns_name=dns_name, secrets=secrets))
    aws = connect(region=region, profile=profile)
    with aws_errors(profile), _bucket_named(bucket):
        aws.client("s3").put_object(Bucket=bucket, Key=LATEST_KEY, Body=record.encode(), ContentType="text/plain",
                                    Metadata=metadata)
    log.info("s3://%s/%s now names worker %s", bucket, LATEST_KEY, sha256[:12])


@contextmanager
def _bucket_named(bucket: str) -> Iterator[None]:
    """A NoSuchBucket escaping the block becomes the error saying how to create the bucket."""
    try:
        yield
    except ClientError as error:
        if error_code(error) == "NoSuchBucket":
            raise missing_bucket(bucket) from None
        raise


def published_worker(s3: Any, bucket: str) -> PublishedWorker:
    """What ``latest`` records of the worker last published to ``bucket`` (the one deploy installed
    everywhere and instances booting later install): its kind, and the package and features it was
    built from; empty when none was published, or by a dfbench that did not record them."""
    try:
        metadata = s3.head_object(Bucket=bucket, Key=LATEST_KEY).get("Metadata", {})
    except ClientError as error:
        if error_code(error) in ("404", "NoSuchKey"):
            return PublishedWorker()
        raise
    features = str(metadata.get(FEATURES_METADATA) or "")
    return PublishedWorker(kind=next((kind for kind in KINDS if kind == metadata.get(KIND_METADATA)), None),
                           package=metadata.get(PACKAGE_METADATA) or None,
                           features=tuple(f for f in features.split(",") if f))
