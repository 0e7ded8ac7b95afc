"""Typed, strictly validated user input: what a cluster should look like."""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dfbench.aws.session import default_region
from dfbench.errors import ConfigError

DEFAULT_INSTANCE_TYPE = "c5n.2xlarge"
DEFAULT_INSTANCE_COUNT = 12
# The tag the tag-discovery worker (dfbench.worker.kinds) finds its peers by, fixed in its source:
# every instance carries it, and a spec can neither change it nor set it among its own tags.
TAG_DISCOVERY_TAG = ("BenchmarkCluster", "datafusion")

# The cluster name feeds IAM names (`dfbench-<name>-<region>`, at most 64 characters with the
# longest region names), the security group name, Name tags and the launch ClientToken (64).
MAX_NAME_LENGTH = 32
_NAME = re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?\Z")
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}\Z")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+\Z")
_AMI = re.compile(r"^ami-[0-9a-f]{8}([0-9a-f]{9})?\Z")
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
_RESERVED_TAG_PREFIXES = ("aws:", "dfbench:")
# An SSH CIDR wider than this (a shorter prefix: more than 16 million addresses) is a mistake
# unless the user says otherwise (allow_wide_ssh): 0.0.0.0/0 opens port 22 to the internet.
MIN_SSH_PREFIX = 8


def validate_cluster_name(name: str) -> str:
    if not _NAME.match(name) or "--" in name:
        raise ValueError(
            "cluster name must be lowercase letters, digits and single dashes, "
            "starting with a letter and not ending with a dash"
        )
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"cluster name must be at most {MAX_NAME_LENGTH} characters")
    return name


def validate_region(region: str) -> str:
    if not _REGION.match(region):
        raise ValueError(f"{region!r} is not an AWS region name such as us-east-1")
    return region


def validate_bucket_name(name: str) -> str:
    problems = []
    if not _BUCKET.match(name):
        problems.append("3-63 characters of lowercase letters, digits, dots and dashes, "
                        "starting and ending with a letter or digit")
    if ".." in name or ".-" in name or "-." in name:
        problems.append("no adjacent dots or dot-dash pairs")
    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", name):
        problems.append("not formatted like an IP address")
    if name.startswith(("xn--", "sthree-", "amzn-s3-demo-")) or name.endswith(
        ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
    ):
        problems.append("no reserved prefix or suffix (xn--, sthree-, -s3alias, --ol-s3, ...)")
    if problems:
        raise ValueError(f"invalid S3 bucket name {name!r}: " + "; ".join(problems))
    return name


def parse_ssh_cidr(cidr: str, *, allow_wide: bool = False) -> ipaddress.IPv4Network:
    """An IPv4 CIDR to open SSH to, exactly as written: host bits set (``10.1.2.3/8``) are
    refused rather than widened to the network, and a prefix shorter than /8 (``0.0.0.0/0``)
    only with ``allow_wide``. A bare address is its /32."""
    try:
        network = ipaddress.ip_network(cidr)
    except ValueError:
        try:
            widened = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise ValueError(f"{cidr!r} is not a CIDR such as 203.0.113.7/32") from None
        address = cidr.partition("/")[0]
        raise ValueError(f"{cidr!r} has host bits set: write {widened} for the whole network, or "
                         f"{address}/{widened.max_prefixlen} for that one address") from None
    if network.version != 4:
        raise ValueError(f"{cidr!r}: only IPv4 CIDRs are supported (the VPC is IPv4)")
    if network.prefixlen < MIN_SSH_PREFIX and not allow_wide:
        raise ValueError(f"{cidr!r} opens SSH to {network.num_addresses:,} addresses; give your own address "
                         "(such as 203.0.113.7/32), or allow_wide_ssh (--allow-wide-ssh) if you mean it")
    return network


def parse_tag(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"tag {text!r} must look like KEY=VALUE")
    return key, value


class ClusterSpec(BaseModel):
    """The desired cluster. Everything provision converges to, and nothing else."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str = "dfbench"
    region: str = Field(default_factory=default_region, validate_default=True)
    instance_type: str = DEFAULT_INSTANCE_TYPE
    instance_count: Annotated[int, Field(ge=1, le=100)] = DEFAULT_INSTANCE_COUNT
    ami: str | None = None
    volume_size_gib: Annotated[int, Field(ge=8, le=16384)] = 200
    volume_type: Literal["gp3", "gp2"] = "gp3"
    bucket: str | None = Field(
        default_factory=lambda: os.environ.get("BENCHMARK_BUCKET") or None, validate_default=True
    )
    ttl_hours: Annotated[float, Field(gt=0, le=24 * 30)] | None = None
    spot: bool = False
    # Declared before ssh_ingress_cidrs: its validator reads this value.
    allow_wide_ssh: bool = False
    ssh_ingress_cidrs: tuple[str, ...] = ()
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return validate_cluster_name(value)

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        return validate_region(value)

    @field_validator("instance_type")
    @classmethod
    def _instance_type(cls, value: str) -> str:
        if not _INSTANCE_TYPE.match(value):
            raise ValueError(f"{value!r} is not an EC2 instance type such as c5n.2xlarge")
        return value

    @field_validator("volume_type", mode="before")
    @classmethod
    def _volume_type(cls, value: object) -> object:
        # EC2 requires Iops for io1/io2 volumes (InvalidParameterCombination without it), and the
        # cluster's volume holds nothing but the OS and the worker: gp3's 3000 IOPS suffice.
        # https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_EbsBlockDevice.html
        if value == "io2":
            raise ValueError("io2 needs provisioned IOPS, which dfbench does not set: use gp3 (3000 IOPS included)")
        return value

    @field_validator("ami")
    @classmethod
    def _ami(cls, value: str | None) -> str | None:
        if value is not None and not _AMI.match(value):
            raise ValueError(f"{value!r} is not an AMI id such as ami-0123456789abcdef0")
        return value

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str | None) -> str | None:
        return None if value is None else validate_bucket_name(value)

    @field_validator("ssh_ingress_cidrs", mode="before")
    @classmethod
    def _cidrs_as_tuple(cls, value: object) -> object:
        return tuple(value) if isinstance(value, list) else value

    @field_validator("ssh_ingress_cidrs")
    @classmethod
    def _cidrs(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        return tuple(sorted({str(parse_ssh_cidr(cidr, allow_wide=info.data.get("allow_wide_ssh", False)))
                             for cidr in value}))

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        for key, tag_value in value.items():
            if not key or len(key) > 128 or len(tag_value) > 256:
                raise ValueError(f"tag {key!r}: keys are 1-128 characters, values at most 256")
            if key.startswith(_RESERVED_TAG_PREFIXES) or key == "Name":
                raise ValueError(f"tag key {key!r} is reserved (aws:, dfbench:, Name)")
        return value

    @model_validator(mode="after")
    def _discovery_not_in_tags(self) -> ClusterSpec:
        key, value = TAG_DISCOVERY_TAG
        if key in self.tags:
            raise ValueError(f"tag {key!r} is the tag-discovery worker's peer tag, always {key}={value} on the "
                             "instances")
        return self


def format_validation_error(error: ValidationError) -> str:
    """One line per problem, naming the field: what the CLI prints instead of a traceback."""
    lines = []
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"]) or "spec"
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"{field}: {message}")
    return "Invalid cluster spec: " + "; ".join(lines)


def make_spec(**fields: object) -> ClusterSpec:
    """Build a ClusterSpec, turning validation failures into one ConfigError line."""
    try:
        return ClusterSpec(**{k: v for k, v in fields.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as error:
        raise ConfigError(format_validation_error(error)) from None
