"""Bounded waiting for things AWS does asynchronously: polls with backoff, never blind sleeps.

The policies (intervals, bounds, what to retry) are tenacity's; this module adds what tenacity
lacks: one progress line per wait, the time scale of the tests, and a timeout error saying what
was waited for and what was last seen."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection
from typing import Any, TypeVar

from botocore.exceptions import ClientError
from tenacity import RetryCallState, RetryError, Retrying, retry_if_exception, retry_if_result, wait_exponential

from dfbench.errors import WaitTimeout, error_code

log = logging.getLogger("dfbench")

T = TypeVar("T")


def time_scale() -> float:
    """Multiplier for every poll interval and bound. DFBENCH_TIME_SCALE=0.01 lets the test suite
    drive the same waits against an emulator, where nothing takes time, without sleeping for real."""
    try:
        return max(0.0, float(os.environ.get("DFBENCH_TIME_SCALE", "1")))
    except ValueError:
        return 1.0


def _retrying(*, what: str, timeout: float, first: float, cap: float, retry: Any,
              progress: Callable[[RetryCallState], object]) -> Retrying:
    """tenacity's policy for every wait here: intervals from ``first`` doubling up to ``cap``, no
    sleep that would end past ``timeout`` (all scaled by ``time_scale``), and a progress line
    (``progress`` of the attempt just made) before each sleep."""
    scale = time_scale()

    def report(state: RetryCallState) -> None:
        log.info("waiting for %s: %s", what, progress(state), extra={"wait": True})

    def stop(state: RetryCallState) -> bool:
        # tenacity's stop_before_delay, with the time spent in the calls scaled like the sleeps:
        # the same at scale 1; against an emulator a call's duration is this machine's load (a
        # call can outlast a whole scaled timeout on a busy machine), not time AWS takes.
        calls = (state.seconds_since_start or 0.0) - state.idle_for
        return state.idle_for + calls * scale + state.upcoming_sleep >= timeout * scale

    return Retrying(retry=retry, stop=stop, wait=wait_exponential(multiplier=first * scale, max=cap * scale),
                    before_sleep=report)


def poll(
    check: Callable[[], tuple[bool, T]],
    *,
    what: str,
    timeout: float,
    first: float = 2.0,
    cap: float = 15.0,
) -> T:
    """Call ``check`` until it returns ``(True, value)``; returns the value.

    ``check`` returns ``(done, value)``; the value of the last try is shown in the timeout error
    (WaitTimeout, saying what was waited for), so it should describe progress ("3/12 running").
    An exception from ``check`` ends the wait at once.
    """
    retrying = _retrying(what=what, timeout=timeout, first=first, cap=cap,
                         retry=retry_if_result(lambda outcome: not outcome[0]),
                         progress=lambda state: state.outcome.result()[1])  # type: ignore[union-attr]
    try:
        return retrying(check)[1]
    except RetryError as error:
        raise WaitTimeout(what, timeout, str(error.last_attempt.result()[1])) from None


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
    ``timeout`` seconds; then the last error is raised. For eventual-consistency errors that
    botocore does not retry itself."""

    def retryable(error: BaseException) -> bool:
        return isinstance(error, ClientError) and error_code(error) in codes and matches(error)

    def last_code(state: RetryCallState) -> str:
        error = state.outcome.exception() if state.outcome is not None else None
        return error_code(error) if error is not None else ""

    retrying = _retrying(what=what, timeout=timeout, first=first, cap=cap, retry=retry_if_exception(retryable),
                         progress=last_code)
    try:
        return retrying(call)
    except RetryError as error:
        raise error.last_attempt.exception() from None  # type: ignore[misc]
