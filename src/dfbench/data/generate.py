"""Generated datasets (TPC-H with tpchgen-cli, TPC-DS with tpcgen-cli) written to
``<data_dir>/<benchmark>_sf<SF>/<table>/<n>.parquet`` with a manifest, one procedure for both (and
for sorted TPC-H, ``tpch_sorted_sf<SF>``: tpchgen-cli's files with their sort keys recorded,
:mod:`dfbench.data.sorted`).

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dfbench.data.catalog import DEFAULT_DATA_DIR, LocalDataset
from dfbench.data.manifest import (
    CHECKSUM_CACHE,
    MANIFEST,
    ChecksumCache,
    Generator,
    Manifest,
    describe_files,
    is_complete,
    natural_key,
    read_manifest,
    tables_from,
)
from dfbench.data.scale import dataset_name, format_decimal, scale_factor_of
from dfbench.data.sorted import pyarrow_compression, sort_tables
from dfbench.errors import ConfigError, DfbenchError
from dfbench.files import checked_folder, write_atomically

if TYPE_CHECKING:
    from rich.progress import Progress

log = logging.getLogger("dfbench")


@dataclass(frozen=True)
class GeneratorSpec:
    """How one benchmark's data is generated.

    ``command`` gives the generator's arguments after the binary for a scale factor, a partition
    count, an output folder, a compression and a thread count. ``weights`` are each table's share
    of the bytes (the progress bar's weights); ``single_file`` tables are written whole, once.
    """

    benchmark: str
    label: str
    binary: str
    install: str
    tables: tuple[str, ...]
    weights: Mapping[str, int]
    single_file: frozenset[str]
    command: Callable[[str, int, Path, str, int], list[str]]
    sorted: bool = False  # each file rewritten with its table's sort key (dfbench.data.sorted)


def progress_bar(enabled: bool) -> Progress:
    """A rich progress display on stderr (rendered only when stderr is a terminal)."""
    # Imported here: every dataset command imports this package, and most draw no bar.
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True), disable=not enabled)


def find_binary(spec: GeneratorSpec) -> str:
    """The generator's executable: on PATH, or next to this Python (a venv not activated)."""
    name = spec.binary
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        raise ConfigError(f"{name} is not installed. Install it into dfbench's environment with "
                          f"`{spec.install}` (for this checkout: `.venv/bin/{spec.install}`).")
    return found


def binary_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    return out.split()[-1] if out else "unknown"


def validate_request(spec: GeneratorSpec, scale_factor: Any, partitions: Any) -> Decimal:
    problems = []
    sf: Decimal | None = None
    try:
        sf = scale_factor_of(scale_factor)
    except ConfigError:
        problems.append(f"scale factor must be a positive number (got {scale_factor!r})")
    if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
        problems.append(f"partitions must be a whole number of at least 1 (got {partitions!r})")
    if problems:
        raise ConfigError(f"Cannot generate {spec.label} data: " + "; ".join(problems) + ".")
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


# A file written, or a part with no rows (tpcgen-cli writes small TPC-DS tables whole, as dsdgen does,
# and says so per part): either way that part of the table is done.
_PART_DONE = re.compile(r"(?:Generated|Skipping) table (?P<table>\w+)")


def _run_generator(command: list[str], on_part: Callable[[str], None]) -> None:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "info")})
    tail: list[str] = []
    try:
        assert process.stderr is not None
        for line in process.stderr:
            tail = (tail + [line.rstrip()])[-30:]
            match = _PART_DONE.search(line)
            if match:
                on_part(match["table"])
        code = process.wait()
    except BaseException:
        process.kill()
        process.wait()
        raise
    if code != 0:
        details = "\n".join(line for line in tail if " INFO " not in line) or "\n".join(tail)
        raise DfbenchError(f"{Path(command[0]).name} failed (exit code {code}):\n{details}")


def generate(spec: GeneratorSpec, scale_factor: Any, partitions: int = 16, data_dir: str | Path = DEFAULT_DATA_DIR,
             compression: str = "SNAPPY", *, threads: int | None = None, force: bool = False,
             progress: bool = True) -> LocalDataset:
    """Generate ``spec``'s parquet data into ``<data_dir>/<benchmark>_sf<SF>/<table>/<n>.parquet``.

    Idempotent: a complete dataset with the same settings is left alone. The data is written to a
    hidden sibling folder and moved into place at the end, and ``manifest.json`` is written last,
    so an interrupted run never leaves a folder that looks complete (the next run starts over).
    """
    sf = validate_request(spec, scale_factor, partitions)
    name = dataset_name(spec.benchmark, sf, sorted=spec.sorted)
    if spec.sorted:
        pyarrow_compression(compression)  # one pyarrow writes: refused before anything is generated
    data_dir = checked_folder(data_dir, write=True)
    final = data_dir / name
    threads = threads or os.cpu_count() or 1
    existing = read_manifest(final)
    if existing is not None and is_complete(final, existing):
        same = (existing.partitions == partitions and (existing.compression or "").upper() == compression.upper())
        if not force:
            if not same:
                raise ConfigError(
                    f"{final} already holds {spec.label} SF {format_decimal(sf)} with {existing.partitions} "
                    f"partitions ({existing.compression}); asked for {partitions} ({compression}). Delete the "
                    "folder or pass force=True to replace it.")
            log.info("%s is complete: nothing to do", final)
            return LocalDataset(name=name, path=final, manifest=existing, generated=False)

    binary = find_binary(spec)
    version = binary_version(binary)
    data_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(data_dir, name)
    partial = data_dir / f".{name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    command = [binary, *spec.command(format_decimal(sf), partitions, partial, compression, threads)]
    weights = {t: (w if t in spec.single_file else w / partitions) for t, w in spec.weights.items()}
    total = sum(spec.weights.values())
    ok = False
    try:
        with progress_bar(progress) as bar:
            task = bar.add_task(f"generate {name} ({partitions} parts, {threads} threads)", total=total)
            _run_generator(command, lambda table: bar.advance(task, weights.get(table, 0)))
            bar.update(task, completed=total)
            rels = _normalise_layout(spec, partial)
            if spec.sorted:
                resorted = sort_tables(partial, rels, compression, threads=threads)
                if resorted:
                    log.warning("%s: rows not in their sort key's order, sorted before writing: %s", spec.binary,
                                ", ".join(resorted))
            cache = ChecksumCache(partial)
            size = sum((partial / rel).stat().st_size for rel in rels)
            check = bar.add_task("checksums", total=size)
            described = describe_files(partial, rels, cache, threads=threads,
                                       advance=lambda n: bar.advance(check, n))
        manifest = Manifest(dataset=name, benchmark=spec.benchmark, scale_factor=float(sf), partitions=partitions,
                            compression=compression, generator=Generator(name=spec.binary, version=version),
                            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                            tables=tables_from(described.values()))
        _install(partial, final, manifest, cache)
        ok = True
    finally:
        if not ok:
            shutil.rmtree(partial, ignore_errors=True)
    log.info("generated %s: %d files, %d bytes", final, len(manifest.files), manifest.total_bytes)
    return LocalDataset(name=name, path=final, manifest=manifest, generated=True)


def _normalise_layout(spec: GeneratorSpec, folder: Path) -> list[str]:
    """The generators write ``<table>/<table>.<k>.parquet`` (or ``<table>.parquet`` without parts):
    rename to ``<table>/<k>.parquet``, the layout the CDK tooling's datasets use."""
    rels = []
    for table_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for file in sorted(table_dir.iterdir()):
            match = re.fullmatch(rf"{re.escape(table_dir.name)}(?:\.(\d+))?\.parquet", file.name)
            if not match:
                raise DfbenchError(f"unexpected file from {spec.binary}: {file}")
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
    missing = [t for t in spec.tables if not (folder / t).is_dir()]
    if missing:
        raise DfbenchError(f"{spec.binary} produced no data for table(s) {', '.join(missing)}")
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
