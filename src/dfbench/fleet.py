"""Everything dfbench has in an account: what carries its tags in each region, and in IAM and
Route 53 (global), told apart by the cluster or verify run that owns it. ``dfbench clusters``
lists the clusters; ``dfbench sweep`` (janitor.py) deletes what no live one owns.

An owner is a tag: ``dfbench:cluster=<name>`` or ``dfbench:verify=<run id>``. It is live in a
region while an instance of that region carrying its tag is in any state but terminated
(shutting-down included: its network is not free yet). IAM roles and instance profiles, and
hosted zones, are global, but each belongs to one region, which its name carries
(``dfbench-<cluster>-<region>``, ``<cluster>.<region>.dfbench.internal``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dfbench.aws import dns, iam, network
from dfbench.aws import instances as ec2_instances
from dfbench.aws.session import Aws, connect, default_region
from dfbench.aws.tags import CLUSTER_KEY, TTL_KEY, VERIFY_KEY
from dfbench.config import validate_region
from dfbench.costs import Prices, accrued
from dfbench.errors import ConfigError, aws_errors
from dfbench.models import ClusterSummary, Instance

# (tag key, value): ("dfbench:cluster", "bench") or ("dfbench:verify", "<run id>").
Owner = tuple[str, str]
OWNER_KEYS = (CLUSTER_KEY, VERIFY_KEY)
GONE_STATES = ("terminated",)


def owners_of(tags: Mapping[str, str]) -> tuple[Owner, ...]:
    return tuple((key, tags[key]) for key in OWNER_KEYS if tags.get(key))


def owner_text(owners: Iterable[Owner]) -> str:
    names = {CLUSTER_KEY: "cluster", VERIFY_KEY: "verify run"}
    return ", ".join(f"{names[key]} {value}" for key, value in owners) or "no owner"


@dataclass(frozen=True)
class Regional:
    """What one region holds: every instance carrying an owner tag (any state), every network
    resource carrying dfbench:managed=true, and the instances not terminated in those VPCs,
    tagged or not, by VPC."""

    region: str
    instances: list[Instance]
    network: network.Network
    occupied: dict[str, list[str]]

    @property
    def live_owners(self) -> set[Owner]:
        return {owner for i in self.instances if i.state not in GONE_STATES for owner in owners_of(i.tags)}


# (cluster, region) as a global resource's name carries them; None: not a name dfbench makes.
Named = tuple[str, str] | None


@dataclass(frozen=True)
class Global:
    """IAM's and Route 53's dfbench resources, each with the cluster and region its name carries."""

    roles: list[tuple[iam.Role, Named]]
    profiles: list[tuple[iam.InstanceProfile, Named]]
    zones: list[tuple[dns.Zone, Named]]


def look_at_region(aws: Aws) -> Regional:
    ec2 = aws.client("ec2")
    net = network.find_managed_network(ec2)
    return Regional(aws.region, ec2_instances.find_owned_instances(ec2), net,
                    ec2_instances.instances_in_vpcs(ec2, [v.vpc_id for v in net.vpcs]))


def look_globally(aws: Aws) -> Global:
    iam_client = aws.client("iam")
    return Global(
        roles=[(role, iam.name_owner(role.name)) for role in iam.find_managed_roles(iam_client)],
        profiles=[(profile, iam.name_owner(profile.name))
                  for profile in iam.find_managed_instance_profiles(iam_client)],
        zones=[(zone, dns.zone_owner(zone.name)) for zone in dns.find_managed_zones(aws.client("route53"))],
    )


def base_connection(region: str | None, profile: str | None) -> Aws:
    """A connection to the region named (or the default one), checked: the region's name first,
    then the credentials (the first call)."""
    region = default_region(region)
    try:
        validate_region(region)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    aws = connect(region=region, profile=profile)
    aws.account()
    return aws


def regions_to_scan(aws: Aws, all_regions: bool) -> list[str]:
    """``aws``'s region, or with ``all_regions`` every region enabled for the account."""
    if not all_regions:
        return [aws.region]
    return sorted(r["RegionName"] for r in aws.client("ec2").describe_regions()["Regions"])


def list_clusters(*, region: str | None = None, all_regions: bool = False, profile: str | None = None,
                  now: datetime | None = None) -> list[ClusterSummary]:
    """Every dfbench cluster (by its dfbench:cluster tag) in the region, or in every region:
    those with instances and those whose instances are all gone but whose resources remain."""
    now = now or datetime.now(UTC)
    with aws_errors(profile):
        base = base_connection(region, profile)
        seen = look_globally(base)
        summaries = []
        for name in regions_to_scan(base, all_regions):
            aws = base if name == base.region else connect(region=name, profile=profile)
            summaries += _summaries(aws, look_at_region(aws), seen, now)
        return sorted(summaries, key=lambda s: (s.region, s.name))


def _summaries(aws: Aws, view: Regional, seen: Global, now: datetime) -> list[ClusterSummary]:
    instances: dict[str, list[Instance]] = {}
    for instance in view.instances:
        if CLUSTER_KEY in instance.tags:
            instances.setdefault(instance.tags[CLUSTER_KEY], []).append(instance)
    roles = {name: role for role, named in seen.roles
             if named and named[1] == view.region and (name := _cluster_of(role.tags, named))}
    names = set(instances) | set(roles) | {v.tags[CLUSTER_KEY] for v in view.network.vpcs if CLUSTER_KEY in v.tags} \
        | {name for zone, named in seen.zones if named and named[1] == view.region
           and (name := _cluster_of(zone.tags, named))}
    prices = Prices(aws)
    summaries = []
    for name in sorted(names):
        members = instances.get(name, [])
        role = roles.get(name)
        starts = [i.launch_time for i in members]
        created = role.created if role is not None and role.created else (min(starts) if starts else None)
        summaries.append(ClusterSummary(
            name=name, region=view.region, created=created,
            age_hours=(now - created).total_seconds() / 3600 if created else None,
            instances=dict(sorted(Counter(i.state for i in members).items())),
            ttl_deadline=ttl_deadline(members),
            live=any(i.state not in GONE_STATES for i in members),
            cost=accrued(prices, members, now=now),
        ))
    return summaries


def _cluster_of(tags: Mapping[str, str], named: tuple[str, str]) -> str | None:
    """The cluster of a role or zone: its tag, else its name's, unless it is a verify run's."""
    if CLUSTER_KEY in tags:
        return tags[CLUSTER_KEY]
    return None if VERIFY_KEY in tags else named[0]


def ttl_deadline(instances: Iterable[Instance]) -> datetime | None:
    """The earliest time-to-live deadline among the live instances: their launch plus the hours
    of their dfbench:ttl-hours tag. The deadline is armed at first boot; after a stop and start
    EC2's LaunchTime is the last start, so the deadline shown for such an instance is later than
    the one it keeps."""
    deadlines = []
    for instance in instances:
        hours = instance.tags.get(TTL_KEY, "none")
        if instance.state in GONE_STATES or hours == "none":
            continue
        try:
            deadlines.append(instance.launch_time + timedelta(hours=float(hours)))
        except ValueError:
            continue  # a tag changed by hand: no deadline can be told from it
    return min(deadlines, default=None)
