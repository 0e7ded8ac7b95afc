"""ClickBench's public partitioned ``hits`` set downloaded into
``<data_dir>/clickbench_<START>-<END>/hits/<n>.parquet`` (END exclusive, as the datafusion-distributed
repository's gen-clickbench names its folders: ``0-100`` is partitions 0 … 99).

Each file is checked against the server's Content-Length, then ``EventDate`` is rewritten from
the published days-since-epoch integer to a date (Date32), as the repository's gen-clickbench
does, so that its queries' comparisons with date literals (``"EventDate" >= '2013-07-01'``)
type-check; ``<n>.parquet`` appears only then (renamed into place), so it marks a finished
partition, which is not fetched again. An interrupted download is a ``.part`` file continued with
a Range request (RFC 9110 §14.2) when the server answers 206, started over otherwise. The
manifest, with every file's sha256, is written last: its presence means the dataset is complete.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dfbench.data.catalog import DEFAULT_DATA_DIR, LocalDataset
from dfbench.data.generate import progress_bar
from dfbench.data.manifest import MANIFEST, ChecksumCache, Generator, Manifest, describe_files, tables_from
from dfbench.errors import ConfigError, DfbenchError
from dfbench.files import checked_folder, write_atomically

log = logging.getLogger("dfbench")

# Where upstream DataFusion's prepare-clickbench and the repository's gen-clickbench fetch from.
CLICKBENCH_URL = "https://datasets.clickhouse.com/hits_compatible/athena_partitioned/"
CLICKBENCH_PARTITIONS = 100  # hits_0.parquet … hits_99.parquet
TABLE = "hits"
_RANGE = re.compile(r"^(?P<start>\d+)-(?P<end>\d+)$")
_CHUNK = 1 << 20
_TIMEOUT_S = 60


def parse_partitions(text: str) -> tuple[int, int]:
    """``"0-100"`` → (0, 100): partitions START … END-1 of the 100."""
    match = _RANGE.match(str(text).strip())
    if not match or not 0 <= int(match["start"]) < int(match["end"]) <= CLICKBENCH_PARTITIONS:
        raise ConfigError(f"Invalid ClickBench partitions {text!r}: give START-END with 0 <= START < END <= "
                          f"{CLICKBENCH_PARTITIONS}, e.g. 0-100 (all) or 0-1 (partition 0).")
    return int(match["start"]), int(match["end"])


def clickbench_dataset_name(start: int, end: int) -> str:
    return f"clickbench_{start}-{end}"


def _open(url: str, *, method: str = "GET", offset: int = 0) -> Any:
    request = urllib.request.Request(url, method=method, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        return urllib.request.urlopen(request, timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as error:
        raise DfbenchError(f"{url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        raise DfbenchError(f"{url}: {getattr(error, 'reason', error)}") from None


def _length(url: str) -> int:
    with _open(url, method="HEAD") as response:
        length = response.headers.get("Content-Length")
    if length is None or not length.isdigit():
        raise DfbenchError(f"{url}: the server gave no Content-Length, so a download cannot be verified.")
    return int(length)


def _download(url: str, target: Path, size: int, advance: Callable[[int], None]) -> None:
    """``target`` with exactly ``size`` bytes, continuing its ``.part`` file when there is one."""
    part = target.with_name(target.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    if offset > size:
        offset = 0
    advance(offset)  # already here
    with _open(url, offset=offset) as response:
        resumed = offset and response.status == 206
        if offset and not resumed:
            advance(-offset)  # the server sent the whole file: start over
        with open(part, "ab" if resumed else "wb") as out:
            try:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    advance(len(chunk))
            except (OSError, http.client.HTTPException) as error:
                # What arrived stays in the .part file: the next run continues from there.
                raise DfbenchError(f"{url}: the download broke off ({error!r}); run it again to resume.") from None
    got = part.stat().st_size
    if got != size:
        raise DfbenchError(f"{url}: got {got} bytes, the server announced {size}; run the download again to resume.")
    _rewrite_event_date(part, target)
    part.unlink()


def _rewrite_event_date(source: Path, target: Path) -> None:
    """``source`` with ``EventDate`` as Date32, written to ``target`` (atomically), a row group at a
    time so that a partition never has to fit in memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    temporary = target.with_name(f".{target.name}.rewrite")
    try:
        reader = pq.ParquetFile(source)
        schema = reader.schema_arrow
        index = schema.get_field_index("EventDate")
        if index < 0:
            raise DfbenchError(f"{source.name} has no EventDate column: not a ClickBench hits partition.")
        if not pa.types.is_date32(schema.field(index).type):
            schema = schema.set(index, pa.field("EventDate", pa.date32(), schema.field(index).nullable))
        with pq.ParquetWriter(temporary, schema, compression="snappy") as writer:
            for group in range(reader.num_row_groups):
                table = reader.read_row_group(group)
                column = table.column(index)
                if not pa.types.is_date32(column.type):
                    # Days since 1970-01-01 (ClickBench's EventDate): int32 is Date32's storage.
                    column = column.cast(pa.int32()).cast(pa.date32())
                writer.write_table(table.set_column(index, "EventDate", column))
    except (OSError, pa.ArrowException) as error:
        temporary.unlink(missing_ok=True)
        raise DfbenchError(f"{source.name} is not a readable parquet file ({error}); delete it and download again.") \
            from None
    os.replace(temporary, target)


def download_clickbench(partitions: str, data_dir: str | Path = DEFAULT_DATA_DIR, *, url: str = CLICKBENCH_URL,
                        workers: int = 4, progress: bool = True) -> LocalDataset:
    """Download partitions ``START-END`` of ClickBench's ``hits_<n>.parquet`` from ``url``
    (a folder URL) into ``<data_dir>/clickbench_<START>-<END>/hits/<n>.parquet``, ``workers`` at a
    time, and write the manifest last. Returns the dataset; ``generated`` is False when every
    partition was already there."""
    start, end = parse_partitions(partitions)
    if not re.match(r"^https?://", url):
        raise ConfigError(f"Invalid ClickBench URL {url!r}: give an http(s) folder URL, e.g. {CLICKBENCH_URL}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a whole number of at least 1 (got {workers!r}).")
    base = url if url.endswith("/") else url + "/"
    name = clickbench_dataset_name(start, end)
    folder = checked_folder(data_dir, write=True) / name
    (folder / TABLE).mkdir(parents=True, exist_ok=True)
    numbers = list(range(start, end))
    wanted = [n for n in numbers if not (folder / TABLE / f"{n}.parquet").exists()]
    sizes: dict[int, int] = {}
    if wanted:
        (folder / MANIFEST).unlink(missing_ok=True)  # the dataset is changing: not complete until the end
        with ThreadPoolExecutor(max_workers=min(workers, len(wanted))) as pool:
            sizes = dict(zip(wanted, pool.map(lambda n: _length(f"{base}hits_{n}.parquet"), wanted), strict=True))
    with progress_bar(progress) as bar:
        task = bar.add_task(f"download {name} ({len(wanted)} of {len(numbers)} partitions)",
                            total=sum(sizes[n] for n in wanted))
        with ThreadPoolExecutor(max_workers=min(workers, max(1, len(wanted)))) as pool:
            done = [pool.submit(_download, f"{base}hits_{n}.parquet", folder / TABLE / f"{n}.parquet", sizes[n],
                                lambda k: bar.advance(task, k)) for n in wanted]
            for future in done:
                future.result()
        rels = [f"{TABLE}/{n}.parquet" for n in numbers]
        cache = ChecksumCache(folder)
        check = bar.add_task("checksums", total=sum((folder / rel).stat().st_size for rel in rels))
        described = describe_files(folder, rels, cache, threads=workers, advance=lambda k: bar.advance(check, k))
    cache.save()
    manifest = Manifest(dataset=name, benchmark="clickbench", scale_factor=None, partitions=len(numbers),
                        generator=Generator(name="download", version=base),
                        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                        tables=tables_from(described.values()))
    write_atomically(folder / MANIFEST, manifest.dump())
    log.info("downloaded %s: %d files, %d bytes", folder, len(manifest.files), manifest.total_bytes)
    return LocalDataset(name=name, path=folder, manifest=manifest, generated=bool(wanted))
