"""`dfbench doctor`: whether a provision of the spec would succeed, and how to reach the cluster,
checked without changing anything. One row per check, with its status and the fix."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Literal

from botocore.exceptions import ClientError

from dfbench.aws import account
from dfbench.aws import instances as ec2_instances
from dfbench.aws.session import Aws, connect
from dfbench.aws.tags import cluster_tags
from dfbench.config import ClusterSpec
from dfbench.errors import DfbenchError, error_code, translate
from dfbench.models import Cluster, Record
from dfbench.preflight import check_architecture
from dfbench.provision import status
from dfbench.transport.ssm_plugin import INSTALL_URL, find_plugin

Status = Literal["ok", "warn", "unknown", "fail"]

# The IAM actions provision, deploy and teardown call (and the permissions behind them that are
# not calls of their own: iam:PassRole to launch with the instance profile, s3:TagResource to tag a
# bucket at creation, ec2:DescribeVpcs for a private hosted zone). S3's actions are named after
# its permissions, not its operations (PutBucketEncryption needs s3:PutEncryptionConfiguration).
REQUIRED_ACTIONS = (
    "ec2:AssociateRouteTable", "ec2:AttachInternetGateway", "ec2:AuthorizeSecurityGroupIngress",
    "ec2:CreateInternetGateway", "ec2:CreateRoute", "ec2:CreateRouteTable", "ec2:CreateSecurityGroup",
    "ec2:CreateSubnet", "ec2:CreateTags", "ec2:CreateVpc", "ec2:DeleteInternetGateway", "ec2:DeleteRouteTable",
    "ec2:DeleteSecurityGroup", "ec2:DeleteSubnet", "ec2:DeleteVpc", "ec2:DescribeAvailabilityZones",
    "ec2:DescribeImages", "ec2:DescribeInstanceTypeOfferings", "ec2:DescribeInstanceTypes",
    "ec2:DescribeInstances", "ec2:DescribeVpcs", "ec2:DetachInternetGateway", "ec2:DisassociateRouteTable",
    "ec2:ModifySubnetAttribute", "ec2:ModifyVpcAttribute", "ec2:RevokeSecurityGroupIngress", "ec2:RunInstances",
    "ec2:StartInstances", "ec2:TerminateInstances",
    "iam:AddRoleToInstanceProfile", "iam:AttachRolePolicy", "iam:CreateInstanceProfile", "iam:CreateRole",
    "iam:DeleteInstanceProfile", "iam:DeleteRole", "iam:DeleteRolePolicy", "iam:DetachRolePolicy",
    "iam:GetInstanceProfile", "iam:GetRole", "iam:PassRole", "iam:PutRolePolicy", "iam:RemoveRoleFromInstanceProfile",
    "iam:TagInstanceProfile", "iam:TagRole",
    "route53:ChangeResourceRecordSets", "route53:ChangeTagsForResource", "route53:CreateHostedZone",
    "route53:DeleteHostedZone", "route53:ListHostedZonesByName",
    "s3:CreateBucket", "s3:PutBucketPolicy", "s3:PutBucketPublicAccessBlock", "s3:PutBucketTagging",
    "s3:PutEncryptionConfiguration", "s3:TagResource", "s3:GetObject", "s3:PutObject", "s3:ListBucket",
    "s3:DeleteBucket", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:ListBucketVersions",
    "ssm:GetParameter", "ssm:SendCommand", "ssm:GetCommandInvocation", "ssm:DescribeInstanceInformation",
)
# An SSH CIDR holding more addresses than a /24 (an office network) is said to be wide.
WIDE_SSH_PREFIX = 24
VIAS_NEEDING_PLUGIN = ("ssm",)


class Check(Record):
    name: str
    status: Status
    detail: str
    fix: str = ""


class DoctorReport(Record):
    cluster: str
    region: str
    checks: list[Check]

    @property
    def blockers(self) -> list[Check]:
        return [check for check in self.checks if check.status == "fail"]


def doctor(spec: ClusterSpec, *, profile: str | None = None, via: str = "auto") -> DoctorReport:
    """Every check, in order; without working credentials, those that need AWS are left out."""
    aws = connect(region=spec.region, profile=profile)
    identity, caller = _credentials(aws)
    checks = [identity]
    cidrs = list(spec.ssh_ingress_cidrs)
    if caller is not None:
        cluster, found = _existing(spec, profile)
        cidrs = cidrs or (cluster.ssh_ingress_cidrs if cluster else [])
        checks += [found, _instance_type(aws, spec), _zones(aws, spec), _quota(aws, spec),
                   _dry_run(aws, spec, cluster), _permissions(aws, caller)]
    checks += [_plugin(via), _ssh(cidrs)]
    return DoctorReport(cluster=spec.name, region=spec.region, checks=checks)


def _existing(spec: ClusterSpec, profile: str | None) -> tuple[Cluster | None, Check]:
    """The cluster as it exists (its subnet is where the dry run launches), and a row saying so."""
    name = "cluster"
    try:
        cluster = status(spec.name, region=spec.region, profile=profile)
    except DfbenchError as error:
        return None, Check(name=name, status="unknown", detail=str(error).splitlines()[0],
                           fix="allow the reads of `dfbench status`")
    if cluster is None:
        return None, Check(name=name, status="ok", detail=f"{spec.name} does not exist yet in {spec.region}")
    return cluster, Check(name=name, status="ok", detail=f"{spec.name}: {len(cluster.instances)} instance(s) in "
                          f"{cluster.subnet_id}")


def _credentials(aws: Aws) -> tuple[Check, str | None]:
    """The identity row, and the caller's ARN when the credentials work."""
    name = "credentials"
    try:
        identity = aws.client("sts").get_caller_identity()
    except Exception as error:
        mapped = translate(error, aws.profile)
        if mapped is error:
            raise
        lines = str(mapped).splitlines()
        return Check(name=name, status="fail", detail=lines[0],
                     fix=" ".join(line.strip() for line in lines[1:]) or "fix the credentials"), None
    arn = str(identity["Arn"])
    return Check(name=name, status="ok", detail=f"{arn} (account {identity['Account']})"), arn


def _instance_type(aws: Aws, spec: ClusterSpec) -> Check:
    def probe() -> Check:
        found = check_architecture(aws.client("ec2"), spec)
        return Check(name="instance type", status="ok",
                     detail=f"{spec.instance_type}: {'/'.join(found.architectures)}, {found.vcpus} vCPUs")
    return _config_row("instance type", probe)


def _zones(aws: Aws, spec: ClusterSpec) -> Check:
    def probe() -> Check:
        zones = ec2_instances.offered_zones(aws.client("ec2"), spec.instance_type, spec.region)
        return Check(name="availability zones", status="ok", detail=f"{spec.instance_type} in {', '.join(zones)}")
    return _config_row("availability zones", probe)


def _config_row(name: str, probe: Callable[[], Check]) -> Check:
    """A plan-time check as a row: its ConfigError's line is the fix."""
    try:
        return probe()
    except DfbenchError as error:
        return Check(name=name, status="fail", detail="provision would refuse this spec", fix=str(error))
    except ClientError as error:
        return Check(name=name, status="unknown", detail=str(translate(error)).splitlines()[0],
                     fix="allow ec2:DescribeInstanceTypes, ec2:DescribeImages, ec2:DescribeInstanceTypeOfferings "
                         "and ec2:DescribeAvailabilityZones")


def _quota(aws: Aws, spec: ClusterSpec) -> Check:
    name = "vCPU quota (spot)" if spec.spot else "vCPU quota (on-demand)"
    code = account.vcpu_quota_code(spec.instance_type, spot=spec.spot)
    if code is None:
        return Check(name=name, status="unknown", detail=f"{spec.instance_type.split('.')[0]} is not a standard "
                     "family (A, C, D, H, I, M, R, T, Z): its quota is not checked here",
                     fix="look the family's vCPU quota up in the Service Quotas console")
    try:
        found = account.describe_instance_type(aws.client("ec2"), spec.instance_type)
        quota = account.vcpu_quota(aws.client("service-quotas"), code)
    except ClientError as error:
        return Check(name=name, status="unknown", detail=str(translate(error)).splitlines()[0],
                     fix=f"allow servicequotas:GetServiceQuota, or read quota {code} in the Service Quotas console")
    if found is None or quota is None:
        return Check(name=name, status="unknown", detail=f"quota {code} or {spec.instance_type} not found",
                     fix=f"read quota {code} in the Service Quotas console")
    needed = found.vcpus * spec.instance_count
    detail = f"{spec.instance_count} x {found.vcpus} = {needed} vCPUs of {quota:g} ({code})"
    if needed > quota:
        return Check(name=name, status="fail", detail=detail,
                     fix=f"request an increase of quota {code} in Service Quotas (ec2), or fewer/smaller instances")
    return Check(name=name, status="ok", detail=detail + "; the account's running instances count against it too")


def _dry_run(aws: Aws, spec: ClusterSpec, cluster: Cluster | None) -> Check:
    name = "launch (DryRun)"
    ec2 = aws.client("ec2")
    try:
        ami = ec2_instances.resolve_ami(aws.client("ssm"), ec2, spec.ami)
        answer = account.dry_run_launch(
            ec2, image_id=ami.image_id, root_device=ami.root_device, instance_type=spec.instance_type,
            count=spec.instance_count, volume_size_gib=spec.volume_size_gib, volume_type=spec.volume_type,
            spot=spec.spot, tags=cluster_tags(spec.name, spec.tags),
            subnet_id=cluster.subnet_id if cluster else None,
            security_group_id=cluster.security_group_id if cluster else None)
    except (ClientError, DfbenchError) as error:
        mapped = translate(error) if isinstance(error, ClientError) else error
        return Check(name=name, status="unknown", detail=str(mapped).splitlines()[0],
                     fix="allow ssm:GetParameter and ec2:DescribeImages")
    where = f"in {cluster.subnet_id}" if cluster else "in the default VPC"
    if answer.allowed:
        return Check(name=name, status="ok", detail=f"{spec.instance_count} x {spec.instance_type} {where}: "
                     "EC2 would launch them (DryRunOperation)")
    if answer.code == "UnauthorizedOperation":
        return Check(name=name, status="fail", detail=f"{answer.code}: your identity may not launch these",
                     fix="allow ec2:RunInstances and ec2:CreateTags (and iam:PassRole on the instance profile)")
    if answer.code in ("VPCIdNotSpecified", "MissingInput", "InvalidSubnet"):
        return Check(name=name, status="unknown", detail=f"{answer.code}: no default VPC to try a launch in",
                     fix="run doctor again after provision (it then tries the cluster's own subnet)")
    return Check(name=name, status="fail", detail=f"{answer.code}: {answer.message}",
                 fix="change what EC2 names above (--instance-type, --ami, --count)")


def _permissions(aws: Aws, caller: str) -> Check:
    name = "IAM permissions"
    iam = aws.client("iam")
    try:
        principal = account.principal_arn(iam, caller)
        if principal is None:
            return Check(name=name, status="unknown", detail=f"{caller} cannot be simulated (root or federated)",
                         fix="use an IAM user or role; root is not for daily use")
        decisions = account.simulate(iam, principal, list(REQUIRED_ACTIONS))
    except ClientError as error:
        if error_code(error) in {"AccessDenied", "AccessDeniedException"}:
            return Check(name=name, status="unknown", detail="iam:SimulatePrincipalPolicy is not allowed",
                         fix="allow iam:SimulatePrincipalPolicy on yourself to have this checked")
        raise
    denied = sorted(action for action, decision in decisions.items() if decision != "allowed")
    if denied:
        return Check(name=name, status="fail", detail=f"{len(denied)} of {len(REQUIRED_ACTIONS)} denied: "
                     + ", ".join(denied), fix=f"allow these actions to {principal}")
    return Check(name=name, status="ok", detail=f"all {len(REQUIRED_ACTIONS)} actions allowed for {principal}")


def _plugin(via: str) -> Check:
    name = "session manager plugin"
    plugin = find_plugin()
    if plugin:
        return Check(name=name, status="ok", detail=plugin)
    if via in VIAS_NEEDING_PLUGIN:
        return Check(name=name, status="fail", detail="not on PATH, and --via ssm needs it",
                     fix=f"install it: {INSTALL_URL}")
    if via == "auto":
        return Check(name=name, status="warn", detail="not on PATH: --via auto uses ssh (when allowed) or the relay",
                     fix=f"install it: {INSTALL_URL}")
    return Check(name=name, status="ok", detail=f"not needed for --via {via}")


def _ssh(cidrs: list[str]) -> Check:
    name = "ssh cidr"
    if not cidrs:
        return Check(name=name, status="ok", detail="port 22 closed (reach the cluster --via ssm or relay)")
    wide = [c for c in cidrs if ipaddress.ip_network(c).prefixlen < WIDE_SSH_PREFIX]
    if wide:
        count = sum(ipaddress.ip_network(c).num_addresses for c in wide)
        return Check(name=name, status="warn", detail=f"{', '.join(wide)} opens SSH to {count:,} addresses",
                     fix="give your own address: --ssh-cidr <your-ip>/32")
    return Check(name=name, status="ok", detail=", ".join(cidrs))
