"""``dfbench github run`` as the workflow's benchmark job runs it, end to end: the GitHub stand-in
for the API, moto for AWS, the harness's stand-ins for the instance (LocalAgent runs every SSM
command here, the stand-in systemd starts dfbench's local worker for each installed build, IMDS
tells it its address), two distinguishable worker builds. A request provisions a cluster of its
own, A/Bs the builds, posts one comment and tears everything down; a failure anywhere posts a
comment naming the step, and still tears down."""

from __future__ import annotations

import fnmatch
import json
import shlex
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from botocore.client import BaseClient

from dfbench.aws.ssm import OUTPUT_PREFIX
from dfbench.cli import main
from dfbench.data import sync_dataset
from dfbench.github.role import permissions_policy
from dfbench.worker.build import check_binary
from dfbench_testing import Imds, LocalAgent, StandinSystemd, hooked, worker_binary
from dfbench_testing.github import GitHubStandin

DATASET = "tpch_sf0.01"
BUCKET = "octo-benchmarks"
BASE_SHA = "b" * 40
HEAD_SHA = "a" * 40
COMMAND = "/dfbench run tpch/sf0.01 --nodes 1 --rounds 2 --queries q1,q6 --set distributed.files_per_task=2"


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Any:
    with GitHubStandin("octo-org/datafusion-distributed") as standin:
        for name, value in standin.environment().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("GITHUB_EVENT_NAME", "issue_comment")
        standin.permissions["writer"] = "write"
        standin.pull(7, head_sha=HEAD_SHA, base_sha=BASE_SHA)
        yield standin


@pytest.fixture
def bucket(aws: Any, inspector: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """The repository's benchmark bucket, made by its owners (not by dfbench), named by
    BENCHMARK_BUCKET in the workflow."""
    inspector.client("s3").create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("BENCHMARK_BUCKET", BUCKET)
    return BUCKET


def inventory(inspector: Any) -> dict[str, Any]:
    """Everything a cluster could leave behind."""
    ec2, iam, route53 = inspector.client("ec2"), inspector.client("iam"), inspector.client("route53")
    instances = [i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
                 if i["State"]["Name"] != "terminated"]
    return {"instances": instances,
            "vpcs": sorted(v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]),
            "subnets": sorted(s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]),
            "groups": sorted(g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]),
            "gateways": sorted(g["InternetGatewayId"] for g in ec2.describe_internet_gateways()["InternetGateways"]),
            "roles": sorted(r["RoleName"] for r in iam.list_roles()["Roles"]),
            "profiles": sorted(p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]),
            "zones": sorted(z["Id"] for z in route53.list_hosted_zones()["HostedZones"]),
            "objects": bucket_keys(inspector, ".dfbench/")}


def bucket_keys(inspector: Any, leave_out: str | None = None, prefix: str = "") -> list[str]:
    listing = inspector.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in listing if leave_out is None or not o["Key"].startswith(leave_out))


# The IAM action behind an S3 operation, where the two names differ
# (https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-with-s3-policy-actions.html).
S3_PERMISSIONS = {"HeadBucket": "ListBucket", "ListObjectsV2": "ListBucket", "HeadObject": "GetObject",
                  "CreateMultipartUpload": "PutObject", "UploadPart": "PutObject",
                  "CompleteMultipartUpload": "PutObject",
                  "AbortMultipartUpload": "AbortMultipartUpload", "PutBucketEncryption": "PutEncryptionConfiguration",
                  "GetBucketEncryption": "GetEncryptionConfiguration", "DeleteObjects": "DeleteObject",
                  "ListObjectVersions": "ListBucketVersions", "PutPublicAccessBlock": "PutBucketPublicAccessBlock",
                  "GetPublicAccessBlock": "GetBucketPublicAccessBlock"}


def not_granted(calls: list[Any], policy: dict[str, Any]) -> set[str]:
    """The actions of the calls that no statement of the role's policy names (by action alone:
    the resources and conditions are IAM's to judge, which moto does not)."""
    granted = [a for s in policy["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])]
    prefixes = {"route-53": "route53"}
    actions = {f"{prefixes.get(c.service, c.service)}:{S3_PERMISSIONS.get(c.operation, c.operation)}"
               if c.service == "s3" else f"{prefixes.get(c.service, c.service)}:{c.operation}"
               for c in calls if c.service != "sts"}  # GetCallerIdentity needs no permission
    return {a for a in actions if not any(fnmatch.fnmatchcase(a, g) for g in granted)}


def comment_event(folder: Path, body: str) -> Path:
    path = folder / "event.json"
    path.write_text(json.dumps({"action": "created", "issue": {"number": 7, "pull_request": {"url": "https://api.github.com/repos/octo-org/datafusion-distributed/pulls/7"}},
                                "comment": {"id": 99, "body": body, "user": {"login": "writer", "type": "User"}}}))
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def bench_job(event: Path, base: Path, head: Path, results: Path, *extra: str) -> int:
    return main(["github", "run", "--event", str(event), "--base-binary", str(base), "--head-binary", str(head),
                 "--base-sha", BASE_SHA, "--head-sha", HEAD_SHA, "--via", "relay", "--results", str(results),
                 *extra])


def test_a_valid_command_runs_end_to_end_posts_the_comparison_and_leaves_nothing(
        github: Any, bucket: str, recorder: Any, faults: Any, inspector: Any, tpch: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    sync_dataset(DATASET, bucket=bucket, data_dir=tpch, progress=False)
    before = inventory(inspector)
    base = worker_binary(tmp_path / "base", kind="current")
    head = worker_binary(tmp_path / "head", kind="current")
    head.write_bytes(head.read_bytes() + b"\1")
    shas = {"base": check_binary(base), "head": check_binary(head)}
    port = free_port()

    def local_worker(commit: str) -> list[str]:
        """What each build stands for: the local worker reporting the build's commit, its peer the
        address worker.service's POD_IP helper read from IMDS, reading the bucket."""
        worker = shlex.join([sys.executable, "-m", "dfbench.worker.local", "--port", str(port), "--quiet",
                             "--commit", commit, "--s3-bucket", bucket])
        return ["sh", "-c", f'exec {worker} --worker-urls "http://$POD_IP:9001"']

    # The instance learns its private address from IMDS, known once provision has launched it.
    imds = Imds("0.0.0.0")

    def learn_address(client: BaseClient) -> None:
        def launched(parsed: Any = None, **_: Any) -> None:
            imds.address = parsed["Instances"][0]["PrivateIpAddress"]

        client.meta.events.register("after-call.ec2.RunInstances", launched)

    systemd = StandinSystemd(tmp_path / "instance", port=port, imds_url=imds.url,
                             workers={shas["base"]: local_worker("base0000"), shas["head"]: local_worker("head0000")})
    for name, value in systemd.environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DFBENCH_TIME_SCALE", "0.05")  # the instance's scripts take real seconds
    recorder.clear()
    with imds, systemd, hooked(learn_address), LocalAgent(
            faults, s3=inspector.client("s3"), bucket=bucket, prefix=OUTPUT_PREFIX, port_map={9000: port},
            ec2=inspector.client("ec2")):
        code = bench_job(comment_event(tmp_path, COMMAND + "\n\nplease"), base, head, tmp_path / "results",
                         "--plot")
    assert code == 0, github.comments

    # The job decided again (no second reaction), then posted exactly one comment.
    assert [(r.method, r.route) for r in github.requests] == [
        ("GET", "/repos/{repo}/collaborators/writer/permission"), ("GET", "/repos/{repo}/pulls/7"),
        ("GET", "/repos/{repo}/commits/main"), ("POST", "/repos/{repo}/issues/7/comments")]
    [(number, body)] = github.comments
    assert number == 7
    lines = body.splitlines()
    assert lines[0] == "### dfbench: `tpch_sf0.01` on 1 × c5n.2xlarge, 2 interleaved rounds"
    assert f"Head `{HEAD_SHA[:12]}` against base `main` (`{BASE_SHA[:12]}`)." in lines
    suite = next(line for line in lines if line.startswith("**Suite: "))
    assert suite.rstrip("*").endswith("0 failed, 0 missing")
    assert any(line.startswith("Smallest uniform change this comparison could detect: ±") for line in lines)
    details = body[body.index("<details><summary>Queries (2)</summary>"):body.index("</details>")]
    assert "| q1 |" in details and "| q6 |" in details
    assert f"'base-{BASE_SHA[:12]}' [prev] with 'head-{HEAD_SHA[:12]}' [new]" in details
    assert "   TASKS: prev=" in details and "   TOTAL: prev=" in details
    assert ("Logs: [workflow run 4242](https://github.com/octo-org/datafusion-distributed/actions/runs/4242)"
            in body)
    assert body.rstrip().endswith(f"Request by writer:\n\n```\n{COMMAND}\n```")

    # Provisioned through the library, each side ran on its own build, the setting reached the workers.
    [launch] = recorder.named("RunInstances")
    assert launch.params["InstanceType"] == "c5n.2xlarge" and launch.params["MinCount"] == 1
    assert systemd.started == [shas["base"], shas["head"], shas["base"]]
    # The chart and its report, for the workflow's results artifact.
    assert (tmp_path / "results" / "comparison.png").stat().st_size > 0
    assert (tmp_path / "results" / "comparison.html").is_file()
    results = tmp_path / "results" / DATASET / ".results-remote"
    for engine, commit in ((f"base-{BASE_SHA[:12]}", "base0000"), (f"head-{HEAD_SHA[:12]}", "head0000")):
        run = json.loads((results / engine / "run.json").read_text())
        assert run["worker_info"]["git_commit_hash"] == commit
        assert run["settings"]["distributed.files_per_task"] == "2"
        assert run["cluster"]["name"] == "dfbench-pr-7"
    # The role `dfbench github role` makes names every action the job called.
    assert not_granted(recorder.calls, permissions_policy(partition="aws", account="123456789012",
                                                          bucket=bucket)) == set()
    # Torn down: the emulator holds what it held before, and the bucket the two builds, kept by
    # sha256 as every deploy keeps them (a later run of the same commit uploads nothing).
    assert recorder.named("TerminateInstances")
    assert inventory(inspector) == before
    assert bucket_keys(inspector, prefix=".dfbench/artifacts/") == sorted(
        f".dfbench/artifacts/worker/{sha}/worker" for sha in shas.values())


def test_a_failed_step_is_named_with_the_end_of_its_output_and_the_cluster_still_goes(
        github: Any, bucket: str, recorder: Any, inspector: Any, tmp_path: Path) -> None:
    """The dataset was never synced to the bucket: the benchmark step stops before deploying."""
    before = inventory(inspector)
    base = worker_binary(tmp_path / "base", kind="current")
    head = worker_binary(tmp_path / "head", kind="current")
    head.write_bytes(head.read_bytes() + b"\1")
    code = bench_job(comment_event(tmp_path, COMMAND), base, head, tmp_path / "results")
    assert code == 1
    [(_, body)] = github.comments
    assert body.startswith("### dfbench: the **benchmark** step failed")
    assert f"No dataset '{DATASET}' in s3://{BUCKET}/: sync it first with `dfbench data sync {DATASET}`." in body
    assert "The cluster was torn down." in body and f"```\n{COMMAND}\n```" in body
    assert recorder.named("RunInstances") and recorder.named("TerminateInstances")
    assert not recorder.named("SendCommand")  # nothing was deployed
    assert inventory(inspector) == before


def test_a_failed_provision_is_named_and_torn_down(github: Any, bucket: str, faults: Any, recorder: Any,
                                                  inspector: Any, tmp_path: Path) -> None:
    before = inventory(inspector)
    faults.error("ec2", "RunInstances", "InsufficientInstanceCapacity", "We currently do not have sufficient "
                 "c5n.2xlarge capacity", status=500, times=100)
    base = worker_binary(tmp_path / "base", kind="current")
    head = worker_binary(tmp_path / "head", kind="current")
    head.write_bytes(head.read_bytes() + b"\1")
    assert bench_job(comment_event(tmp_path, COMMAND), base, head, tmp_path / "results") == 1
    [(_, body)] = github.comments
    assert body.startswith("### dfbench: the **provision** step failed")
    assert "No capacity for c5n.2xlarge" in body and "The cluster was torn down." in body
    assert inventory(inspector) == before
