"""BENCHMARKS.md is shared by every benchmark script: each owns one section between its markers
and rewrites only that, right before writing, so scripts never overwrite each other's numbers."""

from __future__ import annotations

import os
import sys
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
HEADER = ("# Benchmarks\n\nEvery number here comes from a script whose command is shown with it, "
          "all numbers of a section measured in one run.\n")


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def write_section(name: str, body: str, path: Path = BENCHMARKS_MD) -> bool:
    """Replace section ``name`` (added at the end when absent) with ``body``, atomically; nothing
    when the script was run with ``--no-write`` (the test suite runs them so). Returns whether
    it wrote."""
    if "--no-write" in sys.argv[1:]:
        return False
    start, end = markers(name)
    block = f"{start}\n{body.strip()}\n{end}"
    current = path.read_text(encoding="utf-8") if path.exists() else HEADER
    if start in current and end in current:
        before, rest = current.split(start, 1)
        updated = before + block + rest.split(end, 1)[1]
    else:
        updated = current.rstrip("\n") + "\n\n" + block + "\n"
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(updated, encoding="utf-8")
    os.replace(temporary, path)
    return True
