"""`dfbench verify-aws` against the emulator: every item of docs/not-verified.md has its probe rows, a
whole run reports each row and leaves nothing carrying its tag, and so does a run interrupted by
SIGINT or SIGTERM while its instance runs (no sweep), or one whose step fails. The command runs in a
process of its own (tests/standins/verify_aws_driver.py), as a user runs it."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dfbench.aws.session import default_bucket_name
from dfbench.cli.main import main
from dfbench.errors import ConfigError
from dfbench.verify import PROBES
from dfbench.verify.cleanup import CleanupStack, Interrupted, signals_raise
from dfbench.verify.instance import command_script, parse_output, user_data
from dfbench_testing import system_tool

ROOT = Path(__file__).resolve().parent.parent
DRIVER = ROOT / "tests" / "standins" / "verify_aws_driver.py"
BUCKET = default_bucket_name("123456789012", "us-east-1")
VERIFY_KEY = "dfbench:verify"


def _notes() -> list[str]:
    """The items of docs/not-verified.md: each bullet of its sections about AWS (all but
    "Elsewhere"), with its continuation lines."""
    text = (ROOT / "docs" / "not-verified.md").read_text(encoding="utf-8")
    text = text.split("\n## Elsewhere", 1)[0]
    items: list[str] = []
    for line in text.splitlines():
        if line.startswith("- "):
            items.append(line[2:])
        elif line.startswith("  ") and items and line.strip():
            items[-1] += " " + line.strip()
    return items


def test_every_readme_note_has_a_probe_row_and_every_probe_a_note() -> None:
    items = _notes()
    assert len(items) >= 25  # the notes exist and were split into their items
    phrases = [probe.readme for probe in PROBES]
    assert [item for item in items if not any(phrase in item for phrase in phrases)] == []
    assert [p.key for p in PROBES if not any(p.readme in item for item in items)] == []
    assert len({p.key for p in PROBES}) == len(PROBES)


def _run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(DRIVER), "verify-aws", *args], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})


def _left(inspector: Any) -> dict[str, list[str]]:
    """Everything in the emulated account that a verify-aws run made and that still exists."""
    ec2, tagged = inspector.client("ec2"), [{"Name": "tag-key", "Values": [VERIFY_KEY]}]
    found = {
        "vpcs": [v["VpcId"] for v in ec2.describe_vpcs(Filters=tagged)["Vpcs"]],
        "subnets": [s["SubnetId"] for s in ec2.describe_subnets(Filters=tagged)["Subnets"]],
        "groups": [g["GroupId"] for g in ec2.describe_security_groups(Filters=tagged)["SecurityGroups"]],
        "gateways": [g["InternetGatewayId"]
                     for g in ec2.describe_internet_gateways(Filters=tagged)["InternetGateways"]],
        "tables": [t["RouteTableId"] for t in ec2.describe_route_tables(Filters=tagged)["RouteTables"]],
        "instances": [i["InstanceId"] for r in ec2.describe_instances(Filters=tagged)["Reservations"]
                      for i in r["Instances"] if i["State"]["Name"] != "terminated"],
        "roles": [r["RoleName"] for r in inspector.client("iam").list_roles()["Roles"] if "verify" in r["RoleName"]],
        "profiles": [p["InstanceProfileName"] for p in inspector.client("iam").list_instance_profiles()[
            "InstanceProfiles"] if "verify" in p["InstanceProfileName"]],
        "zones": [z["Name"] for z in inspector.client("route53").list_hosted_zones()["HostedZones"]
                  if "verify" in z["Name"]],
        "parameters": [p["Name"] for p in inspector.client("ssm").describe_parameters()["Parameters"]
                       if "verify" in p["Name"]],
    }
    s3 = inspector.client("s3")
    buckets = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    found["objects"] = [o["Key"] for b in buckets for o in s3.list_objects_v2(Bucket=b).get("Contents", [])
                        if "verify" in o["Key"]]
    return {kind: names for kind, names in found.items() if names}


def _report(path: Path) -> dict[str, Any]:
    report = json.loads(path.read_text())
    assert path.with_suffix(".md").read_text().startswith(f"# dfbench verify-aws, run {report['run_id']}")
    return report


def test_a_whole_run_reports_every_probe_and_leaves_nothing(aws, inspector, tmp_path) -> None:
    # The account's dfbench bucket exists already (with someone's data): it stays, as it was.
    s3 = inspector.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="tpch_sf1/manifest.json", Body=b"{}")

    process = _run(tmp_path, "--yes", "--report", "r.json")
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]

    report = _report(tmp_path / "r.json")
    rows = {row["probe"]: row for row in report["findings"]}
    assert list(rows) == [probe.key for probe in PROBES]
    assert report["left"] == [] and not report["interrupted"] and report["endpoint"] == aws.url
    holds = {key: row["holds"] for key, row in rows.items()}
    # Observed through the harness's stand-ins, as AWS documents the behaviour.
    for key in ("arch-wording", "io2-wording", "dry-run-parameters", "service-quota", "spent-launch-token",
                "zone-on-young-vpc", "zone-inside-vpc", "record-change", "cli-secure-string", "ssm-instance-id",
                "presigned-post", "etag-md5", "local-zones"):
        assert holds[key] is True, rows[key]
    # Measured on the run's own calls: NotYetVisible answers each new resource NotFound twice.
    for key in [k for k in rows if k.startswith("notfound-")]:
        assert holds[key] is True and "after 2 NotFound answer(s)" in rows[key]["observed"], rows[key]
    assert "instance-profile" in rows["notfound-instance-profile-ec2"]["observed"]
    assert "(RunInstances)" in rows["notfound-instance-profile-ec2"]["observed"]
    # What the emulator cannot show is not claimed: null, with the reason.
    for key, reason in (("first-boot-credentials", "left no record"), ("systemd-order", "unavailable"),
                        ("systemd-escapes", "unavailable"), ("secret-policy", "endpoint override"),
                        ("regional-endpoint", "endpoint override"), ("dry-run-no-default-vpc", "default VPC"),
                        ("tagged-create-bucket", "existed"), ("current-worker", "worker build")):
        assert holds[key] is None and reason in rows[key]["observed"] + rows[key]["evidence"], rows[key]
    assert "no record" not in rows["ssm-instance-id"]["observed"]
    assert "Please share it" in stdout

    assert _left(inspector) == {}
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]] == ["tpch_sf1/manifest.json"]
    # Its instance would have ended itself had the process died: the time-to-live armed at first
    # boot, a power-off that terminates.
    ec2 = inspector.client("ec2")
    [instance] = [i for r in ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": ["dfbench-verify-*-0"]}])[
        "Reservations"] for i in r["Instances"]]
    assert instance["State"]["Name"] == "terminated"
    assert {"Key": VERIFY_KEY, "Value": report["run_id"]} in instance["Tags"]
    attribute = ec2.describe_instance_attribute(InstanceId=instance["InstanceId"],
                                                Attribute="instanceInitiatedShutdownBehavior")
    assert attribute["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"
    data = ec2.describe_instance_attribute(InstanceId=instance["InstanceId"], Attribute="userData")
    assert "dfbench_ttl_seconds=3600" in base64.b64decode(data["UserData"]["Value"]).decode()


def _wait_for_running_instance(inspector: Any, process: subprocess.Popen[str]) -> str:
    ec2 = inspector.client("ec2")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        running = [i["InstanceId"] for r in ec2.describe_instances(Filters=[
            {"Name": "tag-key", "Values": [VERIFY_KEY]}, {"Name": "instance-state-name", "Values": ["running"]},
            {"Name": "tag:Name", "Values": ["dfbench-verify-*"]}])["Reservations"] for i in r["Instances"]]
        if running:
            return running[0]
        time.sleep(0.05)
    raise AssertionError(f"no instance ran: {process.communicate()[1][-3000:]}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_run_interrupted_while_its_instance_runs_leaves_nothing(aws, inspector, tmp_path, signum) -> None:
    # The instance never resolves the record (vpc-none), so its command runs out its DNS bound
    # (9 s at this scale) while the test interrupts it.
    process = _run(tmp_path, "--yes", "--report", "r.json",
                   env={"DFBENCH_TIME_SCALE": "0.05", "DFBENCH_VPC_ID": "vpc-none"})
    _wait_for_running_instance(inspector, process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=600)

    assert process.returncode == 130, stderr[-3000:]
    report = _report(tmp_path / "r.json")
    assert report["interrupted"] and report["left"] == []
    assert {row["probe"] for row in report["findings"]} == {probe.key for probe in PROBES}
    assert _left(inspector) == {}
    assert BUCKET not in [b["Name"] for b in inspector.client("s3").list_buckets()["Buckets"]]  # made by the run


def test_a_failed_step_leaves_nothing_and_says_why(aws, inspector, tmp_path) -> None:
    process = _run(tmp_path, "--yes", "--report", "r.json",
                   env={"VERIFY_DRIVER_FAULT": "route-53:CreateHostedZone:InvalidVPCId"})
    _, stderr = process.communicate(timeout=600)

    assert process.returncode == 0, stderr[-3000:]
    rows = {row["probe"]: row for row in _report(tmp_path / "r.json")["findings"]}
    assert rows["zone-inside-vpc"]["holds"] is None
    assert "step 'zone' failed: InvalidVPCId" in rows["zone-inside-vpc"]["evidence"]
    assert rows["notfound-subnet"]["holds"] is True  # observed before the failure, kept
    # Route 53 answering that it does not know the VPC is itself a NotFound window that never closed.
    assert rows["notfound-vpc"]["holds"] is False
    assert "in route53: no call naming it succeeded (1 NotFound)" in rows["notfound-vpc"]["observed"]
    assert _left(inspector) == {}


def test_without_a_terminal_it_refuses_before_any_aws_call(aws, recorder, monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    assert main(["verify-aws"]) == 2
    assert "pass --yes" in capsys.readouterr().err
    assert recorder.calls == []


def test_in_a_terminal_it_shows_the_plan_and_a_no_creates_nothing(aws, recorder, monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    asked: list[str] = []
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or "n")
    assert main(["verify-aws"]) == 1
    printed = capsys.readouterr().out
    assert asked == ["Proceed? [y/N] "]
    for words in ("t3.micro", "dfbench:verify=", "Time: about 10 minutes", "Cost: under $0.02", "private hosted zone"):
        assert words in printed
    assert printed.rstrip().endswith("nothing created.")
    assert [call.operation for call in recorder.calls] == ["GetCallerIdentity"]


def test_a_report_path_that_is_not_json_is_refused(capsys) -> None:
    assert main(["verify-aws", "--yes", "--report", "verify.txt"]) == 2
    assert "must end with .json" in capsys.readouterr().err


def test_the_cleanup_stack_runs_last_first_and_keeps_going_past_a_failure() -> None:
    done: list[str] = []
    stack = CleanupStack()
    stack.register("network", lambda: done.append("network"))
    stack.register("zone", lambda: (_ for _ in ()).throw(RuntimeError("zone busy")))
    stack.register("instances", lambda: done.append("instances"))
    assert stack.unwind() == ["zone: RuntimeError: zone busy"]
    assert done == ["instances", "network"]
    assert stack.unwind() == ["zone: RuntimeError: zone busy"]  # each cleanup runs once
    assert done == ["instances", "network"]


def test_sigterm_raises_into_the_run() -> None:
    with pytest.raises(Interrupted) as raised, signals_raise():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert raised.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


SCRIPTS = {
    "user data": lambda: user_data(ttl_hours=1, region="us-east-1", object_url=f"s3://{BUCKET}/.dfbench/verify/x/p"),
    "command": lambda: command_script(run_id="abcd1234", region="us-east-1", dns_name="workers.z.dfbench.internal",
                                      dns_wanted="127.0.0.3", dns_bound_s=5, inside="/dfbench/c/probe",
                                      outside="/dfbench/c-outside/probe", post_url="https://b.s3.amazonaws.com/",
                                      post_fields={"key": "k", "x-amz-signature": "s'$`"}, post_body="it's $HOME"),
}


@pytest.mark.parametrize("name", SCRIPTS)
def test_the_instance_scripts_pass_shellcheck(name: str) -> None:
    result = subprocess.run([system_tool("shellcheck"), "--shell=bash", "-"], input=SCRIPTS[name](),
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_the_command_script_refuses_what_it_cannot_quote() -> None:
    with pytest.raises(ConfigError, match="run id"):
        command_script(run_id="x; rm", region="r", dns_name="n", dns_wanted="127.0.0.3", dns_bound_s=1, inside="i",
                       outside="o", post_url="u", post_fields={}, post_body="b")
    with pytest.raises(ConfigError, match="field name"):
        command_script(run_id="abcd1234", region="r", dns_name="n", dns_wanted="127.0.0.3", dns_bound_s=1,
                       inside="i", outside="o", post_url="u", post_fields={"a b": "c"}, post_body="b")


def test_the_command_output_is_read_back_by_name() -> None:
    found = parse_output("noise\ndfbench-verify post 204 \ndfbench-verify dns-first 1.5 127.0.0.2\n"
                         "dfbench-verify first-read none\n")
    assert found == {"post": "204", "dns-first": "1.5 127.0.0.2", "first-read": "none"}
