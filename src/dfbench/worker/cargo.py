"""Which package of a datafusion-distributed checkout builds the worker, read from ``cargo metadata``.

The worker has moved between packages (``datafusion-distributed-benchmarks`` in ``benchmarks/``,
upstream #630; ``datafusion-distributed-remote-worker`` in ``benchmarks/remote-worker``, upstream
#729/#732), so no package name is fixed here: the workspace package with a bin target named
``worker`` is the one built, and ``--package`` chooses when several have one. Only the checkout's
own manifests are read (``--no-deps``: nothing is downloaded or resolved).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dfbench.errors import ConfigError
from dfbench.models import Record

WORKER_BIN = "worker"
METADATA_COMMAND = ("cargo", "metadata", "--format-version", "1", "--no-deps")
# Cargo's own rules for a package name and a feature (`dep:x` and `pkg/feature` forms included):
# what reaches the build command's argv is checked against them first.
_PACKAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
# The features go into S3 user metadata beside the kind and package, which S3 limits to 2 KB in all
# (https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingMetadata.html).
_MAX_FEATURES = 1024
_FEATURE = re.compile(r"^(?:dep:)?[A-Za-z0-9_][A-Za-z0-9_+.-]{0,63}(?:/[A-Za-z0-9_][A-Za-z0-9_+.-]{0,63})?$")


class WorkerPackage(Record):
    """The workspace package whose ``worker`` bin is built, and where cargo writes its output."""

    name: str
    manifest_path: Path
    target_directory: Path

    def output(self, target: str) -> Path:
        """Where ``cargo zigbuild --release --target <target>`` writes the worker."""
        return self.target_directory / target / "release" / WORKER_BIN


def checked_package(name: str | None) -> str | None:
    if name is not None and not _PACKAGE.match(name):
        raise ConfigError(f"Invalid package name {name!r}: a cargo package name is letters, digits, '-' and '_'.")
    return name


def checked_features(features: Sequence[str] | str | None) -> tuple[str, ...]:
    """Features as cargo takes them (``iceberg``, ``a,b``, ``dep:x``, ``pkg/f``), each checked."""
    items = features.split(",") if isinstance(features, str) else list(features or ())
    words = tuple(word.strip() for item in items for word in str(item).replace(",", " ").split() if word.strip())
    for word in words:
        if not _FEATURE.match(word):
            raise ConfigError(f"Invalid cargo feature {word!r}: letters, digits, '_', '-', '+', '.', an optional "
                              "'dep:' prefix or 'package/feature'.")
    if len(",".join(words)) > _MAX_FEATURES:
        raise ConfigError(f"--features lists {len(words)} features ({len(','.join(words))} characters): at most "
                          f"{_MAX_FEATURES} characters, which `latest`'s S3 metadata records.")
    return words


def read_metadata(repo: Path) -> dict[str, Any]:
    """``cargo metadata --format-version 1 --no-deps`` of the checkout, parsed."""
    try:
        done = subprocess.run(list(METADATA_COMMAND), cwd=repo, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise ConfigError("cargo is not on PATH: install Rust with rustup (https://rustup.rs).") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"`{' '.join(METADATA_COMMAND)}` failed in {repo} ({last}): pass a datafusion-distributed "
                          "checkout (a cargo workspace).")
    try:
        metadata = json.loads(done.stdout)
    except ValueError:
        metadata = None
    if not isinstance(metadata, dict) or not isinstance(metadata.get("packages"), list):
        raise ConfigError(f"`{' '.join(METADATA_COMMAND)}` in {repo} did not print cargo's metadata JSON.")
    return metadata


def _has_worker_bin(package: dict[str, Any]) -> bool:
    return any(isinstance(t, dict) and t.get("name") == WORKER_BIN and "bin" in (t.get("kind") or [])
               for t in package.get("targets") or [])


def worker_package(metadata: dict[str, Any], repo: Path, package: str | None = None) -> WorkerPackage:
    """The workspace package with a ``worker`` bin (``package`` when given); a ConfigError listing
    the candidates when there is none, or several and no ``package``."""
    members = set(metadata.get("workspace_members") or [])
    workspace = [p for p in metadata["packages"] if isinstance(p, dict) and (not members or p.get("id") in members)]
    candidates = [p for p in workspace if _has_worker_bin(p)]
    names = sorted(str(p.get("name")) for p in candidates)
    if package is not None:
        chosen = [p for p in candidates if p.get("name") == package]
        if not chosen:
            where = ("it has no bin named `worker`" if any(p.get("name") == package for p in workspace)
                     else "no such package in the workspace")
            raise ConfigError(f"--package {package}: {where} in {repo}; packages with a `worker` bin: "
                              f"{', '.join(names) or 'none'}.")
    elif len(candidates) != 1:
        if not candidates:
            raise ConfigError(f"No workspace package in {repo} has a bin named `worker` (packages: "
                              f"{', '.join(sorted(str(p.get('name')) for p in workspace)) or 'none'}): pass a "
                              "datafusion-distributed checkout, or build the worker yourself and pass --binary.")
        raise ConfigError(f"Several workspace packages in {repo} have a bin named `worker`: {', '.join(names)}. "
                          "Choose one with --package.")
    else:
        chosen = candidates
    found = chosen[0]
    target = metadata.get("target_directory")
    return WorkerPackage(name=str(found["name"]), manifest_path=Path(str(found.get("manifest_path", ""))),
                         target_directory=Path(target) if isinstance(target, str) and target else repo / "target")


def find_worker_package(repo: Path, package: str | None = None) -> WorkerPackage:
    """:func:`worker_package` of the checkout at ``repo``."""
    return worker_package(read_metadata(repo), repo, checked_package(package))
