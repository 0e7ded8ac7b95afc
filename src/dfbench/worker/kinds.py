"""Which upstream worker a binary is, and the command line each kind takes.

datafusion-distributed has shipped two benchmark workers (bin ``worker`` in both, of the crate
datafusion-distributed-benchmarks, and of datafusion-distributed-remote-worker since #729/#732)
that find their peers in different ways:

- ``tag-discovery``: ``benchmarks/cdk/bin/worker.rs``, from the CDK stack's introduction (#227)
  up to its removal (#621). It asks ``ec2:DescribeInstances`` every second for the running
  instances with the tag ``BenchmarkCluster=datafusion`` (``.name("tag:BenchmarkCluster")`` in its
  source, a literal in the binary). Flags: ``--bucket`` (and ``--broadcast-joins`` later on).
- ``current``: ``benchmarks/src/bin/worker.rs``, since #630, written for Kubernetes. It exits with
  ``POD_IP is not set`` unless ``POD_IP`` holds its own address, and resolves ``--worker-dns-name``
  every second, each A record a peer. Flags: ``--bucket``, ``--worker-dns-name``,
  ``--broadcast-joins`` (structopt spells the flag names into the binary as literals).

The kind is read from those literals before any AWS call, so a wrong binary stops a deploy before
anything is uploaded.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, get_args

from dfbench.config import validate_bucket_name
from dfbench.errors import ConfigError

WorkerKind = Literal["current", "tag-discovery"]
KINDS: tuple[WorkerKind, ...] = get_args(WorkerKind)

# What each kind's binary contains, as cited in the module docstring. The current worker needs
# both: its error message and its flag name.
CURRENT_MARKERS = (b"POD_IP is not set", b"worker-dns-name")
TAG_DISCOVERY_MARKER = b"tag:BenchmarkCluster"

_MARKERS = (*CURRENT_MARKERS, TAG_DISCOVERY_MARKER)
# A release build is tens of megabytes: read it in pieces rather than whole.
CHUNK_SIZE = 1024 * 1024

KIND_OPTION = "--worker-kind"
COVERAGE = ("current: upstream datafusion-distributed from #630 on, benchmarks/src/bin/worker.rs; "
            "tag-discovery: from #227 up to #621, benchmarks/cdk/bin/worker.rs")

# A DNS name as the current worker resolves it: labels of letters, digits and inner dashes.
_DNS_NAME = re.compile(r"^(?=.{1,253}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                       r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")


def parse_kind(text: str) -> WorkerKind:
    """The kind named by ``--worker-kind``."""
    for kind in KINDS:
        if text == kind:
            return kind
    raise ConfigError(f"{KIND_OPTION} {text!r}: use {' or '.join(KINDS)} ({COVERAGE}).")


def markers_in(path: str | Path, *, chunk_size: int = CHUNK_SIZE) -> frozenset[bytes]:
    """The markers the file contains. Consecutive chunks overlap by one byte less than the longest
    marker, so a marker split across two reads is still found whole in one of them."""
    overlap = max(len(m) for m in _MARKERS) - 1
    found: set[bytes] = set()
    tail = b""
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            window = tail + chunk
            found.update(m for m in _MARKERS if m in window)
            tail = window[-overlap:]
    return frozenset(found)


def detect_kind(path: str | Path, override: str | None = None) -> WorkerKind:
    """The kind of the worker binary at ``path``: ``override`` when given (``--worker-kind``,
    for a build whose strings dfbench cannot see), else what its strings show. ConfigError for a
    binary of neither kind."""
    if override is not None:
        return parse_kind(override)
    found = markers_in(path)
    if all(m in found for m in CURRENT_MARKERS):
        return "current"
    if TAG_DISCOVERY_MARKER in found:
        return "tag-discovery"
    raise ConfigError(f"{path} is neither kind of worker dfbench runs ({COVERAGE}). If it is one of them, "
                      f"say which with {KIND_OPTION} {'|'.join(KINDS)}.")


def worker_arguments(kind: WorkerKind, *, bucket: str, dns_name: str | None = None) -> list[str]:
    """The worker's arguments (after the program): ``--bucket`` for both kinds, and for the
    current one ``--worker-dns-name``, the name whose A records are its peers."""
    try:
        validate_bucket_name(bucket)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    arguments = ["--bucket", bucket]
    if kind == "current":
        if dns_name is None or not _DNS_NAME.match(dns_name):
            raise ConfigError(f"the current worker needs a DNS name to find its peers by, got {dns_name!r}")
        arguments += ["--worker-dns-name", dns_name]
    elif dns_name is not None:
        raise ConfigError("the tag-discovery worker finds its peers by instance tag; it takes no DNS name")
    return arguments
