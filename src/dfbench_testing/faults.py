"""Faults injected at the request boundary: chosen calls answered with an AWS error, a canned AWS
response or a dropped connection before they reach the emulator (``Faults``), and a run
interrupted right after its n-th change at AWS (``Interrupt``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.client import BaseClient
from botocore.exceptions import ConnectionClosedError

from dfbench_testing.recording import READ_PREFIXES
from dfbench_testing.wire import NON_JSON_SERVICES, error_response, forward, json_response

Params = dict[str, Any]


@dataclass
class _Fault:
    service: str
    operation: str
    times: int
    answer: Callable[[str], AWSResponse]  # called with the request body
    when: Callable[[str], bool]
    hits: int = 0
    forward: bool = False  # send the request to the emulator before answering


class Faults:
    """Answer the first ``times`` matching calls with an AWS error, a canned AWS response, or a
    dropped connection. Rules are tried in the order they were added; the first that matches and
    has answers left answers the call."""

    def __init__(self) -> None:
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()

    def hook(self, client: BaseClient) -> None:
        client.meta.events.register_first("before-send", self._before_send)

    def error(self, service: str, operation: str, code: str, message: str = "injected", *, status: int = 400,
              times: int = 1, when: Callable[[str], bool] = lambda body: True) -> _Fault:
        fault = _Fault(service, operation, times, lambda _: error_response(service, code, message, status), when)
        self._faults.append(fault)
        return fault

    def respond(self, service: str, operation: str, body: Params | Callable[[Params], Params], *,
                times: int = 1, when: Callable[[str], bool] = lambda body: True) -> _Fault:
        """Answer with a successful response of a JSON-protocol service: ``body`` as given, or
        ``body(params)`` computed from the request's parameters (for answers that depend on the
        request, such as pages selected by NextToken or the ids in a filter)."""
        if service in NON_JSON_SERVICES:
            raise ValueError(f"respond() speaks the JSON protocol only; {service} does not use it")

        def answer(request_body: str) -> AWSResponse:
            params = json.loads(request_body) if request_body else {}
            return json_response(body(params) if callable(body) else body)

        fault = _Fault(service, operation, times, answer, when)
        self._faults.append(fault)
        return fault

    def remove(self, *faults: _Fault) -> None:
        """Take rules back (a stand-in that stops answering when its context ends)."""
        with self._lock:
            for fault in faults:
                self._faults.remove(fault)

    def drop_connection(self, service: str, operation: str, *, times: int = 1) -> _Fault:
        fault = _Fault(service, operation, times, lambda _: _raise_closed(), lambda body: True)
        self._faults.append(fault)
        return fault

    def lose_answer(self, service: str, operation: str, *, times: int = 1) -> _Fault:
        """The call reaches the emulator and takes effect, but its answer is lost (the connection
        closes): botocore sends it again, as it would after AWS had carried it out."""
        fault = _Fault(service, operation, times, lambda _: _raise_closed(), lambda body: True)
        fault.forward = True
        self._faults.append(fault)
        return fault

    def _before_send(self, request: Any, event_name: str, **_: Any) -> AWSResponse | None:
        _, service, operation = event_name.split(".", 2)  # "before-send.ec2.RunInstances"
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
        with self._lock:
            for fault in self._faults:
                if (fault.service, fault.operation) == (service, operation) and fault.hits < fault.times \
                        and fault.when(body):
                    fault.hits += 1
                    if fault.forward:
                        _forward(request)
                    return fault.answer(body)
        return None


def _raise_closed() -> AWSResponse:
    raise ConnectionClosedError(endpoint_url="https://emulated")


def _forward(request: Any) -> None:
    status, _ = forward(request)
    if status >= 300:
        raise AssertionError(f"the emulator refused the forwarded {request.method} {request.url}: HTTP {status}")


class Interrupt:
    """Raise KeyboardInterrupt right after the n-th mutating call has succeeded at AWS: the
    state an interrupted (or crashed) run leaves behind."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.seen = 0
        self.last: str | None = None

    def hook(self, client: BaseClient) -> None:
        client.meta.events.register_last("after-call", self._after_call)

    def _after_call(self, model: Any, http_response: Any = None, **_: Any) -> None:
        if model.name.startswith(READ_PREFIXES) or (http_response is not None and http_response.status_code >= 300):
            return
        self.seen += 1
        if self.seen == self.after:
            self.last = model.name
            raise KeyboardInterrupt(f"interrupted after {model.name}")
