"""AWS answers in each service's own wire format, made here instead of by the emulator, so that
botocore parses them (and its retry handler judges them) exactly as it parses AWS's."""

from __future__ import annotations

import base64
import http.client
import json
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

from botocore.awsrequest import AWSResponse


class Body:
    """A response body as botocore reads it from the connection: a stream of bytes."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


class StatusOnly:
    """The HTTP response a ``before-call`` handler returns beside its parsed answer, when it answers
    for the service: botocore reads only the status (and raises the parsed error at 300 and up)."""

    def __init__(self, status: int) -> None:
        self.status_code = status
        self.headers: dict[str, str] = {}
        self.content = b""


def error_response(service: str, code: str, message: str, status: int) -> AWSResponse:
    """``service`` as botocore's event names spell it (``route-53`` for Route 53). An error answer in
    the wire format the service really uses, so botocore parses it (and its retry handler judges it)
    exactly as it would parse AWS's."""
    request_id = str(uuid.uuid4())
    headers = {"x-amzn-requestid": request_id}
    if service == "ec2":
        body = (f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
                f"<RequestID>{request_id}</RequestID></Response>")
    elif service == "s3":
        body = f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
    elif service in ("iam", "sts", "route-53"):
        # Route 53 (REST-XML) wraps its errors in ErrorResponse as the Query-protocol IAM and STS do.
        body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message>"
                f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>")
    else:  # JSON protocols (ssm, ...)
        headers["content-type"] = "application/x-amz-json-1.1"
        headers["x-amzn-errortype"] = code
        body = json.dumps({"__type": code, "message": message})
    return AWSResponse("https://emulated", status, headers, Body(body.encode()))


# Services whose protocol is not JSON; ``json_response`` cannot speak for them.
NON_JSON_SERVICES = ("ec2", "s3", "iam", "sts", "route-53")


def json_response(body: dict[str, Any]) -> AWSResponse:
    """A 200 answer in the AWS JSON 1.1 wire format (SSM and the other JSON-protocol services):
    botocore parses it against the service model, timestamps as epoch seconds included."""
    headers = {"x-amzn-requestid": str(uuid.uuid4()), "content-type": "application/x-amz-json-1.1"}
    return AWSResponse("https://emulated", 200, headers, Body(json.dumps(body).encode()))


def console_response(instance_id: str, text: str) -> AWSResponse:
    """GetConsoleOutput as EC2 answers it on the wire: Query protocol XML, Output in base64."""
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<GetConsoleOutputResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
            f"<requestId>{uuid.uuid4()}</requestId><instanceId>{instance_id}</instanceId>"
            "<timestamp>2025-12-01T10:05:00.000Z</timestamp>"
            f"<output>{base64.b64encode(text.encode()).decode()}</output></GetConsoleOutputResponse>")
    return AWSResponse("https://ec2.us-east-1.amazonaws.com/", 200, {"content-type": "text/xml;charset=UTF-8"},
                       Body(body.encode()))


def forward(request: Any, body: bytes | str | None = None) -> tuple[int, bytes]:
    """Send a signed botocore request (with ``body`` in place of its own, when given) to the
    emulator as botocore would, and return the answer's status and body (http.client: urllib
    would add a form Content-Type that moto routes elsewhere). moto does not check signatures,
    so a replaced body needs none."""
    url = urllib.parse.urlsplit(request.url)
    headers = {k: v for k, v in request.headers.items() if body is None or k.lower() != "content-length"}
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        target = url.path + (f"?{url.query}" if url.query else "")
        connection.request(request.method, target, body=request.body if body is None else body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()
