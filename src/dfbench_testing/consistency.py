"""EC2's and IAM's eventual consistency, which moto lacks: a resource just created is unknown, for a
while, to the calls that name it (``NotYetVisible``).

EC2: https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html (InvalidVpcID.NotFound,
InvalidSubnetID.NotFound, InvalidGroup.NotFound, ... right after the create). IAM:
https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency
(NoSuchEntity for a new role or instance profile; EC2 refusing a new instance profile as an
invalid parameter).
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from collections import Counter
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.client import BaseClient

from dfbench_testing.wire import error_response

# EC2 id prefix -> (the error EC2 answers for an id it does not know yet, its message).
_EC2_NOT_FOUND = {
    "vpc-": ("InvalidVpcID.NotFound", "The vpc ID '{}' does not exist"),
    "subnet-": ("InvalidSubnetID.NotFound", "The subnet ID '{}' does not exist"),
    "sg-": ("InvalidGroup.NotFound", "The security group '{}' does not exist"),
    "igw-": ("InvalidInternetGatewayID.NotFound", "The internetGateway ID '{}' does not exist"),
    "rtb-": ("InvalidRouteTableID.NotFound", "The routeTable ID '{}' does not exist"),
}
# Create operation -> where its answer holds the new resource's id (or name, for IAM).
_CREATES = {
    "CreateVpc": ("Vpc", "VpcId"),
    "CreateSubnet": ("Subnet", "SubnetId"),
    "CreateSecurityGroup": (None, "GroupId"),
    "CreateInternetGateway": ("InternetGateway", "InternetGatewayId"),
    "CreateRouteTable": ("RouteTable", "RouteTableId"),
    "CreateRole": ("Role", "RoleName"),
    "CreateInstanceProfile": ("InstanceProfile", "InstanceProfileName"),
}


class NotYetVisible:
    """The first ``times`` requests naming a resource created while this is installed fail as EC2
    or IAM fail them right after the create: an EC2 id with its NotFound code, an IAM role or
    instance profile with NoSuchEntity, and a new instance profile named to EC2 (RunInstances)
    with InvalidParameterValue "Invalid IAM Instance Profile name". ``hits`` counts the answers
    given, by error code.

    Judged per HTTP attempt, on the generic ``before-send`` event and last, so that Faults' rules
    answer first (an attempt another stand-in answered still counts against ``times`` here)."""

    def __init__(self, times: int = 2) -> None:
        self.times = times
        self.hits: Counter[str] = Counter()
        # (kind, id or name) -> failures still to give; kind "ec2", "role", "profile" (IAM's calls)
        # or "ec2-profile" (EC2's): a role and its profile share dfbench's name.
        self._left: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def hook(self, client: BaseClient) -> None:
        service = client.meta.service_model.service_name
        if service not in ("ec2", "iam"):
            return
        client.meta.events.register_last("before-send", self._before_send)
        for operation in _CREATES:
            client.meta.events.register(f"after-call.{service}.{operation}", self._created)

    def _created(self, http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if http_response.status_code >= 300:
            return
        container, key = _CREATES[model.name]
        value = (parsed.get(container, {}) if container else parsed).get(key)
        # A new profile is unknown to IAM's own calls and, independently, to EC2's launches.
        kinds = {"CreateRole": ["role"], "CreateInstanceProfile": ["profile", "ec2-profile"]}.get(model.name, ["ec2"])
        if value:
            with self._lock:
                self._left.update({(kind, value): self.times for kind in kinds})

    def _before_send(self, request: Any, event_name: str, **_: Any) -> AWSResponse | None:
        _, service, operation = event_name.split(".", 2)
        if operation in _CREATES:
            return None
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
        words = set(re.split(r"[^\w.-]+", urllib.parse.unquote_plus(body)))
        with self._lock:
            for (kind, name), left in self._left.items():
                answer = _answer(service, kind, name) if left > 0 and name in words else None
                if answer is not None:
                    self._left[(kind, name)] -= 1
                    self.hits[answer[0]] += 1
                    return error_response(service, *answer, 404 if answer[0] == "NoSuchEntity" else 400)
        return None


def _answer(service: str, kind: str, name: str) -> tuple[str, str] | None:
    """What ``service`` answers a request naming the new resource ``name`` of ``kind`` (None: it
    does not fail there)."""
    if kind == "ec2":
        code, message = next(v for prefix, v in _EC2_NOT_FOUND.items() if name.startswith(prefix))
        return (code, message.format(name)) if service == "ec2" else None
    if kind == "ec2-profile":
        return ("InvalidParameterValue", (f"Value ({name}) for parameter iamInstanceProfile.name is invalid. "
                "Invalid IAM Instance Profile name")) if service == "ec2" else None
    if service == "iam":
        what = "Instance Profile" if kind == "profile" else "The role with name"
        return "NoSuchEntity", f"{what} {name} cannot be found."
    return None
