"""Result files of benchmark runs, in the seed's layout (DESIGN section 7) so history stays comparable.

Layout, per dataset folder ``<data_dir>/<dataset>/``::

    .results-local/<engine>/<query>.json     one file per query, written as soon as it finishes
    .results-local/<engine>/run.json         how the numbers were produced (dfbench's addition)
    previous-local.json                      every query of the last complete run

``.results-remote`` / ``previous-remote.json`` are the same for a distributed (real) worker.

A query file is ``{"id", "dataset", "engine", "iterations": [...]}``; an iteration is
``{"elapsed" (ms), "rowCount", "plan", "tasks"}`` plus ``statsQErrorP50`` / ``statsQErrorP95`` when the
worker reports them and ``error`` for a failed iteration (then elapsed 0, rowCount 0, plan "",
tasks 0). Every file is written atomically (a temporary sibling, then ``os.replace``), so a reader
never sees half a file, even when a run is interrupted.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

RUN_MANIFEST = "run.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def kind_name(remote: bool) -> str:
    return "remote" if remote else "local"


def engines_dir(data_dir: str | Path, dataset: str, *, remote: bool) -> Path:
    """``<data_dir>/<dataset>/.results-{local,remote}``: one folder per engine inside."""
    return Path(data_dir) / dataset / f".results-{kind_name(remote)}"


def results_dir(data_dir: str | Path, dataset: str, engine: str, *, remote: bool) -> Path:
    """``<data_dir>/<dataset>/.results-{local,remote}/<engine>``."""
    return engines_dir(data_dir, dataset, remote=remote) / engine


def previous_path(data_dir: str | Path, dataset: str, *, remote: bool) -> Path:
    return Path(data_dir) / dataset / f"previous-{kind_name(remote)}.json"


def safe_engine_name(name: str) -> str:
    """An engine name usable as one folder name (``/`` and spaces become ``-``)."""
    cleaned = _UNSAFE.sub("-", name.strip()).strip("-.")
    return cleaned or "engine"


def iteration(*, elapsed: float, row_count: int, plan: str, tasks: int,
              stats_q_error_p50: float | None = None, stats_q_error_p95: float | None = None,
              error: str | None = None) -> dict[str, Any]:
    """One iteration object; optional keys appear only when they have a value."""
    record: dict[str, Any] = {"elapsed": elapsed, "rowCount": row_count, "plan": plan, "tasks": tasks}
    if stats_q_error_p50 is not None:
        record["statsQErrorP50"] = stats_q_error_p50
    if stats_q_error_p95 is not None:
        record["statsQErrorP95"] = stats_q_error_p95
    if error is not None:
        record["error"] = error
    return record


def error_iteration(error: str) -> dict[str, Any]:
    return iteration(elapsed=0, row_count=0, plan="", tasks=0, error=error)


def iteration_from_response(response: Mapping[str, Any]) -> dict[str, Any]:
    """The iteration object of a worker's ``GET /?sql=`` answer."""
    return iteration(elapsed=float(response["elapsed_ms"]), row_count=int(response["count"]),
                     plan=str(response.get("plan", "")), tasks=int(response.get("tasks", 0)),
                     stats_q_error_p50=response.get("stats_q_error_p50"),
                     stats_q_error_p95=response.get("stats_q_error_p95"))


def query_document(query_id: str, dataset: str, engine: str,
                   iterations: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"id": query_id, "dataset": dataset, "engine": engine, "iterations": [dict(i) for i in iterations]}


def write_json_atomically(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_query_result(folder: Path, document: Mapping[str, Any]) -> Path:
    path = folder / f"{document['id']}.json"
    write_json_atomically(path, dict(document))
    return path


def write_previous(data_dir: str | Path, dataset: str, engine: str, start_time: float,
                   results: Sequence[Mapping[str, Any]], *, remote: bool) -> Path:
    """``previous-{local,remote}.json``: the run's start (unix seconds) and every query document."""
    path = previous_path(data_dir, dataset, remote=remote)
    write_json_atomically(path, {"startTime": int(start_time), "dataset": dataset, "engine": engine,
                                 "results": [dict(r) for r in results]})
    return path


def write_run_manifest(folder: Path, manifest: Mapping[str, Any]) -> Path:
    path = folder / RUN_MANIFEST
    write_json_atomically(path, dict(manifest))
    return path


def read_query_results(folder: Path) -> dict[str, dict[str, Any]]:
    """The query documents of a results folder by id (``run.json`` and unreadable files skipped)."""
    found = {}
    for path in sorted(Path(folder).glob("*.json")):
        if path.name == RUN_MANIFEST:
            continue
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(document, dict) and "id" in document and "iterations" in document:
            found[str(document["id"])] = document
    return found


# ---------------------------------------------------------------------------------------------
# what produced the numbers


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
    - a real worker: ``datafusion-distributed-<branch>``, the seed's convention, with the branch of
      the git checkout in the current directory (the worker's sources), or ``local`` outside one.
    """
    engine = str((info or {}).get("engine") or "")
    if engine.startswith("datafusion-python"):
        version = engine.removeprefix("datafusion-python").strip() or "unknown"
        return safe_engine_name(f"datafusion-python-{version}")
    return safe_engine_name(f"datafusion-distributed-{git_branch(cwd) or 'local'}")
