"""SSM Run Command against moto, with AWS's real responses injected for the operations moto lacks.

moto accepts SendCommand (and resolves tag targets exactly) but runs nothing, and does not
implement DescribeInstanceInformation or ListCommandInvocations. ``FakeSsm`` answers those two in
AWS's JSON wire format, from a script of states: each instance's PingStatus, and the invocations
SSM lists at each poll, as the agent reports them (ResponseCode -1 until there is an exit code,
Output cut at 2,500 characters with the agent's markers).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from dfbench.aws import ssm as remote
from dfbench.aws.instances import AL2023_PARAMETER
from dfbench.aws.session import connect
from dfbench.errors import CommandFailed, ConfigError, InstancesGone, InstancesOffline, WaitTimeout
from dfbench_testing import FakeSsm, Faults, Recorder, Run

BUCKET = "dfbench-ssm-test"
PREFIX = ".dfbench/ssm"
SCRIPT = "#!/bin/bash\nset -euo pipefail\ncat <<'EOF'\nhello\nEOF\necho done\n"
COMMENT = "dfbench test"


def launch(inspector: Any, count: int, cluster: str = "c") -> list[str]:
    """Instances tagged as dfbench's, made with plain boto3 (outside dfbench's client hooks)."""
    image = inspector.client("ssm").get_parameter(Name=AL2023_PARAMETER)["Parameter"]["Value"]
    tags = [{"Key": "dfbench:cluster", "Value": cluster}, {"Key": "dfbench:managed", "Value": "true"}]
    reservation = inspector.client("ec2").run_instances(
        ImageId=image, InstanceType="t3.micro", MinCount=count, MaxCount=count,
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
    )
    return [i["InstanceId"] for i in reservation["Instances"]]


def instance_ids(count: int) -> list[str]:
    """Ids for the status-handling tests: SSM's answers come from FakeSsm, so no EC2 instance is
    needed behind them (and launching in moto costs seconds)."""
    return [f"i-{n:017x}" for n in range(1, count + 1)]


def online(ids: list[str]) -> dict[str, str]:
    return {i: "Online" for i in ids}


def every(ids: list[str], run: Run) -> dict[str, Run]:
    return {i: run for i in ids}


IN_PROGRESS = Run("InProgress")
SUCCESS = Run("Success", 0, "done\n")


@pytest.fixture
def ssm(aws: Any, recorder: Recorder, faults: Faults) -> Any:
    # Created after the recorder's and the faults' hooks, so both see every call.
    return connect(region="us-east-1").client("ssm")


@pytest.fixture
def fake(faults: Faults) -> FakeSsm:
    return FakeSsm(faults, bucket=BUCKET, prefix=PREFIX)


def run(ssm: Any, ids: list[str], cluster: str = "c", **options: Any) -> list[remote.Invocation]:
    return remote.run_command(ssm, cluster=cluster, instance_ids=ids, script=SCRIPT, comment=COMMENT,
                              output_bucket=BUCKET, output_prefix=PREFIX, **options)


def ssm_operations(recorder: Recorder) -> Counter[str]:
    return Counter(c.operation for c in recorder.calls if c.service == "ssm")


@pytest.mark.parametrize("count", [3, 12])
def test_one_send_command_targets_the_cluster_by_tag(ssm, fake, recorder, inspector, count):
    ids = launch(inspector, count)
    launch(inspector, 1, cluster="other")
    fake.script(ping=online(ids), polls=[{}, every(ids, IN_PROGRESS), every(ids, SUCCESS)])
    long_comment = "deploy worker " + "f" * 120

    results = remote.run_command(ssm, cluster="c", instance_ids=ids, script=SCRIPT, comment=long_comment,
                                 output_bucket=BUCKET, output_prefix=PREFIX + "/", execution_timeout_s=300,
                                 delivery_timeout_s=120)

    assert [(r.instance_id, r.status, r.exit_code) for r in results] == [(i, "Success", 0) for i in ids]
    [send] = recorder.named("SendCommand")
    assert send.params == {
        "DocumentName": "AWS-RunShellScript",
        "Targets": [{"Key": "tag:dfbench:cluster", "Values": ["c"]}],
        "MaxConcurrency": "100%",
        "MaxErrors": "0",
        "TimeoutSeconds": 120,
        "Parameters": {"commands": [SCRIPT], "executionTimeout": ["300"]},
        "OutputS3BucketName": BUCKET,
        "OutputS3KeyPrefix": PREFIX,
        "Comment": long_comment[:100],
    }
    # moto accepted the request as AWS would, and its tag targeting reached exactly the cluster
    # (the instance of another cluster is not a target).
    [command] = inspector.client("ssm").list_commands()["Commands"]
    assert command["CommandId"] == recorder.named("ListCommandInvocations")[0].params["CommandId"]
    assert command["TargetCount"] == count
    # The same calls for 3 and for 12 instances, given the same statuses (empty, in progress,
    # done): one online check, one send, one ListCommandInvocations per poll.
    assert ssm_operations(recorder) == {"DescribeInstanceInformation": 1, "SendCommand": 1,
                                        "ListCommandInvocations": 3}


def test_a_poll_pages_through_every_invocation(ssm, fake, recorder):
    ids = instance_ids(12)
    # AWS may return fewer than MaxResults a page: 5 here, so a poll of 12 takes 3 pages.
    fake.script(ping=online(ids), polls=[every(ids, IN_PROGRESS), every(ids, SUCCESS)], page_cap=5)
    results = run(ssm, ids)
    assert sorted(r.instance_id for r in results) == sorted(ids)
    assert all(r.ok for r in results)
    lists = recorder.named("ListCommandInvocations")
    assert [c.params.get("NextToken") for c in lists] == [None, "5", "10"] * 2
    assert {c.params["MaxResults"] for c in lists} == {50}
    assert all(c.params["Details"] is True for c in lists)


def test_online_wait_asks_for_50_instances_a_call(ssm, faults, recorder):
    # An instance whose agent has not registered yet can make SSM refuse the id: not yet online.
    unknown = faults.error("ssm", "DescribeInstanceInformation", "InvalidInstanceId",
                           "Instances [[i-00000000000000001]] not in a valid state for account", times=1)
    fake = FakeSsm(faults, bucket=BUCKET, prefix=PREFIX)
    ids = instance_ids(120)
    fake.script(ping=online(ids), polls=[{}])
    remote.wait_online(ssm, ids)
    assert unknown.hits == 1
    chunks = [c.params["Filters"][0]["Values"] for c in recorder.named("DescribeInstanceInformation")]
    # First poll: the refused chunk, then the two others; second poll: all three again.
    assert [len(chunk) for chunk in chunks] == [50, 50, 20] * 2
    assert [i for chunk in chunks[3:] for i in chunk] == ids


def test_not_there_yet_and_throttled_polls_are_survived(ssm, faults, recorder):
    # Right after SendCommand: the command is unknown, then SSM throttles; both rules answer
    # before FakeSsm's, which is added after them.
    not_yet = faults.error("ssm", "ListCommandInvocations", "InvocationDoesNotExist", "", times=1)
    throttled = faults.error("ssm", "ListCommandInvocations", "ThrottlingException", "Rate exceeded", times=2)
    fake = FakeSsm(faults, bucket=BUCKET, prefix=PREFIX)
    ids = instance_ids(3)
    fake.script(ping=online(ids), polls=[{}, every(ids, IN_PROGRESS), every(ids, SUCCESS)])
    # botocore backs off from throttling in real time (up to 1 s, then 2 s) while dfbench's
    # deadline is scaled by DFBENCH_TIME_SCALE: give the deadline room for that real time.
    results = run(ssm, ids, execution_timeout_s=10_000)
    assert (not_yet.hits, throttled.hits) == (1, 2)
    assert all(r.ok for r in results)
    # Polls: not visible; throttled twice and retried by botocore within that one call (the
    # recorder counts calls, not attempts), answered empty; in progress; done.
    assert len(recorder.named("ListCommandInvocations")) == 4


def test_failed_instances_are_named_with_exit_code_and_output(ssm, fake):
    ids = instance_ids(3)
    first, second, third = ids
    failed = Run("Failed", 3, "downloading worker\nverifying sha256\n", "sha256 mismatch: refusing to install\n")
    also = Run("Failed", 1, "", "curl: (7) Failed to connect to 127.0.0.1 port 9000\n")
    fake.script(ping=online(ids), polls=[every(ids, IN_PROGRESS), {first: SUCCESS, second: failed, third: also}])

    results = run(ssm, ids)
    assert [r.ok for r in results] == [True, False, False]
    assert results[1].exit_code == 3
    assert results[1].stdout_tail == "downloading worker\nverifying sha256"
    assert results[1].stderr_tail == "sha256 mismatch: refusing to install"

    with pytest.raises(CommandFailed) as raised:
        remote.raise_for_failures(results)
    error = raised.value
    assert (error.instance_id, error.returncode, error.status) == (second, 3, "Failed")
    assert "sha256 mismatch" in error.output_tail
    assert error.failed == (second, third)
    message = str(error)
    assert f"{second}: Failed (exit code 3)" in message
    assert f"{third}: Failed (exit code 1)" in message
    assert "curl: (7)" in message and "sha256 mismatch" in message
    assert results[1].output_url in message
    assert first not in message
    assert error.exit_code == 1  # dfbench's own exit status is not the remote one
    remote.raise_for_failures(results[:1])  # success alone raises nothing


def test_timed_out_instances(ssm, fake):
    ids = instance_ids(3)
    ran_too_long = Run("TimedOut", -1, "waiting for cloud-init\n", details="ExecutionTimedOut")
    never_got_it = Run("TimedOut", -1, details="DeliveryTimedOut")
    fake.script(ping=online(ids), polls=[every(ids, IN_PROGRESS),
                                         {ids[0]: SUCCESS, ids[1]: ran_too_long, ids[2]: never_got_it}])
    results = run(ssm, ids)
    assert [(r.status, r.exit_code, r.status_details) for r in results[1:]] == [
        ("TimedOut", None, "ExecutionTimedOut"), ("TimedOut", None, "DeliveryTimedOut")]
    with pytest.raises(CommandFailed) as raised:
        remote.raise_for_failures(results)
    assert raised.value.instance_id == ids[1]
    message = str(raised.value)
    assert f"{ids[1]}: TimedOut (no exit code): the script ran past its execution timeout" in message
    assert f"{ids[2]}: TimedOut (no exit code): SSM could not deliver the command" in message
    assert "waiting for cloud-init" in message


def test_instance_never_online_stops_before_sending(ssm, fake, recorder):
    ids = instance_ids(3)
    fake.script(ping={ids[0]: "Online", ids[1]: "ConnectionLost"}, polls=[{}])
    with pytest.raises(InstancesOffline) as raised:
        run(ssm, ids, online_timeout_s=30)
    assert raised.value.offline == {ids[1]: "ConnectionLost", ids[2]: "not registered"}
    message = str(raised.value)
    assert ids[1] in message and ids[2] in message and ids[0] not in message
    assert "AmazonSSMManagedInstanceCore" in message and "SSM agent" in message
    assert recorder.named("SendCommand") == []
    assert len(recorder.named("DescribeInstanceInformation")) > 1  # it polled, then gave up


def test_output_longer_than_ssm_keeps_points_to_s3(ssm, fake, recorder):
    ids = instance_ids(2)
    long_stdout = "".join(f"line {n:05d} of a long build log\n" for n in range(1000))  # 30,000 characters
    assert len(long_stdout) > 24_000
    fake.script(ping=online(ids), polls=[{ids[0]: Run("Success", 0, long_stdout), ids[1]: SUCCESS}])

    chatty, quiet = run(ssm, ids)

    command_id = recorder.named("ListCommandInvocations")[0].params["CommandId"]
    url = f"s3://{BUCKET}/{PREFIX}/{command_id}/{ids[0]}/awsrunShellScript/0.awsrunShellScript/stdout"
    assert chatty.output_url == url
    assert chatty.stdout_tail.endswith(f"first 2,500 characters; full output: {url}]")
    assert "---Output truncated---" not in chatty.stdout_tail
    assert len(chatty.stdout_tail.splitlines()) <= remote.TAIL_LINES + 1
    assert quiet.stdout_tail == "done"


def test_unlisted_instance_keeps_the_wait_going(ssm, fake, recorder):
    ids = instance_ids(3)
    late = ids[2]
    finished_two = every(ids[:2], SUCCESS)
    fake.script(ping=online(ids), polls=[finished_two, finished_two, every(ids, SUCCESS)])
    results = run(ssm, ids)
    assert [r.instance_id for r in results] == ids
    assert len(recorder.named("ListCommandInvocations")) == 3

    recorder.clear()
    fake.script(ping=online(ids), polls=[finished_two])
    command_id = remote.send_command(ssm, cluster="c", script=SCRIPT, comment=COMMENT, execution_timeout_s=60,
                                     output_bucket=BUCKET, output_prefix=PREFIX)
    with pytest.raises(WaitTimeout) as raised:
        remote.wait_command(ssm, command_id, ids, deadline_s=120)
    assert f"{late}: not listed by SSM yet" in str(raised.value)
    assert len(recorder.named("ListCommandInvocations")) > 3


def test_invalid_timeouts_are_refused_before_sending(ssm, recorder):
    with pytest.raises(ConfigError, match="Execution timeout"):
        remote.send_command(ssm, cluster="c", script=SCRIPT, comment=COMMENT, execution_timeout_s=200_000,
                            output_bucket=BUCKET, output_prefix=PREFIX)
    with pytest.raises(ConfigError, match="Delivery timeout"):
        remote.send_command(ssm, cluster="c", script=SCRIPT, comment=COMMENT, execution_timeout_s=60,
                            output_bucket=BUCKET, output_prefix=PREFIX, delivery_timeout_s=5)
    assert recorder.named("SendCommand") == []


# --- targets EC2 reports gone: SSM would only find out by its delivery timeout ------------------


@pytest.fixture
def ec2(aws: Any, recorder: Recorder, faults: Faults) -> Any:
    return connect(region="us-east-1").client("ec2")


def test_targets_ec2_reports_gone_fail_at_once_before_sending(ssm, ec2, fake, recorder, inspector):
    ids = launch(inspector, 2)
    inspector.client("ec2").terminate_instances(InstanceIds=ids[1:])
    fake.script(ping=online(ids), polls=[every(ids, IN_PROGRESS)])

    with pytest.raises(InstancesGone) as one:
        run(ssm, ids, ec2=ec2)
    inspector.client("ec2").terminate_instances(InstanceIds=ids[:1])
    with pytest.raises(InstancesGone) as none:
        run(ssm, ids[:1], ec2=ec2)

    assert one.value.gone == {ids[1]: "terminated"}
    assert f"{ids[1]} (terminated)" in str(one.value) and ids[0] not in str(one.value)
    assert none.value.gone == {}
    assert "dfbench:cluster=c reaches no pending or running instance in us-east-1" in str(none.value)
    for raised in (one, none):
        assert "\n" not in str(raised.value)
        assert "`dfbench provision --cluster c --region us-east-1` replaces them" in str(raised.value)
    assert recorder.named("SendCommand") == [] and recorder.named("DescribeInstanceInformation") == []


def test_an_instance_terminated_during_the_command_ends_the_wait(ssm, ec2, fake, recorder, inspector):
    ids = launch(inspector, 2)
    # The second never leaves Pending: its delivery would time out in SSM's own time.
    fake.script(ping=online(ids), polls=[{ids[0]: SUCCESS, ids[1]: Run("Pending")}])
    command_id = remote.send_command(ssm, cluster="c", script=SCRIPT, comment=COMMENT, execution_timeout_s=60,
                                     output_bucket=BUCKET, output_prefix=PREFIX)
    inspector.client("ec2").terminate_instances(InstanceIds=ids[1:])

    with pytest.raises(InstancesGone) as raised:
        remote.wait_command(ssm, command_id, ids, deadline_s=1800, targets=remote.Targets(ec2, "c"))

    assert raised.value.gone == {ids[1]: "terminated"}
    assert len(recorder.named("ListCommandInvocations")) == 1


def test_a_dying_instance_the_tag_still_reaches_is_not_waited_for(ssm, ec2, fake, recorder, inspector):
    ids = launch(inspector, 2)
    live, dying = ids[:1], ids[1]
    inspector.client("ec2").terminate_instances(InstanceIds=[dying])
    fake.script(ping=online(live), polls=[{**every(live, SUCCESS), dying: Run("Pending")}])

    results = run(ssm, live, ec2=ec2)

    assert [(r.instance_id, r.status) for r in results] == [(i, "Success") for i in live]
    assert len(recorder.named("ListCommandInvocations")) == 1
