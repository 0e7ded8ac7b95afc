"""The janitor (`dfbench sweep`): find what carries dfbench:managed=true and belongs to no live cluster
or verify run (what an interrupted provision, teardown or verify-aws left, or a cluster whose instances
ended by their time-to-live), list it, and with ``apply`` delete it in teardown's order
(ARCHITECTURE §4).

What is never touched: a resource without dfbench:managed=true; anything whose owner (its
dfbench:cluster or dfbench:verify tag, fleet.py) has an instance in its region in any state but
terminated; an owner's resources there while their newest dated trace (the role's or instance
profile's creation, an instance's launch) is younger than ``older_than``, or, unless
``older_than`` is zero, when none is dated (EC2 gives network resources no creation time); a
bucket, unless ``buckets``, and then only one dfbench created that no remaining role or VPC
records as its bucket, emptied as teardown empties it.

Every step is idempotent and every run looks afresh: a sweep interrupted anywhere and run again
finishes the job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial

from botocore.exceptions import ClientError

from dfbench.aws import bucket as buckets
from dfbench.aws import dns, iam, network
from dfbench.aws.session import Aws, connect
from dfbench.aws.tags import BUCKET_KEY, CLUSTER_KEY
from dfbench.errors import CredentialsError, WaitTimeout, aws_errors, translate
from dfbench.fleet import (
    Global,
    Named,
    Owner,
    Regional,
    base_connection,
    look_at_region,
    look_globally,
    owner_text,
    owners_of,
    regions_to_scan,
)
from dfbench.models import Orphan, SweepReport

log = logging.getLogger("dfbench")

DEFAULT_OLDER_THAN = timedelta(hours=1)
# Teardown's order: the zone before the VPC it answers in, the network from its members to the
# VPC, an instance profile before its role, the bucket last.
_ORDER = ("hosted-zone", "security-group", "route-table", "internet-gateway", "subnet", "vpc", "instance-profile",
          "iam-role", "bucket")


@dataclass(frozen=True)
class _Found:
    orphan: Orphan
    owners: tuple[Owner, ...]
    delete: Callable[[], object]


def sweep(*, region: str | None = None, all_regions: bool = False, older_than: timedelta = DEFAULT_OLDER_THAN,
          apply: bool = False, include_buckets: bool = False, profile: str | None = None) -> SweepReport:
    """What no live cluster owns, in the region or every region; deleted only with ``apply``."""
    with aws_errors(profile):
        base = base_connection(region, profile)
        regions = regions_to_scan(base, all_regions)
        found, skipped = _orphans(base, regions, older_than, include_buckets, profile)
        report = SweepReport(regions=regions, older_than_hours=older_than.total_seconds() / 3600, applied=apply,
                             orphans=[f.orphan for f in found], deleted=[], left=[], skipped=skipped)
        if not apply or not found:
            return report
        errors = _delete(found)
        # A fresh look, not bookkeeping: what is left is what AWS still has (in the regions that
        # had orphans; IAM's and Route 53's are looked at once whatever the regions).
        still, _ = _orphans(base, sorted({f.orphan.region for f in found}), timedelta(0), include_buckets, profile)
        present = {(f.orphan.kind, f.orphan.id) for f in still}
        return report.model_copy(update={
            "deleted": [f.orphan for f in found if (f.orphan.kind, f.orphan.id) not in present],
            "left": [f.orphan for f in found if (f.orphan.kind, f.orphan.id) in present], "errors": errors})


def _orphans(base: Aws, regions: list[str], older_than: timedelta, include_buckets: bool,
             profile: str | None) -> tuple[list[_Found], list[str]]:
    now = datetime.now(UTC)
    seen = look_globally(base)
    views = {name: (look_at_region(aws), aws) for name in regions
             for aws in [base if name == base.region else connect(region=name, profile=profile)]}
    found: list[_Found] = []
    skipped: list[str] = []
    for view, aws in views.values():
        found += _network_orphans(aws, view, skipped)
    found += _global_orphans(base, seen, {name: view for name, (view, _) in views.items()}, skipped)
    found, young = _old_enough(found, seen, [view for view, _ in views.values()], older_than, now)
    skipped += young
    found = _without_answering_vpcs(base, found, skipped)
    if include_buckets:
        found += _bucket_orphans(base, regions, seen, found, [view for view, _ in views.values()], skipped,
                                 older_than, now)
    return sorted(found, key=lambda f: (_ORDER.index(f.orphan.kind), f.orphan.region, f.orphan.id)), skipped


def _orphan(kind: str, resource_id: str, region: str, owners: tuple[Owner, ...],
            delete: Callable[[], object]) -> _Found:
    return _Found(Orphan(kind=kind, id=resource_id, region=region, owner=owner_text(owners), age_hours=None),
                  owners, delete)


def _network_orphans(aws: Aws, view: Regional, skipped: list[str]) -> list[_Found]:
    ec2 = aws.client("ec2")
    net = view.network
    # (kind, id, tags, the VPCs it is part of, how to delete it)
    items: list[tuple[str, str, dict[str, str], tuple[str, ...], Callable[[], object]]] = [
        *(("security-group", g.group_id, g.tags, (g.vpc_id,), lambda g=g: network.delete_security_group(ec2, g))
          for g in net.security_groups),
        *(("route-table", t.route_table_id, t.tags, (t.vpc_id,), lambda t=t: network.delete_route_table(ec2, t))
          for t in net.route_tables),
        *(("internet-gateway", g.igw_id, g.tags, g.attached_vpc_ids,
           lambda g=g: network.delete_internet_gateway(ec2, g)) for g in net.internet_gateways),
        *(("subnet", s.subnet_id, s.tags, (s.vpc_id,), lambda s=s: network.delete_subnet(ec2, s))
          for s in net.subnets),
        *(("vpc", v.vpc_id, v.tags, (v.vpc_id,), lambda v=v: network.delete_vpc(ec2, v)) for v in net.vpcs),
    ]
    found = []
    for kind, resource_id, tags, vpcs, delete in items:
        owners = owners_of(tags)
        held = sorted(i for vpc in vpcs for i in view.occupied.get(vpc, []))
        if not owners:
            skipped.append(f"{kind} {resource_id} ({view.region}): carries dfbench:managed=true but names no cluster "
                           "nor verify run")
        elif set(owners) & view.live_owners:
            continue
        elif held:
            skipped.append(f"{kind} {resource_id} ({view.region}, {owner_text(owners)}): its VPC still holds "
                           f"instance(s) {', '.join(held)}")
        else:
            found.append(_orphan(kind, resource_id, view.region, owners, delete))
    return found


def _global_orphans(base: Aws, seen: Global, views: dict[str, Regional], skipped: list[str]) -> list[_Found]:
    """Zones, instance profiles and roles whose region is swept and whose owner is not live there.
    The owner comes from the tags, else from the name (which also gives the region)."""
    iam_client, route53 = base.client("iam"), base.client("route53")
    items: list[tuple[str, str, dict[str, str], Named, Callable[[], object]]] = [
        *(("hosted-zone", z.zone_id, z.tags, named, lambda z=z: dns.delete_zone(route53, z))
          for z, named in seen.zones),
        *(("instance-profile", p.name, p.tags, named, lambda p=p: iam.delete_instance_profile(iam_client, p))
          for p, named in seen.profiles),
        *(("iam-role", r.name, r.tags, named, lambda r=r: iam.delete_role(iam_client, r)) for r, named in seen.roles),
    ]
    found = []
    for kind, resource_id, tags, named, delete in items:
        if named is None:
            skipped.append(f"{kind} {resource_id}: carries dfbench:managed=true but its name says no region")
            continue
        owners = owners_of(tags) or ((CLUSTER_KEY, named[0]),)
        region = named[1]
        if region in views and not set(owners) & views[region].live_owners:
            found.append(_orphan(kind, resource_id, region, owners, delete))
    return found


def _old_enough(found: list[_Found], seen: Global, views: list[Regional], older_than: timedelta,
                now: datetime) -> tuple[list[_Found], list[str]]:
    """The orphans whose owner's newest dated trace in their region is at least ``older_than``
    old (with ``older_than`` zero: all), each with its age; and a line for each owner left."""
    traces: dict[tuple[Owner, str], list[datetime]] = {}
    for things in (seen.roles, seen.profiles):
        for thing, named in things:
            for owner in owners_of(thing.tags) or (((CLUSTER_KEY, named[0]),) if named else ()):
                if named and thing.created:
                    traces.setdefault((owner, named[1]), []).append(thing.created)
    for view in views:
        for instance in view.instances:
            for owner in owners_of(instance.tags):
                traces.setdefault((owner, view.region), []).append(instance.launch_time)
    kept, young = [], {}
    for item in found:
        dates = [d for owner in item.owners for d in traces.get((owner, item.orphan.region), [])]
        age = now - max(dates) if dates else None
        if older_than > timedelta(0) and (age is None or age < older_than):
            why = (f"{_duration_text(age)} since its last dated trace" if age is not None
                   else "no dated trace (EC2 gives network resources no creation time)")
            young[(item.orphan.owner, item.orphan.region)] = why
            continue
        hours = age.total_seconds() / 3600 if age is not None else None
        kept.append(replace(item, orphan=item.orphan.model_copy(update={"age_hours": hours})))
    limit = _duration_text(older_than)
    return kept, [f"{owner} ({region}): {why}, not older than {limit}: left (--older-than 0 takes it)"
                  for (owner, region), why in sorted(young.items())]


def _without_answering_vpcs(base: Aws, found: list[_Found], skipped: list[str]) -> list[_Found]:
    """The orphans but the VPCs in which a zone that stays still answers (one not tagged by
    dfbench: a provision stopped between creating the zone and tagging it), so that no zone
    outlives the VPC it answers in (ARCHITECTURE §4)."""
    route53 = base.client("route53")
    going = {f.orphan.id for f in found if f.orphan.kind == "hosted-zone"}
    kept = []
    for item in found:
        staying = (sorted(set(dns.zones_on_vpc(route53, item.orphan.id, item.orphan.region)) - going)
                   if item.orphan.kind == "vpc" else [])
        if staying:
            skipped.append(f"vpc {item.orphan.id} ({item.orphan.region}, {item.orphan.owner}): hosted zone(s) "
                           f"{', '.join(staying)} without dfbench:managed=true still answer in it; `dfbench teardown` "
                           "of its cluster deletes a zone dfbench created, then sweep again")
        else:
            kept.append(item)
    return kept


def _bucket_orphans(base: Aws, regions: list[str], seen: Global, found: list[_Found], views: list[Regional],
                    skipped: list[str], older_than: timedelta, now: datetime) -> list[_Found]:
    """dfbench's buckets in the swept regions that nothing staying records as its bucket: no role
    (every region's: IAM is global) nor VPC that this sweep does not delete; and, unless
    ``older_than`` is zero, created at least that long ago (provision creates the bucket before
    the role that records it)."""
    going = {(f.orphan.kind, f.orphan.id) for f in found}
    users: dict[str, set[str]] = {}
    for role, _ in seen.roles:
        if ("iam-role", role.name) not in going and BUCKET_KEY in role.tags:
            users.setdefault(role.tags[BUCKET_KEY], set()).add(f"role {role.name}")
    for view in views:
        for vpc in view.network.vpcs:
            if ("vpc", vpc.vpc_id) not in going and BUCKET_KEY in vpc.tags:
                users.setdefault(vpc.tags[BUCKET_KEY], set()).add(f"vpc {vpc.vpc_id} ({view.region})")
    s3 = base.client("s3")
    orphans = []
    for bucket in buckets.find_managed_buckets(s3):
        if bucket.region not in regions:
            continue
        if bucket.name in users:
            skipped.append(f"bucket {bucket.name}: used by {', '.join(sorted(users[bucket.name]))}")
            continue
        age = now - bucket.created if bucket.created else None
        if older_than > timedelta(0) and (age is None or age < older_than):
            skipped.append(f"bucket {bucket.name}: created {_duration_text(age)} ago, not older than "
                           f"{_duration_text(older_than)}")
            continue
        orphans.append(_Found(Orphan(kind="bucket", id=bucket.name, region=bucket.region, owner="dfbench",
                                     age_hours=age.total_seconds() / 3600 if age else None), (),
                              partial(buckets.delete_bucket, s3, bucket.name)))
    return orphans


def _delete(found: list[_Found]) -> list[str]:
    """Each orphan in order; a failure is recorded and the steps that depend on it are skipped: an
    owner's VPC while its zone or a part of its network stays, its role while its instance profile
    stays (AWS would refuse them anyway)."""
    errors: list[str] = []
    failed: set[tuple[str, tuple[Owner, ...], str]] = set()
    blocked_by = {"vpc": ("hosted-zone", "security-group", "route-table", "internet-gateway", "subnet"),
                  "iam-role": ("instance-profile",)}
    for item in found:
        orphan = item.orphan
        if any((kind, item.owners, orphan.region) in failed for kind in blocked_by.get(orphan.kind, ())):
            failed.add((orphan.kind, item.owners, orphan.region))
            continue
        log.info("- delete %s (%s, %s)", orphan, orphan.owner, orphan.region)
        try:
            item.delete()
        except (ClientError, WaitTimeout) as error:
            if isinstance(translate(error), CredentialsError):
                raise
            errors.append(f"delete {orphan} ({orphan.region}): {error}")
            log.warning("could not delete %s: %s", orphan, error)
            failed.add((orphan.kind, item.owners, orphan.region))
    return errors


def _duration_text(span: timedelta | None) -> str:
    if span is None:
        return "unknown"
    seconds = span.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g}{unit}"
    return f"{seconds:.0f}s"
