"""``dfbench github role --repo OWNER/NAME``: the AWS side of the workflow. GitHub's OIDC identity
provider in IAM (created only when the account has none), and a role only that repository's
workflows can assume, allowed what dfbench does and no more; ``--delete`` removes them again.

The trust policy holds GitHub's documented claims: ``aud`` is ``sts.amazonaws.com`` (what
configure-aws-credentials asks for) and ``sub`` is ``repo:OWNER/NAME:<context>``, the context being
``ref:refs/heads/main`` for the issue_comment workflow (it runs on the default branch),
``pull_request``, ``environment:NAME``… (https://docs.github.com/actions/reference/security/oidc).

The permissions are the actions ``dfbench doctor`` simulates (checkup.REQUIRED_ACTIONS), with the
reads behind them, scoped by dfbench's tags where IAM's conditions allow it: EC2 creates only
with the dfbench:managed tag in the request, EC2 changes only on resources carrying it; IAM only
on roles and instance profiles named dfbench-*, managed policies only the SSM one, iam:PassRole
only of those roles and only to EC2; S3 only on the benchmark bucket; SSM commands only to
dfbench's instances. The role's own name starts otherwise (github-dfbench-…), so it can never
change itself.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from dfbench.aws.ci_role import POLICY_NAME, delete_ci_role, ensure_ci_role, find_ci_role, roles_trusting
from dfbench.aws.iam import ssm_core_policy_arn
from dfbench.aws.oidc import (
    GITHUB_ISSUER,
    STS_AUDIENCE,
    delete_oidc_provider,
    ensure_oidc_provider,
    find_oidc_provider,
    provider_arn,
)
from dfbench.aws.session import connect, default_bucket_name, default_region
from dfbench.aws.ssm import DOCUMENT
from dfbench.aws.tags import MANAGED_KEY
from dfbench.checkup import REQUIRED_ACTIONS
from dfbench.errors import ConfigError, aws_errors
from dfbench.github.api import checked_repository
from dfbench.models import Change, ChangeSet, Record

REPOSITORY_KEY = "dfbench:github-repository"
MAX_SESSION_S = 14400  # the workflow's benchmark job asks for 4-hour credentials
_MANAGED = {f"aws:ResourceTag/{MANAGED_KEY}": "true"}
_REQUESTED = {f"aws:RequestTag/{MANAGED_KEY}": "true"}


class RoleReport(Record):
    repository: str
    role_name: str
    role_arn: str
    provider_arn: str
    changes: list[Change]


def role_name(repository: str) -> str:
    """``github-dfbench-<owner>-<name>``, within IAM's 64 characters (a hash keeps long names
    apart). Never ``dfbench-*``: the role may change those roles, never itself."""
    name = "github-dfbench-" + re.sub(r"[^A-Za-z0-9_.-]", "-", repository.replace("/", "-"))
    if len(name) <= 64:
        return name
    return name[:55] + "-" + hashlib.sha256(repository.encode()).hexdigest()[:8]


def trust_policy(provider: str, repository: str) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"Federated": provider},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {
            "StringEquals": {f"{GITHUB_ISSUER}:aud": STS_AUDIENCE},
            # The colon after the name: repo:owner/name-fork:… does not match.
            "StringLike": {f"{GITHUB_ISSUER}:sub": f"repo:{repository}:*"},
        },
    }]}


def _split(prefix: str) -> list[str]:
    return sorted(a for a in REQUIRED_ACTIONS if a.startswith(prefix))


# REQUIRED_ACTIONS by how IAM lets them be scoped.
_EC2_CREATES = ["ec2:CreateInternetGateway", "ec2:CreateRouteTable", "ec2:CreateSecurityGroup", "ec2:CreateSubnet",
                "ec2:CreateVpc", "ec2:RunInstances"]
_EC2_READS = _split("ec2:Describe")
_IAM_POLICY_CHANGES = ["iam:AttachRolePolicy", "iam:DetachRolePolicy"]
_S3_OBJECTS = ["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:GetObject", "s3:PutObject"]
_ZONE_CREATE = ["route53:CreateHostedZone", "route53:ListHostedZonesByName"]
_SSM_ANYWHERE = ["ssm:DescribeInstanceInformation", "ssm:GetCommandInvocation"]
# The reads behind those actions that doctor does not simulate (every one Describe, Get or List),
# and the Price List's, which plan and provision ask for the hourly cost (docs/cluster.md#costs;
# ec2:Describe* covers the spot price).
EXTRA_READS = ["ec2:Describe*", "pricing:GetProducts", "ssm:ListCommandInvocations", "ssm:ListCommands",
               "route53:GetChange",
               "route53:GetHostedZone", "route53:ListHostedZones", "route53:ListResourceRecordSets",
               "route53:ListTagsForResource", "route53:ListTagsForResources", "iam:GetRolePolicy",
               "iam:ListAttachedRolePolicies", "iam:ListInstanceProfilesForRole", "s3:GetBucketLocation",
               "s3:GetBucketPolicy", "s3:GetBucketPublicAccessBlock", "s3:GetBucketTagging",
               "s3:GetEncryptionConfiguration", "s3:GetBucketVersioning"]


def permissions_policy(*, partition: str, account: str, bucket: str | None) -> dict[str, Any]:
    iam = f"arn:{partition}:iam::{account}"
    bucket_arn = f"arn:{partition}:s3:::{bucket or default_bucket_name(account, '*')}"
    ec2_changes = sorted(set(_split("ec2:")) - set(_EC2_CREATES) - set(_EC2_READS) - {"ec2:CreateTags"})
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "Read", "Effect": "Allow", "Resource": "*",
         "Action": sorted({*_EC2_READS, *_SSM_ANYWHERE, *_ZONE_CREATE,
                           *(a for a in EXTRA_READS if not a.startswith(("iam:", "s3:")))})},
        {"Sid": "CreateTagged", "Effect": "Allow", "Resource": "*", "Action": _EC2_CREATES,
         "Condition": {"StringEquals": _REQUESTED}},
        # What a launch uses without making it: the AMI, the cluster's subnet and group, the
        # network interface made with the instance.
        {"Sid": "LaunchWith", "Effect": "Allow", "Action": "ec2:RunInstances", "Resource": [
            f"arn:{partition}:ec2:*::image/*", f"arn:{partition}:ec2:*:{account}:network-interface/*"]},
        {"Sid": "LaunchIntoOwn", "Effect": "Allow", "Action": "ec2:RunInstances",
         "Condition": {"StringEquals": _MANAGED}, "Resource": [
             f"arn:{partition}:ec2:*:{account}:subnet/*", f"arn:{partition}:ec2:*:{account}:security-group/*"]},
        {"Sid": "TagWhileCreating", "Effect": "Allow", "Action": "ec2:CreateTags", "Resource": "*",
         "Condition": {"StringEquals": {"ec2:CreateAction": _EC2_CREATES}}},
        {"Sid": "ChangeOwn", "Effect": "Allow", "Resource": "*", "Action": [*ec2_changes, "ec2:CreateTags"],
         "Condition": {"StringEquals": _MANAGED}},
        {"Sid": "InstanceRoles", "Effect": "Allow",
         "Action": sorted(set(_split("iam:")) - set(_IAM_POLICY_CHANGES) - {"iam:PassRole"} | {
             "iam:GetRolePolicy", "iam:ListAttachedRolePolicies", "iam:ListInstanceProfilesForRole"}),
         "Resource": [f"{iam}:role/dfbench-*", f"{iam}:instance-profile/dfbench-*"]},
        {"Sid": "OnlyTheSsmPolicy", "Effect": "Allow", "Action": _IAM_POLICY_CHANGES,
         "Resource": f"{iam}:role/dfbench-*",
         "Condition": {"ArnEquals": {"iam:PolicyARN": ssm_core_policy_arn(partition)}}},
        {"Sid": "PassInstanceRoles", "Effect": "Allow", "Action": "iam:PassRole", "Resource": f"{iam}:role/dfbench-*",
         "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}},
        {"Sid": "Bucket", "Effect": "Allow", "Resource": bucket_arn,
         "Action": sorted(set(_split("s3:")) - set(_S3_OBJECTS) | {a for a in EXTRA_READS if a.startswith("s3:")})},
        {"Sid": "Objects", "Effect": "Allow", "Action": _S3_OBJECTS, "Resource": f"{bucket_arn}/*"},
        {"Sid": "Zones", "Effect": "Allow", "Resource": f"arn:{partition}:route53:::hostedzone/*",
         "Action": sorted(set(_split("route53:")) - set(_ZONE_CREATE))},
        {"Sid": "Commands", "Effect": "Allow", "Action": "ssm:SendCommand",
         "Resource": f"arn:{partition}:ssm:*::document/{DOCUMENT}"},
        {"Sid": "CommandsToOwn", "Effect": "Allow", "Action": "ssm:SendCommand",
         "Resource": f"arn:{partition}:ec2:*:{account}:instance/*", "Condition": {"StringEquals": _MANAGED}},
        {"Sid": "WorkerSecrets", "Effect": "Allow", "Action": "ssm:GetParameter",
         "Resource": f"arn:{partition}:ssm:*:{account}:parameter/dfbench/*"},
    ]}


def _context(repository: str, region: str | None, profile: str | None) -> tuple[Any, str, str]:
    """The IAM client, the account and the partition, once the repository's name is checked."""
    checked_repository(repository)
    aws = connect(region=default_region(region), profile=profile)
    account = aws.account()
    return aws.client("iam"), account, aws.session.get_partition_for_region(aws.region)


def ensure_github_role(repository: str, *, region: str | None = None, profile: str | None = None,
                       bucket: str | None = None, apply: bool = True) -> RoleReport:
    """Create or converge the provider and the role; a second run changes nothing."""
    if bucket is not None:
        from dfbench.config import validate_bucket_name

        try:
            validate_bucket_name(bucket)
        except ValueError as error:
            raise ConfigError(f"--bucket: {error}") from None
    iam, account, partition = _context(repository, region, profile)
    provider = provider_arn(partition, account)
    name = role_name(repository)
    changes = ChangeSet(apply=apply)
    with aws_errors(profile):
        ensure_oidc_provider(iam, arn=provider, issuer=GITHUB_ISSUER, audience=STS_AUDIENCE,
                             tags={MANAGED_KEY: "true"}, found=find_oidc_provider(iam, provider), changes=changes)
        ensure_ci_role(iam, name=name, description=f"dfbench benchmarks of {repository}'s pull requests",
                       trust_policy=trust_policy(provider, repository),
                       policy=permissions_policy(partition=partition, account=account, bucket=bucket),
                       max_session_s=MAX_SESSION_S, tags={MANAGED_KEY: "true", REPOSITORY_KEY: repository},
                       found=find_ci_role(iam, name), changes=changes)
    return RoleReport(repository=repository, role_name=name, role_arn=f"arn:{partition}:iam::{account}:role/{name}",
                      provider_arn=provider, changes=changes.changes)


def delete_github_role(repository: str, *, region: str | None = None, profile: str | None = None) -> RoleReport:
    """Delete the role; then the provider when dfbench made it and no other role trusts it."""
    iam, account, partition = _context(repository, region, profile)
    provider = provider_arn(partition, account)
    name = role_name(repository)
    changes = ChangeSet(apply=True)
    with aws_errors(profile):
        role = find_ci_role(iam, name)
        if role is not None:
            changes.make(Change(action="delete", resource="iam-role", name=name, detail=f"and policy {POLICY_NAME}"),
                         lambda: delete_ci_role(iam, role))
        found = find_oidc_provider(iam, provider)
        if found is not None and found.managed:
            others = [r for r in roles_trusting(iam, provider) if r != name]
            if not others:
                changes.make(Change(action="delete", resource="oidc-provider", name=GITHUB_ISSUER),
                             lambda: delete_oidc_provider(iam, found))
    return RoleReport(repository=repository, role_name=name, role_arn=f"arn:{partition}:iam::{account}:role/{name}",
                      provider_arn=provider, changes=changes.changes)
