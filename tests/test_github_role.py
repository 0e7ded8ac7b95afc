"""`dfbench github role`: GitHub's OIDC provider and the repository's role in IAM (moto), created
once and left alone the second time, trusted only by the repository's workflows as GitHub's
documented token claims show, allowed what doctor simulates and the reads behind it, and deleted
again without touching a provider dfbench did not make or another role still uses."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pytest

from dfbench.checkup import REQUIRED_ACTIONS
from dfbench.cli import main
from dfbench.errors import DfbenchError
from dfbench.github.role import (
    EXTRA_READS,
    delete_github_role,
    ensure_github_role,
    permissions_policy,
    role_name,
    trust_policy,
)
from dfbench_testing import READ_PREFIXES

REPO = "octo-org/octo-repo"
ACCOUNT = "123456789012"  # moto's
PROVIDER = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"


def changing(recorder: Any) -> list[str]:
    return [c.operation for c in recorder.calls if not c.operation.startswith(READ_PREFIXES)]


def test_a_second_run_changes_nothing(aws: Any, recorder: Any, inspector: Any) -> None:
    first = ensure_github_role(REPO)
    assert [str(c) for c in first.changes] == [
        "+ create oidc-provider token.actions.githubusercontent.com: audience sts.amazonaws.com",
        "+ create iam-role github-dfbench-octo-org-octo-repo: dfbench benchmarks of octo-org/octo-repo's pull requests",
        "~ update iam-role github-dfbench-octo-org-octo-repo: policy dfbench-ci"]
    assert first.role_arn == f"arn:aws:iam::{ACCOUNT}:role/github-dfbench-octo-org-octo-repo"
    assert changing(recorder) == ["CreateOpenIDConnectProvider", "CreateRole", "PutRolePolicy"]
    recorder.clear()
    assert ensure_github_role(REPO).changes == []
    assert changing(recorder) == []
    role = inspector.client("iam").get_role(RoleName=role_name(REPO))["Role"]
    assert role["MaxSessionDuration"] == 14400
    assert role["AssumeRolePolicyDocument"] == trust_policy(PROVIDER, REPO)
    provider = inspector.client("iam").get_open_id_connect_provider(OpenIDConnectProviderArn=PROVIDER)
    assert provider["ClientIDList"] == ["sts.amazonaws.com"]


def test_a_role_changed_by_hand_is_brought_back(aws: Any, recorder: Any, inspector: Any) -> None:
    ensure_github_role(REPO)
    iam = inspector.client("iam")
    iam.update_assume_role_policy(RoleName=role_name(REPO), PolicyDocument=json.dumps(trust_policy(PROVIDER, "x/y")))
    iam.put_role_policy(RoleName=role_name(REPO), PolicyName="dfbench-ci", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    recorder.clear()
    assert [c.detail for c in ensure_github_role(REPO).changes] == ["trust policy", "policy dfbench-ci"]
    assert changing(recorder) == ["UpdateAssumeRolePolicy", "PutRolePolicy"]
    assert ensure_github_role(REPO).changes == []


def test_an_interrupted_run_converges(aws: Any, faults: Any, recorder: Any) -> None:
    faults.error("iam", "PutRolePolicy", "AccessDenied", "not now", status=403)
    with pytest.raises(DfbenchError):
        ensure_github_role(REPO)
    recorder.clear()
    assert [c.detail for c in ensure_github_role(REPO).changes] == ["policy dfbench-ci"]
    assert ensure_github_role(REPO).changes == []


# GitHub's token claims for a repository's workflows, as GitHub documents them
# (https://docs.github.com/actions/reference/security/oidc): iss, aud as configure-aws-credentials
# asks for it, sub by the job's context.
ISSUER = "https://token.actions.githubusercontent.com"


def claims(sub: str, aud: str = "sts.amazonaws.com") -> dict[str, str]:
    return {"iss": ISSUER, "aud": aud, "sub": sub}


def _like(pattern: str, value: str) -> bool:
    """IAM's StringLike: * any run of characters, ? one, case-sensitive."""
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def may_assume(policy: dict[str, Any], token: dict[str, str], provider: str) -> bool:
    """IAM's decision on AssumeRoleWithWebIdentity for a token, over the operators the trust
    policy may use (StringEquals, StringLike); a federated principal is the issuer's provider."""
    host = token["iss"].removeprefix("https://")
    for statement in policy["Statement"]:
        if statement["Effect"] != "Allow" or statement["Action"] != "sts:AssumeRoleWithWebIdentity":
            continue
        if statement["Principal"].get("Federated") != provider or not provider.endswith(f"oidc-provider/{host}"):
            continue
        conditions = statement.get("Condition", {})
        assert set(conditions) <= {"StringEquals", "StringLike"}, conditions
        ok = all(token.get(key.removeprefix(f"{host}:")) == value
                 for key, value in conditions.get("StringEquals", {}).items())
        ok = ok and all(_like(value, token.get(key.removeprefix(f"{host}:"), ""))
                        for key, value in conditions.get("StringLike", {}).items())
        if ok and conditions:
            return True
    return False


@pytest.mark.parametrize(("token", "allowed"), [
    (claims("repo:octo-org/octo-repo:ref:refs/heads/main"), True),  # issue_comment: the default branch
    (claims("repo:octo-org/octo-repo:pull_request"), True),
    (claims("repo:octo-org/octo-repo:environment:Production"), True),
    (claims("repo:octo-org/octo-repo:ref:refs/tags/v1"), True),
    (claims("repo:octo-org/octo-repo-fork:ref:refs/heads/main"), False),  # a name it starts
    (claims("repo:octo-org/octo:ref:refs/heads/main"), False),
    (claims("repo:evil-org/octo-repo:ref:refs/heads/main"), False),
    (claims("repo:Octo-Org/Octo-Repo:ref:refs/heads/main"), False),  # the claim's spelling is GitHub's own
    (claims("repo:octo-org/octo-repo:ref:refs/heads/main", aud="https://github.com/octo-org"), False),
    ({**claims("repo:octo-org/octo-repo:pull_request"), "iss": "https://evil.example"}, False),
])
def test_the_trust_policy_admits_exactly_the_repositorys_workflow_tokens(token: dict[str, str],
                                                                         allowed: bool) -> None:
    assert may_assume(trust_policy(PROVIDER, REPO), token, PROVIDER) is allowed


def _granted(policy: dict[str, Any]) -> list[str]:
    actions = []
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        names = statement["Action"]
        actions += [names] if isinstance(names, str) else names
    return actions


def test_the_permissions_are_doctors_actions_and_reads_only() -> None:
    policy = permissions_policy(partition="aws", account=ACCOUNT, bucket=None)
    granted = _granted(policy)
    missing = [a for a in REQUIRED_ACTIONS if not any(fnmatch.fnmatchcase(a, g) for g in granted)]
    assert missing == []
    beyond = {g for g in granted if g not in REQUIRED_ACTIONS}
    assert beyond <= set(EXTRA_READS)
    assert all(a.split(":")[1].startswith(("Describe", "Get", "List")) for a in beyond)
    assert not any(g.endswith(":*") or g == "*" for g in granted)


def test_the_permissions_are_scoped_where_iam_allows(aws: Any) -> None:
    policy = permissions_policy(partition="aws", account=ACCOUNT, bucket="octo-benchmarks")
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    # Every EC2 change is on a resource tagged dfbench:managed=true, every create tags its resource.
    assert by_sid["ChangeOwn"]["Condition"] == {"StringEquals": {"aws:ResourceTag/dfbench:managed": "true"}}
    assert "ec2:TerminateInstances" in by_sid["ChangeOwn"]["Action"]
    assert by_sid["CreateTagged"]["Condition"] == {"StringEquals": {"aws:RequestTag/dfbench:managed": "true"}}
    # PassRole only of the instance roles, only to EC2; the role's own name is out of their reach.
    [passing] = [s for s in policy["Statement"] if "iam:PassRole" in _granted({"Statement": [s]})]
    assert passing["Resource"] == f"arn:aws:iam::{ACCOUNT}:role/dfbench-*"
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}
    for statement in policy["Statement"]:
        if any(a.startswith("iam:") for a in _granted({"Statement": [statement]})):
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            assert not any(fnmatch.fnmatchcase(f"arn:aws:iam::{ACCOUNT}:role/{role_name(REPO)}", r)
                           for r in resources), statement
    assert by_sid["OnlyTheSsmPolicy"]["Condition"] == {
        "ArnEquals": {"iam:PolicyARN": "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"}}
    assert by_sid["Bucket"]["Resource"] == "arn:aws:s3:::octo-benchmarks"
    assert by_sid["Objects"]["Resource"] == "arn:aws:s3:::octo-benchmarks/*"
    assert by_sid["CommandsToOwn"]["Condition"] == {"StringEquals": {"aws:ResourceTag/dfbench:managed": "true"}}


def test_delete_removes_the_role_and_the_provider_dfbench_made_once_no_role_uses_it(
        aws: Any, recorder: Any, inspector: Any) -> None:
    ensure_github_role(REPO)
    ensure_github_role("octo-org/other")
    iam = inspector.client("iam")
    assert [str(c) for c in delete_github_role(REPO).changes] == [
        "- delete iam-role github-dfbench-octo-org-octo-repo: and policy dfbench-ci"]
    assert [c.detail for c in delete_github_role("octo-org/other").changes] == ["and policy dfbench-ci", ""]
    assert iam.list_open_id_connect_providers()["OpenIDConnectProviderList"] == []
    assert [r["RoleName"] for r in iam.list_roles()["Roles"] if "dfbench" in r["RoleName"]] == []
    recorder.clear()
    assert delete_github_role(REPO).changes == []
    assert changing(recorder) == []


def test_a_provider_dfbench_did_not_make_is_used_and_kept(aws: Any, inspector: Any) -> None:
    iam = inspector.client("iam")
    iam.create_open_id_connect_provider(Url="https://token.actions.githubusercontent.com",
                                        ClientIDList=["sts.amazonaws.com"], ThumbprintList=["a" * 40])
    assert [c.resource for c in ensure_github_role(REPO).changes] == ["iam-role", "iam-role"]
    assert [c.resource for c in delete_github_role(REPO).changes] == ["iam-role"]
    assert len(iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]) == 1


def test_the_command_prints_the_arn_and_refuses_a_bad_name(aws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["github", "role", "--repo", REPO]) == 0
    assert f"role: arn:aws:iam::{ACCOUNT}:role/github-dfbench-octo-org-octo-repo" in capsys.readouterr().out
    assert main(["github", "role", "--repo", REPO]) == 0
    assert "no change" in capsys.readouterr().out
    for bad in (["--repo", "octo-org"], ["--repo", "a/b;c"], ["--repo", REPO, "--bucket", "Bad_Bucket"]):
        assert main(["github", "role", *bad]) == 2, bad
    assert main(["github", "role", "--repo", REPO, "--delete", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["changes"][0]["action"] == "delete"


def test_long_repository_names_keep_apart_within_iams_limit() -> None:
    a, b = role_name("o/" + "x" * 90), role_name("o/" + "x" * 89 + "y")
    assert len(a) <= 64 and len(b) <= 64 and a != b and a.startswith("github-dfbench-")
