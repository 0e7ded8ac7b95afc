"""What every transport is: a context manager that, while open, gives a local base URL (``.url``)
at which one worker's HTTP API answers."""

from __future__ import annotations

import socket
from types import TracebackType
from typing import Protocol, Self

from dfbench.errors import TransportError

# The ways in a user can ask for (`--via`); :mod:`dfbench.transport.choice` says what each needs.
VIAS = ("auto", "ssh", "ssm", "relay")
# Where the worker answers HTTP on an instance.
WORKER_PORT = 9000


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


def local_listener(kind: str, port: int = 0) -> socket.socket:
    """A listening socket on 127.0.0.1:``port`` (0: any free port). A taken port is a
    TransportError naming it: often the CDK tooling's own port-forward still running in another terminal."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Lets a fixed port be taken again while the last tunnel's connections linger in TIME_WAIT;
    # a second listener on a port in use is still refused (Linux, macOS).
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", port))
    except OSError as error:
        listener.close()
        raise TransportError(kind, f"Cannot listen on 127.0.0.1:{port} ({error.strerror}): another program holds "
                                   "it (an old port-forward?). Stop it, or choose another local port.") from None
    listener.listen(128)
    return listener
