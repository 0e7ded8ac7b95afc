"""``dfbench verify-aws ARGS`` in a process of its own, against the emulator at AWS_ENDPOINT_URL: the
stand-ins the conftest's ``aws`` fixture installs (moto's gaps, AWS's request checks and EC2 rules,
launch tokens), eventual consistency (``NotYetVisible``), what doctor asks moto cannot answer
(quotas, the policy simulator), and the instance's side: the SSM agent running each command here
(``LocalAgent``) with the instance's AWS CLI and resolver first on PATH. A process of its own so a
test can send it SIGINT or SIGTERM as a user would.

``DFBENCH_VPC_ID=vpc-none`` makes the resolver stand-in find no zone (the instance never sees the
record: its command waits out its DNS bound). ``VERIFY_DRIVER_FAULT=service:Operation:Code`` (the
service as botocore's event names spell it) answers that call with that AWS error, every time.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import boto3

from dfbench.aws.session import default_bucket_name
from dfbench.aws.ssm import OUTPUT_PREFIX
from dfbench.cli.main import main
from dfbench_testing import (
    Ec2Rules,
    Faults,
    LaunchTokens,
    LocalAgent,
    MotoGaps,
    NotYetVisible,
    PolicySimulator,
    RequestChecks,
    ServiceQuotas,
    aws_cli,
    hooked,
    resolver,
)


def run(argv: list[str]) -> int:
    url = os.environ["AWS_ENDPOINT_URL"]
    tools = Path(tempfile.mkdtemp(prefix="verify-instance-"))
    aws_cli.bin_dir(tools)
    resolver.bin_dir(tools)
    os.environ["PATH"] = f"{tools}:{os.environ['PATH']}"
    faults = Faults()
    if fault := os.environ.get("VERIFY_DRIVER_FAULT"):
        service, operation, code = fault.split(":")
        faults.error(service, operation, code, "injected by the test", times=10**9)
    agent = LocalAgent(faults, s3=boto3.client("s3"), ec2=boto3.client("ec2"), prefix=OUTPUT_PREFIX,
                       bucket=default_bucket_name("123456789012", os.environ["AWS_REGION"]))
    # Faults first: its answers (the agent's, an injected error) come before every other stand-in's.
    with hooked(faults.hook, MotoGaps(url).hook, RequestChecks().hook, Ec2Rules(url).hook, LaunchTokens().hook,
                NotYetVisible(times=2).hook, ServiceQuotas().hook, PolicySimulator().hook, agent.hook):
        code = main(argv)
    agent.wait()
    return code


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
