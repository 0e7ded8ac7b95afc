"""Plan-time checks: what EC2 would refuse at launch (moto launches it; dfbench_testing.Ec2Rules
refuses it as EC2 does), or would put in a Local Zone, is refused by provision in one line, exit 2,
before anything is created."""

from __future__ import annotations

import re

import pytest

from dfbench import ClusterSpec, cli, plan
from dfbench.aws import instances as ec2_instances
from dfbench.aws.session import connect
from dfbench.config import make_spec
from dfbench.errors import ConfigError
from dfbench_testing import LOCAL_ZONE, Recorder

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = [line for line in _ANSI.sub("", captured.err).splitlines() if line.strip()]
    assert captured.out == "" and len(lines) == 1 and lines[0].startswith("error:"), captured.err
    return lines[0]


def _arm64_image(session) -> str:
    images = session.client("ec2").describe_images(Filters=[{"Name": "architecture", "Values": ["arm64"]}])
    return images["Images"][0]["ImageId"]


@pytest.mark.parametrize(("argv", "says"), [
    (["--instance-type", "c7g.xlarge"], ["c7g.xlarge runs arm64", "x86_64", "c5n.2xlarge"]),
    (["--instance-type", "zz9.huge"], ["zz9.huge is not an EC2 instance type in us-east-1"]),
    (["--ami", "ARM64"], ["is for arm64", "--ami"]),
])
def test_what_ec2_refuses_at_launch_is_refused_before_anything_is_created(
        argv, says, recorder: Recorder, inspector, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [_arm64_image(inspector) if a == "ARM64" else a for a in argv]
    code = cli.main(["provision", "--cluster", "pre", "--count", "1", *argv])
    line = _one_line(capsys)
    assert code == 2
    assert all(word in line for word in says), line
    assert recorder.mutating == [], [c.operation for c in recorder.mutating]


def test_io2_is_refused_in_one_line_naming_gp3() -> None:
    with pytest.raises(ConfigError, match=r"^Invalid cluster spec: volume_type: io2 needs provisioned IOPS.*use gp3"):
        make_spec(volume_type="io2")


def test_a_local_zone_offering_the_type_is_never_a_cluster_zone(aws, recorder: Recorder) -> None:
    """The harness's account is opted in to a Local Zone that offers every type and sorts first."""
    ec2 = connect(region="us-east-1").client("ec2")
    zones = ec2_instances.offered_zones(ec2, "c5n.2xlarge", "us-east-1")
    assert zones and LOCAL_ZONE["ZoneName"] not in zones
    assert all(re.fullmatch(r"us-east-1[a-z]", zone) for zone in zones), zones

    changes = plan(ClusterSpec(name="lz", instance_count=1)).changes
    [subnet] = [c for c in changes if c.resource == "subnet" and c.action == "create"]
    assert subnet.detail.endswith(f" in {zones[0]}"), subnet
