"""The steps of `dfbench verify-aws`, in order: each registers the cleanup of what it is about to
create before creating it (with the aws/ modules' ensure_*/delete_*, found again by the run's
tags), and records what it measured in the run's facts. Nothing here judges: probes.py does.

The run is a one-instance "cluster" named ``dfbench-verify-<run id>``, so every resource carries
``dfbench:cluster=<that name>``, ``dfbench:managed=true`` and ``dfbench:verify=<run id>``."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from dfbench.aws import account, bucket, dns, iam, network, parameters, ssm
from dfbench.aws import instances as ec2_instances
from dfbench.aws.session import Aws
from dfbench.aws.tags import VERIFY_KEY, cluster_tags, tag_dict, tag_specifications
from dfbench.errors import WaitTimeout, error_code
from dfbench.models import ChangeSet, Instance
from dfbench.verify.cleanup import CleanupStack
from dfbench.verify.instance import command_script, parse_output, user_data
from dfbench.verify.records import Facts
from dfbench.waiting import poll, time_scale
from dfbench.worker.scripts import ttl_script

INSTANCE_TYPE = "t3.micro"  # x86_64 like the worker, 1 GiB: the AWS CLI and curl run comfortably
ARM_TYPE = "t4g.micro"  # only for the refused launch of another architecture
VOLUME_GIB = 8  # Amazon Linux 2023's own snapshot size
TTL_HOURS = 1.0  # longer than every bound of the run together
DNS_BOUND_S = 180  # Route 53's PENDING to INSYNC ("usually within 60 seconds"), then the 10 s TTL
COMMAND_TIMEOUT_S = 600
SSM_WATCH_S = 180  # how long an invocation of a terminated instance is followed
SIMULATED = ["ec2:RunInstances", "iam:PassRole", "s3:TagResource", "ssm:SendCommand", "route53:CreateHostedZone"]


@dataclass
class Made:
    """What the steps made or found so far, for the steps after them (each runs only once the
    steps before it succeeded, so what it reads is set)."""

    bucket: str
    caller: str = ""
    ami: ec2_instances.Ami | None = None
    az: str = ""
    vpc_id: str | None = None
    vpc_created: float = 0.0  # monotonic time at most this long before the VPC's create
    subnet_id: str | None = None
    group_id: str | None = None
    profile: str = ""
    object_url: str = ""
    inside: str = ""
    outside: str = ""
    hosted_zone: dns.Zone | None = None
    record: str = ""
    instance: Instance | None = None


@dataclass
class Run:
    aws: Aws
    run_id: str
    stack: CleanupStack
    facts: Facts
    run_instances: Callable[[], dict[str, Any] | None]  # the last RunInstances' parameters (watch.py)
    made: Made

    @property
    def name(self) -> str:
        return f"dfbench-verify-{self.run_id}"

    @property
    def tags(self) -> dict[str, str]:
        return cluster_tags(self.name, {VERIFY_KEY: self.run_id})

    @property
    def prefix(self) -> str:
        return f".dfbench/verify/{self.run_id}"

    @property
    def output_prefix(self) -> str:
        return f"{ssm.OUTPUT_PREFIX}/verify-{self.run_id}"

    def client(self, service: str) -> Any:
        return self.aws.client(service)

    def observe(self, name: str, call: Callable[[], Any]) -> None:
        """``call``'s value as the fact ``name``; an AWS error becomes that fact's failure."""
        try:
            self.facts.record(name, **{name: call()})
        except ClientError as error:
            self.facts.errors[name] = f"{error_code(error)}: {error}"


def new_run_id() -> str:
    return secrets.token_hex(4)


def _refusal(call: Callable[[], Any]) -> dict[str, str]:
    """What EC2 answered a request it should refuse: its error, or what it did instead."""
    try:
        answer = call()
    except ClientError as error:
        return {"code": error_code(error), "message": str(error.response.get("Error", {}).get("Message", ""))}
    return {"code": "", "message": f"accepted: {[i['InstanceId'] for i in answer.get('Instances', [])]}"}


def account_step(run: Run) -> None:
    """What needs no resource: the caller, the AMI, zones, quotas, the simulator, dry runs."""
    ec2, iam_client = run.client("ec2"), run.client("iam")
    identity = run.client("sts").get_caller_identity()
    ami = ec2_instances.resolve_ami(run.client("ssm"), ec2, None)
    run.made.ami, run.made.caller = ami, identity["Arn"]
    run.facts.record("account", caller=identity["Arn"], ami=ami.image_id, endpoint=run.aws.endpoint_url)
    run.observe("default_vpc", lambda: [v["VpcId"] for v in ec2.describe_vpcs(
        Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]])

    def zones() -> dict[str, Any]:
        kinds = {z["ZoneName"]: (z.get("ZoneType", "availability-zone"), z.get("OptInStatus", ""))
                 for z in ec2.describe_availability_zones(AllAvailabilityZones=True)["AvailabilityZones"]}
        offered = {o["Location"] for page in ec2.get_paginator("describe_instance_type_offerings").paginate(
            LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": [INSTANCE_TYPE]}])
            for o in page["InstanceTypeOfferings"]}
        opted = sorted(z for z, (kind, status) in kinds.items() if kind != "availability-zone"
                       and status == "opted-in")
        return {"opted_in": opted, "offered_other": sorted(z for z in offered if kinds.get(z, ("",))[0]
                                                           not in ("availability-zone",))}
    run.observe("zones", zones)
    quotas = run.client("service-quotas")
    run.observe("quota_applied", lambda: _answer(lambda: quotas.get_service_quota(
        ServiceCode="ec2", QuotaCode=account.ON_DEMAND_STANDARD_QUOTA)["Quota"]["Value"]))
    run.observe("quota", lambda: account.vcpu_quota(quotas, account.ON_DEMAND_STANDARD_QUOTA))

    def simulated() -> dict[str, Any]:
        principal = account.principal_arn(iam_client, identity["Arn"])
        if principal is None:
            return {"principal": None, "decisions": {}}
        return {"principal": principal, "decisions": account.simulate(iam_client, principal, SIMULATED)}
    run.observe("simulator", simulated)

    def dry_run(instance_type: str, volume_type: str) -> dict[str, str]:
        answer = account.dry_run_launch(ec2, image_id=ami.image_id, root_device=ami.root_device, count=1,
                                        instance_type=instance_type, volume_size_gib=VOLUME_GIB,
                                        volume_type=volume_type, spot=False, tags=run.tags)
        return {"code": answer.code, "message": answer.message}
    run.observe("dry_run", lambda: dry_run(INSTANCE_TYPE, "gp3"))
    run.observe("dry_run_arch", lambda: dry_run(ARM_TYPE, "gp3"))
    run.observe("dry_run_io2", lambda: dry_run(INSTANCE_TYPE, "io2"))


def _answer(call: Callable[[], Any]) -> str:
    try:
        return f"answered {call()}"
    except ClientError as error:
        return f"refused: {error_code(error)}"


def network_step(run: Run) -> None:
    ec2 = run.client("ec2")

    def cleanup() -> None:
        network.delete_network(ec2, network.find_network(ec2, run.name))
    run.stack.register("network", cleanup)
    zone = ec2_instances.offered_zones(ec2, INSTANCE_TYPE, run.aws.region)[0]
    changes = ChangeSet(apply=True)
    found = network.find_network(ec2, run.name)
    run.made.vpc_created = time.monotonic()
    ids = network.ensure_network(ec2, cluster=run.name, bucket=run.made.bucket, tags=run.tags, ssh_cidrs=(),
                                 found=found, changes=changes)
    network.ensure_vpc_dns(ec2, ids.vpc_id, changes, cluster=run.name)
    subnet_id = network.ensure_subnet(ec2, cluster=run.name, zone=zone, tags=run.tags, subnets=list(found.subnets),
                                      route_table=found.route_table, vpc_id=ids.vpc_id,
                                      route_table_id=ids.route_table_id, changes=changes)
    run.made.az, run.made.vpc_id, run.made.subnet_id, run.made.group_id = (zone, ids.vpc_id, subnet_id,
                                                                           ids.security_group_id)


def iam_step(run: Run) -> None:
    client = run.client("iam")
    name = iam.role_name(run.name, run.aws.region)

    def cleanup() -> None:
        if (profile := iam.find_instance_profile(client, name)) is not None:
            iam.delete_instance_profile(client, profile)
        if (role := iam.find_role(client, name)) is not None:
            iam.delete_role(client, role)
    run.stack.register("role and instance profile", cleanup)
    changes = ChangeSet(apply=True)
    partition = run.made.caller.split(":")[1]
    iam.ensure_role(client, name=name, bucket=run.made.bucket, partition=partition, cluster=run.name,
                    region=run.aws.region, account=run.aws.account(), tags=run.tags,
                    found=iam.find_role(client, name), changes=changes)
    iam.ensure_instance_profile(client, name=name, role=name, tags=run.tags,
                                found=iam.find_instance_profile(client, name), changes=changes)
    run.made.profile = name


def bucket_step(run: Run) -> None:
    """The account's dfbench bucket (created, and deleted afterwards, only if absent), and the
    run's objects in it, tagged."""
    s3 = run.client("s3")
    name = run.made.bucket
    found = bucket.find_bucket(s3, name)

    def delete_objects() -> None:
        for prefix in (run.prefix, run.output_prefix):
            keys = [{"Key": o["Key"]} for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket=name, Prefix=prefix + "/") for o in page.get("Contents", [])]
            for start in range(0, len(keys), 1000):
                s3.delete_objects(Bucket=name, Delete={"Objects": keys[start:start + 1000], "Quiet": True})
    if found is None:
        def delete_created() -> None:
            if bucket.find_bucket(s3, name) is not None and \
                    tag_dict(s3.get_bucket_tagging(Bucket=name)["TagSet"]).get(VERIFY_KEY) == run.run_id:
                bucket.delete_bucket(s3, name)
        run.stack.register(f"bucket {name} (created by this run)", delete_created)
        try:
            bucket.ensure_bucket(s3, name=name, region=run.aws.region, tags=run.tags, found=None,
                                 changes=ChangeSet(apply=True))
        except ClientError as error:  # the tagged-create probe's observation; the step fails with it
            run.facts.errors["bucket_create"] = f"{error_code(error)}: {error}"
            raise
        run.facts.record("bucket", bucket_create="created")
    else:
        run.facts.record("bucket", bucket_create="existed")
    run.stack.register(f"objects s3://{name}/{run.prefix}/ and the run's command output", delete_objects)
    body = f"dfbench verify-aws {run.run_id}\n".encode()
    answer = s3.put_object(Bucket=name, Key=f"{run.prefix}/probe.txt", Body=body,
                           Tagging=f"{VERIFY_KEY}={run.run_id}")
    run.facts.record("bucket", put_etag=answer["ETag"].strip('"'), put_md5=hashlib.md5(body).hexdigest())
    run.made.object_url = f"s3://{name}/{run.prefix}/probe.txt"


def parameters_step(run: Run) -> None:
    client = run.client("ssm")
    inside = f"{iam.secret_parameters_prefix(run.name)}probe"
    outside = f"/dfbench/{run.name}-outside/probe"

    def cleanup() -> None:
        parameters.delete_parameters(client, [inside, outside])
    run.stack.register("SSM parameters", cleanup)
    # The escapes systemd's EnvironmentFile= must undo: \ " ` $ and a space.
    value = f'verify {run.run_id} "quoted" $HOME `tick` back\\slash 100%'
    for parameter in (inside, outside):
        parameters.put_secure_parameter(client, name=parameter, value=value, tags=run.tags)
    run.made.inside, run.made.outside = inside, outside
    run.facts.record("parameters", secret_sha256=hashlib.sha256(value.encode()).hexdigest())


def zone_step(run: Run) -> None:
    route53 = run.client("route53")

    def cleanup() -> None:
        for zone in dns.find_zone(route53, cluster=run.name, region=run.aws.region):
            dns.delete_zone(route53, zone)
    run.stack.register("private hosted zone", cleanup)
    changes = ChangeSet(apply=True)
    age = time.monotonic() - run.made.vpc_created
    zone = dns.ensure_zone(route53, cluster=run.name, region=run.aws.region, vpc_id=run.made.vpc_id,
                           tags=run.tags, found=dns.find_zone(route53, cluster=run.name, region=run.aws.region),
                           changes=changes)
    assert zone is not None
    run.facts.record("zone", zone_vpc_age_s=age)
    record = dns.workers_record_name(zone.name)
    dns.ensure_workers_record(route53, zone, record, ["127.0.0.2"], changes)
    run.made.hosted_zone, run.made.record = zone, record


def refusals_step(run: Run) -> None:
    """Requests EC2 must refuse, sent for real to read its wording. Should one launch after all,
    the instances cleanup (registered first) terminates it."""
    ec2 = run.client("ec2")

    def cleanup() -> None:
        ids = [i.instance_id for i in ec2_instances.find_instances(ec2, run.name)]
        ec2_instances.terminate_instances(ec2, ids)
        ec2_instances.wait_terminated(ec2, ids)
    run.stack.register("instances", cleanup)
    ami = run.made.ami
    assert ami is not None

    def launch(instance_type: str, volume: dict[str, Any]) -> Any:
        return ec2.run_instances(
            ImageId=ami.image_id, InstanceType=instance_type, MinCount=1, MaxCount=1, SubnetId=run.made.subnet_id,
            InstanceInitiatedShutdownBehavior="terminate", UserData="#!/bin/bash\n" + ttl_script(TTL_HOURS),
            BlockDeviceMappings=[{"DeviceName": ami.root_device, "Ebs": {**volume, "DeleteOnTermination": True}}],
            TagSpecifications=tag_specifications("instance", run.tags))
    run.facts.record("refusals",
                     arch=_refusal(lambda: launch(ARM_TYPE, {"VolumeSize": VOLUME_GIB, "VolumeType": "gp3"})),
                     io2=_refusal(lambda: launch(INSTANCE_TYPE, {"VolumeSize": VOLUME_GIB, "VolumeType": "io2"})))


def instance_step(run: Run) -> None:
    ec2 = run.client("ec2")
    made = run.made
    assert made.ami is not None and made.subnet_id is not None and made.group_id is not None
    request = ec2_instances.LaunchRequest(
        count=1, instance_type=INSTANCE_TYPE, ami=made.ami, zone=made.az, subnet_id=made.subnet_id,
        security_group_id=made.group_id, instance_profile=made.profile, volume_size_gib=VOLUME_GIB,
        volume_type="gp3", spot=False, ttl_hours=TTL_HOURS, instance_tags={**run.tags, "Name": f"{run.name}-0"},
        volume_tags=run.tags,
        user_data=user_data(ttl_hours=TTL_HOURS, region=run.aws.region, object_url=made.object_url))
    started = time.monotonic()
    [instance_id] = ec2_instances.launch_instances(ec2, request)
    [instance] = ec2_instances.wait_running(ec2, [instance_id])
    running = time.monotonic() - started
    ssm.wait_online(run.client("ssm"), [instance_id], targets=ssm.Targets(ec2, run.name))
    run.made.instance = instance
    run.facts.record("instance", instance_id=instance_id, private_ip=instance.private_ip, running_s=running,
                     online_s=time.monotonic() - started)


def command_step(run: Run) -> None:
    """One SSM command probing from inside the VPC, while the zone's record changes under it."""
    s3, client, route53 = run.client("s3"), run.client("ssm"), run.client("route53")
    bucket_name, instance = run.made.bucket, run.made.instance
    assert instance is not None
    post_key = f"{run.prefix}/posted.txt"
    post = run.aws.presigner().generate_presigned_post(
        Bucket=bucket_name, Key=post_key, Conditions=[["content-length-range", 1, 1024]], ExpiresIn=900)
    body = f"posted by {instance.instance_id} for dfbench verify-aws {run.run_id}"
    script = command_script(run_id=run.run_id, region=run.aws.region, dns_name=run.made.record,
                            dns_wanted="127.0.0.3", dns_bound_s=max(1, int(DNS_BOUND_S * time_scale())),
                            inside=run.made.inside, outside=run.made.outside, post_url=post["url"],
                            post_fields=post["fields"], post_body=body)
    command_id = ssm.send_to_instance(client, instance_id=instance.instance_id, script=script,
                                      comment=f"dfbench verify-aws {run.run_id}", execution_timeout_s=COMMAND_TIMEOUT_S,
                                      output_bucket=bucket_name, output_prefix=run.output_prefix)
    changed_at = time.time()
    change = dns.ensure_workers_record(route53, run.made.hosted_zone, run.made.record, ["127.0.0.3"],
                                       ChangeSet(apply=True))
    started = time.monotonic()
    poll(lambda: (dns.change_status(route53, str(change)) == "INSYNC", "PENDING"),
         what="Route 53 to apply the record change", timeout=DNS_BOUND_S, first=1.0, cap=2.0)
    run.facts.record("dns", changed_at=changed_at, insync_s=time.monotonic() - started)
    invocation = ssm.wait_invocation(client, command_id, instance.instance_id,
                                     deadline_s=_real(COMMAND_TIMEOUT_S + 120), output_bucket=bucket_name,
                                     output_prefix=run.output_prefix, max_poll_s=5.0)
    [invocation] = ssm.read_output(s3, [invocation]) if invocation.stdout_cut else [invocation]
    run.facts.record("command", inside=parse_output(invocation.stdout), command_status=invocation.status,
                     post_url=post["url"], post_md5=hashlib.md5(body.encode()).hexdigest())
    run.observe("posted_etag", lambda: s3.head_object(Bucket=bucket_name, Key=post_key)["ETag"].strip('"'))


def _real(seconds: float) -> float:
    """A bound the instance's clock enforces (SSM's execution timeout): the time scale of the tests
    shrinks dfbench's waits, not the time a script really runs, so this one is given unscaled."""
    scale = time_scale()
    return seconds / scale if scale > 0 else seconds


def terminate_step(run: Run) -> None:
    """A command running while its instance terminates: how SSM lists the invocation afterwards."""
    ec2, client = run.client("ec2"), run.client("ssm")
    assert run.made.instance is not None
    instance_id = run.made.instance.instance_id
    seconds = max(1, int(SSM_WATCH_S * 2 * time_scale()))  # outlasts the watch on AWS
    command_id = ssm.send_to_instance(client, instance_id=instance_id, script=f"sleep {seconds}\n",
                                      comment=f"dfbench verify-aws {run.run_id}: terminated during this",
                                      execution_timeout_s=seconds + 60, output_bucket=run.made.bucket,
                                      output_prefix=run.output_prefix)
    ec2_instances.terminate_instances(ec2, [instance_id])
    started = time.monotonic()
    seen: list[str] = []

    def check() -> tuple[bool, str]:
        listed = client.list_command_invocations(CommandId=command_id, InstanceId=instance_id)["CommandInvocations"]
        status = listed[0]["Status"] if listed else "not listed"
        if not seen or not seen[-1].startswith(status + " "):
            seen.append(f"{status} at {time.monotonic() - started:.0f} s")
        return status in ssm.TERMINAL or status == "not listed", status
    try:
        poll(check, what="SSM to end the invocation of the terminated instance", timeout=_real(SSM_WATCH_S),
             first=5.0, cap=10.0)
        ended = True
    except WaitTimeout:  # not ended within the bound: itself the observation
        ended = False
    run.facts.record("terminate", ssm_terminated={"statuses": seen, "ended": ended,
                                                  "watched_s": time.monotonic() - started})
    ec2_instances.wait_terminated(ec2, [instance_id])


def spent_token_step(run: Run) -> None:
    """The instance's RunInstances again, same client token, now that its instance terminated."""
    request = run.run_instances()
    if request is None:
        run.facts.errors["spent_token"] = "no RunInstances of this run was seen"
        return
    ec2 = run.client("ec2")
    try:
        answer = ec2.run_instances(**request)
        states = {i["InstanceId"]: i["State"]["Name"] for i in answer["Instances"]}
        run.facts.record("spent_token", spent_token={"code": "", "states": states})
    except ClientError as error:
        run.facts.record("spent_token", spent_token={"code": error_code(error), "states": {}})


STEPS: list[tuple[str, Callable[[Run], None]]] = [
    ("account", account_step), ("bucket", bucket_step), ("network", network_step), ("iam", iam_step),
    ("parameters", parameters_step), ("zone", zone_step), ("refusals", refusals_step),
    ("instance", instance_step), ("command", command_step), ("terminate", terminate_step),
    ("spent token", spent_token_step),
]

