"""The cluster's Route 53 private hosted zone and the one A record that lists its workers.

The current upstream worker finds its peers by resolving a DNS name every second (every A
record becomes a peer ``http://IP:9001``). On EC2 that name lives in a private hosted zone
associated with the cluster's VPC: ``<cluster>.<region>.dfbench.internal`` holding
``workers.<cluster>.<region>.dfbench.internal``. Private zones answer only inside their VPCs,
which need DNS support and DNS hostnames turned on (``network.ensure_vpc_dns``).

Route 53 is global while clusters are regional, hence the region in the name (two clusters of
one name in two regions get two zones, as they get two IAM roles). The zone is found again by its
name and the dfbench tags, or, when a run stopped between creating it and tagging it, by the
CallerReference dfbench derived for it. Route 53's own throttling (Throttling, and
PriorRequestNotComplete while an earlier change is still being applied) is retried by botocore's
standard retry mode (aws/session.py), like every other service's.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from botocore.exceptions import ClientError

from dfbench.aws.tags import is_managed, missing_tags, tag_dict, tag_list, tags_text
from dfbench.errors import ConfigError, error_code
from dfbench.models import Change, ChangeSet

# .internal is reserved by ICANN for private use (2024): it is never delegated on the public
# internet, so a name under it cannot collide with or leak to a real domain.
DOMAIN = "dfbench.internal"
WORKERS_LABEL = "workers"
# The current worker resolves its DNS name every second; resolvers (the VPC's, and systemd-resolved
# on the instance) keep an answer for its TTL. Ten seconds bounds how long a worker keeps an old
# peer list after a scale change, while the VPC resolver answers most of the lookups from cache
# instead of asking Route 53 for every one.
RECORD_TTL_S = 10
# ListTagsForResources takes at most 10 ids, ChangeTagsForResource at most 10 tags per call.
_TAG_BATCH = 10
# How many CallerReferences one zone name may go through on one VPC (see _create_zone).
_MAX_REFERENCES = 20
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")
_ZONE_PREFIX = "/hostedzone/"


@dataclass(frozen=True)
class Zone:
    zone_id: str  # without the "/hostedzone/" prefix some answers carry
    name: str  # without the trailing dot
    vpc_ids: tuple[str, ...]
    caller_reference: str
    tags: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return f"hosted-zone {self.zone_id} ({self.name})"


@dataclass(frozen=True)
class WorkersRecord:
    name: str
    # As Route 53 holds them: a DELETE must repeat the values exactly.
    addresses: tuple[str, ...]
    ttl: int


def zone_name(cluster: str, region: str) -> str:
    for what, label in (("cluster name", cluster), ("region", region)):
        if not _LABEL.match(label):
            raise ConfigError(f"{what} {label!r} cannot be a DNS label: lowercase letters, digits and dashes, "
                              "at most 63, not starting or ending with a dash")
    return f"{cluster}.{region}.{DOMAIN}"


def workers_record_name(zone: str) -> str:
    return f"{WORKERS_LABEL}.{zone}"


def caller_reference(name: str, vpc_id: str | None, attempt: int) -> str:
    """The same for every run that creates the zone of ``name`` on ``vpc_id``: a retried or
    re-run create is recognised by Route 53 instead of making a second zone. A new VPC (a cluster
    torn down and provisioned again) starts a new series."""
    return f"{_reference_prefix(name)}{vpc_id}/{attempt}"


def _reference_prefix(name: str) -> str:
    return f"dfbench/{name}/"


def _zone_id(raw_id: str) -> str:
    return raw_id.removeprefix(_ZONE_PREFIX)


def _zones_named(route53: Any, name: str) -> list[dict[str, Any]]:
    """The private zones called ``name``. ListHostedZonesByName lists zones in name order from the
    one asked for, so those with this name come first; the listing stops at the first other name."""
    found: list[dict[str, Any]] = []
    params: dict[str, str] = {"DNSName": name}
    while True:
        page = route53.list_hosted_zones_by_name(**params)
        for raw in page["HostedZones"]:
            if raw["Name"].rstrip(".") != name:
                return found
            if raw.get("Config", {}).get("PrivateZone"):
                found.append(raw)
        if not page.get("IsTruncated"):
            return found
        params = {"DNSName": page["NextDNSName"], "HostedZoneId": page["NextHostedZoneId"]}


def _tags_of(route53: Any, zone_ids: list[str]) -> dict[str, dict[str, str]]:
    tags: dict[str, dict[str, str]] = {}
    for start in range(0, len(zone_ids), _TAG_BATCH):
        answer = route53.list_tags_for_resources(ResourceType="hostedzone",
                                                 ResourceIds=zone_ids[start:start + _TAG_BATCH])
        for tag_set in answer["ResourceTagSets"]:
            tags[_zone_id(tag_set["ResourceId"])] = tag_dict(tag_set.get("Tags"))
    return tags


def _zone(route53: Any, raw: Mapping[str, Any], tags: dict[str, str]) -> Zone:
    zone_id = _zone_id(raw["Id"])
    vpcs = route53.get_hosted_zone(Id=zone_id).get("VPCs", [])
    return Zone(zone_id, raw["Name"].rstrip("."), tuple(v["VPCId"] for v in vpcs), raw["CallerReference"], tags)


def zone_owner(name: str) -> tuple[str, str] | None:
    """(cluster, region) of a zone named as zone_name names it, else None."""
    head, dot, domain = name.rstrip(".").partition(".")
    region, dot, rest = domain.partition(".")
    return (head, region) if dot and rest == DOMAIN and _LABEL.match(head) and _LABEL.match(region) else None


def find_managed_zones(route53: Any) -> list[Zone]:
    """Every private zone of the account under dfbench.internal carrying dfbench:managed=true
    (Route 53 is global: every region's clusters). An untagged zone of dfbench's CallerReference
    series is not among them: ``find_zone`` finds it for its cluster's teardown."""
    candidates = [raw for page in route53.get_paginator("list_hosted_zones").paginate() for raw in page["HostedZones"]
                  if raw.get("Config", {}).get("PrivateZone") and raw["Name"].rstrip(".").endswith(f".{DOMAIN}")]
    tags = _tags_of(route53, [_zone_id(raw["Id"]) for raw in candidates])
    zones = []
    for raw in candidates:
        zone_tags = tags.get(_zone_id(raw["Id"]), {})
        if is_managed(zone_tags):
            try:
                zones.append(_zone(route53, raw, zone_tags))
            except ClientError as error:
                if error_code(error) != "NoSuchHostedZone":  # deleted since the listing
                    raise
    return sorted(zones, key=lambda z: z.zone_id)


def zones_on_vpc(route53: Any, vpc_id: str, region: str) -> list[str]:
    """The ids of the private zones associated with a VPC, whoever's they are."""
    ids: list[str] = []
    params: dict[str, str] = {"VPCId": vpc_id, "VPCRegion": region}
    while True:
        page = route53.list_hosted_zones_by_vpc(**params)
        ids += [_zone_id(summary["HostedZoneId"]) for summary in page.get("HostedZoneSummaries", [])]
        if not page.get("NextToken"):
            return ids
        params["NextToken"] = page["NextToken"]


def find_zone(route53: Any, *, cluster: str, region: str) -> list[Zone]:
    """The cluster's zones: a list, like every find, though CallerReference keeps it to one.
    A zone counts as the cluster's by its tags, or, untagged, by a CallerReference of dfbench's
    series for this name (created by a run that stopped before tagging it)."""
    name = zone_name(cluster, region)
    named = _zones_named(route53, name)
    tags = _tags_of(route53, [_zone_id(raw["Id"]) for raw in named])
    zones = [
        _zone(route53, raw, tags.get(_zone_id(raw["Id"]), {}))
        for raw in named
        if is_managed(tags.get(_zone_id(raw["Id"]), {}), cluster)
        or raw.get("CallerReference", "").startswith(_reference_prefix(name))
    ]
    return sorted(zones, key=lambda z: z.zone_id)


def ensure_zone(
    route53: Any, *, cluster: str, region: str, vpc_id: str | None, tags: dict[str, str], found: list[Zone],
    changes: ChangeSet,
) -> Zone | None:
    """The cluster's private zone, tagged and associated with ``vpc_id`` (None: the VPC this plan
    would create). Returns the zone to hold the workers record: None only when planning a zone that
    does not exist yet."""
    name = zone_name(cluster, region)
    zone = found[0] if found else None
    if zone is None:
        return changes.make(
            Change(action="create", resource="hosted-zone", name=name,
                   detail=f"private, on {vpc_id or 'the new vpc'}"),
            lambda: _create_zone(route53, name, region, vpc_id, tags),
        )
    lacking = missing_tags(zone.tags, tags)
    if lacking:
        changes.make(
            Change(action="update", resource="hosted-zone", name=name, detail=tags_text(lacking)),
            lambda: _tag(route53, zone.zone_id, lacking),
        )
    if vpc_id is None or vpc_id not in zone.vpc_ids:
        changes.make(
            Change(action="update", resource="hosted-zone", name=name, detail=f"associate {vpc_id or 'the new vpc'}"),
            lambda: route53.associate_vpc_with_hosted_zone(
                HostedZoneId=zone.zone_id, VPC={"VPCRegion": region, "VPCId": vpc_id}),
        )
    return zone


def _create_zone(route53: Any, name: str, region: str, vpc_id: str | None, tags: dict[str, str]) -> Zone:
    """Create the zone (on the VPC, in the same call: a private zone never exists without it),
    then tag it.

    Route 53 answers a CreateHostedZone whose CallerReference it has seen before with
    HostedZoneAlreadyExists instead of making a second zone. Two cases give that answer: the zone
    with this reference exists (an earlier attempt went through and its answer was lost, so
    botocore sent it again), and it is the one to use; or its zone was deleted (a teardown stopped
    between the zone and the VPC), whose reference Route 53 keeps refusing for a while, as it
    documents for health checks: the next reference of the series is tried. The series is
    deterministic, so a later run walks the same references and meets the zone it made. (A run
    stopped between creating and tagging needs none of this: find_zone knows the reference.)"""
    zone = _create_or_find(route53, name, region, vpc_id)
    _tag(route53, zone.zone_id, tags)
    return replace(zone, tags=dict(tags))


def _create_or_find(route53: Any, name: str, region: str, vpc_id: str | None) -> Zone:
    for attempt in range(_MAX_REFERENCES):
        reference = caller_reference(name, vpc_id, attempt)
        try:
            raw = route53.create_hosted_zone(
                Name=name, CallerReference=reference, VPC={"VPCRegion": region, "VPCId": vpc_id},
                HostedZoneConfig={"Comment": f"dfbench: peers of cluster {name}", "PrivateZone": True},
            )["HostedZone"]
            return Zone(_zone_id(raw["Id"]), name, (str(vpc_id),), reference)
        except ClientError as error:
            if error_code(error) != "HostedZoneAlreadyExists" or attempt == _MAX_REFERENCES - 1:
                raise
            existing = next((raw for raw in _zones_named(route53, name) if raw.get("CallerReference") == reference),
                            None)
            if existing is not None:
                return _zone(route53, existing, {})
    raise AssertionError("the last attempt returns or raises")


def _tag(route53: Any, zone_id: str, tags: Mapping[str, str]) -> None:
    items = tag_list(tags)
    for start in range(0, len(items), _TAG_BATCH):
        route53.change_tags_for_resource(ResourceType="hostedzone", ResourceId=zone_id,
                                         AddTags=items[start:start + _TAG_BATCH])


def find_workers_record(route53: Any, zone_id: str, name: str) -> WorkersRecord | None:
    answer = route53.list_resource_record_sets(HostedZoneId=zone_id, StartRecordName=name, StartRecordType="A",
                                               MaxItems="1")
    for raw in answer["ResourceRecordSets"]:
        if raw["Name"].rstrip(".") == name and raw["Type"] == "A":
            return WorkersRecord(name, tuple(r["Value"] for r in raw.get("ResourceRecords", [])), int(raw["TTL"]))
    return None


def _addresses(addresses: Iterable[str]) -> tuple[str, ...]:
    """Distinct IPv4 addresses in numeric order: the order does not matter to DNS, so a fixed one
    makes an unchanged list compare equal."""
    parsed = set()
    for text in addresses:
        try:
            parsed.add(ipaddress.IPv4Address(text))
        except ValueError:
            raise ConfigError(f"{text!r} is not an IPv4 address: an A record holds only those") from None
    return tuple(str(a) for a in sorted(parsed))


def _record_set(name: str, addresses: Iterable[str], ttl: int) -> dict[str, Any]:
    return {"Name": name, "Type": "A", "TTL": ttl, "ResourceRecords": [{"Value": a} for a in addresses]}


def ensure_workers_record(route53: Any, zone: Zone | None, name: str, addresses: Iterable[str],
                          changes: ChangeSet) -> str | None:
    """Make the A record ``name`` of ``zone`` hold exactly ``addresses`` (None: the zone this
    plan would create). With no address the record is deleted: Route 53 refuses a record set
    without values, and a name that does not resolve tells a worker it has no peers just as well.

    Route 53 applies a change in the background (PENDING, then INSYNC, usually within a minute);
    nothing waits for it here: the workers resolve the name every second, and a deploy's /info
    check waits for every worker to list every peer. Returns the change's id (``change_status``
    follows it), None when nothing changed."""
    wanted = _addresses(addresses)
    if zone is not None and not (name == zone.name or name.endswith(f".{zone.name}")):
        raise ConfigError(f"record {name} is not inside zone {zone.name}")
    current = find_workers_record(route53, zone.zone_id, name) if zone is not None else None
    if wanted and (current is None or tuple(sorted(current.addresses, key=ipaddress.IPv4Address)) != wanted
                   or current.ttl != RECORD_TTL_S):
        return changes.make(
            Change(action="create" if current is None else "update", resource="dns-record", name=name,
                   detail=f"A {', '.join(wanted)} (TTL {RECORD_TTL_S} s)"),
            lambda: _change(route53, zone, [("UPSERT", _record_set(name, wanted, RECORD_TTL_S))]),
        )
    if not wanted and current is not None:
        return changes.make(
            Change(action="delete", resource="dns-record", name=name, detail="no instances"),
            lambda: _change(route53, zone, [("DELETE", _record_set(name, current.addresses, current.ttl))]),
        )
    return None


def _change(route53: Any, zone: Zone | None, batch: list[tuple[str, dict[str, Any]]]) -> str:
    assert zone is not None, "a plan carries no action out"
    answer = route53.change_resource_record_sets(HostedZoneId=zone.zone_id, ChangeBatch={
        "Comment": "dfbench", "Changes": [{"Action": action, "ResourceRecordSet": rrset} for action, rrset in batch]})
    return str(answer["ChangeInfo"]["Id"])


def change_status(route53: Any, change_id: str) -> str:
    """PENDING while Route 53 propagates a change to its servers, then INSYNC."""
    return str(route53.get_change(Id=change_id)["ChangeInfo"]["Status"])


def delete_zone(route53: Any, zone: Zone) -> None:
    """Every record set but the zone's own SOA and NS (DeleteHostedZone refuses a zone holding
    others), in one change batch, then the zone. A zone already gone counts as deleted."""
    try:
        own: list[dict[str, Any]] = []
        for page in route53.get_paginator("list_resource_record_sets").paginate(HostedZoneId=zone.zone_id):
            own.extend(raw for raw in page["ResourceRecordSets"]
                       if not (raw["Type"] in ("SOA", "NS") and raw["Name"].rstrip(".") == zone.name))
        if own:
            _change(route53, zone, [("DELETE", raw) for raw in own])
        route53.delete_hosted_zone(Id=zone.zone_id)
    except ClientError as error:
        if error_code(error) != "NoSuchHostedZone":
            raise
