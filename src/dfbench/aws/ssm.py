"""SSM Run Command on a cluster: wait until its instances are managed, send one shell script to
all of them, and collect per-instance results.

API calls stay flat in the number of instances: one SendCommand that targets the cluster by tag,
and polls that list every instance's invocation at once (50 a page), never one call per instance.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from botocore.exceptions import ClientError

from dfbench.aws.instances import tagged_states
from dfbench.aws.tags import CLUSTER_KEY
from dfbench.errors import CommandFailed, ConfigError, InstancesGone, InstancesOffline, WaitTimeout, error_code
from dfbench.waiting import poll

log = logging.getLogger("dfbench")

DOCUMENT = "AWS-RunShellScript"
# Where the agent writes a step's full output when OutputS3BucketName is set:
# <prefix>/<command-id>/<instance-id>/awsrunShellScript/0.awsrunShellScript/{stdout,stderr}
# (the plugin name aws:runShellScript without its colon, and its step id).
_S3_PLUGIN_PATH = "awsrunShellScript/0.awsrunShellScript"

ONLINE_TIMEOUT_S = 600
# Where command output goes in the cluster bucket; the instance role may write only there.
OUTPUT_PREFIX = ".dfbench/ssm-output"
DELIVERY_TIMEOUT_S = 600
EXECUTION_TIMEOUT_S = 900
# SendCommand TimeoutSeconds (the delivery timeout) accepts 30..2592000; AWS-RunShellScript's
# executionTimeout parameter accepts 1..172800 (48 h); Comment is at most 100 characters.
# https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_SendCommand.html
_DELIVERY_RANGE = (30, 2_592_000)
_EXECUTION_RANGE = (1, 172_800)
_COMMENT_MAX = 100

# DescribeInstanceInformation: a filter takes at most 100 values and a page holds at most 50
# results (MaxResults 5..50), so chunks of 50 ids cost one call each per poll.
_DESCRIBE_CHUNK = 50
# ListCommandInvocations with Details=True: at most 50 invocations a page (MaxResults 1..50).
_LIST_PAGE_SIZE = 50

# CommandInvocation Status values. Pending, InProgress, Delayed and Cancelling change on their own;
# the other four are final. https://docs.aws.amazon.com/systems-manager/latest/userguide/monitor-commands.html
TERMINAL = frozenset({"Success", "Failed", "TimedOut", "Cancelled"})

# How the agent packs a step's output into CommandPlugin.Output (at most 2,500 characters in the
# API model, for stdout and stderr together): stdout, then this separator and stderr when there
# is any; a stream cut short ends with its marker, and what is kept is its BEGINNING.
# GetCommandInvocation would return up to 24,000 characters of each stream, but costs one call per
# instance: the full output is in S3 instead.
_ERROR_SEPARATOR = "\n----------ERROR-------\n"
_STDOUT_CUT = "\n---Output truncated---"
_STDERR_CUT = "\n---Error truncated----"
TAIL_LINES = 20
# Side-by-side GetObject calls when reading full outputs from S3.
_S3_READERS = 8

# What StatusDetails means for the user, for the statuses that are not a plain script failure.
# https://docs.aws.amazon.com/systems-manager/latest/userguide/monitor-commands.html
_STATUS_HINTS = {
    "DeliveryTimedOut": "SSM could not deliver the command before the delivery timeout: the instance's "
                        "SSM agent was not connected",
    "ExecutionTimedOut": "the script ran past its execution timeout and was stopped",
    "Undeliverable": "the instance could not be reached (stopped, terminated, or no longer managed by SSM)",
    "Terminated": "not run: SSM stopped the command after another instance failed (MaxErrors is 0)",
    "Cancelled": "the command was cancelled before it finished here",
    "InvalidPlatform": "the instance is not Linux, so AWS-RunShellScript cannot run there",
    "AccessDenied": "the instance's role may not perform what the command needs",
}


@dataclass(frozen=True)
class Invocation:
    """The result of a command on one instance, as SSM reports it."""

    instance_id: str
    status: str  # CommandInvocation Status: Success, Failed, TimedOut, Cancelled (or not final yet)
    exit_code: int | None  # the script's exit status; None when it never produced one
    # The streams as SSM returned them (cut markers removed): their beginning when ``*_cut``, the
    # whole text otherwise, or once ``read_output`` has read them from S3.
    stdout: str
    stderr: str
    output_url: str | None  # s3:// URL of the full stdout (stderr is next to it); None without a bucket
    status_details: str = ""  # SSM's finer reason: ExecutionTimedOut, DeliveryTimedOut, Undeliverable, ...
    command_id: str = ""
    stdout_cut: bool = False
    stderr_cut: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "Success"

    @property
    def stderr_url(self) -> str | None:
        return _sibling(self.output_url, "stderr") if self.output_url else None

    @property
    def stdout_tail(self) -> str:
        return _tail(self.stdout, self.stdout_cut, self.output_url)

    @property
    def stderr_tail(self) -> str:
        return _tail(self.stderr, self.stderr_cut, self.stderr_url)

    @property
    def output_tail(self) -> str:
        """The last lines of stdout, then of stderr: what a failure message shows."""
        if not self.stderr_tail:
            return self.stdout_tail
        return (self.stdout_tail + "\n" if self.stdout_tail else "") + "--- stderr ---\n" + self.stderr_tail


# EC2 states of instances SSM can never deliver to; "not found": EC2 no longer lists the id.
_GONE_STATES = ("shutting-down", "terminated", "not found")


@dataclass(frozen=True)
class Targets:
    """What a command sent to a cluster's tag reaches, as EC2 reports it now. SSM only learns that
    an instance is gone when its delivery times out (a deploy waited about 27 minutes for that),
    so the waits ask EC2 instead and never wait on an instance shutting down or terminated."""

    ec2: Any
    cluster: str

    def gone(self, instance_ids: Sequence[str]) -> dict[str, str]:
        """Those of ``instance_ids`` EC2 reports shutting down, terminated or unknown, with that state.
        Raises InstancesGone when the tag reaches no pending or running instance at all."""
        states = tagged_states(self.ec2, self.cluster)
        if not any(state in ("pending", "running") for state in states.values()):
            raise InstancesGone(self.cluster, self.ec2.meta.region_name, {})
        return {i: states.get(i, "not found") for i in instance_ids if states.get(i, "not found") in _GONE_STATES}

    def refuse_gone(self, instance_ids: Sequence[str]) -> None:
        """Raise InstancesGone naming those of ``instance_ids`` EC2 reports gone, if any."""
        if gone := self.gone(instance_ids):
            raise InstancesGone(self.cluster, self.ec2.meta.region_name, gone)


def wait_online(ssm: Any, instance_ids: Sequence[str], *, timeout_s: float = ONLINE_TIMEOUT_S,
                targets: Targets | None = None) -> None:
    """Poll until every instance reports PingStatus Online to SSM (there is no waiter for this).

    Raises InstancesOffline naming the ones that did not, and why that usually happens; with
    ``targets``, InstancesGone as soon as EC2 reports one of those not online gone."""
    wanted = list(dict.fromkeys(instance_ids))
    last: dict[str, str] = {}

    def check() -> tuple[bool, str]:
        nonlocal last
        last = {instance_id: "not registered" for instance_id in wanted}
        for start in range(0, len(wanted), _DESCRIBE_CHUNK):
            chunk = wanted[start:start + _DESCRIBE_CHUNK]
            try:
                pages = ssm.get_paginator("describe_instance_information").paginate(
                    Filters=[{"Key": "InstanceIds", "Values": chunk}],
                    PaginationConfig={"PageSize": _DESCRIBE_CHUNK},
                )
                for page in pages:
                    for info in page["InstanceInformationList"]:
                        if info["InstanceId"] in last:
                            last[info["InstanceId"]] = info.get("PingStatus", "unknown")
            except ClientError as error:
                # An EC2 instance whose agent has not registered yet may be refused as an unknown
                # id: the chunk stays "not registered" and is asked again on the next poll.
                if error_code(error) != "InvalidInstanceId":
                    raise
        offline = {i: state for i, state in last.items() if state != "Online"}
        if offline and targets is not None:
            targets.refuse_gone(list(offline))
        return not offline, f"{len(wanted) - len(offline)}/{len(wanted)} online in SSM"

    try:
        poll(check, what=f"{len(wanted)} instance(s) to come online in SSM", timeout=timeout_s)
    except WaitTimeout:
        raise InstancesOffline({i: state for i, state in last.items() if state != "Online"}, timeout_s) from None


def send_command(
    ssm: Any, *, cluster: str, script: str, comment: str, execution_timeout_s: int, output_bucket: str,
    output_prefix: str, delivery_timeout_s: int = DELIVERY_TIMEOUT_S,
) -> str:
    """Send ``script`` to every instance of ``cluster`` in ONE SendCommand; returns the command id.

    The whole script is a single element of the ``commands`` parameter: the agent writes the
    elements, one per line, into one script file and runs it, so splitting it into lines would
    run the same file; one element keeps it byte-for-byte as written (heredocs included)."""
    command_id = _send(
        ssm, script=script, comment=comment, execution_timeout_s=execution_timeout_s,
        output_bucket=output_bucket, output_prefix=output_prefix, delivery_timeout_s=delivery_timeout_s,
        # By tag, not InstanceIds: InstanceIds takes at most 50 ids, and a tag reaches every
        # member without one id per instance in the request.
        Targets=[{"Key": f"tag:{CLUSTER_KEY}", "Values": [cluster]}],
        # All instances at once (a deploy is the same everywhere); MaxErrors 0 fails the command
        # as soon as one instance fails and stops sending it to targets not yet reached.
        MaxConcurrency="100%",
        MaxErrors="0",
    )
    log.info("sent SSM command %s to cluster %s", command_id, cluster)
    return command_id


def send_to_instance(
    ssm: Any, *, instance_id: str, script: str, comment: str, execution_timeout_s: int, output_bucket: str,
    output_prefix: str, delivery_timeout_s: int = DELIVERY_TIMEOUT_S,
) -> str:
    """Send ``script`` to ONE instance (``InstanceIds=[instance_id]``); returns the command id.
    The same checks and S3 output as ``send_command``; for one-instance work such as the relay."""
    command_id = _send(
        ssm, script=script, comment=comment, execution_timeout_s=execution_timeout_s,
        output_bucket=output_bucket, output_prefix=output_prefix, delivery_timeout_s=delivery_timeout_s,
        InstanceIds=[instance_id],
    )
    log.debug("sent SSM command %s to %s", command_id, instance_id)
    return command_id


# SendCommand's InstanceIds takes at most 50 ids.
INSTANCE_IDS_MAX = 50


def send_to_instances(
    ssm: Any, *, instance_ids: Sequence[str], script: str, comment: str, execution_timeout_s: int,
    output_bucket: str, output_prefix: str, delivery_timeout_s: int = DELIVERY_TIMEOUT_S,
) -> str:
    """Send ``script`` to the listed instances in ONE SendCommand (``InstanceIds``); returns the
    command id. For work aimed at some of a cluster's instances (a retry on those left): every
    instance runs to its own end whatever happens on the others (MaxErrors 100%), since each
    does its own share."""
    ids = list(dict.fromkeys(instance_ids))
    if not 1 <= len(ids) <= INSTANCE_IDS_MAX:
        raise ConfigError(f"A command goes to 1 to {INSTANCE_IDS_MAX} instances by id, not {len(ids)}.")
    command_id = _send(
        ssm, script=script, comment=comment, execution_timeout_s=execution_timeout_s,
        output_bucket=output_bucket, output_prefix=output_prefix, delivery_timeout_s=delivery_timeout_s,
        InstanceIds=ids, MaxConcurrency="100%", MaxErrors="100%",
    )
    log.info("sent SSM command %s to %d instance(s)", command_id, len(ids))
    return command_id


def _send(
    ssm: Any, *, script: str, comment: str, execution_timeout_s: int, output_bucket: str, output_prefix: str,
    delivery_timeout_s: int, **targeting: Any,
) -> str:
    """The SendCommand both senders share: the checks SSM would refuse later, AWS-RunShellScript
    with the whole script as one ``commands`` element, full output to S3. ``targeting`` says who
    runs it (Targets or InstanceIds, and their concurrency options)."""
    if not script.strip():
        raise ConfigError("The remote script is empty.")
    if not _EXECUTION_RANGE[0] <= execution_timeout_s <= _EXECUTION_RANGE[1]:
        raise ConfigError(f"Execution timeout {execution_timeout_s}s is outside SSM's range "
                          f"{_EXECUTION_RANGE[0]}..{_EXECUTION_RANGE[1]} seconds.")
    if not _DELIVERY_RANGE[0] <= delivery_timeout_s <= _DELIVERY_RANGE[1]:
        raise ConfigError(f"Delivery timeout {delivery_timeout_s}s is outside SSM's range "
                          f"{_DELIVERY_RANGE[0]}..{_DELIVERY_RANGE[1]} seconds.")
    response = ssm.send_command(
        DocumentName=DOCUMENT,
        **targeting,
        TimeoutSeconds=delivery_timeout_s,
        Parameters={"commands": [script], "executionTimeout": [str(execution_timeout_s)]},
        # Full stdout and stderr for every instance; the API itself keeps 2,500 characters.
        OutputS3BucketName=output_bucket,
        OutputS3KeyPrefix=output_prefix.strip("/"),
        Comment=comment[:_COMMENT_MAX],
    )
    return str(response["Command"]["CommandId"])


def output_url(bucket: str, prefix: str, command_id: str, instance_id: str, stream: str = "stdout") -> str:
    """Where the agent writes one instance's full output for a command sent with OutputS3BucketName."""
    path = "/".join(part for part in (prefix.strip("/"), command_id, instance_id, _S3_PLUGIN_PATH, stream) if part)
    return f"s3://{bucket}/{path}"


def wait_command(
    ssm: Any, command_id: str, instance_ids: Sequence[str], *, deadline_s: float,
    output_bucket: str | None = None, output_prefix: str = "", targets: Targets | None = None,
) -> list[Invocation]:
    """Poll the command's invocations until every expected instance has a final status; returns
    them in the order of ``instance_ids`` (then any other instance the tag reached).

    With ``targets``, each poll that still waits asks EC2 about the instances it waits for: an
    expected one shutting down or terminated raises InstancesGone at once; another instance the
    tag reached that is on its way out is not waited for, nor returned.

    Each poll is one paginated ListCommandInvocations for all instances. Right after SendCommand the
    command may be unknown (InvocationDoesNotExist) or list no invocations yet, and an instance may
    appear later than the others: all of that means "not yet" until ``deadline_s``, when
    WaitTimeout names the instances still unfinished. ``output_bucket`` and ``output_prefix``
    (as given to send_command) give the S3 URLs of the full output."""
    expected = list(dict.fromkeys(instance_ids))
    seen: dict[str, Invocation] = {}

    def check() -> tuple[bool, str]:
        try:
            pages = ssm.get_paginator("list_command_invocations").paginate(
                CommandId=command_id, Details=True, PaginationConfig={"PageSize": _LIST_PAGE_SIZE}
            )
            raw = [invocation for page in pages for invocation in page["CommandInvocations"]]
        except ClientError as error:
            # SSM's "no such invocation (yet)" (documented for GetCommandInvocation): right after
            # SendCommand it means the command has not reached the instances' records yet.
            if error_code(error) != "InvocationDoesNotExist":
                raise
            return False, "command not visible in SSM yet"
        for item in raw:
            invocation = _invocation(item, command_id, output_bucket, output_prefix)
            seen[invocation.instance_id] = invocation
        unfinished = [i for i in expected if i not in seen or seen[i].status not in TERMINAL]
        unfinished += [i for i, inv in seen.items() if i not in expected and inv.status not in TERMINAL]
        if unfinished and targets is not None:
            gone = targets.gone(unfinished)
            if lost := {i: state for i, state in gone.items() if i in expected}:
                raise InstancesGone(targets.cluster, targets.ec2.meta.region_name, lost)
            for instance_id in gone:
                log.info("not waiting for %s: EC2 reports it %s", instance_id, gone[instance_id])
                del seen[instance_id]
            unfinished = [i for i in unfinished if i not in gone]
        if seen and not unfinished:
            return True, "done"
        return False, _progress(expected, seen, unfinished)

    poll(check, what=f"SSM command {command_id} on {len(expected)} instance(s)", timeout=deadline_s,
         first=2.0, cap=10.0)
    extras = sorted(i for i in seen if i not in expected)
    return [seen[i] for i in [*expected, *extras]]


# GetCommandInvocation's StandardOutputContent / StandardErrorContent: the agent keeps the first
# 24,000 / 8,000 bytes of each stream; a longer stream keeps its beginning with this marker as its
# last characters (amazon-ssm-agent, iohandler.DefaultOutputConfig: MaxStdoutLength 24000,
# MaxStderrLength 8000, OutputTruncatedSuffix "--output truncated--").
INVOCATION_STDOUT_MAX = 24_000
INVOCATION_STDERR_MAX = 8_000
INVOCATION_CUT = "--output truncated--"


def wait_invocation(
    ssm: Any, command_id: str, instance_id: str, *, deadline_s: float, output_bucket: str | None = None,
    output_prefix: str = "", first_poll_s: float = 0.2, max_poll_s: float = 1.0,
) -> Invocation:
    """Poll GetCommandInvocation for one instance until its status is final; returns it with up to
    24,000 characters of stdout and 8,000 of stderr (``stdout_cut``/``stderr_cut`` say when SSM cut
    them; the whole streams are at ``output_url`` when the command had an output bucket).

    For one-instance, interactive work (the relay): the polls start after ``first_poll_s`` and
    never wait more than ``max_poll_s``. InvocationDoesNotExist right after SendCommand means "not
    yet"; WaitTimeout after ``deadline_s``."""
    last: dict[str, Any] = {}

    def check() -> tuple[bool, str]:
        nonlocal last
        try:
            last = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
        except ClientError as error:
            if error_code(error) != "InvocationDoesNotExist":
                raise
            return False, "command not visible in SSM yet"
        status = str(last.get("Status", ""))
        return status in TERMINAL, status or "no status"

    poll(check, what=f"SSM command {command_id} on {instance_id}", timeout=deadline_s, first=first_poll_s,
         cap=max_poll_s)
    stdout = _uncut(str(last.get("StandardOutputContent", "")), INVOCATION_CUT)
    stderr = _uncut(str(last.get("StandardErrorContent", "")), INVOCATION_CUT)
    return _record(last, command_id, instance_id, stdout, stderr,
                   output_url(output_bucket, output_prefix, command_id, instance_id) if output_bucket else None,
                   code=last.get("ResponseCode"))


def _progress(expected: list[str], seen: dict[str, Invocation], unfinished: list[str]) -> str:
    done = len(set(expected) | set(seen)) - len(unfinished)
    states = [f"{i}: {seen[i].status if i in seen else 'not listed by SSM yet'}" for i in unfinished[:10]]
    more = f", and {len(unfinished) - 10} more" if len(unfinished) > 10 else ""
    return f"{done} finished; " + ", ".join(states) + more


def _invocation(item: dict[str, Any], command_id: str, bucket: str | None, prefix: str) -> Invocation:
    instance_id = item["InstanceId"]
    plugins = item.get("CommandPlugins") or [{}]
    plugin = plugins[0]  # AWS-RunShellScript has one step
    stdout, _, stderr = str(plugin.get("Output", "")).partition(_ERROR_SEPARATOR)
    return _record(item, command_id, instance_id, _uncut(stdout, _STDOUT_CUT), _uncut(stderr, _STDERR_CUT),
                   output_url(bucket, prefix, command_id, instance_id) if bucket else None,
                   code=plugin.get("ResponseCode"))


def _record(item: dict[str, Any], command_id: str, instance_id: str, stdout: tuple[str, bool],
            stderr: tuple[str, bool], url: str | None, *, code: Any) -> Invocation:
    """An Invocation from an invocation's Status/StatusDetails, its exit code and its streams
    (text, cut or not) as GetCommandInvocation or ListCommandInvocations gave them."""
    return Invocation(
        instance_id=instance_id,
        status=str(item["Status"]),
        # SSM reports -1 when the script never ran to an exit (not delivered, cancelled, timed out).
        exit_code=None if code is None or code == -1 else int(code),
        stdout=stdout[0],
        stderr=stderr[0],
        output_url=url,
        status_details=str(item.get("StatusDetails", "")).replace(" ", ""),
        command_id=command_id,
        stdout_cut=stdout[1],
        stderr_cut=stderr[1],
    )


def _uncut(text: str, cut_marker: str) -> tuple[str, bool]:
    if text.endswith(cut_marker):
        return text[: -len(cut_marker)], True
    return text, False


def _sibling(url: str, stream: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + stream


def _tail(text: str, cut: bool, url: str | None) -> str:
    tail = "\n".join(text.rstrip("\n").splitlines()[-TAIL_LINES:])
    if cut:
        where = f"full output: {url}" if url else "send the command with an output bucket to keep it all"
        tail += f"\n[output cut by SSM, which returns only the first 2,500 characters; {where}]"
    return tail


def read_output(s3: Any, invocations: Sequence[Invocation], *, last_bytes: int | None = None) -> list[Invocation]:
    """The invocations with every stream SSM cut replaced by the text the agent wrote to S3: all
    of it, or its last ``last_bytes`` (enough for a tail, whatever the size of the log).

    Only cut streams cost a GetObject, so a command with short output reads nothing. A stream
    S3 does not hold (the instance role may not write there, or the agent has not uploaded yet)
    keeps SSM's beginning and its pointer to the URL."""
    wanted = [(i, stream) for i, inv in enumerate(invocations) if inv.output_url
              for stream, cut in (("stdout", inv.stdout_cut), ("stderr", inv.stderr_cut)) if cut]
    if not wanted:
        return list(invocations)

    def read(job: tuple[int, str]) -> str | None:
        index, stream = job
        url = _sibling(str(invocations[index].output_url), stream)
        return _read_s3_text(s3, url, last_bytes)

    # S3 reads run side by side: a wide cluster's logs would otherwise take one round trip each.
    with ThreadPoolExecutor(max_workers=min(_S3_READERS, len(wanted))) as pool:
        texts = list(pool.map(read, wanted))
    result = list(invocations)
    for (index, stream), text in zip(wanted, texts, strict=True):
        if text is not None:
            result[index] = (replace(result[index], stdout=text, stdout_cut=False) if stream == "stdout"
                             else replace(result[index], stderr=text, stderr_cut=False))
    return result


def _read_s3_text(s3: Any, url: str, last_bytes: int | None) -> str | None:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    extra = {"Range": f"bytes=-{last_bytes}"} if last_bytes else {}
    try:
        response = s3.get_object(Bucket=bucket, Key=key, **extra)
    except ClientError as error:
        log.warning("could not read %s (%s): showing what SSM returned", url, error_code(error) or error)
        return None
    text = response["Body"].read().decode("utf-8", errors="replace")
    # A range that does not start at byte 0 begins mid-line: drop that partial line.
    if extra and not response.get("ContentRange", "bytes 0-").startswith("bytes 0-"):
        text = text.partition("\n")[2]
    return text


def raise_for_failures(invocations: Sequence[Invocation]) -> None:
    """Raise CommandFailed for the first instance where the command did not succeed, listing every
    failed instance (id, status, exit code, why, last lines, full-output URL) in the message."""
    failed = [inv for inv in invocations if not inv.ok]
    if not failed:
        return
    first = failed[0]
    raise CommandFailed(first.instance_id, first.exit_code, first.output_tail, status=first.status,
                        failed=tuple(inv.instance_id for inv in failed),
                        details="\n".join(_describe_failure(inv) for inv in failed))


def failure_hint(status: str, status_details: str) -> str:
    """What a final status other than Success means for the user ("" for a plain script failure)."""
    return _STATUS_HINTS.get(status_details) or _STATUS_HINTS.get(status, "")


def _describe_failure(inv: Invocation) -> str:
    code = "no exit code" if inv.exit_code is None else f"exit code {inv.exit_code}"
    hint = failure_hint(inv.status, inv.status_details)
    lines = [f"  {inv.instance_id}: {inv.status} ({code})" + (f": {hint}" if hint else "")]
    lines += [f"    | {line}" for line in inv.output_tail.splitlines()]
    if inv.output_url:
        lines.append(f"    full output: {inv.output_url}")
    return "\n".join(lines)


def run_command(
    ssm: Any, *, cluster: str, instance_ids: Sequence[str], script: str, comment: str, output_bucket: str,
    output_prefix: str, execution_timeout_s: int = EXECUTION_TIMEOUT_S, delivery_timeout_s: int = DELIVERY_TIMEOUT_S,
    online_timeout_s: float = ONLINE_TIMEOUT_S, ec2: Any = None,
) -> list[Invocation]:
    """wait_online, then send_command, then wait_command for the cluster's instances. The caller
    decides what a failure means (``raise_for_failures``, or a table of the results). With ``ec2``,
    targets EC2 reports gone fail at once (InstancesGone), not after SSM's delivery timeout."""
    if not instance_ids:
        raise ConfigError(f"Cluster {cluster!r} has no instances to run the command on.")
    targets = Targets(ec2, cluster) if ec2 is not None else None
    if targets is not None:
        targets.refuse_gone(instance_ids)
    wait_online(ssm, instance_ids, timeout_s=online_timeout_s, targets=targets)
    command_id = send_command(ssm, cluster=cluster, script=script, comment=comment,
                              execution_timeout_s=execution_timeout_s, output_bucket=output_bucket,
                              output_prefix=output_prefix, delivery_timeout_s=delivery_timeout_s)
    # SSM ends every invocation by delivery timeout + execution timeout; the margin covers
    # status propagation, so the deadline only fires when SSM itself stops reporting.
    deadline_s = delivery_timeout_s + execution_timeout_s + 120
    return wait_command(ssm, command_id, instance_ids, deadline_s=deadline_s, output_bucket=output_bucket,
                        output_prefix=output_prefix, targets=targets)
