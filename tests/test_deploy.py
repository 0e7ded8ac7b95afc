"""Deploying the worker to a cluster provisioned in moto, and exec / logs on its instances.

moto accepts SendCommand and resolves its tag target, but runs nothing; ``FakeSsm`` answers for
the SSM agents (online status, each command's per-instance status and output) in AWS's wire
format, and writes each instance's whole output to the bucket as the agent does.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import dfbench
from dfbench.aws.ssm import OUTPUT_PREFIX
from dfbench.errors import ClusterNotFound, CommandFailed, ConfigError, InstancesGone, WorkersDisagree
from dfbench.worker.artifacts import artifact_key
from dfbench.worker.build import check_binary
from dfbench.worker.scripts import INSTALLED_MARKER, LATEST_KEY, install_script, latest_record, worker_unit
from dfbench.worker_deploy import deploy_worker, exec_command, logs
from dfbench_testing import FakeSsm, Recorder, Run, worker_binary

COMMIT = "4f0c2a9e1b7d"
ARTIFACT_WRITES = {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"}
IN_PROGRESS = Run("InProgress")


def provisioned(name: str, count: int) -> dfbench.Cluster:
    return dfbench.provision(dfbench.ClusterSpec(name=name, instance_count=count))


def ids(cluster: dfbench.Cluster) -> list[str]:
    return [i.instance_id for i in cluster.instances]


def label(cluster: dfbench.Cluster, instance_id: str) -> str:
    return next(f"{i.instance_id} ({i.name})" for i in cluster.instances if i.instance_id == instance_id)


def online(instance_ids: list[str]) -> dict[str, str]:
    return dict.fromkeys(instance_ids, "Online")


def every(instance_ids: list[str], run: Run) -> dict[str, Run]:
    return {i: run for i in instance_ids}


def installed(sha: str) -> Run:
    return Run("Success", 0,
               f"dfbench: cloud-init finished with status 2; installing anyway\n{INSTALLED_MARKER}{sha}\n")


def info(cluster: dfbench.Cluster, peers: int | None = None, commit: str = COMMIT) -> Run:
    """A worker's /info knowing the first ``peers`` instances of ``cluster`` (all by default)."""
    known = cluster.instances[:peers]
    body = {"worker_urls": [f"http://{i.private_ip}:9001" for i in known], "git_commit_hash": commit,
            "build_time_utc": "2026-11-25T10:00:00Z", "errors": []}
    return Run("Success", 0, json.dumps(body) + "\n")


def sends(recorder: Recorder) -> list[dict[str, Any]]:
    return [c.params for c in recorder.named("SendCommand")]


def s3_calls(recorder: Recorder) -> list[str]:
    return [c.operation for c in recorder.calls if c.service == "s3"]


@pytest.fixture
def cluster(aws: Any) -> dfbench.Cluster:
    return provisioned("d", 3)


@pytest.fixture
def fake(faults: Any, inspector: Any, cluster: dfbench.Cluster) -> FakeSsm:
    return FakeSsm(faults, bucket=cluster.bucket, prefix=OUTPUT_PREFIX, s3=inspector.client("s3"))


@pytest.fixture
def binary(tmp_path: Path) -> Path:
    return worker_binary(tmp_path / "worker")


def test_a_deploy_is_one_install_command_and_one_check_whatever_the_size(
        aws, recorder, faults, inspector, tmp_path) -> None:
    small, large = provisioned("d3", 3), provisioned("d12", 12)
    fake = FakeSsm(faults, bucket=small.bucket, prefix=OUTPUT_PREFIX, s3=inspector.client("s3"))
    counts: dict[int, Counter[str]] = {}
    for target in (small, large):
        n = len(target.instances)
        # A binary of each size's own, so both deploys upload it. The current kind: two clusters
        # of the tag-discovery kind in one region are refused.
        binary = worker_binary(tmp_path / f"worker{n}", kind="current")
        binary.write_bytes(binary.read_bytes() + str(n).encode())
        sha = check_binary(binary)
        fake.script(ping=online(ids(target)),
                    polls=[{}, every(ids(target), IN_PROGRESS), every(ids(target), installed(sha))],
                    then=[[every(ids(target), info(target))]])
        recorder.clear()

        report = deploy_worker(target.name, binary=binary, args=["--threads", "8"], env={"RUST_LOG": "info"})

        counts[n] = Counter(f"{c.service}:{c.operation}" for c in recorder.calls)
        assert report.ok and report.verified is True and report.problems == []
        assert (report.sha256, report.kind, report.uploaded) == (sha, "current", True)
        assert [(r.instance_id, r.name, r.installed, r.exit_code, r.commit) for r in report.results] == [
            (i.instance_id, i.name, "installed", 0, COMMIT) for i in target.instances]
        install, check = sends(recorder)
        assert install["Targets"] == check["Targets"] == [{"Key": "tag:dfbench:cluster", "Values": [target.name]}]
        assert install["Parameters"]["commands"] == [install_script(
            bucket=target.bucket, sha256=sha, region="us-east-1", args=["--threads", "8"], env={"RUST_LOG": "info"},
            kind="current", dns_name=f"workers.{target.name}.us-east-1.dfbench.internal")]
        assert check["Parameters"]["commands"] == ["curl -fsS --max-time 5 http://127.0.0.1:9000/info\n"]
        assert {(s["OutputS3BucketName"], s["OutputS3KeyPrefix"]) for s in (install, check)} == {
            (target.bucket, OUTPUT_PREFIX)}
        assert report.command_id == recorder.named("ListCommandInvocations")[0].params["CommandId"]
        # moto resolved the tag to exactly this cluster's instances.
        commands = inspector.client("ssm").list_commands()["Commands"]
        assert {c["CommandId"]: c["TargetCount"] for c in commands}[report.command_id] == n
    assert counts[3] == counts[12]
    assert counts[3]["ssm:SendCommand"] == 2


def test_the_same_binary_again_uploads_nothing(cluster, fake, recorder, binary) -> None:
    sha = check_binary(binary)
    everyone = ids(cluster)
    fake.script(ping=online(everyone), polls=[every(everyone, installed(sha))],
                then=[[every(everyone, info(cluster))]])
    assert deploy_worker("d", binary=binary).uploaded is True
    already = Run("Success", 0, f"dfbench: worker {sha} already installed and active\n")
    fake.script(ping=online(everyone), polls=[every(everyone, already)],
                then=[[every(everyone, info(cluster))]])
    recorder.clear()

    report = deploy_worker(cluster, binary=binary)

    assert report.uploaded is False and report.ok
    assert [r.installed for r in report.results] == ["already"] * 3
    key = artifact_key(sha)
    assert [c for c in recorder.calls if c.operation in ARTIFACT_WRITES and c.params.get("Key") == key] == []
    assert len(sends(recorder)) == 2


def test_a_failed_instance_is_named_with_the_end_of_its_output(cluster, fake, recorder, binary) -> None:
    sha = check_binary(binary)
    first, broken, third = ids(cluster)
    # Longer than the 2,500 characters SSM returns: the end, which says why, is only in S3.
    journal = "".join(f"worker[812]: retrying peer discovery, attempt {n:04d}\n" for n in range(200))
    failed = Run("Failed", 4, "installing\n", journal + "thread 'main' panicked: address in use\n")
    fake.script(ping=online(ids(cluster)),
                polls=[{first: installed(sha), broken: failed, third: installed(sha)}])

    report = deploy_worker("d", binary=binary)

    assert not report.ok and report.verified is None
    assert [r.instance_id for r in report.failed] == [broken]
    result = report.failed[0]
    assert (result.status, result.exit_code, result.installed, result.label) == (
        "Failed", 4, "failed", label(cluster, broken))
    assert result.output_tail.endswith("thread 'main' panicked: address in use")
    assert "attempt 0199" in result.output_tail and "output cut by SSM" not in result.output_tail
    # Only the failed instance's cut stream was read, and only its end; no check after a failure.
    [read] = recorder.named("GetObject")
    assert read.params["Key"].endswith(f"/{broken}/awsrunShellScript/0.awsrunShellScript/stderr")
    assert read.params["Range"].startswith("bytes=-")
    assert len(sends(recorder)) == 1

    with pytest.raises(CommandFailed) as raised:
        report.raise_for_failures()
    message = str(raised.value)
    assert raised.value.failed == (broken,)
    assert f"{label(cluster, broken)}: Failed (exit code 4): the worker did not start, or did not answer " \
        in message
    assert "address in use" in message and result.output_url in message
    assert first not in message and third not in message


def test_workers_on_different_commits_are_not_verified(cluster, fake, binary) -> None:
    sha = check_binary(binary)
    first, second, third = ids(cluster)
    fake.script(ping=online(ids(cluster)),
                polls=[every(ids(cluster), installed(sha))],
                then=[[{first: info(cluster), second: info(cluster, commit="0123abcd"), third: info(cluster, 2)}]])

    report = deploy_worker("d", binary=binary)

    assert report.verified is False and not report.ok and report.failed == []
    assert [r.commit for r in report.results] == [COMMIT, "0123abcd", COMMIT]
    missing = cluster.instances[2]
    assert report.problems == [
        f"{label(cluster, second)}: runs commit 0123abcd, most workers run {COMMIT}",
        f"{label(cluster, third)}: peer list lacks {missing.instance_id} ({missing.private_ip})",
    ]
    with pytest.raises(WorkersDisagree, match="dfbench logs --cluster d"):
        report.raise_for_failures()


def test_nothing_is_uploaded_for_what_cannot_be_deployed(cluster, recorder, binary, tmp_path) -> None:
    macos = tmp_path / "worker-macos"
    macos.write_bytes(bytes.fromhex("cffaedfe07000001") + bytes(4096))
    stopped = cluster.instances[0].model_copy(update={"state": "stopped"})
    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"cluster": "d", "binary": tmp_path / "missing"}, ConfigError, "No worker binary at"),
        ({"cluster": "d", "binary": macos}, ConfigError, "macOS binary .* cross-compile with `cargo zigbuild"),
        ({"cluster": "nope", "binary": binary}, ClusterNotFound, "No dfbench cluster named 'nope'"),
        ({"cluster": cluster.model_copy(update={"instances": []}), "binary": binary}, ConfigError,
         "has no instances: `dfbench provision --cluster d"),
        ({"cluster": cluster.model_copy(update={"instances": [stopped, *cluster.instances[1:]]}), "binary": binary},
         ConfigError, f"stopped instances of cluster 'd': {stopped.instance_id}"),
        ({"cluster": "d", "binary": binary, "env": {"lower": "x"}}, ConfigError, "Invalid environment variable"),
        ({"cluster": "d"}, ConfigError, "either the worker binary"),
        ({"cluster": "d", "binary": binary, "worker_kind": "k8s"}, ConfigError, "--worker-kind 'k8s': use current"),
        # Provisioned by an older dfbench: no workers record for the current kind to use.
        ({"cluster": cluster.model_copy(update={"workers_dns_name": None}), "binary": binary,
          "worker_kind": "current"}, ConfigError, "no workers DNS record .* `dfbench provision --cluster d"),
    ]
    for options, error, message in cases:
        recorder.clear()
        with pytest.raises(error, match=message):
            deploy_worker(**options)
        assert s3_calls(recorder) == [] and recorder.named("SendCommand") == [], options


def test_exec_returns_every_instance_s_whole_output(cluster, fake, recorder) -> None:
    first, second, third = ids(cluster)
    long = "".join(f"row {n:05d}\n" for n in range(600))  # 6,000 characters: SSM keeps 2,500
    fake.script(ping=online(ids(cluster)),
                polls=[{first: Run("Success", 0, long), second: Run("Failed", 2, "", "no such file\n"),
                        third: Run("Success", 0, "it's\n")}])

    outputs = exec_command("d", ["echo", "it's"])

    [send] = sends(recorder)
    assert send["Parameters"]["commands"] == ["echo 'it'\"'\"'s'\n"]
    assert [(o.label, o.status, o.exit_code) for o in outputs] == [
        (label(cluster, first), "Success", 0), (label(cluster, second), "Failed", 2),
        (label(cluster, third), "Success", 0)]
    assert outputs[0].stdout == long and outputs[0].complete
    assert (outputs[1].stdout, outputs[1].stderr) == ("", "no such file\n")
    assert outputs[2].stdout == "it's\n"
    # The one cut stream, read whole.
    [read] = recorder.named("GetObject")
    assert "Range" not in read.params
    assert read.params["Key"].endswith(f"/{first}/awsrunShellScript/0.awsrunShellScript/stdout")


def test_logs_runs_journalctl_with_checked_arguments(cluster, fake, recorder) -> None:
    fake.script(ping=online(ids(cluster)),
                polls=[every(ids(cluster), Run("Success", 0, "worker[812]: listening on 0.0.0.0:9000\n"))])
    outputs = logs("d", lines=50, since="2026-11-25 10:00:00")
    assert [o.stdout for o in outputs] == ["worker[812]: listening on 0.0.0.0:9000\n"] * 3
    [send] = sends(recorder)
    assert send["Parameters"]["commands"] == [
        "journalctl -u worker.service --no-pager -n 50 --since '2026-11-25 10:00:00'\n"]
    recorder.clear()
    for bad in ({"since": "$(reboot)"}, {"since": "1h; rm -rf /"}, {"lines": 0}):
        with pytest.raises(ConfigError):
            logs("d", **bad)  # type: ignore[arg-type]
    assert recorder.calls == []


def test_cli_deploy_prints_a_table_and_fails_naming_the_failed_instance(cluster, fake, binary, capsys) -> None:
    from dfbench.cli import main

    sha = check_binary(binary)
    first, broken, third = ids(cluster)
    fake.script(ping=online(ids(cluster)), polls=[every(ids(cluster), installed(sha))],
                then=[[every(ids(cluster), info(cluster))]])
    assert main(["deploy", "--cluster", "d", "--binary", str(binary)]) == 0
    shown = capsys.readouterr().out
    assert all(i in shown for i in ids(cluster)) and "installed" in shown and "one commit, every peer known" in shown
    assert "tag-discovery" in shown  # the kind column

    failed = Run("Failed", 3, "installing\n", "sha256 mismatch: refusing to install\n")
    fake.script(ping=online(ids(cluster)), polls=[{first: installed(sha), broken: failed, third: installed(sha)}])
    assert main(["deploy", "--cluster", "d", "--binary", str(binary)]) == 1
    captured = capsys.readouterr()
    assert broken in captured.err and "sha256 mismatch" in captured.err and "Traceback" not in captured.err
    assert first not in captured.err


def test_cli_refuses_a_macos_binary_before_any_aws_call(aws, recorder, tmp_path, capsys) -> None:
    from dfbench.cli import main

    macho = tmp_path / "worker"
    macho.write_bytes(bytes.fromhex("cffaedfe") + bytes(60))
    assert main(["deploy", "--cluster", "d", "--binary", str(macho)]) == 2
    err = capsys.readouterr().err
    assert "macOS" in err and "x86_64-unknown-linux-gnu" in err and "Traceback" not in err
    assert recorder.calls == []


# --- the boot pointer ----------------------------------------------------------------------------


def _latest(inspector: Any, bucket: str) -> str | None:
    try:
        return inspector.client("s3").get_object(Bucket=bucket, Key=LATEST_KEY)["Body"].read().decode()
    except inspector.client("s3").exceptions.NoSuchKey:
        return None


def test_latest_is_pointed_only_after_every_instance_installed_and_answered(
        cluster, fake, inspector, binary, tmp_path) -> None:
    """What `latest` names is what replacement and scale-out instances install at boot, as root:
    a build that failed anywhere must not become it."""
    everyone = ids(cluster)
    first, broken, third = everyone
    good_sha = check_binary(binary)
    fake.script(ping=online(everyone), polls=[every(everyone, installed(good_sha))],
                then=[[every(everyone, info(cluster))]])
    assert deploy_worker("d", binary=binary, env={"RUST_LOG": "info"}).ok
    good = latest_record(good_sha, worker_unit(bucket=cluster.bucket, region="us-east-1", env={"RUST_LOG": "info"}))
    assert _latest(inspector, cluster.bucket) == good

    bad = worker_binary(tmp_path / "bad")
    bad.write_bytes(bad.read_bytes() + b"broken build")
    bad_sha = check_binary(bad)
    fake.script(ping=online(everyone), polls=[{first: installed(bad_sha), broken: Run("Failed", 4, "", "panicked\n"),
                                               third: installed(bad_sha)}])
    assert not deploy_worker("d", binary=bad).ok
    assert _latest(inspector, cluster.bucket) == good

    # Installed everywhere, but the workers' /info does not check out: still not the boot image.
    fake.script(ping=online(everyone), polls=[every(everyone, installed(bad_sha))],
                then=[[{first: info(cluster), broken: info(cluster, commit="0123abcd"), third: info(cluster)}]])
    assert deploy_worker("d", binary=bad).verified is False
    assert _latest(inspector, cluster.bucket) == good

    fake.script(ping=online(everyone), polls=[every(everyone, installed(bad_sha))],
                then=[[every(everyone, info(cluster))]])
    assert deploy_worker("d", binary=bad).ok
    assert _latest(inspector, cluster.bucket) == latest_record(
        bad_sha, worker_unit(bucket=cluster.bucket, region="us-east-1"))


def test_cli_refuses_a_binary_of_neither_kind_before_any_aws_call(aws, recorder, tmp_path, capsys) -> None:
    from dfbench.cli import main

    neither = worker_binary(tmp_path / "worker", kind=None)
    assert main(["deploy", "--cluster", "d", "--binary", str(neither)]) == 2
    err = capsys.readouterr().err
    [line] = err.strip().splitlines()
    assert "neither kind" in line and "#630" in line and "#621" in line and "--worker-kind" in line
    assert recorder.calls == []


def test_a_tag_discovery_worker_is_refused_while_another_cluster_carries_its_tag(cluster, fake, recorder, binary,
                                                                               tmp_path) -> None:
    other = provisioned("other", 1)
    recorder.clear()
    with pytest.raises(ConfigError, match="tag BenchmarkCluster=datafusion, which the live instances of other"):
        deploy_worker("d", binary=binary)
    assert s3_calls(recorder) == [] and recorder.named("SendCommand") == []

    # The same binary declared current is handed the cluster's name instead, and goes ahead.
    sha = check_binary(binary)
    fake.script(ping=online(ids(cluster)), polls=[every(ids(cluster), installed(sha))],
                then=[[every(ids(cluster), info(cluster))]])
    report = deploy_worker("d", binary=binary, worker_kind="current")
    assert report.ok and report.kind == "current"
    [install, _] = sends(recorder)
    assert "--worker-dns-name workers.d.us-east-1.dfbench.internal" in install["Parameters"]["commands"][0]

    dfbench.teardown(other.name)
    fake.script(ping=online(ids(cluster)), polls=[every(ids(cluster), installed(sha))],
                then=[[every(ids(cluster), info(cluster))]])
    assert deploy_worker("d", binary=binary).kind == "tag-discovery"


def test_a_terminated_instance_fails_a_command_at_once_and_a_dying_one_is_not_waited_for(
        cluster, fake, recorder, inspector, capsys) -> None:
    from dfbench.cli import main

    first, second, dying = ids(cluster)
    inspector.client("ec2").terminate_instances(InstanceIds=[dying])
    # SSM would keep listing the dying instance's invocation until its delivery timed out.
    fake.script(ping=online(ids(cluster)), polls=[{**every([first, second], Run("Success", 0, "ok\n")),
                                                   dying: Run("Pending")}])

    # The record read before the termination still names it: refused before anything is sent.
    with pytest.raises(InstancesGone) as raised:
        exec_command(cluster, "true")
    assert raised.value.gone == {dying: "terminated"} and sends(recorder) == []
    # Found again by name, the cluster is the two live instances: the dying one is not waited for.
    assert main(["exec", "--cluster", "d", "--", "true"]) == 0
    shown = capsys.readouterr().out
    assert first in shown and second in shown and dying not in shown
    assert len(recorder.named("ListCommandInvocations")) == 1
