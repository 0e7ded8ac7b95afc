"""Typed records returned by the public API. Raw boto3 dicts never leave the aws/ layer."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict

log = logging.getLogger("dfbench")

T = TypeVar("T")

Action = Literal["create", "update", "delete", "start", "replace"]
_SIGILS = {"create": "+", "update": "~", "delete": "-", "start": ">", "replace": "±"}


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Change(Record):
    """One thing provision would do (plan) or did (provision)."""

    action: Action
    resource: str
    name: str
    detail: str = ""

    def __str__(self) -> str:
        text = f"{_SIGILS[self.action]} {self.action} {self.resource} {self.name}"
        return f"{text}: {self.detail}" if self.detail else text


class ChangeSet:
    """Collects changes and, unless planning, carries each one out as it is recorded.

    provision and plan run the same code over the same observed state; only ``apply`` differs.
    That is what keeps `plan` honest: it cannot list something provision would not do, or miss
    something it would.
    """

    def __init__(self, *, apply: bool) -> None:
        self.apply = apply
        self.changes: list[Change] = []

    def make(self, change: Change, action: Callable[[], T]) -> T | None:
        self.changes.append(change)
        if not self.apply:
            return None
        log.info("%s", change)
        return action()


class Plan(Record):
    cluster: str
    region: str
    changes: list[Change]

    @property
    def empty(self) -> bool:
        return not self.changes


class Instance(Record):
    instance_id: str
    name: str
    private_ip: str | None
    public_ip: str | None
    availability_zone: str
    instance_type: str
    state: str
    image_id: str
    spot: bool
    launch_time: datetime
    tags: dict[str, str] = {}


class Cluster(Record):
    """A cluster as found. Network ids are None only in `status` of a partly provisioned or
    partly torn-down cluster; `provision` always returns them all."""

    name: str
    region: str
    account: str
    bucket: str
    vpc_id: str | None
    subnet_id: str | None
    internet_gateway_id: str | None
    route_table_id: str | None
    security_group_id: str | None
    role_name: str
    instance_profile_name: str
    ami_id: str | None
    instances: list[Instance]
    # Who may reach the instances on port 22 (the security group's rules); empty: no SSH at all.
    ssh_ingress_cidrs: list[str] = []
    # The A record of the cluster's private zone listing its workers' private addresses (the
    # current worker's --worker-dns-name); None in `status` while the cluster has no zone.
    workers_dns_name: str | None = None


class TeardownReport(Record):
    cluster: str
    region: str
    deleted: list[str]
    left: list[str]
    # Steps that failed, with AWS's reason; what they should have deleted is in ``left``.
    errors: list[str] = []

    @property
    def clean(self) -> bool:
        return not self.left
