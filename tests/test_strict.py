"""The harness refuses what AWS refuses and moto accepts (dfbench_testing.strict), on every test's
clients: each case here is accepted by moto itself (the inspector's plain clients are not hooked)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from dfbench.aws.instances import AL2023_PARAMETER
from dfbench.aws.session import connect
from dfbench_testing import LOCAL_ZONE

# (service, operation, parameters, AWS's error code, words of its message)
MODEL_CASES = [
    ("iam", "create_role", {"RoleName": "has space", "AssumeRolePolicyDocument": "{}"}, "ValidationError",
     "regular expression pattern"),
    ("route53", "create_hosted_zone", {"Name": "a.example", "CallerReference": "x" * 129}, "InvalidInput",
     "length less than or equal to 128"),
    ("ssm", "send_command", {"InstanceIds": ["i-zz"], "DocumentName": "AWS-RunShellScript",
                             "Parameters": {"commands": ["true"]}}, "ValidationException", "InstanceIds.1"),
    ("ec2", "describe_instance_type_offerings", {"LocationType": "zone"}, "InvalidParameterValue",
     "enum value set"),
]


@pytest.mark.parametrize(("service", "operation", "params", "code", "says"), MODEL_CASES,
                         ids=[case[1] for case in MODEL_CASES])
def test_a_request_breaking_its_service_model_is_refused_as_aws_refuses_it(
        aws, service, operation, params, code, says) -> None:
    client = connect(region="us-east-1").client(service)
    with pytest.raises(ClientError) as refused:
        getattr(client, operation)(**params)
    assert refused.value.response["Error"]["Code"] == code
    assert says in refused.value.response["Error"]["Message"]


def _launch(ec2, image: str, instance_type: str, volume_type: str = "gp3"):
    return ec2.run_instances(ImageId=image, InstanceType=instance_type, MinCount=1, MaxCount=1,
                             BlockDeviceMappings=[{"DeviceName": "/dev/xvda",
                                                   "Ebs": {"VolumeSize": 8, "VolumeType": volume_type}}])


def test_ec2s_server_side_rules_moto_lacks(aws, inspector) -> None:
    ec2 = connect(region="us-east-1").client("ec2")
    image = inspector.client("ssm").get_parameter(Name=AL2023_PARAMETER)["Parameter"]["Value"]  # x86_64
    with pytest.raises(ClientError, match=r"InvalidParameterValue.*architecture 'arm64' of the specified instance "
                                          "type does not match the architecture 'x86_64'"):
        _launch(ec2, image, "c7g.xlarge")
    with pytest.raises(ClientError, match=r"InvalidParameterCombination.*iops must be specified for io2"):
        _launch(ec2, image, "c5n.2xlarge", "io2")
    assert inspector.client("ec2").describe_instances()["Reservations"] == []
    _launch(ec2, image, "c5n.2xlarge")  # what EC2 accepts still reaches moto


def test_the_account_is_opted_in_to_a_local_zone_that_takes_no_cluster(aws) -> None:
    ec2 = connect(region="us-east-1").client("ec2")
    listed = {z["ZoneName"]: z["ZoneType"] for z in ec2.describe_availability_zones()["AvailabilityZones"]}
    assert listed[LOCAL_ZONE["ZoneName"]] == "local-zone" and listed["us-east-1a"] == "availability-zone"
    only_azs = ec2.describe_availability_zones(Filters=[{"Name": "zone-type", "Values": ["availability-zone"]}])
    assert LOCAL_ZONE["ZoneName"] not in {z["ZoneName"] for z in only_azs["AvailabilityZones"]}
    offered = ec2.describe_instance_type_offerings(
        LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": ["c5n.2xlarge"]}])
    assert LOCAL_ZONE["ZoneName"] in {o["Location"] for o in offered["InstanceTypeOfferings"]}
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    with pytest.raises(ClientError, match=r"Local Zone"):
        ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24", AvailabilityZone=LOCAL_ZONE["ZoneName"])
