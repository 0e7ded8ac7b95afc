"""The IAM role a CI workflow assumes with its identity provider's token (``github role``): its
trust policy, one inline permissions policy and a maximum session long enough for a benchmark.

Found by its deterministic name, owned through the dfbench:managed tag its create call sets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from dfbench.aws.tags import is_managed, missing_tags, tag_dict, tag_list, tags_text
from dfbench.errors import OwnershipError, error_code
from dfbench.models import Change, ChangeSet
from dfbench.waiting import retry_client_error

POLICY_NAME = "dfbench-ci"
# IAM's eventual consistency right after CreateRole (see aws/iam.py).
VISIBILITY_TIMEOUT_S = 120


@dataclass(frozen=True)
class CiRole:
    name: str
    arn: str
    tags: dict[str, str]
    trust_policy: dict[str, Any]
    policy: dict[str, Any] | None
    max_session_s: int


def find_ci_role(iam: Any, name: str) -> CiRole | None:
    try:
        role = iam.get_role(RoleName=name)["Role"]
    except ClientError as error:
        if error_code(error) == "NoSuchEntity":
            return None
        raise
    tags = tag_dict(role.get("Tags"))
    if not is_managed(tags):
        raise OwnershipError(f"IAM role {name!r} exists but was not created by dfbench (no dfbench:managed tag); "
                             "delete or rename it.")
    try:
        policy = iam.get_role_policy(RoleName=name, PolicyName=POLICY_NAME)["PolicyDocument"]
    except ClientError as error:
        if error_code(error) != "NoSuchEntity":
            raise
        policy = None
    return CiRole(name=name, arn=role["Arn"], tags=tags, trust_policy=role["AssumeRolePolicyDocument"],
                  policy=policy, max_session_s=int(role.get("MaxSessionDuration", 3600)))


def ensure_ci_role(iam: Any, *, name: str, description: str, trust_policy: dict[str, Any], policy: dict[str, Any],
                   max_session_s: int, tags: dict[str, str], found: CiRole | None, changes: ChangeSet) -> None:
    """Bring the role to exactly this trust policy, permissions policy and session length."""
    if found is None:
        changes.make(Change(action="create", resource="iam-role", name=name, detail=description),
                     lambda: _create(iam, name, description, trust_policy, max_session_s, tags))
    else:
        if found.trust_policy != trust_policy:
            changes.make(Change(action="update", resource="iam-role", name=name, detail="trust policy"),
                         lambda: iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust_policy)))
        if found.max_session_s != max_session_s:
            changes.make(Change(action="update", resource="iam-role", name=name,
                                detail=f"sessions up to {max_session_s} s"),
                         lambda: iam.update_role(RoleName=name, MaxSessionDuration=max_session_s))
        lacking = missing_tags(found.tags, tags)
        if lacking:
            changes.make(Change(action="update", resource="iam-role", name=name, detail=tags_text(lacking)),
                         lambda: iam.tag_role(RoleName=name, Tags=tag_list(lacking)))
    if found is None or found.policy != policy:
        changes.make(Change(action="update", resource="iam-role", name=name, detail=f"policy {POLICY_NAME}"),
                     lambda: retry_client_error(
                         lambda: iam.put_role_policy(RoleName=name, PolicyName=POLICY_NAME,
                                                     PolicyDocument=json.dumps(policy)),
                         codes={"NoSuchEntity"}, what=f"IAM to know role {name}", timeout=VISIBILITY_TIMEOUT_S))


def _create(iam: Any, name: str, description: str, trust_policy: dict[str, Any], max_session_s: int,
            tags: dict[str, str]) -> None:
    try:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust_policy), Description=description,
                        MaxSessionDuration=max_session_s, Tags=tag_list(tags))
    except ClientError as error:
        if error_code(error) != "EntityAlreadyExists":  # a retried create that went through
            raise


def roles_trusting(iam: Any, principal: str) -> list[str]:
    """Every role of the account whose trust policy names ``principal`` as a federated principal."""
    names = []
    for page in iam.get_paginator("list_roles").paginate():
        for role in page["Roles"]:
            document = role.get("AssumeRolePolicyDocument") or {}
            for statement in document.get("Statement", []):
                federated = (statement.get("Principal") or {}).get("Federated", [])
                if principal in ([federated] if isinstance(federated, str) else federated):
                    names.append(role["RoleName"])
                    break
    return names


def delete_ci_role(iam: Any, role: CiRole) -> None:
    """Its inline policy first: DeleteRole fails with DeleteConflict while one is there."""
    for call in (lambda: iam.delete_role_policy(RoleName=role.name, PolicyName=POLICY_NAME),
                 lambda: iam.delete_role(RoleName=role.name)):
        try:
            call()
        except ClientError as error:
            if error_code(error) != "NoSuchEntity":
                raise
