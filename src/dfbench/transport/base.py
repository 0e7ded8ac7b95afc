"""What every transport is: a context manager that, while open, gives a local base URL (``.url``)
at which one worker's HTTP API answers."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self


class Transport(Protocol):
    """The way to one worker. ``url`` is valid between ``__enter__`` and ``__exit__``."""

    kind: str  # "direct", "ssh", "ssm" or "relay"
    url: str
    description: str  # one line for people: what is forwarded to what

    def __enter__(self) -> Self: ...

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None: ...


class DirectTransport:
    """A URL the caller can already reach (the local worker, a VPN): nothing to open or close."""

    kind = "direct"

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.description = f"direct {self.url}"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        return None
