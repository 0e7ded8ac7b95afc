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


class Price(Record):
    """What one instance of a type costs per hour, and where that number comes from."""

    instance_type: str
    region: str
    spot: bool
    # None: no source knew it (``source`` says what was asked and why it did not answer).
    usd_per_hour: float | None
    source: str
    # From the table bundled with dfbench (aws/prices.json), not from AWS now.
    bundled: bool = False


class Cost(Record):
    """What instances cost: ``per_hour`` while they all run, and for the hours they have run
    (``instance_hours``, ``usd``: the cost so far, or a cluster's lifetime at teardown). Compute
    only, at ``prices``: volumes, data transfer and the hosted zone are not in it."""

    instances: int
    per_hour: float | None  # None when a price is unknown
    prices: list[Price]
    instance_hours: float = 0.0
    usd: float | None = None  # None for an estimate of what is not running yet, or an unknown price

    def hourly_text(self) -> str:
        return f"{usd_text(self.per_hour)} per hour for {self.instances} instance(s) ({self.rates_text()})"

    def spent_text(self) -> str:
        return f"{usd_text(self.usd)} over {self.instance_hours:.1f} instance-hours ({self.rates_text()})"

    def rates_text(self) -> str:
        return "; ".join(f"{p.instance_type}{' spot' if p.spot else ''} at {usd_text(p.usd_per_hour, unit=True)}/h: "
                         f"{p.source}" for p in self.prices) or "no instance running"


def usd_text(amount: float | None, *, unit: bool = False) -> str:
    """Dollars to the cent; a unit price to the tenth of a cent and beyond as far as it goes
    ($0.432, $0.08925)."""
    if amount is None:
        return "unknown"
    if not unit:
        return f"${amount:,.2f}"
    digits = f"{amount:.6f}".rstrip("0")
    return f"${digits}{'0' * max(0, 2 - len(digits.partition('.')[2]))}"


class Plan(Record):
    cluster: str
    region: str
    changes: list[Change]
    # What the cluster of the spec costs per hour once all its instances run.
    cost: Cost | None = None

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
    # What the instances it terminated cost since their launch (None: it terminated none).
    cost: Cost | None = None

    @property
    def clean(self) -> bool:
        return not self.left



class ClusterSummary(Record):
    """One dfbench cluster as `dfbench clusters` lists it."""

    name: str
    region: str
    # When its role was created (the first resource provision makes after the bucket), else its
    # oldest instance's launch; None when neither remains.
    created: datetime | None
    age_hours: float | None
    instances: dict[str, int]  # EC2 state -> how many (terminated ones as long as EC2 lists them)
    ttl_deadline: datetime | None  # the earliest time-to-live deadline of its live instances
    live: bool  # an instance in any state but terminated: sweep leaves it alone
    cost: Cost  # per hour now, and so far


class Orphan(Record):
    """A resource carrying dfbench:managed=true whose owner has no live instance in its region."""

    kind: str  # vpc, subnet, route-table, internet-gateway, security-group, hosted-zone, ...
    id: str
    region: str
    owner: str  # "cluster bench", "verify run 1a2b", or "dfbench" for a bucket
    age_hours: float | None  # since the newest dated trace of its owner there; None: none is dated

    def __str__(self) -> str:
        return f"{self.kind} {self.id}"


class SweepReport(Record):
    regions: list[str]
    older_than_hours: float
    applied: bool  # False: a dry run, which deleted nothing
    orphans: list[Orphan]  # what was found, in deletion order
    deleted: list[Orphan]
    left: list[Orphan]  # found, and still there after the deletions (a dry run: empty)
    skipped: list[str]  # what carries dfbench:managed=true but was left alone, and why
    errors: list[str] = []

    @property
    def clean(self) -> bool:
        return not self.left and not self.errors
