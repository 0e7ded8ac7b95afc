"""A parquet file's footer read from S3 without its data: its row count (what on-cluster
generation verifies) and its schema (what Trino's tables are declared with)."""

from __future__ import annotations

import struct
from typing import Any

# Most footers fit: one ranged GET then.
_FIRST_READ = 64 * 1024


def footer_length(tail: bytes) -> int:
    """The length of a parquet file's footer from its last 8 bytes (length, then ``PAR1``)."""
    if len(tail) < 8 or tail[-4:] != b"PAR1":
        raise ValueError("not a parquet file (no PAR1 at its end)")
    return int(struct.unpack("<I", tail[-8:-4])[0])


def read_footer(s3: Any, bucket: str, key: str, size: int) -> bytes:
    """The file's last bytes, its whole footer included: its last 64 KiB, and the rest of the
    footer when it is longer (two ranged GETs at most; the data is never downloaded)."""
    tail = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=-{min(size, _FIRST_READ)}")["Body"].read()
    length = footer_length(tail)
    if length + 8 > len(tail):
        tail = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=-{min(size, length + 8)}")["Body"].read()
    return bytes(tail)


def _metadata(footer: bytes) -> Any:
    import pyarrow as pa  # only here: building scripts needs no pyarrow
    import pyarrow.parquet as pq

    length = footer_length(footer)
    # The reader needs only the footer: the column chunks it points at are never read.
    return pq.read_metadata(pa.BufferReader(b"PAR1" + footer[-(length + 8):]))


def footer_rows(footer: bytes) -> int:
    """The row count a parquet footer records (``footer``: the file's last bytes, footer included)."""
    return int(_metadata(footer).num_rows)


def footer_schema(footer: bytes) -> Any:
    """The Arrow schema a parquet footer records."""
    return _metadata(footer).schema.to_arrow_schema()
