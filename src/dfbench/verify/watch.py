"""How long AWS's NotFound windows last, measured on the calls dfbench makes anyway: a client hook
(the factory's extension point, aws/session.py) notes when each VPC, subnet, security group,
internet gateway, route table, role and instance profile was created, then every later call
naming it, and when the first of those succeeded and how many were answered NotFound before.
The ensure_* functions retry those answers (bounded), so the measurement costs no extra call.

It also keeps the parameters of the last RunInstances, so the spent-token probe can send the
very same request, client token included."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.client import BaseClient

# Create operation -> (kind, the new resource's id in its answer).
_CREATES: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "ec2.CreateVpc": ("vpc", lambda r: r["Vpc"]["VpcId"]),
    "ec2.CreateSubnet": ("subnet", lambda r: r["Subnet"]["SubnetId"]),
    "ec2.CreateSecurityGroup": ("security-group", lambda r: r["GroupId"]),
    "ec2.CreateInternetGateway": ("internet-gateway", lambda r: r["InternetGateway"]["InternetGatewayId"]),
    "ec2.CreateRouteTable": ("route-table", lambda r: r["RouteTable"]["RouteTableId"]),
    "iam.CreateRole": ("role", lambda r: r["Role"]["RoleName"]),
    "iam.CreateInstanceProfile": ("instance-profile", lambda r: r["InstanceProfile"]["InstanceProfileName"]),
}
# What AWS answers a call naming something it does not know yet
# (https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html, IAM's NoSuchEntity,
# Route 53's InvalidVPCId, EC2's "Invalid IAM Instance Profile name" as InvalidParameterValue).
# Each code is counted for the kind it names only (a RunInstances names a subnet, a group and a profile).
_NOT_FOUND = {"InvalidVpcID.NotFound": ("vpc",), "InvalidVPCId": ("vpc",), "InvalidSubnetID.NotFound": ("subnet",),
              "InvalidGroup.NotFound": ("security-group",),
              "InvalidInternetGatewayID.NotFound": ("internet-gateway",),
              "InvalidRouteTableID.NotFound": ("route-table",), "NoSuchEntity": ("role", "instance-profile")}


@dataclass
class Window:
    """One resource as one service saw it after its create."""

    kind: str
    resource: str
    service: str
    created: float
    not_found: int = 0
    first_success: float | None = None
    first_call: str = ""

    @property
    def seconds(self) -> float | None:
        return None if self.first_success is None else self.first_success - self.created

    def text(self) -> str:
        where = f"{self.kind} {self.resource} in {self.service}"
        if self.seconds is None:
            return f"{where}: no call naming it succeeded ({self.not_found} NotFound)"
        return (f"{where}: first call naming it ({self.first_call}) succeeded {self.seconds:.1f} s after its create, "
                f"after {self.not_found} NotFound answer(s)")


# A role and its instance profile share their name (iam.role_name): the parameter naming it says which.
_NAMED_BY = {"RoleName": "role", "InstanceProfileName": "instance-profile", "IamInstanceProfile": "instance-profile"}


def _named(value: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """(string, the parameter key above it that says what it names, or "") in a request."""
    if isinstance(value, str):
        yield value, key
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _named(item, name if name in _NAMED_BY else key)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _named(item, key)


class Watch:
    """Install with ``add_client_hook(watch.hook)`` before the run's clients are made."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._created: dict[str, dict[str, float]] = {}  # id -> {kind: time of the create's answer}
        self.windows: dict[tuple[str, str, str], Window] = {}  # (kind, id, service) -> its window
        self.run_instances: dict[str, Any] | None = None

    def hook(self, client: BaseClient) -> None:
        # provide-client-params: the parameters as the caller gave them, before botocore's own
        # handlers change them (it base64-encodes RunInstances' UserData in place).
        client.meta.events.register("provide-client-params", self._remember)
        client.meta.events.register("after-call", self._answered)

    @staticmethod
    def _remember(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        context["dfbench_verify_params"] = copy.deepcopy(params)

    def _answered(self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any],
                  **_: Any) -> None:
        service = model.service_model.service_name
        operation = f"{service}.{model.name}"
        params = context.get("dfbench_verify_params") or {}
        failed = http_response.status_code >= 300
        code = parsed.get("Error", {}).get("Code", "") if failed else ""
        message = str(parsed.get("Error", {}).get("Message", "")).lower()
        now = time.monotonic()
        with self._lock:
            if operation == "ec2.RunInstances" and not params.get("DryRun") and not failed:
                self.run_instances = dict(params)
            for name, key in set(_named(params)):
                kinds = self._created.get(name, {})
                if key in _NAMED_BY:
                    kinds = {k: t for k, t in kinds.items() if k == _NAMED_BY[key]}
                for kind, created in kinds.items():
                    self._follow(Window(kind, name, service, created), model.name, failed, code, message, now)
            if operation in _CREATES and not failed:
                kind, new_id = _CREATES[operation]
                try:
                    self._created.setdefault(new_id(parsed), {}).setdefault(kind, now)
                except KeyError:
                    pass  # an answer without the id: nothing to follow

    def _follow(self, new: Window, call: str, failed: bool, code: str, message: str, now: float) -> None:
        """One more call naming ``new``'s resource, in ``new``'s service."""
        window = self.windows.setdefault((new.kind, new.resource, new.service), new)
        if window.first_success is not None:
            return
        if not failed:
            window.first_success, window.first_call = now, call
        elif window.kind in _NOT_FOUND.get(code, ()) or (window.kind == "instance-profile"
                                                         and "instance profile" in message):
            window.not_found += 1

    def by_kind(self) -> dict[str, list[Window]]:
        found: dict[str, list[Window]] = {}
        with self._lock:
            for window in self.windows.values():
                found.setdefault(window.kind, []).append(window)
        return found
