"""The emulator harness shared by the test suite and the benchmark scripts.

- ``MotoServer``: moto in server mode on loopback; dfbench reaches it through AWS_ENDPOINT_URL
  with real boto3 over HTTP.
- ``Recorder``: every API call dfbench makes, with the parameters dfbench passed.
- ``Faults``: answers chosen calls with real AWS error responses, AWS's success responses for
  operations moto lacks (SSM's DescribeInstanceInformation, ListCommandInvocations), or a dropped
  connection, through botocore ``before-send`` handlers, before the request reaches the emulator.
- ``MotoGaps``: where moto departs from AWS in a way that matters to dfbench, the AWS behaviour.
- ``FakeSsm``: the SSM agent's side of Run Command (instances online, invocation statuses and
  output, full output written to S3), answered in AWS's wire format.
- ``LocalAgent``: the SSM agent for commands sent to instance ids, running their scripts here.
- ``Sshd``, ``InstanceSide``: a real OpenSSH server on loopback, and what an instance does for SSH
  (console output with the host key, Instance Connect keys let in).
- ``worker_binary``: a file whose header is a Linux x86-64 executable's, for deploys.
- ``system_tool``: a system program a test runs (sshd, shellcheck), or a skip saying how to get it.

Needs the ``test`` extra (moto[server]). Nothing here is used by dfbench itself.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import struct
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from botocore.client import BaseClient

from dfbench.aws.session import add_client_hook
from dfbench.aws.ssm import output_url

# moto reads these when it is imported (DESIGN §8): real managed policies, AMI ids checked, and
# instance types checked against the real catalogue.
MOTO_FLAGS = {
    "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
    "MOTO_ENABLE_AMI_VALIDATION": "true",
    "MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION": "true",
}

READ_PREFIXES = ("Describe", "Get", "List", "Head")


def emulator_environment(endpoint: str, region: str = "us-east-1") -> dict[str, str]:
    """Variables that send every AWS call to the emulator and make sure none can go elsewhere."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        # No instance-metadata credential lookups (169.254.169.254 is not loopback).
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


class MotoServer:
    def __init__(self) -> None:
        os.environ.update(MOTO_FLAGS)
        from moto.server import ThreadedMotoServer

        # One log line per request would bury the test output.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).read()

    def stop(self) -> None:
        self._server.stop()


@dataclass
class Call:
    service: str
    operation: str
    params: dict[str, Any]

    @property
    def mutating(self) -> bool:
        return not self.operation.startswith(READ_PREFIXES)


@dataclass
class Recorder:
    """Records each API call once (not each retry), with the parameters dfbench passed."""

    calls: list[Call] = field(default_factory=list)

    def hook(self, client: BaseClient) -> None:
        client.meta.events.register("provide-client-params", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        service = model.service_model.service_id.hyphenize()
        self.calls.append(Call(service, model.name, json.loads(json.dumps(params, default=str))))

    def named(self, operation: str) -> list[Call]:
        return [c for c in self.calls if c.operation == operation]

    @property
    def mutating(self) -> list[Call]:
        return [c for c in self.calls if c.mutating]

    def clear(self) -> None:
        self.calls.clear()


class _Body:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def error_response(service: str, code: str, message: str, status: int) -> AWSResponse:
    """An error answer in the wire format the service really uses, so botocore parses it (and its
    retry handler judges it) exactly as it would parse AWS's."""
    request_id = str(uuid.uuid4())
    headers = {"x-amzn-requestid": request_id}
    if service == "ec2":
        body = (f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
                f"<RequestID>{request_id}</RequestID></Response>")
    elif service == "s3":
        body = f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
    elif service in ("iam", "sts"):
        body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message>"
                f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>")
    else:  # JSON protocols (ssm, ...)
        headers["content-type"] = "application/x-amz-json-1.1"
        headers["x-amzn-errortype"] = code
        body = json.dumps({"__type": code, "message": message})
    return AWSResponse("https://emulated", status, headers, _Body(body.encode()))


# Services whose protocol is not JSON; ``json_response`` cannot speak for them.
_NON_JSON_SERVICES = ("ec2", "s3", "iam", "sts")


def json_response(body: dict[str, Any]) -> AWSResponse:
    """A 200 answer in the AWS JSON 1.1 wire format (SSM and the other JSON-protocol services):
    botocore parses it against the service model, timestamps as epoch seconds included."""
    headers = {"x-amzn-requestid": str(uuid.uuid4()), "content-type": "application/x-amz-json-1.1"}
    return AWSResponse("https://emulated", 200, headers, _Body(json.dumps(body).encode()))


Params = dict[str, Any]


@dataclass
class _Fault:
    service: str
    operation: str
    times: int
    answer: Callable[[str], AWSResponse]  # called with the request body
    when: Callable[[str], bool]
    hits: int = 0


class Faults:
    """Answer the first ``times`` matching calls with an AWS error, a canned AWS response, or a
    dropped connection. Rules are tried in the order they were added; the first that matches and
    has answers left answers the call."""

    def __init__(self) -> None:
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()

    def hook(self, client: BaseClient) -> None:
        client.meta.events.register_first("before-send", self._before_send)

    def error(self, service: str, operation: str, code: str, message: str = "injected", *, status: int = 400,
              times: int = 1, when: Callable[[str], bool] = lambda body: True) -> _Fault:
        fault = _Fault(service, operation, times, lambda _: error_response(service, code, message, status), when)
        self._faults.append(fault)
        return fault

    def respond(self, service: str, operation: str, body: Params | Callable[[Params], Params], *,
                times: int = 1, when: Callable[[str], bool] = lambda body: True) -> _Fault:
        """Answer with a successful response of a JSON-protocol service: ``body`` as given, or
        ``body(params)`` computed from the request's parameters (for answers that depend on the
        request, such as pages selected by NextToken or the ids in a filter)."""
        if service in _NON_JSON_SERVICES:
            raise ValueError(f"respond() speaks the JSON protocol only; {service} does not use it")

        def answer(request_body: str) -> AWSResponse:
            params = json.loads(request_body) if request_body else {}
            return json_response(body(params) if callable(body) else body)

        fault = _Fault(service, operation, times, answer, when)
        self._faults.append(fault)
        return fault

    def remove(self, *faults: _Fault) -> None:
        """Take rules back (a stand-in that stops answering when its context ends)."""
        with self._lock:
            for fault in faults:
                self._faults.remove(fault)

    def drop_connection(self, service: str, operation: str, *, times: int = 1) -> _Fault:
        from botocore.exceptions import ConnectionClosedError

        def answer(_: str) -> AWSResponse:
            raise ConnectionClosedError(endpoint_url="https://emulated")

        fault = _Fault(service, operation, times, answer, lambda body: True)
        self._faults.append(fault)
        return fault

    def _before_send(self, request: Any, event_name: str, **_: Any) -> AWSResponse | None:
        _, service, operation = event_name.split(".", 2)  # "before-send.ec2.RunInstances"
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
        with self._lock:
            for fault in self._faults:
                if (fault.service, fault.operation) == (service, operation) and fault.hits < fault.times \
                        and fault.when(body):
                    fault.hits += 1
                    return fault.answer(body)
        return None


class Interrupt:
    """Raise KeyboardInterrupt right after the n-th mutating call has succeeded at AWS: the
    state an interrupted (or crashed) run leaves behind."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.seen = 0
        self.last: str | None = None

    def hook(self, client: BaseClient) -> None:
        client.meta.events.register_last("after-call", self._after_call)

    def _after_call(self, model: Any, http_response: Any = None, **_: Any) -> None:
        if model.name.startswith(READ_PREFIXES) or (http_response is not None and http_response.status_code >= 300):
            return
        self.seen += 1
        if self.seen == self.after:
            self.last = model.name
            raise KeyboardInterrupt(f"interrupted after {model.name}")


class MotoGaps:
    """AWS behaviour moto lacks, supplied at the request boundary.

    - CreateBucket with ``CreateBucketConfiguration.Tags``: AWS tags the bucket atomically; moto
      ignores the tags. We apply them right after the call succeeds.
    - Bucket policies: moto treats any Deny statement as denying everything, conditions ignored,
      so dfbench's TLS-only policy would lock every later call out. Put/Get/DeleteBucketPolicy
      are answered here, with AWS's responses, from a store of the policies dfbench sent.
    """

    def __init__(self, endpoint: str) -> None:
        self.policies: dict[str, str] = {}
        self._endpoint = endpoint

    def hook(self, client: BaseClient) -> None:
        if client.meta.service_model.service_name != "s3":
            return
        events = client.meta.events
        events.register("before-parameter-build.s3", self._remember_params)
        events.register("before-call.s3.PutBucketPolicy", self._put_policy)
        events.register("before-call.s3.GetBucketPolicy", self._get_policy)
        events.register("before-call.s3.DeleteBucketPolicy", self._delete_policy)
        events.register("after-call.s3.DeleteBucket", self._bucket_deleted)
        events.register("after-call.s3.CreateBucket", self._tag_new_bucket)

    @staticmethod
    def _remember_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["api_params"] = dict(params)

    # A before-call handler that returns (http_response, parsed) answers in place of the service.
    def _put_policy(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        api = context["api_params"]
        self.policies[api["Bucket"]] = api["Policy"]
        return _Ok(204), {"ResponseMetadata": {"HTTPStatusCode": 204}}

    def _get_policy(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        bucket = context["api_params"]["Bucket"]
        if bucket not in self.policies:
            return _Ok(404), {"Error": {"Code": "NoSuchBucketPolicy", "Message": "The bucket policy does not exist"},
                              "ResponseMetadata": {"HTTPStatusCode": 404}}
        return _Ok(200), {"Policy": self.policies[bucket], "ResponseMetadata": {"HTTPStatusCode": 200}}

    def _delete_policy(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        self.policies.pop(context["api_params"]["Bucket"], None)
        return _Ok(204), {"ResponseMetadata": {"HTTPStatusCode": 204}}

    def _bucket_deleted(self, http_response: Any, context: dict[str, Any], **_: Any) -> None:
        if http_response.status_code < 300:
            self.policies.pop(context["api_params"]["Bucket"], None)

    def _tag_new_bucket(self, http_response: Any, context: dict[str, Any], **_: Any) -> None:
        api = context["api_params"]
        tags = api.get("CreateBucketConfiguration", {}).get("Tags")
        if tags and http_response.status_code < 300:
            raw = boto3.client("s3", endpoint_url=self._endpoint, region_name="us-east-1")
            raw.put_bucket_tagging(Bucket=api["Bucket"], Tagging={"TagSet": tags})


class _Ok:
    def __init__(self, status: int) -> None:
        self.status_code = status
        self.headers: dict[str, str] = {}
        self.content = b""


@contextmanager
def hooked(*hooks: Callable[[BaseClient], None]) -> Iterator[None]:
    """Install client hooks for the duration of the block."""
    removers = [add_client_hook(hook) for hook in hooks]
    try:
        yield
    finally:
        for remove in removers:
            remove()


# --- SSM Run Command, the agent's side ----------------------------------------------------------

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
        ids = next(f["Values"] for f in params["Filters"] if f["Key"] == "InstanceIds")
        return {"InstanceInformationList": [
            {"InstanceId": i, "PingStatus": self.ping[i], "LastPingDateTime": _EPOCH, "AgentVersion": "3.3.987.0",
             "IsLatestVersion": True, "PlatformType": "Linux", "PlatformName": "Amazon Linux",
             "PlatformVersion": "2023", "ResourceType": "EC2Instance", "IPAddress": "10.0.0.10",
             "ComputerName": "ip-10-0-0-10.ec2.internal", "SourceId": i, "SourceType": "AWS::EC2::Instance"}
            for i in ids if i in self.ping
        ]}

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
        key = f"{self.prefix}/{command_id}/{instance_id}/awsrunShellScript"
        url = f"https://s3.us-east-1.amazonaws.com/{self.bucket}/{key}/0.awsrunShellScript"
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
                "OutputS3Region": "us-east-1", "OutputS3BucketName": self.bucket, "OutputS3KeyPrefix": key,
            }],
            "ServiceRole": "",
            "NotificationConfig": {"NotificationArn": "", "NotificationEvents": [], "NotificationType": ""},
            "CloudWatchOutputConfig": {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": False},
        }


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
    the instance's port 9000 reaches a local worker instead. Nothing else in the script changes.

    Install it with ``with LocalAgent(...) as agent:`` (or ``hooked(agent.hook)``) BEFORE the
    clients are made. Rules added to ``faults`` before the agent was made answer first: that is how
    a test makes SSM report something else (a Failed invocation, throttling)."""

    # GetCommandInvocation keeps the first 24,000 bytes of stdout and 8,000 of stderr; a longer
    # stream ends with this marker (amazon-ssm-agent, iohandler.DefaultOutputConfig). Written out
    # here rather than imported, so the stand-in does not share a mistake with the code it tests.
    LIMITS = {"stdout": 24_000, "stderr": 8_000}
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
                 port_map: dict[int, int] | None = None, unknown_polls: int = 1) -> None:
        self.s3, self.bucket, self.prefix = s3, bucket, prefix.strip("/")
        self.port_map = dict(port_map or {})
        self.unknown_polls = unknown_polls
        self.runs: dict[tuple[str, str], LocalAgent.Run] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._remove: Callable[[], None] | None = None
        self._faults = faults
        self._rules = [
            faults.error("ssm", "GetCommandInvocation", "InvocationDoesNotExist", "", times=10**9, when=self._unknown),
            faults.respond("ssm", "GetCommandInvocation", self._invocation, times=10**9),
        ]

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

    def localize(self, script: str) -> str:
        """The documented rewrite: ``127.0.0.1:<remote>`` → ``127.0.0.1:<local>``, whole port
        numbers only (``:9000`` does not touch ``:90001``)."""
        import re

        for remote, local in self.port_map.items():
            script = re.sub(rf"(?<![\d.])127\.0\.0\.1:{remote}(?!\d)", f"127.0.0.1:{local}", script)
        return script

    @staticmethod
    def _remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["dfbench_local_agent"] = json.loads(json.dumps(params, default=str))

    def _sent(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        import time

        params = context.get("dfbench_local_agent") or {}
        if http_response.status_code >= 300 or not params.get("InstanceIds") or "Command" not in parsed:
            return
        script = "\n".join(params["Parameters"]["commands"]) + "\n"  # as the agent writes _script.sh
        timeout = int(params["Parameters"].get("executionTimeout", ["3600"])[0])
        for instance_id in params["InstanceIds"]:
            run = LocalAgent.Run(command_id=parsed["Command"]["CommandId"], instance_id=instance_id,
                                 script=self.localize(script), comment=params.get("Comment", ""),
                                 output_bucket=params.get("OutputS3BucketName", ""),
                                 output_prefix=params.get("OutputS3KeyPrefix", ""), started=time.time())
            with self._lock:
                self.runs[(run.command_id, instance_id)] = run
            thread = threading.Thread(target=self._run, args=(run, timeout), daemon=True,
                                      name=f"local-agent-{run.command_id[:8]}")
            self._threads.append(thread)
            thread.start()

    def _run(self, run: LocalAgent.Run, timeout: float) -> None:
        import subprocess
        import tempfile
        import time

        with tempfile.TemporaryDirectory(prefix="dfbench-agent-") as folder:
            path = Path(folder) / "_script.sh"
            path.write_text(run.script)
            try:
                done = subprocess.run(["bash", str(path)], cwd=folder, capture_output=True, timeout=timeout,
                                      stdin=subprocess.DEVNULL)
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
        from datetime import datetime, timezone

        def when(at: float) -> str:
            return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

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


def cloud_init_console(host_key_lines: list[str]) -> str:
    """Console output as Amazon Linux's cloud-init leaves it: CRLF line ends (serial console), the
    fingerprint block logged with an "ec2:" tag, the key block bare, boot noise around."""
    lines = [
        "[    0.000000] Linux version 6.1.158-178.288.amzn2023.x86_64 (mockbuild@ip-10-0-38-1) (gcc (GCC) 11.5.0)",
        "[   14.218112] cloud-init[1598]: Cloud-init v. 22.2.2 running 'modules:config' at Mon, 01 Dec 2025 10:00:03",
        "ec2: ",
        "ec2: #############################################################",
        "ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----",
        "ec2: 256 SHA256:eDx4m5pC6yqGkXb4f3w0YQ7s0Rb1m7W0yqfZ1l0qk0c root@ip-10-0-0-7.ec2.internal (ECDSA)",
        "ec2: -----END SSH HOST KEY FINGERPRINTS-----",
        "ec2: #############################################################",
        "-----BEGIN SSH HOST KEY KEYS-----",
        *host_key_lines,
        "-----END SSH HOST KEY KEYS-----",
        "[   15.902771] cloud-init[1720]: Cloud-init v. 22.2.2 finished at Mon, 01 Dec 2025 10:00:05 +0000.",
        "",
        "Amazon Linux 2023.9.20251117",
        "Kernel 6.1.158-178.288.amzn2023.x86_64 on an x86_64 (-)",
        "ip-10-0-0-7 login: ",
    ]
    return "\r\n".join(lines)


def console_response(instance_id: str, text: str) -> AWSResponse:
    """GetConsoleOutput as EC2 answers it on the wire: Query protocol XML, Output in base64."""
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<GetConsoleOutputResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
            f"<requestId>{uuid.uuid4()}</requestId><instanceId>{instance_id}</instanceId>"
            "<timestamp>2025-12-01T10:05:00.000Z</timestamp>"
            f"<output>{base64.b64encode(text.encode()).decode()}</output></GetConsoleOutputResponse>")
    return AWSResponse("https://ec2.us-east-1.amazonaws.com/", 200, {"content-type": "text/xml;charset=UTF-8"},
                       _Body(body.encode()))


class InstanceSide:
    """What an instance does for SSH that moto does not: cloud-init's console output holding the
    host key of ``sshd`` (GetConsoleOutput, any instance), and EC2 Instance Connect's agent
    letting a pushed key into ``sshd`` (the SendSSHPublicKey request still reaches moto)."""

    def __init__(self, sshd: Any) -> None:
        self.sshd = sshd

    def hook(self, client: BaseClient) -> None:
        client.meta.events.register_first("before-send.ec2.GetConsoleOutput", self._console)
        client.meta.events.register("before-send.ec2-instance-connect.SendSSHPublicKey", self._push)

    def _console(self, request: Any, **_: Any) -> AWSResponse:
        from urllib.parse import parse_qs

        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
        [instance_id] = parse_qs(body)["InstanceId"]
        return console_response(instance_id, cloud_init_console([f"{self.sshd.host_public_key} root@ip-10-0-0-7"]))

    def _push(self, request: Any, **_: Any) -> None:
        self.sshd.authorize(json.loads(request.body)["SSHPublicKey"])


def system_tool(name: str) -> str:
    """The path of a system program a test runs for real (sshd, shellcheck). Missing, the test is
    skipped with the way to install it, or fails when DFBENCH_REQUIRE_SYSTEM_TOOLS=1 (CI, where
    `make test` installs them and a skip would hide a broken setup)."""
    import shutil

    import pytest

    found = shutil.which(name) or (name if os.path.isabs(name) and os.access(name, os.X_OK) else None)
    if found:
        return found
    message = f"{name} is not installed: `make system-tools` as root installs it from apt"
    if os.environ.get("DFBENCH_REQUIRE_SYSTEM_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)


def worker_binary(path: Path, size: int = 64 * 1024) -> Path:
    """A file that passes dfbench's executable check: an ELF64 little-endian header for Linux
    (System V ABI) x86-64, type EXEC (the fields check_binary reads), zero-padded to ``size``."""
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header = ident + struct.pack("<HH", 2, 0x3E)
    path.write_bytes(header + bytes(size - len(header)))
    return path


class Sshd:
    """A real OpenSSH server on 127.0.0.1 for the SSH transport's tests (DESIGN §8): its own
    config, host key, authorized_keys and pid file in ``folder``, run in the foreground as
    ``sshd -D -e -f <config>`` so its log goes to ``folder/sshd.log`` (``.log()``).

    ``host_key`` reuses a private host key (the same machine again); by default one is generated.
    ``port`` asks for a given port (a restart on the same address); by default a free one. The user
    to log in as is the current one (root in CI; sshd run by another user can only log that user in).
    """

    def __init__(self, folder: Path, host_key: Path | None = None, *, port: int | None = None,
                 start_timeout_s: float = 10.0) -> None:
        import getpass
        import shutil
        import subprocess

        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.user = getpass.getuser()
        self._sshd = system_tool("/usr/sbin/sshd")
        self.authorized_keys = self.folder / "authorized_keys"
        self.authorized_keys.touch()
        if host_key is None:
            host_key = self.folder / "ssh_host_ed25519_key"
            if not host_key.exists():
                subprocess.run([system_tool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", "dfbench-test-sshd",
                                "-f", str(host_key)], check=True, capture_output=True)
        elif Path(host_key).parent != self.folder:
            # sshd refuses a private host key others can read; keep a private copy of our own.
            copy = self.folder / Path(host_key).name
            shutil.copyfile(host_key, copy)
            shutil.copyfile(f"{host_key}.pub", f"{copy}.pub")
            host_key = copy
        os.chmod(host_key, 0o600)
        self.host_key = Path(host_key)
        self.host_public_key = " ".join(Path(f"{host_key}.pub").read_text().split()[:2])
        self.start_timeout_s = start_timeout_s
        self.port = port or 0
        self._process: Any = None
        self._log_file: Any = None
        self.start()

    def _write_config(self) -> Path:
        config = self.folder / "sshd_config"
        config.write_text("\n".join([
            "ListenAddress 127.0.0.1",
            f"Port {self.port}",
            f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            f"PidFile {self.folder / 'sshd.pid'}",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "AllowTcpForwarding yes",
            "PermitRootLogin prohibit-password",
            # One server stands in for every instance of a cluster: the handshakes that N servers
            # would take side by side all come here. sshd's default (10:30:100) drops 30% of the
            # connections beyond 10 unauthenticated ones.
            "MaxStartups 200",
            "LogLevel VERBOSE",
            "",
        ]))
        return config

    def start(self) -> None:
        """Start sshd (on ``self.port``, or a free port when it is 0) and wait for its banner."""
        import socket
        import subprocess
        import time

        if self._process is not None and self._process.poll() is None:
            return
        fixed = bool(self.port)
        # sshd's privilege separation directory; it refuses to start without it.
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        for _attempt in range(5):
            if not fixed:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", 0))
                    self.port = probe.getsockname()[1]
            config = self._write_config()
            self._log_file = open(self.folder / "sshd.log", "ab")  # noqa: SIM115 - closed in stop()
            self._process = subprocess.Popen([self._sshd, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL,
                                             stdout=self._log_file, stderr=self._log_file)
            deadline = time.monotonic() + self.start_timeout_s
            while time.monotonic() < deadline and self._process.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1) as probe:
                        if probe.recv(64).startswith(b"SSH-"):
                            return
                except OSError:
                    time.sleep(0.02)
            self.stop()
            # Another process took the port between the probe and sshd's bind: pick another.
            if fixed or "Address already in use" not in self.log():
                break
        raise RuntimeError(f"sshd did not start on 127.0.0.1:{self.port}:\n{self.log()}")

    def authorize(self, public_line: str) -> None:
        """Let the key in, as EC2 Instance Connect does on an instance (sshd reads the file per login)."""
        with self.authorized_keys.open("a") as keys:
            keys.write(public_line.strip() + "\n")

    def revoke_all(self) -> None:
        """Empty authorized_keys: Instance Connect's 60 s validity has passed for every pushed key."""
        self.authorized_keys.write_text("")

    def session_pids(self) -> list[int]:
        """The processes serving open SSH sessions: the listener's children (one per connection)
        and theirs (the post-authentication process, which holds the connection too)."""
        if self._process is None:
            return []
        parents: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        found, todo = [], list(parents.get(self._process.pid, []))
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(parents.get(pid, []))
        return found

    def drop_sessions(self) -> int:
        """Kill every open SSH session from the server side (what a reboot or sshd restart does to
        a client), leaving the listener up. Returns how many were killed."""
        import signal

        pids = self.session_pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(pids)

    def stop(self) -> None:
        """Stop the listener and every session it started."""
        import subprocess

        process = self._process
        if process is not None and process.poll() is None:
            self.drop_sessions()
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log(self) -> str:
        """What sshd logged (to stderr, with -e): the reason a login or a forward was refused."""
        path = self.folder / "sshd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> Sshd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
