"""What produced the numbers: this machine's hardware, the git branch, and the default engine name."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dfbench.bench.results import safe_engine_name


def memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_info() -> dict[str, Any]:
    """This machine, recorded for local runs (the worker runs here)."""
    return {"cpu_count": os.cpu_count(), "cpu_model": cpu_model(), "memory_bytes": memory_bytes(),
            "platform": platform.platform(), "python": platform.python_version()}


def git_branch(cwd: str | Path | None = None) -> str | None:
    """The last ``/`` segment of the current branch of the git checkout at ``cwd``, or None
    (not a checkout, no git, or a detached HEAD)."""
    try:
        out = subprocess.run(["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    branch = out.stdout.strip()
    if out.returncode != 0 or not branch or branch == "HEAD":
        return None
    return branch.rsplit("/", 1)[-1]


def default_engine_name(info: Mapping[str, Any] | None = None, cwd: str | Path | None = None) -> str:
    """The engine name results are filed under when none is given.

    - dfbench's local worker (its ``/info`` has ``engine: "datafusion-python X"``):
      ``datafusion-python-X`` — what runs is DataFusion from PyPI, whatever checkout you stand in,
      so naming it after a branch would file its numbers next to the distributed engine's.
    - a real worker: ``datafusion-distributed-<branch>``, the CDK tooling's convention, with the branch of
      the git checkout in the current directory (the worker's sources), or ``local`` outside one.
    """
    engine = str((info or {}).get("engine") or "")
    if engine.startswith("datafusion-python"):
        version = engine.removeprefix("datafusion-python").strip() or "unknown"
        return safe_engine_name(f"datafusion-python-{version}")
    return safe_engine_name(f"datafusion-distributed-{git_branch(cwd) or 'local'}")
