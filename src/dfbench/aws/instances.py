"""EC2 instances of a cluster: AMI lookup, one-call launches, naming, waiting, termination."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from dfbench.aws.network import NOT_VISIBLE_YET
from dfbench.aws.tags import (
    CLUSTER_KEY,
    TTL_KEY,
    VERIFY_KEY,
    cluster_filters,
    tag_dict,
    tag_list,
    tag_specifications,
)
from dfbench.errors import CapacityError, ConfigError, DfbenchError, error_code
from dfbench.models import Change, ChangeSet, Instance
from dfbench.waiting import poll, retry_client_error

log = logging.getLogger("dfbench")

AL2023_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
# Instances that count as members; shutting-down and terminated ones are on their way out.
LIVE_STATES = ("pending", "running", "stopping", "stopped")
# Codes that mean "not here, not now": try another zone.
# https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/troubleshooting-launch.html
CAPACITY_CODES = {"InsufficientInstanceCapacity", "InsufficientCapacity", "InsufficientHostCapacity", "Unsupported"}
# A new instance profile is not usable by EC2 for some seconds after CreateInstanceProfile:
# RunInstances answers InvalidParameterValue "Invalid IAM Instance Profile name"; a new subnet or
# security group may be unknown to it too (aws/network.py's NOT_VISIBLE_YET).
IAM_PROPAGATION_TIMEOUT_S = 120
RUNNING_TIMEOUT_S = 600
TERMINATED_TIMEOUT_S = 900
_NAME_INDEX = re.compile(r"-(\d+)$")


@dataclass(frozen=True)
class Ami:
    image_id: str
    root_device: str


def resolve_ami(ssm: Any, ec2: Any, pinned: str | None) -> Ami:
    """The pinned AMI, or the latest Amazon Linux 2023 from AWS's public SSM parameter."""
    image_id = pinned or ssm.get_parameter(Name=AL2023_PARAMETER)["Parameter"]["Value"]
    try:
        images = ec2.describe_images(ImageIds=[image_id])["Images"]
    except ClientError as error:
        if error_code(error).startswith("InvalidAMIID"):
            images = []
        else:
            raise
    if not images:
        raise ConfigError(f"AMI {image_id} does not exist in this region; pass another --ami or none.")
    return Ami(image_id, images[0].get("RootDeviceName", "/dev/xvda"))


def offered_zones(ec2: Any, instance_type: str, region: str) -> list[str]:
    """Availability zones of the region that offer the instance type, in a stable order.

    Offerings for LocationType availability-zone also list the Local Zones and Wavelength Zones the
    account opted in to (``us-east-1-bos-1a`` sorts before ``us-east-1a``); a cluster there would
    get other instance and volume types and prices, so only zones of ZoneType availability-zone
    count. https://docs.aws.amazon.com/local-zones/latest/ug/getting-started.html"""
    offered = {
        offering["Location"]
        for page in ec2.get_paginator("describe_instance_type_offerings").paginate(
            LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": [instance_type]}]
        )
        for offering in page["InstanceTypeOfferings"]
    }
    zones = sorted(offered & set(availability_zones(ec2)))
    if not zones:
        elsewhere = f" (only in {', '.join(sorted(offered))}, not availability zones)" if offered else ""
        raise ConfigError(f"Instance type {instance_type} is not offered in an availability zone of {region}"
                          f"{elsewhere}; choose another --instance-type or --region.")
    return zones


def availability_zones(ec2: Any) -> list[str]:
    """The region's available zones of ZoneType availability-zone (no Local or Wavelength Zone)."""
    answer = ec2.describe_availability_zones(Filters=[{"Name": "zone-type", "Values": ["availability-zone"]},
                                                      {"Name": "state", "Values": ["available"]}])
    return sorted(zone["ZoneName"] for zone in answer["AvailabilityZones"])


def _instance(raw: dict[str, Any]) -> Instance:
    tags = tag_dict(raw.get("Tags"))
    return Instance(
        instance_id=raw["InstanceId"],
        name=tags.get("Name", ""),
        private_ip=raw.get("PrivateIpAddress"),
        public_ip=raw.get("PublicIpAddress"),
        availability_zone=raw["Placement"]["AvailabilityZone"],
        instance_type=raw["InstanceType"],
        state=raw["State"]["Name"],
        image_id=raw["ImageId"],
        spot=raw.get("InstanceLifecycle") == "spot",
        launch_time=raw["LaunchTime"],
        tags=tags,
    )


def _describe(ec2: Any, **kwargs: Any) -> list[Instance]:
    return [
        _instance(raw)
        for page in ec2.get_paginator("describe_instances").paginate(**kwargs)
        for reservation in page["Reservations"]
        for raw in reservation["Instances"]
    ]


def find_instances(ec2: Any, cluster: str, states: tuple[str, ...] = LIVE_STATES) -> list[Instance]:
    """The cluster's instances, ordered by name index (then launch time)."""
    instances = _describe(
        ec2, Filters=[*cluster_filters(cluster), {"Name": "instance-state-name", "Values": list(states)}]
    )
    return sorted(instances, key=lambda i: (name_index(i.name), i.launch_time, i.instance_id))


def find_owned_instances(ec2: Any) -> list[Instance]:
    """Every instance of the region carrying a dfbench:cluster or dfbench:verify tag, in any state
    (EC2 lists terminated ones for about an hour): with or without dfbench:managed, since an
    instance says its owner is alive whatever else it carries."""
    return _describe(ec2, Filters=[{"Name": "tag-key", "Values": [CLUSTER_KEY, VERIFY_KEY]}])


def instances_in_vpcs(ec2: Any, vpc_ids: Sequence[str]) -> dict[str, list[str]]:
    """The instances in any state but terminated in each of ``vpc_ids`` (whatever their tags), by
    VPC: what holds a network that no dfbench tag says is used."""
    held: dict[str, list[str]] = {}
    if not vpc_ids:
        return held
    for page in ec2.get_paginator("describe_instances").paginate(Filters=[
            {"Name": "vpc-id", "Values": list(vpc_ids)},
            {"Name": "instance-state-name", "Values": [*LIVE_STATES, "shutting-down"]}]):
        for reservation in page["Reservations"]:
            for raw in reservation["Instances"]:
                held.setdefault(raw["VpcId"], []).append(raw["InstanceId"])
    return held


def name_index(name: str) -> int:
    match = _NAME_INDEX.search(name)
    return int(match.group(1)) if match else 1_000_000


def matches(instance: Instance, *, instance_type: str, spot: bool, ami: str | None) -> bool:
    """Whether an existing instance has this shape. An unpinned AMI (None) does not count: the
    latest AL2023 changes every few weeks and replacing a cluster for that would surprise."""
    return (instance.instance_type == instance_type and instance.spot == spot
            and (ami is None or instance.image_id == ami))


def ttl_tag(ttl_hours: float | None) -> str:
    return "none" if ttl_hours is None else f"{ttl_hours:g}"


@dataclass(frozen=True)
class LaunchRequest:
    """One RunInstances call: ``count`` instances of one shape in one subnet, as plain values.

    ``keep`` (the instances of the cluster that stay) is not sent: it is part of the cluster
    state the idempotency token stands for (see ``_TOKEN_GENERATIONS``)."""

    count: int
    instance_type: str
    ami: Ami
    zone: str
    subnet_id: str
    security_group_id: str
    instance_profile: str
    volume_size_gib: int
    volume_type: str
    spot: bool
    ttl_hours: float | None  # recorded in a tag; the user data arms it
    instance_tags: dict[str, str]
    volume_tags: dict[str, str]
    user_data: str
    keep: tuple[str, ...] = ()


# RunInstances idempotency (https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html):
# a request repeated with its client token returns the first response (only the instances' state
# may differ) for at least 24 hours after those instances terminate; the same token with another
# parameter changed fails with IdempotentParameterMismatch. A token is therefore a hash of the
# whole request and the cluster state it launches into, plus a generation: a launch whose
# instances are gone (time-to-live, spot reclaim, terminated by hand) makes the same request
# again under the next generation, while a retry of an interrupted launch, whose instances are
# alive or not visible yet, keeps its generation and gets its instances back.
_TOKEN_GENERATIONS = 20
# Answers meaning "this token's launch is over": its instances returned terminated, EC2's error
# for that (documented among RunInstances' error codes), or a token used with other parameters.
_SPENT_TOKEN_CODES = {"IdempotentInstanceTerminated", "IdempotentParameterMismatch"}
_GONE_STATES = ("shutting-down", "terminated")


def _token(digest: str, generation: int) -> str:
    return f"dfbench-{digest[:44]}-{generation}"  # at most 64 ASCII characters, as EC2 takes


def _first_live_generation(ec2: Any, digest: str) -> int:
    """The first generation whose token has launched nothing DescribeInstances lists, or whose
    instances are still alive (a retried launch: the same token returns them)."""
    for generation in range(_TOKEN_GENERATIONS):
        states = [i.state for i in _describe(ec2, Filters=[{"Name": "client-token",
                                                            "Values": [_token(digest, generation)]}])]
        if not states or any(state not in _GONE_STATES for state in states):
            return generation
    return _TOKEN_GENERATIONS


def launch_instances(ec2: Any, launch: LaunchRequest) -> list[str]:
    """All ``launch.count`` instances in one RunInstances call. Raises CapacityError for the zone.

    The client token (see ``_TOKEN_GENERATIONS``) starts at the first generation DescribeInstances
    does not show spent; a generation EC2 answers with instances all gone (terminated over an hour
    ago, no longer listed) or refuses as spent moves to the next one: never reported as lost
    capacity."""
    request: dict[str, Any] = dict(
        ImageId=launch.ami.image_id,
        InstanceType=launch.instance_type,
        MinCount=launch.count,
        MaxCount=launch.count,
        SubnetId=launch.subnet_id,
        SecurityGroupIds=[launch.security_group_id],
        IamInstanceProfile={"Name": launch.instance_profile},
        UserData=launch.user_data,
        InstanceInitiatedShutdownBehavior="terminate",
        MetadataOptions={"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 2},
        BlockDeviceMappings=[
            {
                "DeviceName": launch.ami.root_device,
                "Ebs": {
                    "VolumeSize": launch.volume_size_gib,
                    "VolumeType": launch.volume_type,
                    "Encrypted": True,
                    "DeleteOnTermination": True,
                },
            }
        ],
        TagSpecifications=tag_specifications("instance", {**launch.instance_tags, TTL_KEY: ttl_tag(launch.ttl_hours)})
        + tag_specifications("volume", launch.volume_tags),
    )
    if launch.spot:
        request["InstanceMarketOptions"] = {
            "MarketType": "spot",
            "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"},
        }

    def is_propagation(error: ClientError) -> bool:
        """A subnet or security group EC2 does not know yet (eventual consistency:
        https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html), or an instance
        profile IAM has not propagated to EC2 yet."""
        return error_code(error) in NOT_VISIBLE_YET or \
            "instance profile" in str(error.response.get("Error", {}).get("Message", "")).lower()

    # The whole request (its tags name the cluster, its subnet the region) and the instances it joins.
    digest = hashlib.sha256(json.dumps([request, sorted(launch.keep)], sort_keys=True).encode()).hexdigest()
    spent: list[str] = []
    for generation in range(_first_live_generation(ec2, digest), _TOKEN_GENERATIONS):
        token = _token(digest, generation)
        try:
            reservation = retry_client_error(
                partial(ec2.run_instances, **request, ClientToken=token),
                codes={"InvalidParameterValue", "InvalidSubnetID.NotFound", "InvalidGroup.NotFound"},
                matches=is_propagation,
                what=f"EC2 to know instance profile {launch.instance_profile}, {launch.subnet_id} and "
                     f"{launch.security_group_id}",
                timeout=IAM_PROPAGATION_TIMEOUT_S,
            )
        except ClientError as error:
            if error_code(error) in CAPACITY_CODES:
                raise CapacityError([launch.zone], launch.instance_type, error_code(error)) from None
            if error_code(error) not in _SPENT_TOKEN_CODES:
                raise
            spent.append(f"{token}: {error_code(error)}")
            continue
        gone = [raw["InstanceId"] for raw in reservation["Instances"] if raw["State"]["Name"] in _GONE_STATES]
        if len(gone) < len(reservation["Instances"]):
            return [raw["InstanceId"] for raw in reservation["Instances"]]
        spent.append(f"{token}: instances of an earlier launch, gone ({', '.join(gone)})")
        log.info("launch token %s was spent on instances now gone; launching under the next one", token)
    raise DfbenchError(f"Every RunInstances client token dfbench tried for this launch was spent ({'; '.join(spent)}). "
                       "EC2 keeps a token for at least 24 hours after its instances terminate: run the same command "
                       "again later, or change the cluster's spec.")


def ensure_names(ec2: Any, cluster: str, instances: list[Instance], changes: ChangeSet) -> list[Instance]:
    """Name=<cluster>-<i> on every instance, lowest free index first; returns the records as named.

    One CreateTags per unnamed instance: EC2 has no call that sets a different value on each
    resource, so this is the one part of a launch whose calls grow with the count."""
    taken = {i.name for i in instances if is_indexed(cluster, i.name)}
    free = iter(f"{cluster}-{n}" for n in range(2 * len(instances) + 1) if f"{cluster}-{n}" not in taken)
    named = []
    for instance in instances:
        if not is_indexed(cluster, instance.name):
            name = next(free)
            changes.make(
                Change(action="update", resource="instance", name=instance.instance_id, detail=f"Name={name}"),
                partial(ec2.create_tags, Resources=[instance.instance_id], Tags=tag_list({"Name": name})),
            )
            instance = instance.model_copy(update={"name": name, "tags": {**instance.tags, "Name": name}})
        named.append(instance)
    return sorted(named, key=lambda i: (name_index(i.name), i.instance_id))


def is_indexed(cluster: str, name: str) -> bool:
    prefix = f"{cluster}-"
    return name.startswith(prefix) and name[len(prefix):].isdigit()


def tagged_states(ec2: Any, cluster: str) -> dict[str, str]:
    """Every instance carrying ``dfbench:cluster=<cluster>`` (what an SSM command sent to that tag
    targets), by id, with its EC2 state: shutting-down and terminated ones too (EC2 lists a
    terminated instance for up to about an hour)."""
    tagged = _describe(ec2, Filters=[{"Name": f"tag:{CLUSTER_KEY}", "Values": [cluster]}])
    return {i.instance_id: i.state for i in tagged}


def other_clusters_with_tag(ec2: Any, key: str, value: str, cluster: str) -> set[str]:
    """Clusters (by their dfbench:cluster tag, else instance id) whose live instances carry the
    tag ``key=value``, other than ``cluster``."""
    found = set()
    for page in ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": f"tag:{key}", "Values": [value]},
                 {"Name": "instance-state-name", "Values": ["pending", "running"]}]
    ):
        for reservation in page["Reservations"]:
            for raw in reservation["Instances"]:
                owner = tag_dict(raw.get("Tags")).get(CLUSTER_KEY, raw["InstanceId"])
                if owner != cluster:
                    found.add(owner)
    return found


def wait_running(ec2: Any, instance_ids: list[str]) -> list[Instance]:
    """Poll (one DescribeInstances for all ids) until every instance runs with a private IP."""

    def check() -> tuple[bool, Any]:
        try:
            instances = _describe(ec2, InstanceIds=instance_ids)
        except ClientError as error:
            # Eventual consistency: ids just returned by RunInstances may not be describable yet.
            if error_code(error) == "InvalidInstanceID.NotFound":
                return False, "not visible yet"
            raise
        gone = [i.instance_id for i in instances if i.state in ("shutting-down", "terminated")]
        if gone:
            raise CapacityError([instances[0].availability_zone], instances[0].instance_type,
                                f"instances terminated right after launch: {', '.join(gone)}")
        ready = [i for i in instances if i.state == "running" and i.private_ip]
        if len(ready) == len(instance_ids):
            return True, ready
        return False, f"{len(ready)}/{len(instance_ids)} running"

    return poll(check, what=f"{len(instance_ids)} instance(s) to run", timeout=RUNNING_TIMEOUT_S)


def start_instances(ec2: Any, instance_ids: list[str], *, stopping: Sequence[str] = ()) -> None:
    """Start stopped instances. Those of ``stopping`` are waited for first: EC2 refuses to start an
    instance that is still stopping (IncorrectInstanceState), and it stops by itself."""
    if stopping:
        wait_stopped(ec2, list(stopping))
    ec2.start_instances(InstanceIds=instance_ids)


def wait_stopped(ec2: Any, instance_ids: list[str]) -> None:
    def check() -> tuple[bool, str]:
        instances = _describe(ec2, InstanceIds=instance_ids)
        still = [i.instance_id for i in instances if i.state == "stopping"]
        return not still, f"{len(instance_ids) - len(still)}/{len(instance_ids)} stopped"

    poll(check, what=f"{len(instance_ids)} stopping instance(s) to stop before starting them",
         timeout=TERMINATED_TIMEOUT_S)


def terminate_instances(ec2: Any, instance_ids: list[str]) -> None:
    if instance_ids:
        ec2.terminate_instances(InstanceIds=instance_ids)


def wait_terminated(ec2: Any, instance_ids: list[str]) -> None:
    def check() -> tuple[bool, str]:
        instances = _describe(ec2, InstanceIds=instance_ids)
        alive = [i for i in instances if i.state != "terminated"]
        return not alive, f"{len(instance_ids) - len(alive)}/{len(instance_ids)} terminated"

    if instance_ids:
        poll(check, what=f"{len(instance_ids)} instance(s) to terminate", timeout=TERMINATED_TIMEOUT_S)
