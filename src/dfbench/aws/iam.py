"""The instance role and instance profile.

IAM is global, so names carry the region: two clusters of the same name in two regions read
different buckets and must not share a role. Names are deterministic (IAM has no tag filter on
List calls), and ownership is checked through the dfbench tags set by the create calls.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from dfbench.aws.ssm import OUTPUT_PREFIX as SSM_OUTPUT_PREFIX
from dfbench.aws.tags import BUCKET_KEY, is_managed, missing_tags, tag_dict, tag_list, tags_text
from dfbench.errors import OwnershipError, error_code
from dfbench.models import Change, ChangeSet
from dfbench.waiting import retry_client_error

_Found = TypeVar("_Found")  # a find_* function's record

INLINE_POLICY_NAME = "dfbench-worker"
# Where Trino's Hive connector keeps its file metastore in the cluster's bucket (dfbench.engines
# installs Trino with it): the one place besides command output the instances may write.
TRINO_METASTORE_PREFIX = ".dfbench/trino-metastore"
SSM_CORE_POLICY = "AmazonSSMManagedInstanceCore"

_TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def role_name(cluster: str, region: str) -> str:
    return f"dfbench-{cluster}-{region}"


def ssm_core_policy_arn(partition: str) -> str:
    return f"arn:{partition}:iam::aws:policy/{SSM_CORE_POLICY}"


def secret_parameters_prefix(cluster: str) -> str:
    """Where the worker's secret environment lives in SSM Parameter Store (``--secret-env``)."""
    return f"/dfbench/{cluster}/"


def worker_policy(bucket: str, partition: str, *, cluster: str, region: str, account: str) -> dict[str, Any]:
    """What an instance may do: find its peers, read its own bucket, write SSM command output
    under one prefix of it (the SSM agent uploads output with the instance's role), write and
    delete Trino's file metastore under another (the schemas and tables ``dfbench bench --engines
    trino`` declares: JSON files, no data), and read its cluster's parameters under
    /dfbench/<cluster>/ (the worker's secrets). Nothing else.

    A SecureString encrypted with the account's AWS managed key (aws/ssm, the default) needs no KMS
    statement: that key grants Decrypt to every IAM principal of the account. One encrypted with a
    customer managed key also needs kms:Decrypt on that key, which dfbench does not grant
    (https://docs.aws.amazon.com/systems-manager/latest/userguide/ps-restrict-decryption.html)."""
    bucket_arn = f"arn:{partition}:s3:::{bucket}"
    # The parameter ARN drops the name's leading slash: parameter/dfbench/<cluster>/...
    parameters_arn = f"arn:{partition}:ssm:{region}:{account}:parameter{secret_parameters_prefix(cluster)}*"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "PeerDiscovery", "Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*"},
            {
                "Sid": "ListBenchmarkBucket",
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                "Resource": bucket_arn,
            },
            {"Sid": "ReadBenchmarkBucket", "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"{bucket_arn}/*"},
            {
                "Sid": "WriteCommandOutput",
                "Effect": "Allow",
                "Action": "s3:PutObject",
                "Resource": f"{bucket_arn}/{SSM_OUTPUT_PREFIX}/*",
            },
            {
                "Sid": "TrinoMetastore",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:DeleteObject"],
                "Resource": f"{bucket_arn}/{TRINO_METASTORE_PREFIX}/*",
            },
            {"Sid": "ReadClusterSecrets", "Effect": "Allow", "Action": "ssm:GetParameter",
             "Resource": parameters_arn},
        ],
    }


@dataclass(frozen=True)
class Role:
    name: str
    tags: dict[str, str]
    trust_policy: dict[str, Any]
    attached_policy_arns: frozenset[str]
    inline_policy: dict[str, Any] | None
    created: datetime | None = None


@dataclass(frozen=True)
class InstanceProfile:
    name: str
    tags: dict[str, str]
    role_names: tuple[str, ...]
    created: datetime | None = None


# dfbench-<cluster>-<region>: the cluster name is greedy, so the region is the shortest tail that
# is a region name (cluster names have dashes too).
_NAME = re.compile(r"^dfbench-(?P<cluster>[a-z0-9-]+)-(?P<region>[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d{1,2})\Z")


def name_owner(name: str) -> tuple[str, str] | None:
    """(cluster, region) of a role or instance profile named as dfbench names them, else None."""
    match = _NAME.match(name)
    return (match.group("cluster"), match.group("region")) if match else None


# IAM is eventually consistent: right after CreateRole or CreateInstanceProfile, the calls naming
# the new role or profile may fail with NoSuchEntity for a while.
# https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency
VISIBILITY_TIMEOUT_S = 120


def _not_found(error: ClientError) -> bool:
    return error_code(error) == "NoSuchEntity"


def _visible(call: Callable[[], object], what: str) -> None:
    """``call``, naming a role or profile that may have been created moments before, retried while
    IAM answers NoSuchEntity (bounded)."""
    retry_client_error(call, codes={"NoSuchEntity"}, what=f"IAM to know {what}", timeout=VISIBILITY_TIMEOUT_S)


def find_role(iam: Any, name: str) -> Role | None:
    try:
        role = iam.get_role(RoleName=name)["Role"]
    except ClientError as error:
        if _not_found(error):
            return None
        raise
    tags = tag_dict(role.get("Tags"))
    if not is_managed(tags):
        raise OwnershipError(
            f"IAM role {name!r} exists but was not created by dfbench (no dfbench:managed tag); "
            "delete or rename it, or use another --cluster name."
        )
    attached = {
        policy["PolicyArn"]
        for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=name)
        for policy in page["AttachedPolicies"]
    }
    try:
        inline = iam.get_role_policy(RoleName=name, PolicyName=INLINE_POLICY_NAME)["PolicyDocument"]
    except ClientError as error:
        if not _not_found(error):
            raise
        inline = None
    return Role(
        name=name,
        tags=tags,
        trust_policy=role["AssumeRolePolicyDocument"],
        attached_policy_arns=frozenset(attached),
        inline_policy=inline,
        created=role.get("CreateDate"),
    )


def _named_like_dfbench(iam: Any, operation: str, key: str, name_key: str) -> list[str]:
    """Names of the account's roles or instance profiles starting with dfbench-. IAM's List calls
    return no tags (and filter by path only): ownership is read by the get of each."""
    return sorted(item[name_key] for page in iam.get_paginator(operation).paginate() for item in page[key]
                  if item[name_key].startswith("dfbench-"))


def find_managed_roles(iam: Any) -> list[Role]:
    """Every role of the account named dfbench-* and carrying dfbench:managed=true (IAM is global:
    every region's). A role gone between the listing and its read is not listed."""
    return _managed(iam, find_role, _named_like_dfbench(iam, "list_roles", "Roles", "RoleName"))


def find_managed_instance_profiles(iam: Any) -> list[InstanceProfile]:
    """Every instance profile of the account named dfbench-* and carrying dfbench:managed=true."""
    names = _named_like_dfbench(iam, "list_instance_profiles", "InstanceProfiles", "InstanceProfileName")
    return _managed(iam, find_instance_profile, names)


def _managed(iam: Any, find: Callable[[Any, str], _Found | None], names: list[str]) -> list[_Found]:
    """``find`` of each name, less those gone since the listing (None) and those dfbench does not
    own (OwnershipError)."""
    managed = []
    for name in names:
        try:
            item = find(iam, name)
        except OwnershipError:
            continue
        if item is not None:
            managed.append(item)
    return managed


def ensure_role(
    iam: Any, *, name: str, bucket: str, partition: str, cluster: str, region: str, account: str,
    tags: dict[str, str], found: Role | None, changes: ChangeSet
) -> None:
    tags = {**tags, BUCKET_KEY: bucket}
    if found is None:
        changes.make(
            Change(action="create", resource="iam-role", name=name, detail="trusted by ec2.amazonaws.com"),
            lambda: _create_role(iam, name, tags),
        )
    elif found.trust_policy != _TRUST_POLICY:
        changes.make(
            Change(action="update", resource="iam-role", name=name, detail="trust policy"),
            lambda: iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(_TRUST_POLICY)),
        )
    lacking = missing_tags(found.tags, tags) if found is not None else {}
    if lacking:
        changes.make(
            Change(action="update", resource="iam-role", name=name, detail=tags_text(lacking)),
            lambda: iam.tag_role(RoleName=name, Tags=tag_list(lacking)),
        )
    core_arn = ssm_core_policy_arn(partition)
    if found is None or core_arn not in found.attached_policy_arns:
        changes.make(
            Change(action="update", resource="iam-role", name=name, detail=f"attach {SSM_CORE_POLICY}"),
            lambda: _visible(lambda: iam.attach_role_policy(RoleName=name, PolicyArn=core_arn), f"role {name}"),
        )
    policy = worker_policy(bucket, partition, cluster=cluster, region=region, account=account)
    if found is None or found.inline_policy != policy:
        changes.make(
            Change(action="update", resource="iam-role", name=name,
                   detail=f"policy {INLINE_POLICY_NAME}: describe instances, read s3://{bucket}, write command output "
                          f"and Trino's metastore, read parameters {secret_parameters_prefix(cluster)}*"),
            lambda: _visible(lambda: iam.put_role_policy(
                RoleName=name, PolicyName=INLINE_POLICY_NAME, PolicyDocument=json.dumps(policy)
            ), f"role {name}"),
        )


def _create_role(iam: Any, name: str, tags: dict[str, str]) -> None:
    try:
        iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(_TRUST_POLICY),
            Description="dfbench benchmark workers",
            Tags=tag_list(tags),
        )
    except ClientError as error:
        # A retried request whose first attempt went through: the role is ours (same name).
        if error_code(error) != "EntityAlreadyExists":
            raise


def find_instance_profile(iam: Any, name: str) -> InstanceProfile | None:
    try:
        profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    except ClientError as error:
        if _not_found(error):
            return None
        raise
    tags = tag_dict(profile.get("Tags"))
    if not is_managed(tags):
        raise OwnershipError(
            f"IAM instance profile {name!r} exists but was not created by dfbench; "
            "delete it or use another --cluster name."
        )
    return InstanceProfile(
        name=name, tags=tags, role_names=tuple(role["RoleName"] for role in profile.get("Roles", [])),
        created=profile.get("CreateDate"),
    )


def ensure_instance_profile(
    iam: Any, *, name: str, role: str, tags: dict[str, str], found: InstanceProfile | None, changes: ChangeSet
) -> None:
    if found is None:
        changes.make(
            Change(action="create", resource="instance-profile", name=name),
            lambda: _create_instance_profile(iam, name, tags),
        )
    # An instance profile holds at most one role.
    for other in found.role_names if found else ():
        if other != role:
            changes.make(
                Change(action="update", resource="instance-profile", name=name, detail=f"remove role {other}"),
                partial(iam.remove_role_from_instance_profile, InstanceProfileName=name, RoleName=other),
            )
    if found is None or role not in found.role_names:
        changes.make(
            Change(action="update", resource="instance-profile", name=name, detail=f"add role {role}"),
            lambda: _visible(lambda: _add_role(iam, name, role), f"instance profile {name} and role {role}"),
        )
    lacking = missing_tags(found.tags, tags) if found is not None else {}
    if lacking:
        changes.make(
            Change(action="update", resource="instance-profile", name=name, detail=tags_text(lacking)),
            lambda: iam.tag_instance_profile(InstanceProfileName=name, Tags=tag_list(lacking)),
        )


def _create_instance_profile(iam: Any, name: str, tags: dict[str, str]) -> None:
    try:
        iam.create_instance_profile(InstanceProfileName=name, Tags=tag_list(tags))
    except ClientError as error:
        if error_code(error) != "EntityAlreadyExists":
            raise


def _add_role(iam: Any, profile: str, role: str) -> None:
    try:
        iam.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=role)
    except ClientError as error:
        # LimitExceeded here means the one role slot is taken: by this role, after a retried call.
        if error_code(error) != "LimitExceeded":
            raise


def delete_instance_profile(iam: Any, profile: InstanceProfile) -> None:
    for role in profile.role_names:
        _ignore_missing(lambda role=role: iam.remove_role_from_instance_profile(
            InstanceProfileName=profile.name, RoleName=role))
    _ignore_missing(lambda: iam.delete_instance_profile(InstanceProfileName=profile.name))


def delete_role(iam: Any, role: Role) -> None:
    """Policies first: DeleteRole fails with DeleteConflict while any are attached."""
    for arn in sorted(role.attached_policy_arns):
        _ignore_missing(lambda arn=arn: iam.detach_role_policy(RoleName=role.name, PolicyArn=arn))
    if role.inline_policy is not None:
        _ignore_missing(lambda: iam.delete_role_policy(RoleName=role.name, PolicyName=INLINE_POLICY_NAME))
    _ignore_missing(lambda: iam.delete_role(RoleName=role.name))


def _ignore_missing(call: Any) -> None:
    try:
        call()
    except ClientError as error:
        if not _not_found(error):
            raise
