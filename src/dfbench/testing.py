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
- ``worker_binary``: a file whose header is a Linux x86-64 executable's, for deploys.

Needs the ``test`` extra (moto[server]). Nothing here is used by dfbench itself.
"""

from __future__ import annotations

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


def worker_binary(path: Path, size: int = 64 * 1024) -> Path:
    """A file that passes dfbench's executable check: an ELF64 little-endian header for Linux
    (System V ABI) x86-64, type EXEC (the fields check_binary reads), zero-padded to ``size``."""
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header = ident + struct.pack("<HH", 2, 0x3E)
    path.write_bytes(header + bytes(size - len(header)))
    return path
