"""The SSM agent's side of Run Command, which moto lacks: scripted invocation states answered in
AWS's wire format (``FakeSsm``), or each command's script really run on this machine
(``LocalAgent``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from botocore.client import BaseClient

from dfbench.aws.session import add_client_hook
from dfbench.aws.ssm import output_url
from dfbench_testing.faults import Faults, Params

# CommandPlugin.Output as the agent fills it (API model: at most 2,500 characters).
PLUGIN_OUTPUT_MAX = 2500
_EPOCH = 1_767_225_600.0


@dataclass(frozen=True)
class Run:
    """One instance's invocation at one poll."""

    status: str
    code: int = -1
    stdout: str = ""
    stderr: str = ""
    details: str = ""


def localize(script: str, ports: dict[int, int]) -> str:
    """``script`` as a stand-in instance on this machine runs it: each ``127.0.0.1:<remote>``
    becomes ``127.0.0.1:<local>`` for ``ports`` {remote: local}, whole port numbers only
    (``:9000`` does not touch ``:90001``, nor ``127.0.0.11:9000``)."""
    for remote, local in ports.items():
        script = re.sub(rf"(?<![\d.])127\.0\.0\.1:{remote}(?!\d)", f"127.0.0.1:{local}", script)
    return script


def agent_output(stdout: str, stderr: str) -> str:
    """stdout, then the ERROR separator and stderr; a stream that does not fit keeps its beginning
    and ends with the agent's truncation marker."""
    separator = "\n----------ERROR-------\n"
    room = PLUGIN_OUTPUT_MAX - (len(separator) if stderr else 0)
    stderr_room = min(len(stderr), room // 2)

    def cut(text: str, limit: int, marker: str) -> str:
        return text if len(text) <= limit else text[: limit - len(marker)] + marker

    out = cut(stdout, room - stderr_room, "\n---Output truncated---")
    return out + (separator + cut(stderr, stderr_room, "\n---Error truncated----") if stderr else "")


Polls = list[dict[str, Run]]


def instance_information(ping: dict[str, str], instance_ids: list[str]) -> dict[str, Any]:
    """DescribeInstanceInformation's answer for ``instance_ids``: each one in ``ping`` with its
    PingStatus, in AWS's wire shape."""
    return {"InstanceInformationList": [
        {"InstanceId": i, "PingStatus": ping[i], "LastPingDateTime": _EPOCH, "AgentVersion": "3.3.987.0",
         "IsLatestVersion": True, "PlatformType": "Linux", "PlatformName": "Amazon Linux",
         "PlatformVersion": "2023", "ResourceType": "EC2Instance", "IPAddress": "10.0.0.10",
         "ComputerName": "ip-10-0-0-10.ec2.internal", "SourceId": i, "SourceType": "AWS::EC2::Instance"}
        for i in instance_ids if i in ping
    ]}


def listed_invocation(bucket: str, prefix: str, command_id: str, instance_id: str, run: Run) -> dict[str, Any]:
    """One CommandInvocation of ListCommandInvocations (Details=True) in AWS's wire shape, its
    plugin's Output packed as the agent packs it (``agent_output``)."""
    key = f"{prefix}/{command_id}/{instance_id}/awsrunShellScript"
    url = f"https://s3.us-east-1.amazonaws.com/{bucket}/{key}/0.awsrunShellScript"
    details = run.details or run.status
    return {
        "CommandId": command_id, "InstanceId": instance_id, "InstanceName": "", "Comment": "",
        "DocumentName": "AWS-RunShellScript", "DocumentVersion": "$DEFAULT", "RequestedDateTime": _EPOCH,
        "Status": run.status, "StatusDetails": details, "TraceOutput": "",
        "StandardOutputUrl": f"{url}/stdout", "StandardErrorUrl": f"{url}/stderr",
        "CommandPlugins": [{
            "Name": "aws:runShellScript",
            "Status": run.status if run.status in ("Pending", "InProgress", "Success", "TimedOut", "Cancelled",
                                                   "Failed") else "InProgress",
            "StatusDetails": details, "ResponseCode": run.code, "ResponseStartDateTime": _EPOCH + 1,
            "ResponseFinishDateTime": _EPOCH + 2, "Output": agent_output(run.stdout, run.stderr),
            "StandardOutputUrl": f"{url}/stdout", "StandardErrorUrl": f"{url}/stderr",
            "OutputS3Region": "us-east-1", "OutputS3BucketName": bucket, "OutputS3KeyPrefix": key,
        }],
        "ServiceRole": "",
        "NotificationConfig": {"NotificationArn": "", "NotificationEvents": [], "NotificationType": ""},
        "CloudWatchOutputConfig": {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": False},
    }


class FakeSsm:
    """DescribeInstanceInformation and ListCommandInvocations as AWS answers them (moto has
    neither), from a script of states: each instance's PingStatus, and per command the
    invocations listed at each poll (a request without NextToken starts the next one; the last
    entry repeats; an instance missing from an entry is not listed yet).

    Commands get their scripts in the order they are first polled (the last script serves any
    later command). With ``s3`` (a plain client), a final invocation's whole stdout and stderr
    are written where the agent writes them for a command sent with OutputS3BucketName."""

    def __init__(self, faults: Faults, *, bucket: str, prefix: str, s3: Any = None) -> None:
        self.bucket, self.prefix, self.s3 = bucket, prefix, s3
        self.ping: dict[str, str] = {}
        self.commands: list[Polls] = [[{}]]
        self.page_cap = 50
        self._commands: dict[str, tuple[Polls, list[int]]] = {}  # command id -> its script, its poll
        self._written: set[tuple[str, str]] = set()
        faults.respond("ssm", "DescribeInstanceInformation", self._describe, times=10**6)
        faults.respond("ssm", "ListCommandInvocations", self._list, times=10**6)

    def script(self, *, ping: dict[str, str], polls: Polls, page_cap: int = 50, then: Sequence[Polls] = ()) -> None:
        """``polls`` for the next command polled, ``then`` for the ones after it."""
        self.ping, self.commands, self.page_cap = ping, [polls, *then], page_cap
        self._commands.clear()

    def _describe(self, params: dict[str, Any]) -> dict[str, Any]:
        return instance_information(self.ping, next(f["Values"] for f in params["Filters"]
                                                    if f["Key"] == "InstanceIds"))

    def _list(self, params: dict[str, Any]) -> dict[str, Any]:
        command_id = params["CommandId"]
        if command_id not in self._commands:
            self._commands[command_id] = (self.commands[min(len(self._commands), len(self.commands) - 1)], [-1])
        polls, poll = self._commands[command_id]
        if "NextToken" not in params:
            poll[0] = min(poll[0] + 1, len(polls) - 1)
        runs = polls[poll[0]]
        ids = list(runs)
        start = int(params.get("NextToken", "0"))
        end = start + min(params.get("MaxResults", 50), self.page_cap)
        for instance_id in ids[start:end]:
            self._upload(command_id, instance_id, runs[instance_id])
        body: dict[str, Any] = {
            "CommandInvocations": [self._invocation(command_id, i, runs[i]) for i in ids[start:end]]
        }
        if end < len(ids):
            body["NextToken"] = str(end)
        return body

    def _upload(self, command_id: str, instance_id: str, run: Run) -> None:
        if self.s3 is None or run.status in ("Pending", "InProgress", "Delayed") \
                or (command_id, instance_id) in self._written:
            return
        self._written.add((command_id, instance_id))
        for stream, text in (("stdout", run.stdout), ("stderr", run.stderr)):
            if text:  # the agent writes no object for an empty stream
                url = output_url(self.bucket, self.prefix, command_id, instance_id, stream)
                self.s3.put_object(Bucket=self.bucket, Key=url.removeprefix(f"s3://{self.bucket}/"),
                                   Body=text.encode())

    def _invocation(self, command_id: str, instance_id: str, run: Run) -> dict[str, Any]:
        return listed_invocation(self.bucket, self.prefix, command_id, instance_id, run)


class LocalAgent:
    """The SSM agent's side of Run Command, for real, for commands sent to ``InstanceIds``.

    moto records SendCommand but runs nothing, and its GetCommandInvocation has no output.
    LocalAgent lets SendCommand reach moto (which records it and picks the CommandId), then, in
    an ``after-call`` handler, runs the command's script on this machine with bash (one thread per
    instance id, as each instance's agent would), and answers GetCommandInvocation through
    ``faults`` in AWS's wire shape: InvocationDoesNotExist for an unknown command and for the first
    ``unknown_polls`` polls of each one (SSM right after SendCommand), InProgress while the script
    runs, then the final status with StandardOutputContent/StandardErrorContent cut as the agent
    cuts them (24,000 / 8,000 bytes, "--output truncated--") and the S3 URLs of the full streams.

    With OutputS3BucketName, the whole stdout and stderr (non-empty ones only) are written to
    ``s3`` (a plain client) where the agent writes them (``output_url``), before the final status
    shows, but only inside ``bucket``/``prefix``: the instance role may write nowhere else, so a
    command pointing elsewhere gets no S3 output, as on AWS.

    ``port_map`` {remote: local} is the one rewrite done to a script: each URL authority
    ``127.0.0.1:<remote>`` becomes ``127.0.0.1:<local>``, so a script that reaches the worker on
    the instance's port 9000 reaches a local worker instead. ``instance_ports`` {instance id:
    {remote: local}} does the same for one instance (before ``port_map``), so that several
    stand-in instances on this machine each reach their own service. Nothing else in the script
    changes.

    With ``ec2`` (a plain client), commands sent by tag (``Targets=[{"Key": "tag:K", ...}]``, as
    ``dfbench deploy`` sends them) run too, once per running instance carrying the tag (what SSM
    resolves a tag target to), and the calls that follow such a command are answered as AWS
    answers them: DescribeInstanceInformation (every instance asked about Online) and
    ListCommandInvocations (the command's invocations with their plugin Output). The instances
    all run on this machine: one instance per cluster, or scripts that do not collide. Without
    ``ec2``, ``online`` names the instance ids DescribeInstanceInformation says are Online, and
    ListCommandInvocations is answered for the commands the agent ran: with both,
    ``dfbench.aws.ssm.wait_online`` and ``wait_command`` work as they do on AWS.

    Each script runs with the variables the agent sets for Run Command scripts,
    ``AWS_SSM_INSTANCE_ID`` and ``AWS_SSM_REGION_NAME`` (amazon-ssm-agent, agent/executers/executers.go:
    "environment variables set for processes executed by ssm agent"), plus
    ``environment[instance_id]``: what makes one stand-in instance differ from the others (a
    broken tool first on its PATH).

    Install it with ``with LocalAgent(...) as agent:`` (or ``hooked(agent.hook)``) BEFORE the
    clients are made. Rules added to ``faults`` before the agent was made answer first: that is how
    a test makes SSM report something else (a Failed invocation, throttling)."""

    # GetCommandInvocation keeps the first 24,000 bytes of stdout and 8,000 of stderr; a longer
    # stream ends with this marker (amazon-ssm-agent, iohandler.DefaultOutputConfig). Written out
    # here rather than imported, so the stand-in does not share a mistake with the code it tests.
    LIMITS: ClassVar[dict[str, int]] = {"stdout": 24_000, "stderr": 8_000}
    CUT = "--output truncated--"

    @dataclass
    class Run:
        """One command on one instance, as the agent ran it."""

        command_id: str
        instance_id: str
        script: str  # as run, after the port rewrite
        comment: str
        output_bucket: str
        output_prefix: str
        status: str = "InProgress"
        status_details: str = "InProgress"
        exit_code: int = -1
        stdout: bytes = b""
        stderr: bytes = b""
        started: float = 0.0
        elapsed_s: float = 0.0
        polls: int = 0  # GetCommandInvocation calls seen for it
        uploaded: list[str] = field(default_factory=list)  # s3:// URLs written

    def __init__(self, faults: Faults, *, s3: Any, bucket: str, prefix: str,
                 port_map: dict[int, int] | None = None, unknown_polls: int = 1, ec2: Any = None,
                 online: Sequence[str] = (), environment: dict[str, dict[str, str]] | None = None,
                 region: str = "us-east-1", instance_ports: dict[str, dict[int, int]] | None = None) -> None:
        self.s3, self.bucket, self.prefix, self.ec2 = s3, bucket, prefix.strip("/"), ec2
        self.port_map = dict(port_map or {})
        self.instance_ports = {key: dict(value) for key, value in (instance_ports or {}).items()}
        self.unknown_polls = unknown_polls
        self.environment = dict(environment or {})
        self.region = region
        self.runs: dict[tuple[str, str], LocalAgent.Run] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._remove: Callable[[], None] | None = None
        self._faults = faults
        self._rules = [
            faults.error("ssm", "GetCommandInvocation", "InvocationDoesNotExist", "", times=10**9, when=self._unknown),
            faults.respond("ssm", "GetCommandInvocation", self._invocation, times=10**9),
        ]
        if ec2 is not None:
            self._rules += [
                faults.respond("ssm", "DescribeInstanceInformation", self._describe, times=10**9),
                faults.respond("ssm", "ListCommandInvocations", self._list, times=10**9),
            ]
        else:
            self._rules.append(faults.respond("ssm", "ListCommandInvocations", self._list, times=10**9,
                                              when=self._ran))
            if online:
                ping = dict.fromkeys(online, "Online")
                self._rules.append(faults.respond(
                    "ssm", "DescribeInstanceInformation",
                    lambda params: instance_information(ping, next(f["Values"] for f in params["Filters"]
                                                                   if f["Key"] == "InstanceIds")),
                    times=10**9))

    def __enter__(self) -> LocalAgent:
        self._remove = add_client_hook(self.hook)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._remove is not None:
            self._remove()
            self._remove = None
        self.wait()
        # Another agent may answer for the same Faults next (a later step of the same test).
        self._faults.remove(*self._rules)
        self._rules = []

    def hook(self, client: BaseClient) -> None:
        if client.meta.service_model.service_name != "ssm":
            return
        client.meta.events.register("before-parameter-build.ssm.SendCommand", self._remember)
        client.meta.events.register("after-call.ssm.SendCommand", self._sent)

    def wait(self, timeout: float = 30.0) -> None:
        """Until every script started so far has finished."""
        for thread in list(self._threads):
            thread.join(timeout)

    def localize(self, script: str, instance_id: str = "") -> str:
        """The documented rewrite (:func:`localize`), an instance's own ports first."""
        return localize(script, {**self.port_map, **self.instance_ports.get(instance_id, {})})

    @staticmethod
    def _remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["dfbench_local_agent"] = json.loads(json.dumps(params, default=str))

    def _sent(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        params = context.get("dfbench_local_agent") or {}
        instance_ids = params.get("InstanceIds") or self._tagged(params.get("Targets") or [])
        if http_response.status_code >= 300 or not instance_ids or "Command" not in parsed:
            return
        script = "\n".join(params["Parameters"]["commands"]) + "\n"  # as the agent writes _script.sh
        timeout = int(params["Parameters"].get("executionTimeout", ["3600"])[0])
        for instance_id in instance_ids:
            run = LocalAgent.Run(command_id=parsed["Command"]["CommandId"], instance_id=instance_id,
                                 script=self.localize(script, instance_id), comment=params.get("Comment", ""),
                                 output_bucket=params.get("OutputS3BucketName", ""),
                                 output_prefix=params.get("OutputS3KeyPrefix", ""), started=time.time())
            with self._lock:
                self.runs[(run.command_id, instance_id)] = run
            thread = threading.Thread(target=self._run, args=(run, timeout), daemon=True,
                                      name=f"local-agent-{run.command_id[:8]}")
            self._threads.append(thread)
            thread.start()

    def _tagged(self, targets: list[dict[str, Any]]) -> list[str]:
        """The running instances a tag target reaches (none without ``ec2``)."""
        filters = [{"Name": t["Key"], "Values": t["Values"]} for t in targets if t["Key"].startswith("tag:")]
        if self.ec2 is None or not filters:
            return []
        pages = self.ec2.get_paginator("describe_instances").paginate(
            Filters=[*filters, {"Name": "instance-state-name", "Values": ["running"]}])
        return [i["InstanceId"] for page in pages for r in page["Reservations"] for i in r["Instances"]]

    def _describe(self, params: Params) -> Params:
        asked = [v for f in params.get("Filters", []) if f["Key"] == "InstanceIds" for v in f["Values"]]
        return instance_information(dict.fromkeys(asked, "Online"), asked)

    def _ran(self, body: str) -> bool:
        command_id = json.loads(body or "{}").get("CommandId", "")
        with self._lock:
            return any(key[0] == command_id for key in self.runs)

    def _list(self, params: Params) -> Params:
        """Every invocation of the command at once (a wide page: its callers ask for 50 a page and
        the stand-ins run a few), each as it stands now."""
        with self._lock:
            runs = [r for r in self.runs.values() if r.command_id == params["CommandId"]]
            return {"CommandInvocations": [
                listed_invocation(r.output_bucket, r.output_prefix.strip("/"), r.command_id, r.instance_id,
                                  Run(r.status, r.exit_code, r.stdout.decode(errors="replace"),
                                      r.stderr.decode(errors="replace"), r.status_details))
                for r in runs]}

    def _run(self, run: LocalAgent.Run, timeout: float) -> None:
        with tempfile.TemporaryDirectory(prefix="dfbench-agent-") as folder:
            path = Path(folder) / "_script.sh"
            path.write_text(run.script)
            env = {**os.environ, "AWS_SSM_INSTANCE_ID": run.instance_id, "AWS_SSM_REGION_NAME": self.region,
                   **self.environment.get(run.instance_id, {})}
            try:
                done = subprocess.run(["bash", str(path)], cwd=folder, capture_output=True, timeout=timeout,
                                      stdin=subprocess.DEVNULL, env=env, check=False)
                stdout, stderr, code = done.stdout, done.stderr, done.returncode
                status = details = "Success" if code == 0 else "Failed"
            except subprocess.TimeoutExpired as expired:
                stdout, stderr, code = expired.stdout or b"", expired.stderr or b"", -1
                status, details = "TimedOut", "ExecutionTimedOut"
        uploaded = self._upload(run, stdout, stderr)
        with self._lock:  # the final state shows all at once, S3 output already written
            run.stdout, run.stderr, run.exit_code, run.uploaded = stdout, stderr, code, uploaded
            run.elapsed_s = time.time() - run.started
            run.status, run.status_details = status, details

    def _upload(self, run: LocalAgent.Run, stdout: bytes, stderr: bytes) -> list[str]:
        prefix = run.output_prefix.strip("/")
        if not run.output_bucket or run.output_bucket != self.bucket \
                or not (prefix == self.prefix or prefix.startswith(self.prefix + "/")):
            return []
        written = []
        for stream, data in (("stdout", stdout), ("stderr", stderr)):
            if data:  # the agent writes no object for an empty stream
                url = output_url(run.output_bucket, prefix, run.command_id, run.instance_id, stream)
                self.s3.put_object(Bucket=run.output_bucket, Key=url.removeprefix(f"s3://{run.output_bucket}/"),
                                   Body=data)
                written.append(url)
        return written

    def _unknown(self, body: str) -> bool:
        params = json.loads(body or "{}")
        with self._lock:
            run = self.runs.get((params.get("CommandId", ""), params.get("InstanceId", "")))
            if run is None:
                return True
            run.polls += 1
            return run.polls <= self.unknown_polls

    @classmethod
    def content(cls, data: bytes, stream: str) -> str:
        """A stream as GetCommandInvocation returns it: whole when shorter than its limit, else its
        first bytes up to the limit, the last of them the agent's marker (the agent's
        StringPrefix: a stream of exactly the limit is cut too)."""
        limit = cls.LIMITS[stream]
        if len(data) >= limit:
            data = data[: limit - len(cls.CUT)] + cls.CUT.encode()
        return data.decode("utf-8", errors="replace")

    def _invocation(self, params: Params) -> Params:
        def when(at: float) -> str:
            return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

        with self._lock:
            run = self.runs[(params["CommandId"], params["InstanceId"])]
            final = run.status != "InProgress"
            urls = {}
            for stream in ("stdout", "stderr"):
                url = output_url(run.output_bucket, run.output_prefix, run.command_id, run.instance_id, stream)
                # The API gives the https form of where the agent writes (or would write) the stream.
                urls[stream] = ("https://s3.us-east-1.amazonaws.com/" + url.removeprefix("s3://")) \
                    if run.output_bucket else ""
            return {
                "CommandId": run.command_id, "InstanceId": run.instance_id, "Comment": run.comment,
                "DocumentName": "AWS-RunShellScript", "DocumentVersion": "$DEFAULT",
                "PluginName": "aws:runShellScript", "ResponseCode": run.exit_code,
                "ExecutionStartDateTime": when(run.started),
                "ExecutionElapsedTime": f"PT{run.elapsed_s:.3f}S" if final else "",
                "ExecutionEndDateTime": when(run.started + run.elapsed_s) if final else "",
                "Status": run.status, "StatusDetails": run.status_details,
                "StandardOutputContent": self.content(run.stdout, "stdout"),
                "StandardOutputUrl": urls["stdout"],
                "StandardErrorContent": self.content(run.stderr, "stderr"),
                "StandardErrorUrl": urls["stderr"],
                "CloudWatchOutputConfig": {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": False},
            }
