"""What every command shares: the two consoles, progress lines from the library's log, JSON or a
rendering, sizes, and the cluster a command names."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.status import Status

from dfbench.errors import ClusterNotFound

if TYPE_CHECKING:  # pydantic models cost a tenth of a second to build: loaded only when used
    from dfbench.models import Cluster

# Piped output is read by scripts and logs: never truncate ids to an assumed 80 columns.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class ProgressHandler(logging.Handler):
    """Library log records as progress lines; waits update the spinner instead of scrolling."""

    def __init__(self, spinner: Status) -> None:
        super().__init__(logging.INFO)
        self.spinner = spinner

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if getattr(record, "wait", False):
            self.spinner.update(message)
        elif record.levelno >= logging.WARNING:
            err.print(f"[yellow]warning:[/] {message}")
        else:
            err.print(message)


def emit(args: argparse.Namespace, result: Any, render: Callable[[Any], None]) -> None:
    from dfbench.models import Plan, TeardownReport

    if args.json:
        payload = None
        if result is not None:
            payload = result.model_dump(mode="json")
            # Computed properties the JSON readers rely on, which model_dump leaves out.
            if isinstance(result, Plan):
                payload["empty"] = result.empty
            elif isinstance(result, TeardownReport):
                payload["clean"] = result.clean
        print(json.dumps(payload, indent=2))
    else:
        render(result)


def size_text(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


def cluster_of(args: argparse.Namespace) -> Cluster | None:
    """The cluster ``--cluster`` names, as it exists now; None without the option."""
    if not args.cluster:
        return None
    from dfbench.provision import status  # the whole provisioning layer: only when a cluster is named

    cluster = status(args.cluster, region=args.region, profile=args.profile)
    if cluster is None:
        raise ClusterNotFound(args.cluster, args.region or "the default region")
    return cluster
