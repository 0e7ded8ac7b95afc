"""RunInstances client tokens against ``LaunchTokens``, which remembers them as EC2 does (moto
ignores them): a launch whose instances are gone is made again under a fresh token, a retried
launch keeps its token and gets its instances back."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

import dfbench
from dfbench import ClusterSpec
from dfbench.aws import instances as ec2_instances
from dfbench.aws.session import connect
from dfbench.errors import error_code
from dfbench_testing import Recorder


def tokens(recorder: Recorder) -> list[str]:
    return [c.params["ClientToken"] for c in recorder.named("RunInstances")]


def test_the_stand_in_remembers_tokens_as_ec2_does(aws, launch_tokens):
    ec2 = connect(region="us-east-1").client("ec2")
    image = ec2_instances.resolve_ami(connect(region="us-east-1").client("ssm"), ec2, None).image_id
    request = dict(ImageId=image, InstanceType="t3.micro", MinCount=1, MaxCount=1, ClientToken="t-1")

    first = [i["InstanceId"] for i in ec2.run_instances(**request)["Instances"]]
    ec2.terminate_instances(InstanceIds=first)
    again = ec2.run_instances(**request)["Instances"]
    with pytest.raises(ClientError) as other:
        ec2.run_instances(**{**request, "InstanceType": "t3.small"})

    assert [(i["InstanceId"], i["State"]["Name"]) for i in again] == [(first[0], "terminated")]
    assert error_code(other.value) == "IdempotentParameterMismatch"
    by_token = [{"Name": "client-token", "Values": ["t-1"]}]
    assert [i.instance_id for i in ec2_instances._describe(ec2, Filters=by_token)] == first
    launch_tokens.forget_terminated(ec2)  # an hour later: EC2 lists it no longer, still knows its token
    assert ec2_instances._describe(ec2, Filters=by_token) == []
    assert [i["InstanceId"] for i in ec2.run_instances(**request)["Instances"]] == first


def test_a_cluster_whose_instances_died_is_provisioned_again_with_a_fresh_token(aws, inspector, recorder):
    spec = ClusterSpec(name="reborn", instance_count=1)
    [dead] = dfbench.provision(spec).instances
    inspector.client("ec2").terminate_instances(InstanceIds=[dead.instance_id])  # its time-to-live, say

    [alive] = dfbench.provision(spec).instances

    assert alive.instance_id != dead.instance_id and alive.state == "running"
    first, second = tokens(recorder)
    assert first.endswith("-0") and second.endswith("-1") and first[:-2] == second[:-2]


def _request(inspector: Any) -> ec2_instances.LaunchRequest:
    """A launch into the default VPC's first subnet, with a profile made outside dfbench."""
    ec2 = inspector.client("ec2")
    subnet = ec2.describe_subnets()["Subnets"][0]
    group = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]
    inspector.client("iam").create_instance_profile(InstanceProfileName="p")
    client = connect(region="us-east-1")
    return ec2_instances.LaunchRequest(
        count=1, instance_type="t3.micro",
        ami=ec2_instances.resolve_ami(client.client("ssm"), client.client("ec2"), None),
        zone=subnet["AvailabilityZone"], subnet_id=subnet["SubnetId"], security_group_id=group["GroupId"],
        instance_profile="p", volume_size_gib=8, volume_type="gp3", spot=False, ttl_hours=None,
        instance_tags={"dfbench:cluster": "t"}, volume_tags={"dfbench:cluster": "t"},
        user_data="#!/bin/bash\n")


@pytest.mark.parametrize("answer", ["the terminated instances", "IdempotentInstanceTerminated"])
def test_tokens_ec2_remembers_past_describing_their_instances_are_skipped(aws, inspector, recorder, launch_tokens,
                                                                         answer):
    """An hour after termination DescribeInstances no longer shows a token spent; RunInstances does."""
    launch_tokens.terminated_error = None if answer == "the terminated instances" else answer
    request = _request(inspector)
    ec2 = connect(region="us-east-1").client("ec2")
    spent = [ec2_instances.launch_instances(ec2, request)[0]]
    ec2.terminate_instances(InstanceIds=spent)
    spent += ec2_instances.launch_instances(ec2, request)  # generation 1: DescribeInstances still lists 0's
    ec2.terminate_instances(InstanceIds=spent[1:])
    launch_tokens.forget_terminated(ec2)
    recorder.clear()

    [fresh] = ec2_instances.launch_instances(ec2, request)

    assert fresh not in spent
    assert [t.rsplit("-", 1)[1] for t in tokens(recorder)] == ["0", "1", "2"]
    state = inspector.client("ec2").describe_instances(InstanceIds=[fresh])["Reservations"][0]["Instances"][0]
    assert state["State"]["Name"] in ("pending", "running")


def test_a_retried_launch_keeps_its_token_and_gets_its_instances_back(aws, inspector, recorder, launch_tokens):
    request = _request(inspector)
    ec2 = connect(region="us-east-1").client("ec2")
    first = ec2_instances.launch_instances(ec2, request)

    again = ec2_instances.launch_instances(ec2, request)  # a re-run that did not see them (interrupted)

    assert again == first
    assert len(set(tokens(recorder))) == 1
    assert len(launch_tokens.tokens()) == 1
