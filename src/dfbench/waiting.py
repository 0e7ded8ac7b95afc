"""Bounded waiting for things AWS does asynchronously: polls with backoff, never blind sleeps."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Collection
from typing import TypeVar

from botocore.exceptions import ClientError

from dfbench.errors import WaitTimeout, error_code

log = logging.getLogger("dfbench")

T = TypeVar("T")


def time_scale() -> float:
    """Multiplier for every poll interval. DFBENCH_TIME_SCALE=0.01 lets the test suite drive the
    same waits against an emulator, where nothing takes time, without sleeping for real."""
    try:
        return max(0.0, float(os.environ.get("DFBENCH_TIME_SCALE", "1")))
    except ValueError:
        return 1.0


def _intervals(first: float, cap: float):
    interval = first
    while True:
        yield interval * time_scale()
        interval = min(cap, interval * 2)


def poll(
    check: Callable[[], tuple[bool, T]],
    *,
    what: str,
    timeout: float,
    first: float = 2.0,
    cap: float = 15.0,
) -> T:
    """Call ``check`` until it returns ``(True, value)``; returns the value.

    ``check`` returns ``(done, value)``; the value of the last try is shown in the timeout error,
    so it should describe progress ("3/12 running").
    """
    deadline = time.monotonic() + timeout * time_scale()
    for interval in _intervals(first, cap):
        done, value = check()
        if done:
            return value
        if time.monotonic() + interval > deadline:
            raise WaitTimeout(what, timeout, str(value))
        log.info("waiting for %s: %s", what, value, extra={"wait": True})
        time.sleep(interval)
    raise AssertionError("unreachable")


def retry_client_error(
    call: Callable[[], T],
    *,
    codes: Collection[str],
    what: str,
    timeout: float,
    matches: Callable[[ClientError], bool] = lambda _: True,
    first: float = 1.0,
    cap: float = 8.0,
) -> T:
    """Run ``call``, retrying while it fails with one of ``codes`` (and ``matches``), up to
    ``timeout`` seconds. For eventual-consistency errors that botocore does not retry itself."""
    last: ClientError | None = None

    def attempt() -> tuple[bool, T | None]:
        nonlocal last
        try:
            return True, call()
        except ClientError as error:
            if error_code(error) not in codes or not matches(error):
                raise
            last = error
            return False, None

    try:
        return poll(attempt, what=what, timeout=timeout, first=first, cap=cap)  # type: ignore[return-value]
    except WaitTimeout:
        assert last is not None
        raise last from None
