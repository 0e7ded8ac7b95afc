"""VPC, internet gateway, route table, public subnet and security group of a cluster.

Everything is found by the dfbench tags, which the create calls set themselves
(TagSpecifications). Finds return lists: a create whose response was lost and retried can leave
two; provision uses the first (by id, so the choice is stable) and teardown deletes them all.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from dfbench.aws.tags import (
    BUCKET_KEY,
    CLUSTER_KEY,
    MANAGED_FILTER,
    MANAGED_KEY,
    cluster_filters,
    ensure_ec2_tags,
    tag_dict,
    tag_specifications,
)
from dfbench.errors import error_code
from dfbench.models import Change, ChangeSet
from dfbench.waiting import retry_client_error

T = TypeVar("T")

VPC_CIDR = "10.0.0.0/16"
ANYWHERE = "0.0.0.0/0"
# Deleting a network resource right after its dependents can fail for a while (an ENI of a
# terminated instance lingers): https://repost.aws/knowledge-center/troubleshoot-dependency-error-delete-vpc
DEPENDENCY_TIMEOUT_S = 300
# EC2 is eventually consistent: for a while after its create, a VPC, subnet, security group,
# internet gateway or route table may be unknown to the calls naming it, which then fail with
# these codes. https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html
NOT_VISIBLE_YET = frozenset({"InvalidVpcID.NotFound", "InvalidSubnetID.NotFound", "InvalidGroup.NotFound",
                             "InvalidInternetGatewayID.NotFound", "InvalidRouteTableID.NotFound"})
VISIBILITY_TIMEOUT_S = 120


def _visible(call: Callable[[], T], what: str) -> T:
    """``call``, retried while EC2 does not know yet a resource it names (bounded): each call here
    names resources created moments before, or found by a describe that already saw them."""
    return retry_client_error(call, codes=NOT_VISIBLE_YET, what=f"EC2 to know {what}", timeout=VISIBILITY_TIMEOUT_S)


@dataclass(frozen=True)
class Vpc:
    vpc_id: str
    tags: dict[str, str]


@dataclass(frozen=True)
class InternetGateway:
    igw_id: str
    attached_vpc_ids: tuple[str, ...]
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RouteTable:
    route_table_id: str
    vpc_id: str
    default_route_target: str | None
    # subnet id -> association id
    associations: dict[str, str]
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Subnet:
    subnet_id: str
    vpc_id: str
    zone: str
    cidr: str
    public_ip_on_launch: bool
    tags: dict[str, str] = field(default_factory=dict)


# (protocol, from port, to port, source): "sg-..." for a group, or a CIDR.
Rule = tuple[str, int | None, int | None, str]


@dataclass(frozen=True)
class SecurityGroup:
    group_id: str
    vpc_id: str
    ingress: frozenset[Rule]
    egress: frozenset[Rule]
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def ssh_cidrs(self) -> list[str]:
        """The address ranges allowed in on port 22 (the SSH transport's way in)."""
        return sorted(str(rule[3]) for rule in self.ingress if rule[:3] == ("tcp", 22, 22))


@dataclass(frozen=True)
class Network:
    vpcs: list[Vpc] = field(default_factory=list)
    internet_gateways: list[InternetGateway] = field(default_factory=list)
    route_tables: list[RouteTable] = field(default_factory=list)
    subnets: list[Subnet] = field(default_factory=list)
    security_groups: list[SecurityGroup] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.vpcs or self.internet_gateways or self.route_tables or self.subnets
                    or self.security_groups)

    @property
    def vpc(self) -> Vpc | None:
        return self.vpcs[0] if self.vpcs else None

    @property
    def internet_gateway(self) -> InternetGateway | None:
        return self.internet_gateways[0] if self.internet_gateways else None

    @property
    def route_table(self) -> RouteTable | None:
        return self.route_tables[0] if self.route_tables else None

    @property
    def security_group(self) -> SecurityGroup | None:
        return self.security_groups[0] if self.security_groups else None

    def subnet_in(self, zone: str) -> Subnet | None:
        return next((s for s in self.subnets if s.zone == zone), None)

    def describe(self) -> list[str]:
        """One line per resource, as teardown reports them."""
        return (
            [f"vpc {v.vpc_id}" for v in self.vpcs]
            + [f"internet-gateway {g.igw_id}" for g in self.internet_gateways]
            + [f"route-table {r.route_table_id}" for r in self.route_tables]
            + [f"subnet {s.subnet_id}" for s in self.subnets]
            + [f"security-group {g.group_id}" for g in self.security_groups]
        )


def _describe(ec2: Any, operation: str, key: str, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in ec2.get_paginator(operation).paginate(Filters=filters):
        items.extend(page[key])
    return items


def find_network(ec2: Any, cluster: str) -> Network:
    return _find(ec2, cluster_filters(cluster))


def find_managed_network(ec2: Any) -> Network:
    """Every network resource of the region carrying dfbench:managed=true, whoever's it is (its
    tags say which cluster or verify run)."""
    return _find(ec2, [MANAGED_FILTER])


def _find(ec2: Any, filters: list[dict[str, Any]]) -> Network:
    vpcs = sorted(
        (Vpc(v["VpcId"], tag_dict(v.get("Tags"))) for v in _describe(ec2, "describe_vpcs", "Vpcs", filters)),
        key=lambda v: v.vpc_id,
    )
    igws = sorted(
        (
            InternetGateway(g["InternetGatewayId"], tuple(a["VpcId"] for a in g.get("Attachments", [])),
                            tag_dict(g.get("Tags")))
            for g in _describe(ec2, "describe_internet_gateways", "InternetGateways", filters)
        ),
        key=lambda g: g.igw_id,
    )
    route_tables = sorted(
        (_route_table(r) for r in _describe(ec2, "describe_route_tables", "RouteTables", filters)),
        key=lambda r: r.route_table_id,
    )
    subnets = sorted(
        (
            Subnet(s["SubnetId"], s["VpcId"], s["AvailabilityZone"], s["CidrBlock"], bool(s.get("MapPublicIpOnLaunch")),
                   tag_dict(s.get("Tags")))
            for s in _describe(ec2, "describe_subnets", "Subnets", filters)
        ),
        key=lambda s: s.subnet_id,
    )
    groups = sorted(
        (_security_group(g) for g in _describe(ec2, "describe_security_groups", "SecurityGroups", filters)),
        key=lambda g: g.group_id,
    )
    return Network(vpcs, igws, route_tables, subnets, groups)


def clusters_using_bucket(ec2: Any, bucket: str) -> set[str]:
    """Names of the dfbench clusters in the region whose VPC records ``bucket``."""
    vpcs = ec2.describe_vpcs(
        Filters=[{"Name": f"tag:{BUCKET_KEY}", "Values": [bucket]}, {"Name": f"tag:{MANAGED_KEY}", "Values": ["true"]}]
    )["Vpcs"]
    return {tag_dict(v.get("Tags")).get(CLUSTER_KEY, v["VpcId"]) for v in vpcs}


def _route_table(raw: dict[str, Any]) -> RouteTable:
    target = next(
        (r.get("GatewayId") for r in raw.get("Routes", []) if r.get("DestinationCidrBlock") == ANYWHERE),
        None,
    )
    associations = {
        a["SubnetId"]: a["RouteTableAssociationId"] for a in raw.get("Associations", []) if a.get("SubnetId")
    }
    return RouteTable(raw["RouteTableId"], raw["VpcId"], target, associations, tag_dict(raw.get("Tags")))


def _rules(permissions: list[dict[str, Any]]) -> frozenset[Rule]:
    rules: set[Rule] = set()
    for p in permissions:
        protocol = str(p["IpProtocol"])
        ports = (p.get("FromPort"), p.get("ToPort")) if protocol != "-1" else (None, None)
        rules.update((protocol, *ports, pair["GroupId"]) for pair in p.get("UserIdGroupPairs", []))
        rules.update((protocol, *ports, ip["CidrIp"]) for ip in p.get("IpRanges", []))
    return frozenset(rules)


def _permissions(rules: set[Rule] | frozenset[Rule]) -> list[dict[str, Any]]:
    out = []
    for protocol, from_port, to_port, source in sorted(rules, key=str):
        permission: dict[str, Any] = {"IpProtocol": protocol}
        if from_port is not None:
            permission.update(FromPort=from_port, ToPort=to_port)
        if source.startswith("sg-"):
            permission["UserIdGroupPairs"] = [{"GroupId": source}]
        else:
            permission["IpRanges"] = [{"CidrIp": source}]
        out.append(permission)
    return out


def _security_group(raw: dict[str, Any]) -> SecurityGroup:
    return SecurityGroup(
        raw["GroupId"], raw["VpcId"], _rules(raw.get("IpPermissions", [])), _rules(raw.get("IpPermissionsEgress", [])),
        tag_dict(raw.get("Tags")),
    )


def desired_ingress(group_id: str, ssh_cidrs: tuple[str, ...]) -> frozenset[Rule]:
    """All traffic between cluster members (HTTP 9000, gRPC 9001, ...); SSH only from the CIDRs
    the user named; nothing else from outside."""
    return frozenset({("-1", None, None, group_id), *(("tcp", 22, 22, cidr) for cidr in ssh_cidrs)})


EGRESS_ALL: frozenset[Rule] = frozenset({("-1", None, None, ANYWHERE)})


def security_group_name(cluster: str) -> str:
    return f"dfbench-{cluster}"


def next_free_cidr(subnets: list[Subnet]) -> str:
    """The lowest /24 of the VPC no subnet uses: deterministic for a given state."""
    used = {s.cidr for s in subnets}
    for candidate in ipaddress.ip_network(VPC_CIDR).subnets(new_prefix=24):
        if str(candidate) not in used:
            return str(candidate)
    raise AssertionError("a /16 has 256 /24s; a cluster uses a handful")


@dataclass
class NetworkIds:
    """Ids after ensure_network; None for what a plan would create."""

    vpc_id: str | None
    internet_gateway_id: str | None
    route_table_id: str | None
    security_group_id: str | None


def ensure_network(
    ec2: Any, *, cluster: str, bucket: str, tags: dict[str, str], ssh_cidrs: tuple[str, ...],
    found: Network, changes: ChangeSet,
) -> NetworkIds:
    """VPC, internet gateway, route table and security group (subnets: ensure_subnet)."""
    vpc_id = found.vpc.vpc_id if found.vpc else None
    if found.vpc is None:
        vpc_id = changes.make(
            Change(action="create", resource="vpc", name=cluster, detail=VPC_CIDR),
            lambda: ec2.create_vpc(
                CidrBlock=VPC_CIDR, TagSpecifications=tag_specifications("vpc", {**tags, BUCKET_KEY: bucket})
            )["Vpc"]["VpcId"],
        )
    # What exists already gets the tags the spec has now (the VPC also records the bucket).
    ensure_ec2_tags(ec2, resource="network", changes=changes, found={
        **{v.vpc_id: (v.tags, {**tags, BUCKET_KEY: bucket}) for v in found.vpcs},
        **{r.igw_id: (r.tags, tags) for r in found.internet_gateways},
        **{r.route_table_id: (r.tags, tags) for r in found.route_tables},
        **{r.subnet_id: (r.tags, tags) for r in found.subnets},
        **{r.group_id: (r.tags, tags) for r in found.security_groups},
    })

    igw = found.internet_gateway
    igw_id = igw.igw_id if igw else None
    if igw is None:
        igw_id = changes.make(
            Change(action="create", resource="internet-gateway", name=cluster),
            lambda: ec2.create_internet_gateway(
                TagSpecifications=tag_specifications("internet-gateway", tags)
            )["InternetGateway"]["InternetGatewayId"],
        )
    if vpc_id is None or igw is None or vpc_id not in igw.attached_vpc_ids:
        changes.make(
            Change(action="update", resource="internet-gateway", name=igw_id or cluster, detail="attach to vpc"),
            lambda: _visible(lambda: ec2.attach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id),
                             f"{igw_id} and {vpc_id}"),
        )

    table = found.route_table
    table_id = table.route_table_id if table else None
    if table is None:
        table_id = changes.make(
            Change(action="create", resource="route-table", name=cluster),
            lambda: _visible(lambda: ec2.create_route_table(
                VpcId=vpc_id, TagSpecifications=tag_specifications("route-table", tags)
            ), str(vpc_id))["RouteTable"]["RouteTableId"],
        )
    if table is None or igw_id is None or table.default_route_target != igw_id:
        changes.make(
            Change(action="update", resource="route-table", name=table_id or cluster,
                   detail=f"route {ANYWHERE} -> internet gateway"),
            lambda: _visible(lambda: _set_default_route(ec2, table_id, igw_id,
                                                        replace=bool(table and table.default_route_target)),
                             f"{table_id} and {igw_id}"),
        )

    group = found.security_group
    group_id = group.group_id if group else None
    if group is None:
        group_id = changes.make(
            Change(action="create", resource="security-group", name=security_group_name(cluster),
                   detail="traffic only from cluster members"
                   + (f", ssh from {', '.join(ssh_cidrs)}" if ssh_cidrs else "")),
            lambda: _visible(lambda: ec2.create_security_group(
                GroupName=security_group_name(cluster),
                Description=f"dfbench cluster {cluster}: intra-cluster traffic only",
                VpcId=vpc_id,
                TagSpecifications=tag_specifications("security-group", tags),
            ), str(vpc_id))["GroupId"],
        )
    _ensure_rules(ec2, group, group_id, group_id or security_group_name(cluster), ssh_cidrs, changes)
    return NetworkIds(vpc_id, igw_id, table_id, group_id)


# VPC attributes a private hosted zone needs: DNS support makes the VPC's resolver answer at all,
# DNS hostnames makes it answer for private zones associated with the VPC.
# https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/hosted-zone-private-considerations.html
# In enabling order: EC2 refuses DNS hostnames on a VPC without DNS support. The values are what
# CreateVpc gives a VPC that is not the default one, for a plan of a VPC still to be created.
_VPC_DNS_ATTRIBUTES = (("enableDnsSupport", "EnableDnsSupport", "DNS support", True),
                       ("enableDnsHostnames", "EnableDnsHostnames", "DNS hostnames", False))


def ensure_vpc_dns(ec2: Any, vpc_id: str | None, changes: ChangeSet, *, cluster: str) -> None:
    """Turn on the VPC's DNS support and DNS hostnames (``vpc_id`` None: the VPC this plan would
    create). ModifyVpcAttribute takes one attribute per call."""
    for attribute, key, text, new_vpc_value in _VPC_DNS_ATTRIBUTES:
        described = partial(ec2.describe_vpc_attribute, VpcId=vpc_id, Attribute=attribute)
        enabled = _visible(described, vpc_id)[key]["Value"] if vpc_id is not None else new_vpc_value
        if not enabled:
            changes.make(
                Change(action="update", resource="vpc", name=vpc_id or cluster, detail=f"enable {text}"),
                partial(_visible, partial(ec2.modify_vpc_attribute, VpcId=vpc_id, **{key: {"Value": True}}),
                        str(vpc_id)),
            )


def _set_default_route(ec2: Any, table_id: str | None, igw_id: str | None, *, replace: bool) -> None:
    call = ec2.replace_route if replace else ec2.create_route
    call(RouteTableId=table_id, DestinationCidrBlock=ANYWHERE, GatewayId=igw_id)


def _ensure_rules(
    ec2: Any, group: SecurityGroup | None, group_id: str | None, name: str, ssh_cidrs: tuple[str, ...],
    changes: ChangeSet,
) -> None:
    # A group created just now has AWS's default allow-all egress and no ingress.
    current_ingress = group.ingress if group else frozenset()
    current_egress = group.egress if group else EGRESS_ALL
    wanted = desired_ingress(group_id or "sg-new", ssh_cidrs)
    missing, extra = wanted - current_ingress, current_ingress - wanted
    if missing:
        changes.make(
            Change(action="update", resource="security-group", name=name,
                   detail="allow " + ", ".join(_rule_text(r) for r in sorted(missing, key=str))),
            lambda: _visible(lambda: ec2.authorize_security_group_ingress(
                GroupId=group_id, IpPermissions=_permissions(missing)
            ), str(group_id)),
        )
    if extra:
        changes.make(
            Change(action="update", resource="security-group", name=name,
                   detail="revoke " + ", ".join(_rule_text(r) for r in sorted(extra, key=str))),
            lambda: _visible(lambda: ec2.revoke_security_group_ingress(GroupId=group_id,
                                                                       IpPermissions=_permissions(extra)),
                             str(group_id)),
        )
    if EGRESS_ALL - current_egress:
        changes.make(
            Change(action="update", resource="security-group", name=name, detail="allow all outbound"),
            lambda: _visible(lambda: ec2.authorize_security_group_egress(GroupId=group_id,
                                                                         IpPermissions=_permissions(EGRESS_ALL)),
                             str(group_id)),
        )


def _rule_text(rule: Rule) -> str:
    protocol, from_port, _, source = rule
    what = "all traffic" if protocol == "-1" else f"{protocol}/{from_port}"
    return f"{what} from {'cluster members' if source.startswith('sg-') else source}"


def ensure_subnet(
    ec2: Any, *, cluster: str, zone: str, tags: dict[str, str], subnets: list[Subnet],
    route_table: RouteTable | None, vpc_id: str | None, route_table_id: str | None, changes: ChangeSet,
) -> str | None:
    """The cluster's public subnet in ``zone``: public IPs on launch, routed to the gateway.

    ``subnets`` are the cluster's subnets so far; one created here is appended, so that the next
    zone tried in the same run picks a CIDR of its own."""
    subnet = next((s for s in subnets if s.zone == zone), None)
    subnet_id = subnet.subnet_id if subnet else None
    if subnet is None:
        cidr = next_free_cidr(subnets)
        subnet_id = changes.make(
            Change(action="create", resource="subnet", name=f"{cluster}-{zone}", detail=f"{cidr} in {zone}"),
            lambda: _visible(lambda: ec2.create_subnet(
                VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=zone,
                TagSpecifications=tag_specifications("subnet", tags),
            ), str(vpc_id))["Subnet"]["SubnetId"],
        )
        subnets.append(Subnet(subnet_id or "planned", vpc_id or "planned", zone, cidr, public_ip_on_launch=False))
    if subnet is None or not subnet.public_ip_on_launch:
        changes.make(
            Change(action="update", resource="subnet", name=subnet_id or f"{cluster}-{zone}",
                   detail="public IPs on launch"),
            lambda: _visible(lambda: ec2.modify_subnet_attribute(SubnetId=subnet_id,
                                                                 MapPublicIpOnLaunch={"Value": True}),
                             str(subnet_id)),
        )
    if subnet is None or route_table is None or subnet.subnet_id not in route_table.associations:
        changes.make(
            Change(action="update", resource="subnet", name=subnet_id or f"{cluster}-{zone}",
                   detail="use the route table"),
            lambda: _visible(lambda: ec2.associate_route_table(RouteTableId=route_table_id, SubnetId=subnet_id),
                             f"{route_table_id} and {subnet_id}"),
        )
    return subnet_id


def _delete(call: Any, *, not_found: str, what: str) -> None:
    """Delete, retrying DependencyViolation for a bounded time; already gone counts as done."""
    try:
        retry_client_error(call, codes={"DependencyViolation"}, what=what, timeout=DEPENDENCY_TIMEOUT_S)
    except ClientError as error:
        if error_code(error) != not_found:
            raise


def delete_security_group(ec2: Any, group: SecurityGroup) -> None:
    _delete(lambda: ec2.delete_security_group(GroupId=group.group_id),
            not_found="InvalidGroup.NotFound", what=f"security group {group.group_id} to be free")


def delete_route_table(ec2: Any, table: RouteTable) -> None:
    for association_id in table.associations.values():
        _delete(lambda a=association_id: ec2.disassociate_route_table(AssociationId=a),
                not_found="InvalidAssociationID.NotFound", what="route table association")
    _delete(lambda: ec2.delete_route_table(RouteTableId=table.route_table_id),
            not_found="InvalidRouteTableID.NotFound", what=f"route table {table.route_table_id} to be free")


def delete_internet_gateway(ec2: Any, igw: InternetGateway) -> None:
    for vpc_id in igw.attached_vpc_ids:
        _delete(lambda v=vpc_id: ec2.detach_internet_gateway(InternetGatewayId=igw.igw_id, VpcId=v),
                not_found="Gateway.NotAttached", what=f"internet gateway {igw.igw_id} to detach")
    _delete(lambda: ec2.delete_internet_gateway(InternetGatewayId=igw.igw_id),
            not_found="InvalidInternetGatewayID.NotFound", what=f"internet gateway {igw.igw_id} to be free")


def delete_subnet(ec2: Any, subnet: Subnet) -> None:
    _delete(lambda: ec2.delete_subnet(SubnetId=subnet.subnet_id),
            not_found="InvalidSubnetID.NotFound", what=f"subnet {subnet.subnet_id} to be free")


def delete_vpc(ec2: Any, vpc: Vpc) -> None:
    _delete(lambda: ec2.delete_vpc(VpcId=vpc.vpc_id),
            not_found="InvalidVpcID.NotFound", what=f"vpc {vpc.vpc_id} to be free")


def delete_network(ec2: Any, network: Network) -> list[str]:
    """Everything found, in dependency order. Returns what was deleted."""
    for group in network.security_groups:
        delete_security_group(ec2, group)
    for table in network.route_tables:
        delete_route_table(ec2, table)
    for igw in network.internet_gateways:
        delete_internet_gateway(ec2, igw)
    for subnet in network.subnets:
        delete_subnet(ec2, subnet)
    for vpc in network.vpcs:
        delete_vpc(ec2, vpc)
    return network.describe()
