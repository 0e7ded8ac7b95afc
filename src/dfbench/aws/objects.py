"""S3 objects: the one uploader (parallel, multipart, with a progress bar), downloads, listing and sizes.

Dataset sync and worker publish both upload through :func:`upload_files`. Every object it
writes carries the sha256 of its content as metadata, so a later run can trust what is in the
bucket without downloading it; the ETags S3 returns are handed back for the same purpose.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from dfbench.errors import ConfigError, error_code

if TYPE_CHECKING:
    from rich.progress import Progress

# s3transfer and rich's progress display are imported by the functions that use them: a sync
# with nothing to upload, the common case, should not pay for a transfer manager's start-up.


def missing_bucket(bucket: str) -> ConfigError:
    """The error for a bucket that does not exist (S3's NoSuchBucket), saying how to get one."""
    return ConfigError(f"S3 bucket {bucket!r} does not exist. `dfbench provision` creates it; or set "
                       "BENCHMARK_BUCKET (or pass the bucket) to an existing bucket you can write to.")


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    etag: str


def list_objects(s3: Any, bucket: str, prefix: str) -> dict[str, StoredObject]:
    """Every object under ``prefix``, by key."""
    objects = {}
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                objects[item["Key"]] = StoredObject(key=item["Key"], size=item["Size"], etag=item["ETag"])
    except ClientError as error:
        if error_code(error) == "NoSuchBucket":
            raise missing_bucket(bucket) from None
        raise
    return objects


def stored_size(s3: Any, bucket: str, key: str) -> int | None:
    """The object's size, or None when there is no such object."""
    try:
        return int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
    except ClientError as error:
        # HEAD answers carry no body, so a missing key and a missing bucket both read "404";
        # the upload that follows tells them apart.
        if error_code(error) in {"404", "NoSuchKey"}:
            return None
        raise


def transfer_progress(enabled: bool) -> Progress:
    """A rich progress display of bytes and files sent, on stderr (rendered only when stderr is a
    terminal). Its tasks need a ``files`` field: :func:`upload_files` counts files in it."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TextColumn("{task.fields[files]}"), TimeRemainingColumn(), console=Console(stderr=True),
                    disable=not enabled)


@dataclass(frozen=True)
class Transfer:
    """How to send: files above ``threshold`` bytes go in ``chunksize`` parts; ``concurrency``
    requests in flight at once."""

    threshold: int
    chunksize: int
    concurrency: int


@dataclass(frozen=True)
class Upload:
    """One local file to upload; ``sha256`` (of its content) is stored as the object's metadata."""

    path: Path
    key: str
    size: int
    sha256: str
    content_type: str


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


def download_file(s3: Any, bucket: str, key: str, path: Path, *, on_bytes: Callable[[int], None]) -> None:
    """Download one object to ``path`` (in parallel ranged parts when it is large), calling
    ``on_bytes(n)`` as bytes arrive."""
    from s3transfer.manager import TransferManager
    from s3transfer.subscribers import BaseSubscriber

    class Advance(BaseSubscriber):
        def on_progress(self, future: Any, bytes_transferred: int, **_: Any) -> None:
            on_bytes(bytes_transferred)

    with TransferManager(s3) as manager:
        manager.download(bucket, key, str(path), subscribers=[Advance()]).result()


def upload_files(s3: Any, bucket: str, uploads: Sequence[Upload], *, transfer: Transfer, bar: Progress,
                 description: str) -> dict[str, str]:
    """Upload ``uploads`` in parallel as ``transfer`` says (multipart above its threshold), shown as
    one task of ``bar`` (see :func:`transfer_progress`); returns the ETag S3 gave each key."""
    from s3transfer.manager import TransferConfig, TransferManager
    from s3transfer.subscribers import BaseSubscriber

    config = TransferConfig(multipart_threshold=transfer.threshold, multipart_chunksize=transfer.chunksize,
                            max_request_concurrency=transfer.concurrency)
    task = bar.add_task(description, total=sum(u.size for u in uploads), files=f"0/{len(uploads)} files")
    done = 0
    lock = threading.Lock()

    class Advance(BaseSubscriber):
        def on_progress(self, future: Any, bytes_transferred: int, **_: Any) -> None:
            bar.advance(task, bytes_transferred)

        def on_done(self, future: Any, **_: Any) -> None:
            nonlocal done
            with lock:
                done += 1
                bar.update(task, files=f"{done}/{len(uploads)} files")

    with _EtagCapture(s3, {u.key for u in uploads}) as capture, TransferManager(s3, config) as manager:
        futures = [manager.upload(str(u.path), bucket, u.key,
                                  extra_args={"Metadata": {"sha256": u.sha256}, "ContentType": u.content_type},
                                  subscribers=[Advance()]) for u in uploads]
        for future in futures:
            future.result()
    return capture.etags
