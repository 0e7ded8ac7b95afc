"""AWS failures injected as real AWS error responses: what provision survives, and what stops it."""

from __future__ import annotations

import pytest

import dfbench
from dfbench import ClusterSpec
from dfbench.cli import main
from dfbench.errors import AwsError, CapacityError, QuotaError

PROFILE_NOT_READY = (
    "Value (dfbench-f-us-east-1) for parameter iamInstanceProfile.name is invalid. "
    "Invalid IAM Instance Profile name"
)


def test_transient_failures_are_retried(aws, faults, recorder):
    throttled = faults.error("ec2", "CreateVpc", "RequestLimitExceeded", "Request limit exceeded.", status=503, times=2)
    iam_throttled = faults.error("iam", "CreateRole", "Throttling", "Rate exceeded", status=400, times=2)
    server_error = faults.error("ec2", "RunInstances", "InternalError", "An internal error has occurred", status=500)
    s3_slow = faults.error("s3", "CreateBucket", "SlowDown", "Please reduce your request rate.", status=503)
    reset = faults.drop_connection("ec2", "DescribeSubnets")

    cluster = dfbench.provision(ClusterSpec(name="f", instance_count=2))

    assert len(cluster.instances) == 2
    assert [f.hits for f in (throttled, iam_throttled, server_error, s3_slow, reset)] == [2, 2, 1, 1, 1]
    # botocore retried inside each call: dfbench made each call once, and nothing twice.
    assert len(recorder.named("CreateVpc")) == 1
    assert len(recorder.named("RunInstances")) == 1
    assert dfbench.plan(ClusterSpec(name="f", instance_count=2)).changes == []


def test_instance_profile_propagation_is_retried_with_one_token(aws, faults, recorder):
    not_ready = faults.error("ec2", "RunInstances", "InvalidParameterValue", PROFILE_NOT_READY, times=3)
    cluster = dfbench.provision(ClusterSpec(name="f", instance_count=3))
    assert not_ready.hits == 3
    launches = recorder.named("RunInstances")
    assert len(launches) == 4
    # Every attempt carries the same idempotency token: at most one launch can take effect.
    assert len({c.params["ClientToken"] for c in launches}) == 1
    assert len(cluster.instances) == 3


def test_instance_profile_propagation_wait_is_bounded(aws, faults):
    faults.error("ec2", "RunInstances", "InvalidParameterValue", PROFILE_NOT_READY, times=100_000)
    with pytest.raises(AwsError) as raised:
        dfbench.provision(ClusterSpec(name="f", instance_count=1))
    assert raised.value.code == "InvalidParameterValue"


def test_other_invalid_parameter_is_not_retried(aws, faults, recorder):
    faults.error("ec2", "RunInstances", "InvalidParameterValue", "Invalid value for parameter volumeSize",
                 times=100_000)
    with pytest.raises(AwsError):
        dfbench.provision(ClusterSpec(name="f", instance_count=1))
    assert len(recorder.named("RunInstances")) == 1


def test_capacity_error_moves_to_the_next_zone(aws, faults, recorder):
    short = faults.error("ec2", "RunInstances", "InsufficientInstanceCapacity",
                         "We currently do not have sufficient c5n.2xlarge capacity in the Availability Zone you "
                         "requested (us-east-1a).", status=500)
    cluster = dfbench.provision(ClusterSpec(name="f", instance_count=3))
    assert short.hits == 1
    first, second = recorder.named("RunInstances")
    assert first.params["SubnetId"] != second.params["SubnetId"]
    # A new token for the new zone, since the request changed.
    assert first.params["ClientToken"] != second.params["ClientToken"]
    zones = {i.availability_zone for i in cluster.instances}
    assert zones == {"us-east-1b"}
    subnet_zones = [c.params["AvailabilityZone"] for c in recorder.named("CreateSubnet")]
    assert subnet_zones == ["us-east-1a", "us-east-1b"]
    assert dfbench.plan(ClusterSpec(name="f", instance_count=3)).changes == []


def test_capacity_everywhere_names_the_zones(aws, faults):
    faults.error("ec2", "RunInstances", "InsufficientInstanceCapacity", "no capacity", status=500, times=100)
    with pytest.raises(CapacityError) as raised:
        dfbench.provision(ClusterSpec(name="f", instance_count=2))
    assert raised.value.zones == ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1f"]
    assert raised.value.instance_type == "c5n.2xlarge"


def test_growing_cluster_stays_in_its_zone(aws, faults, recorder):
    dfbench.provision(ClusterSpec(name="f", instance_count=2))
    faults.error("ec2", "RunInstances", "InsufficientInstanceCapacity", "no capacity", status=500, times=100)
    recorder.clear()
    with pytest.raises(CapacityError) as raised:
        dfbench.provision(ClusterSpec(name="f", instance_count=4))
    assert raised.value.zones == ["us-east-1a"]
    assert recorder.named("CreateSubnet") == []


@pytest.mark.parametrize(
    ("code", "quota"),
    [
        ("VcpuLimitExceeded", "vCPU quota"),
        ("InstanceLimitExceeded", "running-instances limit"),
    ],
)
def test_quota_errors_stop_with_the_quota_named(aws, faults, recorder, capsys, code, quota):
    faults.error("ec2", "RunInstances", code, "You have requested more vCPU capacity than your current vCPU "
                 "limit of 32 allows.", times=100)
    with pytest.raises(QuotaError) as raised:
        dfbench.provision(ClusterSpec(name="f", instance_count=2))
    assert quota in str(raised.value)
    assert len(recorder.named("RunInstances")) == 1

    assert main(["provision", "--cluster", "f", "--count", "2"]) == 1
    stderr = capsys.readouterr().err
    assert quota in stderr and "Service Quotas" in stderr and "Traceback" not in stderr


def test_launch_visible_late_is_waited_for(aws, faults):
    # Right after RunInstances, DescribeInstances may not know the new ids yet.
    late = faults.error("ec2", "DescribeInstances", "InvalidInstanceID.NotFound",
                        "The instance IDs do not exist", times=2, when=lambda body: "InstanceId.1=" in body)
    cluster = dfbench.provision(ClusterSpec(name="f", instance_count=2))
    assert late.hits == 2
    assert all(i.state == "running" for i in cluster.instances)
