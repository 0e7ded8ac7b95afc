"""Local files written so that a reader never sees half of one, and their checksums.

Every file dfbench writes for a later reader (result files, manifests, the cluster outputs file,
pinned host keys, checksum caches) goes through :func:`write_atomically`: a temporary sibling in
the same folder, then ``os.replace``, which POSIX makes atomic within one file system. An
interrupted run therefore leaves either the old file or the new one, never a truncated one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from dfbench.errors import ConfigError

_HASH_CHUNK = 8 * 1024 * 1024


def write_atomically(path: Path, text: str, *, mode: int | None = None) -> None:
    """Replace ``path`` with ``text`` in one step; ``mode`` (e.g. 0o600) is set before the file
    appears under its name, so a private file is never readable by others, even for an instant."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        # Without a mode the umask applies, as to any plain open(); with one, the file starts 0600
        # and gets exactly ``mode`` (which the umask may have narrowed) before it is renamed.
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666 if mode is None else 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        if mode is not None:
            os.chmod(temporary, mode)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_json_atomically(path: Path, data: Any) -> None:
    """``data`` as indented JSON with a final newline, written with :func:`write_atomically`."""
    write_atomically(path, json.dumps(data, indent=2) + "\n")


def sha256_file(path: Path) -> str:
    """The file's sha256 as lowercase hex, read in chunks so large parquet files stay out of memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# One path segment that stays where it is put, as a folder name or an S3 key part: no "/", no
# leading "." (so no "..", no hidden file) and no "..".
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def is_safe_name(name: object) -> bool:
    return isinstance(name, str) and bool(_SAFE_NAME.match(name)) and ".." not in name


def checked_dataset_name(name: str) -> str:
    """``name`` when it can be a folder of the data folder and a prefix of the bucket without
    leaving them; a ConfigError otherwise (``../x``, ``/etc``, ``a/b``, ``x..y``)."""
    if not is_safe_name(name):
        raise ConfigError(f"Invalid dataset name {name!r}: use letters, digits, '.', '_' and '-' "
                          "(starting with a letter or digit, no '/' and no '..'), e.g. tpch_sf10.")
    return name


def folder_problem(path: str | Path, *, write: bool) -> str | None:
    """Why ``path`` cannot be, or become, a folder this user can read (with ``write``: also write);
    None when it can. The nearest part of it that exists decides."""
    path = Path(path)
    try:
        existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    except PermissionError:  # a folder on the way cannot be searched: stat itself is refused
        return f"cannot reach the folder {path} (permissions): give one you can"
    if not existing.is_dir():
        return f"{existing} is a file, not a folder: give a folder (it may not exist yet)"
    need, what = (os.R_OK | os.W_OK | os.X_OK, "read and write") if write else (os.R_OK | os.X_OK, "read")
    if (existing == path or write) and not os.access(existing, need):
        return f"cannot {what} the folder {existing} (permissions): give one you can"
    return None


def checked_folder(path: str | Path, *, write: bool) -> Path:
    """``path``, or a ConfigError saying why it cannot be the folder asked for (``folder_problem``)."""
    problem = folder_problem(path, write=write)
    if problem is not None:
        raise ConfigError(f"Data folder: {problem}.")
    return Path(path)
