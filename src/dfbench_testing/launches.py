"""RunInstances' ClientToken as EC2 keeps it, which moto ignores (``LaunchTokens``).

EC2 (https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html): a repeated
RunInstances with the same client token returns the same response as the first, only the
instances' state may differ; the token stays valid for at least 24 hours after the instances
terminate; the same token with another parameter changed fails with IdempotentParameterMismatch.
DescribeInstances lists a terminated instance for about an hour only, and takes a
``client-token`` filter (moto implements neither the filter nor the memory).
"""

from __future__ import annotations

import re
import threading
import urllib.parse
import uuid
from dataclasses import dataclass
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.client import BaseClient

from dfbench_testing.wire import Body, error_response, forward

# An instance id no instance has: a client-token filter that matches nothing becomes an
# instance-id filter of this value, which moto answers with no instance (and no error).
_NO_INSTANCE = "i-00000000000000000"


@dataclass
class _Launch:
    request: list[tuple[str, str]]  # the RunInstances parameters but the token, sorted
    instance_ids: list[str]


class LaunchTokens:
    """EC2's client-token memory for RunInstances, at the request boundary.

    - A RunInstances whose token is known is answered here, on every HTTP attempt: with the
      original instances as they are now (terminated ones included) for the same parameters,
      with IdempotentParameterMismatch for others. One whose token is new reaches moto; when it
      succeeds, its token, parameters and instances are remembered. (A launch carried out by
      ``Faults.lose_answer`` goes past this memory: do not combine the two on RunInstances.)
    - DescribeInstances' ``client-token`` filter is answered from that memory (as an
      ``instance-id`` filter, which moto has); ``forget_terminated()`` makes it leave out the
      instances terminated so far, as EC2 does about an hour after their termination while it
      still remembers their token.
    - ``terminated_error``: answer a known token whose instances are all terminated with this
      error code instead of the instances (EC2 documents IdempotentInstanceTerminated among
      RunInstances' errors), so both answers can be tested.
    """

    def __init__(self) -> None:
        self.launches: dict[str, _Launch] = {}
        self.forgotten: set[str] = set()
        self.terminated_error: str | None = None
        self._sent: dict[str, list[tuple[str, str]]] = {}  # new tokens on their way to moto
        self._lock = threading.Lock()

    def hook(self, client: BaseClient) -> None:
        if client.meta.service_model.service_name != "ec2":
            return
        events = client.meta.events
        # botocore calls every before-send handler and uses the first answer, and calls those of a
        # more specific event name first: on the generic event and last, this one answers after
        # Faults' rules; it has no side effect, since another's answer may win.
        events.register_last("before-send", self._run_instances)
        events.register("before-parameter-build.ec2.RunInstances", self._remember_token)
        events.register("after-call.ec2.RunInstances", self._launched)
        events.register("before-parameter-build.ec2.DescribeInstances", self._describe)

    def forget_terminated(self, ec2: Any) -> None:
        """From now on, the client-token filter leaves out every instance terminated so far."""
        pages = ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-state-name", "Values": ["terminated"]}])
        self.forgotten |= {i["InstanceId"] for page in pages for r in page["Reservations"] for i in r["Instances"]}

    def tokens(self) -> list[str]:
        """The tokens of every launch so far, in order."""
        return list(self.launches)

    def _describe(self, params: dict[str, Any], **_: Any) -> None:
        if not any(item.get("Name") == "client-token" for item in params.get("Filters") or []):
            return
        with self._lock:
            # A new list: the caller's stays as it passed it.
            params["Filters"] = [
                {"Name": "instance-id", "Values": [i for token in item.get("Values", []) if token in self.launches
                                                   for i in self.launches[token].instance_ids
                                                   if i not in self.forgotten] or [_NO_INSTANCE]}
                if item.get("Name") == "client-token" else item
                for item in params["Filters"]
            ]

    @staticmethod
    def _remember_token(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["launch_token"] = params.get("ClientToken")

    def _run_instances(self, request: Any, event_name: str, **_: Any) -> AWSResponse | None:
        if event_name != "before-send.ec2.RunInstances":
            return None
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
        pairs = urllib.parse.parse_qsl(body, keep_blank_values=True)
        token = dict(pairs).get("ClientToken")
        if not token:
            return None
        parameters = sorted(p for p in pairs if p[0] != "ClientToken")
        with self._lock:
            known = self.launches.get(token)
            if known is None:
                self._sent[token] = parameters
                return None
        if known.request != parameters:
            return error_response("ec2", "IdempotentParameterMismatch", "Arguments on this idempotent request are "
                                  "inconsistent with arguments used in previous request(s).", 400)
        return self._again(request, known)

    def _launched(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        token = context.get("launch_token")
        with self._lock:
            if token and token not in self.launches and token in self._sent and http_response.status_code < 300:
                self.launches[token] = _Launch(self._sent.pop(token), [i["InstanceId"] for i in parsed["Instances"]])

    def _again(self, request: Any, launch: _Launch) -> AWSResponse:
        """The first launch's answer with the instances as they are now, from moto's DescribeInstances."""
        query = {"Action": "DescribeInstances", "Version": "2016-11-15",
                 **{f"InstanceId.{n}": i for n, i in enumerate(launch.instance_ids, 1)}}
        status, answer = forward(request, urllib.parse.urlencode(query))
        text = answer.decode()
        if status >= 300:
            raise AssertionError(f"the emulator refused DescribeInstances of {launch.instance_ids}: {text}")
        if self.terminated_error and all(f"<name>{state}</name>" not in text
                                         for state in ("pending", "running", "stopping", "stopped", "shutting-down")):
            return error_response("ec2", self.terminated_error, "The client token has been used for instances that "
                                  "are terminated.", 400)
        reservation = re.search(r"<reservationId>(.*?)</reservationId>", text)
        owner = re.search(r"<ownerId>(.*?)</ownerId>", text)
        instances = re.search(r"<instancesSet>.*</instancesSet>", text, re.DOTALL)
        assert reservation and owner and instances, text
        xml = ('<?xml version="1.0" encoding="UTF-8"?>\n'
               '<RunInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
               f"<requestId>{uuid.uuid4()}</requestId><reservationId>{reservation[1]}</reservationId>"
               f"<ownerId>{owner[1]}</ownerId><groupSet/>{instances[0]}</RunInstancesResponse>")
        return AWSResponse(request.url, 200, {"content-type": "text/xml;charset=UTF-8"}, Body(xml.encode()))
