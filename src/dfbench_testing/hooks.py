"""Installing the harness's botocore hooks on every client dfbench makes, for one block."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from botocore.client import BaseClient

from dfbench.aws.session import add_client_hook


@contextmanager
def hooked(*hooks: Callable[[BaseClient], None]) -> Iterator[None]:
    """Install client hooks for the duration of the block."""
    removers = [add_client_hook(hook) for hook in hooks]
    try:
        yield
    finally:
        for remove in removers:
            remove()
