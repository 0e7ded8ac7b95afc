"""`dfbench doctor`: a table of checks with their fixes, changing nothing, exit 1 on a blocker.

moto lacks EC2's quotas in Service Quotas and IAM's policy simulator: dfbench_testing.ServiceQuotas
and PolicySimulator answer those calls as AWS does."""

from __future__ import annotations

import json

import pytest

import dfbench
from dfbench import ClusterSpec, cli
from dfbench.checkup import REQUIRED_ACTIONS
from dfbench_testing import PolicySimulator, Recorder, ServiceQuotas, hooked

# S3's IAM actions are named after permissions, not operations.
S3_ACTIONS = {"PutBucketEncryption": "PutEncryptionConfiguration", "PutPublicAccessBlock": "PutBucketPublicAccessBlock",
              "DeleteObjects": "DeleteObject"}
CHECKS = ["credentials", "cluster", "instance type", "availability zones", "vCPU quota (on-demand)",
          "launch (DryRun)", "IAM permissions", "session manager plugin", "ssh cidr"]


@pytest.fixture
def role_caller(aws, inspector, monkeypatch: pytest.MonkeyPatch) -> str:
    """Credentials of an assumed role, as most users have (SSO, aws-vault): the ARN STS returns
    lacks the role's path, so doctor looks the role up for the simulator."""
    role = inspector.client("iam").create_role(RoleName="bench-admin", Path="/team/", AssumeRolePolicyDocument="{}")
    keys = inspector.client("sts").assume_role(RoleArn=role["Role"]["Arn"], RoleSessionName="me")["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", keys["SessionToken"])
    return role["Role"]["Arn"]


@pytest.fixture
def no_plugin(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def _doctor(capsys, *argv: str) -> tuple[int, dict[str, dict[str, str]]]:
    code = cli.main(["doctor", "--json", *argv])
    report = json.loads(capsys.readouterr().out)
    return code, {check["name"]: check for check in report["checks"]}


def test_a_fresh_account_that_can_provision_gets_no_blocker_and_nothing_changes(
        role_caller, no_plugin, recorder: Recorder, inspector, capsys) -> None:
    simulator = PolicySimulator()
    with hooked(ServiceQuotas({"L-1216C47A": 64}).hook, simulator.hook):
        code, checks = _doctor(capsys, "--cluster", "doc", "--count", "2", "--via", "relay")
    assert code == 0, checks
    assert list(checks) == CHECKS
    assert {name: c["status"] for name, c in checks.items()} == dict.fromkeys(CHECKS, "ok")
    assert "assumed-role/bench-admin/me" in checks["credentials"]["detail"]
    assert checks["vCPU quota (on-demand)"]["detail"].startswith("2 x 8 = 16 vCPUs of 64 (L-1216C47A)")
    assert simulator.principals == [role_caller]  # the role's ARN with its path, not the session's
    changed = [c for c in recorder.mutating if c.operation != "SimulatePrincipalPolicy"]
    assert [(c.operation, c.params.get("DryRun")) for c in changed] == [("RunInstances", True)]
    assert inspector.client("ec2").describe_instances()["Reservations"] == []


def test_each_blocker_is_a_row_with_its_fix_and_the_exit_code_is_1(
        role_caller, no_plugin, faults, inspector, capsys) -> None:
    # EC2 answers a dry run the caller may not make with UnauthorizedOperation (HTTP 403).
    faults.error("ec2", "RunInstances", "UnauthorizedOperation", "You are not authorized to perform this operation.",
                 status=403)
    with hooked(ServiceQuotas({"L-1216C47A": 8}).hook, PolicySimulator({"iam:PassRole", "ec2:CreateVpc"}).hook):
        code, checks = _doctor(capsys, "--cluster", "doc", "--count", "2", "--via", "ssm",
                               "--ssh-cidr", "0.0.0.0/0", "--allow-wide-ssh")
    assert code == 1
    status = {name: c["status"] for name, c in checks.items()}
    assert status == {**dict.fromkeys(CHECKS, "ok"), "vCPU quota (on-demand)": "fail", "launch (DryRun)": "fail",
                      "IAM permissions": "fail", "session manager plugin": "fail", "ssh cidr": "warn"}
    assert "16 vCPUs of 8" in checks["vCPU quota (on-demand)"]["detail"]
    assert "increase of quota L-1216C47A" in checks["vCPU quota (on-demand)"]["fix"]
    assert "ec2:RunInstances" in checks["launch (DryRun)"]["fix"]
    assert checks["IAM permissions"]["detail"].endswith("denied: ec2:CreateVpc, iam:PassRole")
    assert "session-manager-working-with-install-plugin" in checks["session manager plugin"]["fix"]
    assert "4,294,967,296 addresses" in checks["ssh cidr"]["detail"] and "/32" in checks["ssh cidr"]["fix"]


def test_what_ec2_would_refuse_and_what_cannot_be_checked_are_said(aws, no_plugin, capsys) -> None:
    # moto's caller is not an IAM user or role: the simulator cannot take it, and no applied quota
    # exists, so AWS's default (5 vCPUs for a new account) is the one compared.
    with hooked(ServiceQuotas().hook):
        code, checks = _doctor(capsys, "--cluster", "doc", "--count", "1", "--instance-type", "c7g.xlarge")
    assert code == 1
    assert checks["instance type"]["status"] == "fail" and "x86_64" in checks["instance type"]["fix"]
    assert checks["launch (DryRun)"]["status"] == "fail" and "architecture" in checks["launch (DryRun)"]["detail"]
    assert checks["vCPU quota (on-demand)"]["detail"].startswith("1 x 4 = 4 vCPUs of 5")
    assert checks["IAM permissions"]["status"] == "unknown"
    assert checks["session manager plugin"]["status"] == "warn"  # --via auto falls back


def test_without_credentials_only_the_local_checks_run(aws, no_plugin, monkeypatch, recorder: Recorder,
                                                        capsys) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    code, checks = _doctor(capsys, "--cluster", "doc", "--via", "ssh")
    assert code == 1
    assert list(checks) == ["credentials", "session manager plugin", "ssh cidr"]
    assert checks["credentials"]["status"] == "fail" and "AWS_ACCESS_KEY_ID" in checks["credentials"]["fix"]
    assert [c.operation for c in recorder.calls] == ["GetCallerIdentity"]


def test_the_permissions_checked_cover_every_change_provision_and_teardown_make(
        role_caller, no_plugin, recorder: Recorder, capsys) -> None:
    spec = ClusterSpec(name="perm", instance_count=1)
    dfbench.provision(spec)
    simulator = PolicySimulator()
    with hooked(ServiceQuotas({"L-1216C47A": 64}).hook, simulator.hook):
        code, checks = _doctor(capsys, "--cluster", "perm", "--count", "1")
    assert code == 0, checks
    assert "in subnet-" in checks["launch (DryRun)"]["detail"]  # the cluster's own subnet, not a default VPC
    assert dfbench.teardown("perm", delete_bucket=True).left == []
    needed = {f"{c.service.replace('route-53', 'route53')}:{S3_ACTIONS.get(c.operation, c.operation)}"
              for c in recorder.mutating if c.operation != "SimulatePrincipalPolicy"}
    assert needed - set(REQUIRED_ACTIONS) == set()


def test_the_table_names_each_check_its_status_and_the_blockers(aws, no_plugin, monkeypatch, capsys) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    code = cli.main(["doctor", "--cluster", "doc", "--via", "ssm", "--ssh-cidr", "203.0.113.7/32"])
    table = capsys.readouterr().out
    assert code == 1
    for row in ("credentials", "session manager plugin", "ssh cidr", "203.0.113.7/32", "install it:"):
        assert row in table, table
    assert "2 blocker(s): credentials, session manager plugin" in table
