"""What an EC2 instance does for SSH that moto does not: cloud-init's console output with the host
key, and EC2 Instance Connect letting a pushed key into the sshd that stands in for the instance."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from botocore.awsrequest import AWSResponse
from botocore.client import BaseClient

from dfbench_testing.wire import console_response


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


class InstanceSide:
    """What an instance does for SSH that moto does not: cloud-init's console output holding the
    host key of ``sshd`` (GetConsoleOutput, any instance), and EC2 Instance Connect's agent
    letting a pushed key into ``sshd`` (the SendSSHPublicKey request still reaches moto).

    EC2 posts console output some minutes after boot and answers an empty ``Output`` until then:
    the first ``blank_reads`` GetConsoleOutput calls get that (None: every one)."""

    def __init__(self, sshd: Any, blank_reads: int | None = 0) -> None:
        self.sshd = sshd
        self.blank_reads = blank_reads
        self.reads = 0

    def hook(self, client: BaseClient) -> None:
        client.meta.events.register_first("before-send.ec2.GetConsoleOutput", self._console)
        client.meta.events.register("before-send.ec2-instance-connect.SendSSHPublicKey", self._push)

    def _console(self, request: Any, **_: Any) -> AWSResponse:
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
        [instance_id] = parse_qs(body)["InstanceId"]
        self.reads += 1
        if self.blank_reads is None or self.reads <= self.blank_reads:
            return console_response(instance_id, "")
        return console_response(instance_id, cloud_init_console([f"{self.sshd.host_public_key} root@ip-10-0-0-7"]))

    def _push(self, request: Any, **_: Any) -> None:
        self.sshd.authorize(json.loads(request.body)["SSHPublicKey"])
