"""What the account allows, read without changing anything: an instance type's architectures,
vCPUs and memory, an AMI's architecture, the vCPU quotas, a dry-run launch, and the caller's permissions.
Used by the plan-time checks and by ``dfbench doctor``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from dfbench.aws.tags import tag_specifications
from dfbench.errors import error_code


@dataclass(frozen=True)
class InstanceType:
    name: str
    architectures: tuple[str, ...]  # EC2's names: x86_64, arm64, i386, x86_64_mac, arm64_mac
    vcpus: int
    memory_mib: int


def describe_instance_type(ec2: Any, instance_type: str) -> InstanceType | None:
    """The type as this region knows it; None when the region has no such type."""
    try:
        found = ec2.describe_instance_types(InstanceTypes=[instance_type])["InstanceTypes"]
    except ClientError as error:
        if error_code(error) == "InvalidInstanceType":
            return None
        raise
    if not found:
        return None
    raw = found[0]
    return InstanceType(instance_type, tuple(raw["ProcessorInfo"]["SupportedArchitectures"]),
                        int(raw["VCpuInfo"]["DefaultVCpus"]), int(raw["MemoryInfo"]["SizeInMiB"]))


def image_architecture(ec2: Any, image_id: str) -> str | None:
    """The AMI's architecture; None when the region has no such image."""
    try:
        images = ec2.describe_images(ImageIds=[image_id])["Images"]
    except ClientError as error:
        if error_code(error).startswith("InvalidAMIID"):
            return None
        raise
    return str(images[0]["Architecture"]) if images else None


# Service Quotas codes of EC2's vCPU quotas: "Running On-Demand Standard (A, C, D, H, I, M, R, T,
# Z) instances" and "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests". Other
# families (F, G, P, X, Inf, ...) have quotas of their own.
# https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-on-demand-instances.html#ec2-on-demand-instances-limits
ON_DEMAND_STANDARD_QUOTA = "L-1216C47A"
SPOT_STANDARD_QUOTA = "L-34B43A08"
STANDARD_FAMILIES = frozenset("acdhimrtz")


def vcpu_quota_code(instance_type: str, *, spot: bool) -> str | None:
    """The quota an instance type's vCPUs count against; None for the non-standard families."""
    if instance_type[:1] not in STANDARD_FAMILIES:
        return None
    return SPOT_STANDARD_QUOTA if spot else ON_DEMAND_STANDARD_QUOTA


def vcpu_quota(quotas: Any, code: str) -> float | None:
    """The account's value of an EC2 quota: the applied one, else AWS's default (an account that
    never changed a quota has no applied value: NoSuchResourceException); None if neither exists."""
    for call in (quotas.get_service_quota, quotas.get_aws_default_service_quota):
        try:
            return float(call(ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"])
        except ClientError as error:
            if error_code(error) != "NoSuchResourceException":
                raise
    return None


@dataclass(frozen=True)
class DryRun:
    """A RunInstances with DryRun=True: EC2 checks the permissions (and the parameters it can
    judge without launching) and answers with an error either way; ``code`` is that error's."""

    code: str
    message: str

    @property
    def allowed(self) -> bool:
        # https://docs.aws.amazon.com/AWSEC2/latest/APIReference/CommonParameters.html (DryRun)
        return self.code == "DryRunOperation"


def dry_run_launch(ec2: Any, *, image_id: str, root_device: str, instance_type: str, count: int,
                   volume_size_gib: int, volume_type: str, spot: bool, tags: dict[str, str],
                   subnet_id: str | None = None, security_group_id: str | None = None) -> DryRun:
    request: dict[str, Any] = dict(
        DryRun=True, ImageId=image_id, InstanceType=instance_type, MinCount=count, MaxCount=count,
        BlockDeviceMappings=[{"DeviceName": root_device, "Ebs": {
            "VolumeSize": volume_size_gib, "VolumeType": volume_type, "Encrypted": True, "DeleteOnTermination": True}}],
        MetadataOptions={"HttpTokens": "required", "HttpEndpoint": "enabled"},
        TagSpecifications=tag_specifications("instance", tags),
    )
    if subnet_id:
        request["SubnetId"] = subnet_id
    if security_group_id:
        request["SecurityGroupIds"] = [security_group_id]
    if spot:
        request["InstanceMarketOptions"] = {"MarketType": "spot"}
    try:
        ec2.run_instances(**request)
    except ClientError as error:
        return DryRun(error_code(error), str(error.response.get("Error", {}).get("Message", "")))
    return DryRun("", "EC2 launched instead of a dry run")  # never, unless DryRun was ignored


def principal_arn(iam: Any, caller_arn: str) -> str | None:
    """The IAM ARN that SimulatePrincipalPolicy takes for the caller: an IAM user's own; a role's,
    looked up by name (its path is not in the assumed-role ARN STS gives); None for the root user
    and anything else (federated users), which the simulator cannot take."""
    parts = caller_arn.split(":", 5)
    service, resource = (parts[2], parts[5]) if len(parts) == 6 else ("", "")
    if service == "iam" and resource.startswith("user/"):
        return caller_arn
    if resource.startswith("assumed-role/"):
        role = resource.split("/")[1]
        try:
            return str(iam.get_role(RoleName=role)["Role"]["Arn"])
        except ClientError as error:
            if error_code(error) in {"AccessDenied", "NoSuchEntity"}:
                return None
            raise
    return None


def simulate(iam: Any, principal: str, actions: list[str]) -> dict[str, str]:
    """Each action's decision for the principal's policies: allowed, explicitDeny or implicitDeny.
    https://docs.aws.amazon.com/IAM/latest/APIReference/API_SimulatePrincipalPolicy.html"""
    decisions: dict[str, str] = {}
    for page in iam.get_paginator("simulate_principal_policy").paginate(PolicySourceArn=principal,
                                                                        ActionNames=actions):
        for result in page["EvaluationResults"]:
            decisions[result["EvalActionName"]] = result["EvalDecision"]
    return decisions
