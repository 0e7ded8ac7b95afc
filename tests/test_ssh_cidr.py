"""--ssh-cidr is taken exactly as written: no silent widening, no world-open port 22 by accident."""

from __future__ import annotations

import re

import pytest

from dfbench import cli
from dfbench.config import ClusterSpec, make_spec, parse_ssh_cidr
from dfbench.errors import ConfigError
from dfbench_testing import Recorder

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

# (written, allow_wide, what the security group gets) for CIDRs that are accepted.
ACCEPTED = [
    ("203.0.113.7/32", False, "203.0.113.7/32"),
    ("203.0.113.7", False, "203.0.113.7/32"),
    ("198.51.100.0/24", False, "198.51.100.0/24"),
    ("10.0.0.0/8", False, "10.0.0.0/8"),
    ("0.0.0.0/0", True, "0.0.0.0/0"),
    ("128.0.0.0/1", True, "128.0.0.0/1"),
    ("4.0.0.0/7", True, "4.0.0.0/7"),
]

# (written, allow_wide, words the one-line refusal must contain).
REFUSED = [
    ("10.1.2.3/8", False, ["host bits", "10.0.0.0/8", "10.1.2.3/32"]),
    ("10.1.2.3/8", True, ["host bits", "10.0.0.0/8"]),
    ("203.0.113.7/24", False, ["host bits", "203.0.113.0/24", "203.0.113.7/32"]),
    ("192.168.1.1/16", False, ["host bits", "192.168.0.0/16"]),
    ("0.0.0.0/0", False, ["4,294,967,296 addresses", "allow_wide_ssh", "--allow-wide-ssh"]),
    ("128.0.0.0/1", False, ["2,147,483,648 addresses", "--allow-wide-ssh"]),
    ("4.0.0.0/7", False, ["33,554,432 addresses", "--allow-wide-ssh"]),
    ("999.1.1.1/32", False, ["not a CIDR"]),
    ("10.0.0.0/33", True, ["not a CIDR"]),
    ("10.0.0.0/8\n", False, ["not a CIDR"]),
    ("", False, ["not a CIDR"]),
    ("2001:db8::/32", True, ["only IPv4"]),
]


@pytest.mark.parametrize(("cidr", "allow_wide", "network"), ACCEPTED)
def test_accepted(cidr: str, allow_wide: bool, network: str) -> None:
    assert str(parse_ssh_cidr(cidr, allow_wide=allow_wide)) == network
    assert make_spec(ssh_ingress_cidrs=(cidr,), allow_wide_ssh=allow_wide).ssh_ingress_cidrs == (network,)


@pytest.mark.parametrize(("cidr", "allow_wide", "words"), REFUSED)
def test_refused_in_one_line(cidr: str, allow_wide: bool, words: list[str]) -> None:
    with pytest.raises(ConfigError) as raised:
        make_spec(ssh_ingress_cidrs=(cidr,), allow_wide_ssh=allow_wide)
    message = str(raised.value)
    assert "\n" not in message.rstrip("\n") and raised.value.exit_code == 2
    assert message.startswith("Invalid cluster spec: ssh_ingress_cidrs: ")
    for word in words:
        assert word in message


def test_the_flag_is_per_spec_and_off_by_default() -> None:
    assert ClusterSpec().allow_wide_ssh is False
    with pytest.raises(ConfigError, match="allow_wide_ssh"):
        make_spec(ssh_ingress_cidrs=("203.0.113.7/32", "0.0.0.0/0"))
    spec = make_spec(ssh_ingress_cidrs=("203.0.113.7/32", "0.0.0.0/0"), allow_wide_ssh=True)
    assert spec.ssh_ingress_cidrs == ("0.0.0.0/0", "203.0.113.7/32")


# --- the CLI: one line, exit 2, before any AWS call ----------------------------------------------


@pytest.mark.parametrize("command", ["provision", "plan"])
@pytest.mark.parametrize(("cidr", "says"), [
    ("10.1.2.3/8", "10.0.0.0/8"),
    ("0.0.0.0/0", "--allow-wide-ssh"),
    ("1.2.3.4/5", "host bits"),
])
def test_cli_refuses(command: str, cidr: str, says: str, recorder: Recorder,
                     capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main([command, "--cluster", "cidr", "--ssh-cidr", "203.0.113.7/32", "--ssh-cidr", cidr])
    captured = capsys.readouterr()
    lines = [line for line in _ANSI.sub("", captured.err).splitlines() if line.strip()]
    assert code == 2 and captured.out == ""
    assert len(lines) == 1 and lines[0].startswith("error:") and says in lines[0] and cidr in lines[0]
    assert recorder.calls == []


def test_cli_plan_opens_the_world_only_when_asked(recorder: Recorder, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["plan", "--cluster", "cidr", "--ssh-cidr", "0.0.0.0/0", "--allow-wide-ssh", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "0.0.0.0/0" in captured.out
