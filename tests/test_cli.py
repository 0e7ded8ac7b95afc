"""The `dfbench` command in-process: exit codes, one-line errors, JSON and text output."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dfbench import cli
from dfbench.aws.tags import CLUSTER_KEY, MANAGED_KEY, tag_specifications
from dfbench_testing import Faults, MotoServer, Recorder

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, _ANSI.sub("", captured.out), _ANSI.sub("", captured.err)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


# --- invalid input: exit 2, one line, before any AWS call ----------------------------------------


INVALID = {
    "count-zero": (["provision", "--count", "0"], "instance_count"),
    "count-not-int": (["provision", "--count", "abc"], "--count"),
    "plan-count-zero": (["plan", "--count", "0"], "instance_count"),
    "bad-name-provision": (["provision", "--cluster", "Bad_Name"], "name"),
    "bad-name-status": (["status", "--cluster", "Bad_Name"], "cluster name"),
    "bad-name-teardown": (["teardown", "--cluster", "Bad_Name"], "cluster name"),
    "bad-region-provision": (["provision", "--region", "nowhere"], "'nowhere'"),
    "bad-region-status": (["status", "--region", "nowhere"], "'nowhere'"),
    "bad-region-teardown": (["teardown", "--region", "nowhere"], "'nowhere'"),
    "bad-ssh-cidr": (["provision", "--ssh-cidr", "999.1.1.1/32"], "999.1.1.1/32"),
    "ipv6-ssh-cidr": (["plan", "--ssh-cidr", "2001:db8::/32"], "IPv4"),
    "tag-without-value": (["provision", "--tag", "novalue"], "novalue"),
    "reserved-tag": (["provision", "--tag", "Name=x"], "reserved"),
    "bad-bucket": (["provision", "--bucket", "192.168.1.1"], "bucket"),
    "bad-ami": (["provision", "--ami", "ami-nope"], "ami"),
    "unknown-subcommand": (["frobnicate"], "frobnicate"),
    "missing-queries-dir": (["bench", "--url", "http://127.0.0.1:9", "--dataset", "tpch_sf1", "--location", "/d",
                             "--queries-dir", "/no/such/queries"], "not a directory"),
    "dataset-without-query-set": (["bench", "--url", "http://127.0.0.1:9", "--dataset", "hits", "--location", "/d"],
                                  "--queries-dir"),
    "no-subcommand": ([], "command"),
    "unknown-option": (["status", "--bogus"], "--bogus"),
    # User text that looks like rich markup is printed as text, not interpreted (or crashed on).
    "markup-like-region": (["provision", "--region", "[/x]"], "'[/x]'"),
    "markup-like-tag": (["provision", "--tag", "[bold]"], "'[bold]'"),
}


@pytest.mark.parametrize(("argv", "mentions"), list(INVALID.values()), ids=list(INVALID))
def test_invalid_input_rejected_before_any_aws_call(
    argv: list[str], mentions: str, recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert "Traceback" not in err and "Traceback" not in out
    lines = error_lines(err)
    assert len(lines) == 1, err
    assert lines[0].startswith("error:")
    assert mentions in lines[0]
    assert out == ""
    assert recorder.calls == []


def test_invalid_region_from_environment_rejected_before_any_aws_call(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_REGION", "nowhere")
    code, _, err = run(capsys, "provision", "--cluster", "cli")
    assert code == 2
    lines = error_lines(err)
    assert len(lines) == 1 and lines[0].startswith("error:") and "region: 'nowhere'" in lines[0]
    assert recorder.calls == []


def test_invalid_bucket_from_environment_rejected_before_any_aws_call(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BENCHMARK_BUCKET", "Not_A_Bucket")
    code, _, err = run(capsys, "plan", "--cluster", "cli")
    assert code == 2
    lines = error_lines(err)
    assert len(lines) == 1 and lines[0].startswith("error:") and "bucket:" in lines[0]
    assert recorder.calls == []


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from dfbench import __version__

    with pytest.raises(SystemExit) as raised:
        cli.main(["--version"])
    assert raised.value.code == 0
    assert capsys.readouterr().out.strip() == f"dfbench {__version__}"


# --- the life cycle against the emulator ----------------------------------------------------------


def test_provision_plan_status_teardown(
    aws: MotoServer, recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = Path(".dfbench") / "cli.json"  # the aws fixture runs each test in its own tmp_path
    assert not outputs.exists()

    code, out, err = run(capsys, "provision", "--cluster", "cli", "--count", "2", "--json")
    assert code == 0, err
    assert "Traceback" not in err
    cluster = json.loads(out)
    assert cluster["name"] == "cli"
    assert cluster["region"] == "us-east-1"
    assert len(cluster["instances"]) == 2
    ids = sorted(i["instance_id"] for i in cluster["instances"])
    assert sorted(i["name"] for i in cluster["instances"]) == ["cli-0", "cli-1"]
    assert cluster["vpc_id"] and cluster["subnet_id"] and cluster["security_group_id"]

    # The outputs file, in the current directory, is the same record.
    assert outputs.is_file()
    assert json.loads(outputs.read_text()) == cluster

    # Converged: plan has nothing to do, and makes no change.
    recorder.clear()
    code, out, err = run(capsys, "plan", "--cluster", "cli", "--count", "2", "--json")
    assert code == 0, err
    planned = json.loads(out)
    assert planned["changes"] == []
    assert planned["empty"] is True
    assert planned["cluster"] == "cli"
    assert recorder.calls and recorder.mutating == []

    code, out, err = run(capsys, "status", "--cluster", "cli", "--json")
    assert code == 0, err
    found = json.loads(out)
    assert sorted(i["instance_id"] for i in found["instances"]) == ids
    assert found["vpc_id"] == cluster["vpc_id"]

    # Text plan for one more instance: says it would create instances, and creates nothing.
    recorder.clear()
    code, out, err = run(capsys, "plan", "--cluster", "cli", "--count", "3")
    assert code == 0, err
    assert "create instances" in out
    assert "1 x c5n.2xlarge" in out
    assert recorder.mutating == []

    code, out, err = run(capsys, "teardown", "--cluster", "cli")
    assert code == 0, err
    assert "nothing left" in out
    for instance_id in ids:
        assert f"deleted instance {instance_id}" in out
    assert f"deleted vpc {cluster['vpc_id']}" in out
    assert not outputs.exists()

    code, out, err = run(capsys, "status", "--cluster", "cli")
    assert code == 1
    assert "no cluster named 'cli'" in out
    assert "Traceback" not in err

    # Teardown of a cluster that is gone is a success that deletes nothing.
    recorder.clear()
    code, out, err = run(capsys, "teardown", "--cluster", "cli")
    assert code == 0, err
    assert "nothing left (there was nothing to delete)" in out
    assert recorder.mutating == []
    code, out, err = run(capsys, "teardown", "--cluster", "cli", "--json")
    assert code == 0, err
    assert json.loads(out) == {"cluster": "cli", "region": "us-east-1", "deleted": [], "left": [], "errors": [],
                               "cost": None, "clean": True}


def test_teardown_that_cannot_delete_the_vpc_fails(
    aws: MotoServer, faults: Faults, capsys: pytest.CaptureFixture[str]
) -> None:
    """A dfbench VPC whose deletion keeps failing with DependencyViolation past the retry window
    (300 s, scaled to 0.3 s by DFBENCH_TIME_SCALE): teardown reports the VPC as left, says why,
    and the command fails."""
    import boto3

    ec2 = boto3.client("ec2", region_name="us-east-1")  # plain boto3, straight to the emulator
    tags = {CLUSTER_KEY: "stuck", MANAGED_KEY: "true"}
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=tag_specifications("vpc", tags))["Vpc"]["VpcId"]
    refusal = faults.error("ec2", "DeleteVpc", "DependencyViolation",
                           f"The vpc '{vpc_id}' has dependencies and cannot be deleted.", times=10_000)

    code, out, err = run(capsys, "teardown", "--cluster", "stuck")

    assert code == 1
    assert "Traceback" not in err
    assert f"left vpc {vpc_id}" in " ".join(out.split())
    assert "DependencyViolation" in err and "Traceback" not in out
    # Retried for a bounded time, then gave up.
    assert 1 < refusal.hits < 10_000
    # The VPC is really still there.
    assert [v["VpcId"] for v in ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"]] == [vpc_id]


def test_deploy_help_says_env_values_are_not_secret(capsys: pytest.CaptureFixture[str]) -> None:
    """--env values travel in SSM command parameters and stay in the unit and the bucket's latest
    record: the option says so where a user picks it."""
    with pytest.raises(SystemExit):
        cli.main(["deploy", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "NOT for secrets" in help_text and "SSM command's parameters" in help_text
