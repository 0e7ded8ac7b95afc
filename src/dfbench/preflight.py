"""Plan-time checks: what EC2 would refuse, or get wrong, found with a few reads before anything is
created. Each failure is one ConfigError line naming the fix (exit 2)."""

from __future__ import annotations

from typing import Any

from dfbench.aws import account
from dfbench.aws import instances as ec2_instances
from dfbench.config import ClusterSpec
from dfbench.errors import ConfigError
from dfbench.worker.build import ARCHITECTURE, TARGET

# x86_64 types of the families the CDK tooling's benchmarks ran on, for the messages.
_X86_EXAMPLES = "c5n.2xlarge, c6in.2xlarge or m6i.2xlarge"


def check_architecture(ec2: Any, spec: ClusterSpec) -> account.InstanceType:
    """The instance type exists in the region and runs the worker's architecture, and so does a
    pinned AMI (the default, Amazon Linux 2023 for x86_64, does). EC2 itself refuses a type and
    AMI of different architectures only at launch, after the network and role exist."""
    found = account.describe_instance_type(ec2, spec.instance_type)
    if found is None:
        raise ConfigError(f"{spec.instance_type} is not an EC2 instance type in {spec.region}: choose one such as "
                          f"{_X86_EXAMPLES} (--instance-type).")
    if ARCHITECTURE not in found.architectures:
        raise ConfigError(f"{spec.instance_type} runs {'/'.join(found.architectures)}, but the worker is built for "
                          f"{ARCHITECTURE} ({TARGET}; deploy refuses other builds): choose an {ARCHITECTURE} type "
                          f"such as {_X86_EXAMPLES} (--instance-type).")
    if spec.ami is not None:
        image = account.image_architecture(ec2, spec.ami)
        if image is None:
            raise ConfigError(f"AMI {spec.ami} does not exist in {spec.region}; pass another --ami or none.")
        if image != ARCHITECTURE:
            raise ConfigError(f"AMI {spec.ami} is for {image}, but the instances and the worker are {ARCHITECTURE}: "
                              "pass an x86_64 AMI with --ami, or none (the latest Amazon Linux 2023 for x86_64).")
    return found


def check(ec2: Any, spec: ClusterSpec) -> list[str]:
    """Every plan-time check; returns the availability zones offering the type, in order."""
    check_architecture(ec2, spec)
    return ec2_instances.offered_zones(ec2, spec.instance_type, spec.region)
