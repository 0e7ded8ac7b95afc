"""The programs a test runs: a real system program (or the test skipped, saying how to get it), a
stand-in program written in Python, and a stand-in worker binary that passes dfbench's executable
check."""

from __future__ import annotations

import os
import shlex
import shutil
import struct
import sys
from pathlib import Path


def system_tool(name: str) -> str:
    """The path of a system program a test runs for real (sshd, shellcheck). Missing, the test is
    skipped with the way to install it, or fails when DFBENCH_REQUIRE_SYSTEM_TOOLS=1 (CI, where
    `make test` installs them and a skip would hide a broken setup)."""
    # Imported here: the rest of the harness also serves scripts that run without pytest (the
    # benchmarks).
    import pytest

    found = shutil.which(name) or (name if os.path.isabs(name) and os.access(name, os.X_OK) else None)
    if found:
        return found
    message = f"{name} is not installed: `make system-tools` as root installs it from apt"
    if os.environ.get("DFBENCH_REQUIRE_SYSTEM_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)


def python_program(path: Path, code: str) -> Path:
    """An executable at ``path`` running ``code`` (kept beside it as ``<name>.py``) with this
    interpreter."""
    source = path.with_name(path.name + ".py")
    source.write_text(code)
    return python_script_program(path, source)


def python_script_program(path: Path, script: str | Path, *args: str) -> Path:
    """An executable at ``path`` running the file ``script`` with this interpreter and ``args``
    before its own arguments. A ``#!`` line cannot name an interpreter whose path holds a space, as
    a checkout under such a folder has, so the program is a shell script that execs it, quoted."""
    words = " ".join(shlex.quote(word) for word in (sys.executable, str(script), *args))
    path.write_text(f"#!/bin/sh\nexec {words} \"$@\"\n")
    path.chmod(0o755)
    return path


def worker_binary(path: Path, size: int = 64 * 1024, kind: str | None = "tag-discovery") -> Path:
    """A file that passes dfbench's executable check: an ELF64 little-endian header for Linux
    (System V ABI) x86-64, type EXEC (the fields check_binary reads), zero-padded to ``size``,
    holding the strings that tell a worker of ``kind`` (dfbench.worker.kinds; None: neither)."""
    from dfbench.worker import kinds

    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header = ident + struct.pack("<HH", 2, 0x3E)
    markers = {"current": b"\0".join(kinds.CURRENT_MARKERS), "tag-discovery": kinds.TAG_DISCOVERY_MARKER,
               None: b""}[kind]
    body = header + bytes(256 - len(header)) + markers
    path.write_bytes(body + bytes(max(0, size - len(body))))
    return path
