"""The cleanup stack of `dfbench verify-aws`: each step registers how to delete what it is about to
create BEFORE creating it, and every registered cleanup runs, last first, however the run ends:
normally, on an error, on SIGINT or on SIGTERM (whose handlers raise into the run, so the stack
unwinds as for any exception). A cleanup finds its resources again by the run's tags, so one
registered for a create whose answer never came still finds what the create made.

Should the process die without unwinding (SIGKILL, power loss), the instances end themselves at
their time-to-live (user data plus InstanceInitiatedShutdownBehavior=terminate); `dfbench sweep`
finds the rest by its ``dfbench:managed`` tag."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

log = logging.getLogger("dfbench")


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM reached the run: raised where the run stood, so the stack unwinds."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


class CleanupStack:
    """Cleanups (name, function) run last-registered first by ``unwind``; each failure is kept as
    a line of ``left`` (what may still exist) and the next cleanup runs anyway."""

    def __init__(self) -> None:
        self._cleanups: list[tuple[str, Callable[[], None]]] = []
        self.left: list[str] = []

    def register(self, name: str, cleanup: Callable[[], None]) -> None:
        self._cleanups.append((name, cleanup))

    def unwind(self) -> list[str]:
        """Run every cleanup (last first); SIGINT and SIGTERM are held off meanwhile (a second
        Ctrl-C must not leave half of the resources behind: each wait here is bounded)."""
        with _signals_deferred():
            while self._cleanups:
                name, cleanup = self._cleanups.pop()
                log.info("cleaning up: %s", name)
                try:
                    cleanup()
                except Exception as error:  # the remaining cleanups must still run
                    self.left.append(f"{name}: {type(error).__name__}: {error}")
        return self.left


@contextmanager
def signals_raise() -> Iterator[None]:
    """SIGINT and SIGTERM raise Interrupted in the main thread for the block (the default SIGTERM
    ends the process without unwinding anything)."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise Interrupted(signum)

    with _handling(handler):
        yield


@contextmanager
def _signals_deferred() -> Iterator[None]:
    def handler(signum: int, _frame: FrameType | None) -> None:
        log.warning("%s received while cleaning up: finishing the cleanup first", signal.Signals(signum).name)

    with _handling(handler):
        yield


@contextmanager
def _handling(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """``handler`` for SIGINT and SIGTERM during the block; only the main thread can set one, so
    elsewhere (a library caller's thread) the block runs with the handlers as they are."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, handler) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)
