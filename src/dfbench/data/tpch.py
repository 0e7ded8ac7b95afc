"""TPC-H data generated with tpchgen-cli into ``<data_dir>/tpch_sf<SF>/<table>/<n>.parquet``.

A dataset folder may also hold the CDK-tooling-compatible results (``.results-remote/``,
``previous-remote.json``, …): generation replaces only table folders and the manifest.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from dfbench.data.catalog import DEFAULT_DATA_DIR, LocalDataset
from dfbench.data.manifest import (CHECKSUM_CACHE, MANIFEST, ChecksumCache, Generator, Manifest, describe_files,
                                   is_complete, natural_key, read_manifest, tables_from)
from dfbench.errors import ConfigError, DfbenchError
from dfbench.files import write_atomically
from dfbench.data.scale import format_decimal, scale_factor_of, tpch_dataset_name

log = logging.getLogger("dfbench")

TPCH_TABLES = ("customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier")
# Rows per unit of scale factor (TPC-H spec 4.2.5); lineitem varies (1-7 lines per order).
TPCH_FIXED_ROWS = {"nation": 25, "region": 5}
TPCH_ROWS_PER_SF = {"supplier": 10_000, "customer": 150_000, "part": 200_000, "partsupp": 800_000,
                    "orders": 1_500_000}
# Share of the bytes each table takes (measured at SF1, snappy): weights of the progress bar.
_TABLE_WEIGHT = {"lineitem": 228_604, "orders": 62_068, "partsupp": 43_836, "customer": 13_740, "part": 7_236,
                 "supplier": 964, "nation": 8, "region": 8}
TPCHGEN = "tpchgen-cli"
TPCHGEN_INSTALL = "pip install tpchgen-cli"


def _progress(enabled: bool) -> Progress:
    """A rich progress display on stderr (rendered only when stderr is a terminal)."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True), disable=not enabled)


def find_tpchgen() -> str:
    """The tpchgen-cli executable: on PATH, or next to this Python (a venv not activated)."""
    found = shutil.which(TPCHGEN) or shutil.which(TPCHGEN, path=str(Path(sys.executable).parent))
    if not found:
        raise ConfigError(f"{TPCHGEN} is not installed. Install it into dfbench's environment with "
                          f"`{TPCHGEN_INSTALL}` (for this checkout: `.venv/bin/{TPCHGEN_INSTALL}`).")
    return found


def tpchgen_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    return out.split()[-1] if out else "unknown"


def _validate(scale_factor: Any, partitions: Any) -> Decimal:
    problems = []
    sf: Decimal | None = None
    try:
        sf = scale_factor_of(scale_factor)
    except ConfigError:
        problems.append(f"scale factor must be a positive number (got {scale_factor!r})")
    if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
        problems.append(f"partitions must be a whole number of at least 1 (got {partitions!r})")
    if problems:
        raise ConfigError("Cannot generate TPC-H data: " + "; ".join(problems) + ".")
    assert sf is not None
    return sf


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_partials(data_dir: Path, name: str) -> None:
    for partial in data_dir.glob(f".{name}.partial-*"):
        pid = partial.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue  # another generation of the same dataset is running
        log.info("removing %s left by an interrupted generation", partial)
        shutil.rmtree(partial, ignore_errors=True)


_GENERATED = re.compile(r"Generated table (?P<table>\w+) to (?P<file>\S+)")


def _run_tpchgen(command: list[str], on_file: Callable[[str, str], None]) -> None:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "info")})
    tail: list[str] = []
    try:
        assert process.stderr is not None
        for line in process.stderr:
            tail = (tail + [line.rstrip()])[-30:]
            match = _GENERATED.search(line)
            if match:
                on_file(match["table"], match["file"])
        code = process.wait()
    except BaseException:
        process.kill()
        process.wait()
        raise
    if code != 0:
        details = "\n".join(line for line in tail if " INFO " not in line) or "\n".join(tail)
        raise DfbenchError(f"{Path(command[0]).name} failed (exit code {code}):\n{details}")


def generate_tpch(scale_factor: Any, partitions: int = 16, data_dir: str | Path = DEFAULT_DATA_DIR,
                  compression: str = "SNAPPY", *, threads: int | None = None, force: bool = False,
                  progress: bool = True) -> LocalDataset:
    """Generate TPC-H parquet data into ``<data_dir>/tpch_sf<SF>/<table>/<n>.parquet``.

    Idempotent: a complete dataset with the same settings is left alone. The data is written to a
    hidden sibling folder and moved into place at the end, and ``manifest.json`` is written last,
    so an interrupted run never leaves a folder that looks complete (the next run starts over).
    """
    sf = _validate(scale_factor, partitions)
    name = tpch_dataset_name(sf)
    data_dir = Path(data_dir)
    final = data_dir / name
    threads = threads or os.cpu_count() or 1
    existing = read_manifest(final)
    if existing is not None and is_complete(final, existing):
        same = (existing.partitions == partitions and (existing.compression or "").upper() == compression.upper())
        if not force:
            if not same:
                raise ConfigError(
                    f"{final} already holds TPC-H SF {format_decimal(sf)} with {existing.partitions} partitions "
                    f"({existing.compression}); asked for {partitions} ({compression}). Delete the folder or "
                    "pass force=True to replace it.")
            log.info("%s is complete: nothing to do", final)
            return LocalDataset(name=name, path=final, manifest=existing, generated=False)

    binary = find_tpchgen()
    version = tpchgen_version(binary)
    data_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(data_dir, name)
    partial = data_dir / f".{name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    command = [binary, "parquet", "--scale-factor", format_decimal(sf), "--parts", str(partitions),
               "--output-dir", str(partial), "--compression", compression, "--num-threads", str(threads),
               "--no-progress", "--verbose"]
    weights = {t: (w if t in TPCH_FIXED_ROWS else w / partitions) for t, w in _TABLE_WEIGHT.items()}
    total = sum(w * (1 if t in TPCH_FIXED_ROWS else partitions) for t, w in weights.items())
    ok = False
    try:
        with _progress(progress) as bar:
            task = bar.add_task(f"generate {name} ({partitions} parts, {threads} threads)", total=total)
            _run_tpchgen(command, lambda table, _file: bar.advance(task, weights.get(table, 0)))
            bar.update(task, completed=total)
            rels = _normalise_layout(partial)
            cache = ChecksumCache(partial)
            size = sum((partial / rel).stat().st_size for rel in rels)
            check = bar.add_task("checksums", total=size)
            described = describe_files(partial, rels, cache, threads=threads,
                                       advance=lambda n: bar.advance(check, n))
        manifest = Manifest(dataset=name, scale_factor=float(sf), partitions=partitions, compression=compression,
                            generator=Generator(name=TPCHGEN, version=version),
                            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                            tables=tables_from(described.values()))
        _install(partial, final, manifest, cache)
        ok = True
    finally:
        if not ok:
            shutil.rmtree(partial, ignore_errors=True)
    log.info("generated %s: %d files, %d bytes", final, len(manifest.files), manifest.total_bytes)
    return LocalDataset(name=name, path=final, manifest=manifest, generated=True)


def _normalise_layout(folder: Path) -> list[str]:
    """tpchgen writes ``<table>/<table>.<k>.parquet`` (or ``<table>.parquet`` without parts):
    rename to ``<table>/<k>.parquet``, the layout the CDK tooling's datasets use."""
    rels = []
    for table_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for file in sorted(table_dir.iterdir()):
            match = re.fullmatch(rf"{re.escape(table_dir.name)}(?:\.(\d+))?\.parquet", file.name)
            if not match:
                raise DfbenchError(f"unexpected file from {TPCHGEN}: {file}")
            target = table_dir / f"{match[1] or 1}.parquet"
            if target != file:
                os.rename(file, target)
            rels.append(f"{table_dir.name}/{target.name}")
    for file in folder.iterdir():
        if file.is_file() and file.suffix == ".parquet":  # without --parts each table is one file
            table = file.stem
            (folder / table).mkdir(exist_ok=True)
            os.rename(file, folder / table / "1.parquet")
            rels.append(f"{table}/1.parquet")
    missing = [t for t in TPCH_TABLES if not (folder / t).is_dir()]
    if missing:
        raise DfbenchError(f"{TPCHGEN} produced no data for table(s) {', '.join(missing)}")
    return sorted(rels, key=natural_key)


def _install(partial: Path, final: Path, manifest: Manifest, cache: ChecksumCache) -> None:
    """Move the generated tables into place, then write the manifest (last)."""
    cache.path = final / CHECKSUM_CACHE
    if not final.exists():
        os.rename(partial, final)
    else:
        # The folder may hold results of earlier runs: replace only the tables and the manifest.
        (final / MANIFEST).unlink(missing_ok=True)
        for table_dir in sorted(p for p in partial.iterdir() if p.is_dir()):
            target = final / table_dir.name
            if target.exists():
                shutil.rmtree(target)
            os.rename(table_dir, target)
        shutil.rmtree(partial)
    cache.entries = {rel: entry for rel, entry in cache.entries.items() if (final / rel).exists()}
    cache.save()
    write_atomically(final / MANIFEST, manifest.dump())
