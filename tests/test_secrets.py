"""``--secret-env NAME=ssm:/dfbench/<cluster>/<parameter>``: the value lives in SSM Parameter Store
(moto's) and in a 0600 file under /run written at every start of the worker, nowhere else. (Bad
references are rows of tests/test_bad_input.py; the role's statement is in tests/test_security.py.)"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import dfbench
from dfbench.aws.ssm import OUTPUT_PREFIX
from dfbench.errors import ConfigError
from dfbench.worker.build import check_binary
from dfbench.worker.scripts import LATEST_KEY, SECRETS_SCRIPT, worker_unit
from dfbench.worker_deploy import deploy_worker
from dfbench_testing import Imds, LocalAgent, StandinSystemd, aws_cli, worker_binary
from dfbench_testing.systemd import UNIT, environment_file

PARAMETER = "/dfbench/s/api-token"
# Every character systemd's EnvironmentFile or a shell could take for syntax, and a second line.
VALUE = "p@ss \"w0rd\" $HOME ${X} `id` \\n \\ 'q' 50% #no-comment ;x\nsecond line"
ENV_FILE = "run/dfbench/secrets.env"


def unit_lines(unit: str, key: str) -> list[str]:
    return [line.partition("=")[2] for line in unit.splitlines() if line.startswith(f"{key}=")]


# --- a deploy: names travel, values do not ------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_deploy_with_a_secret_sends_its_name_only_and_the_worker_starts_with_its_value(
        aws: Any, recorder: Any, faults: Any, inspector: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole path: the deploy's SendCommand run here by LocalAgent, the install script writing
    the unit and its helpers under a temporary root, the stand-in systemd running the unit's
    ExecStartPre helpers (POD_IP from IMDS, the secret from moto's Parameter Store through the AWS
    CLI stand-in) and starting the worker with the unit's environment."""
    cluster = dfbench.provision(dfbench.ClusterSpec(name="s", instance_count=1))
    [instance] = cluster.instances
    binary = worker_binary(tmp_path / "worker")
    recorder.clear()
    # A parameter that does not exist yet: refused before any upload or command.
    with pytest.raises(ConfigError, match=r"No such SSM parameter in us-east-1: API_TOKEN=/dfbench/s/api-token\. "
                                          r"Create it first, e\.g\. `aws ssm put-parameter"):
        deploy_worker("s", binary=binary, secrets={"API_TOKEN": f"ssm:{PARAMETER}"})
    assert not any(c.operation in ("PutObject", "CreateMultipartUpload", "SendCommand") for c in recorder.calls)
    inspector.client("ssm").put_parameter(Name=PARAMETER, Value=VALUE, Type="SecureString")

    port = free_port()
    worker = [sys.executable, "-m", "dfbench.worker.local", "--port", str(port), "--quiet",
              "--worker-urls", f"http://{instance.private_ip}:9001"]
    with Imds(instance.private_ip) as imds:
        systemd = StandinSystemd(tmp_path / "instance", port=port, workers={check_binary(binary): worker},
                                 imds_url=imds.url)
        for name, value in systemd.environment.items():
            monkeypatch.setenv(name, value)
        # The scripts run here for real and take real seconds: waits may not shrink to a thousandth.
        monkeypatch.setenv("DFBENCH_TIME_SCALE", "0.05")
        with systemd, LocalAgent(faults, s3=inspector.client("s3"), bucket=cluster.bucket, prefix=OUTPUT_PREFIX,
                                 port_map={9000: port}, ec2=inspector.client("ec2")):
            report = deploy_worker("s", binary=binary, secrets={"API_TOKEN": f"ssm:{PARAMETER}"})
            environment = systemd.worker_environment()

    assert report.ok and report.verified, report
    # The worker process has the value, and its address from IMDS.
    assert environment["API_TOKEN"] == VALUE and environment["POD_IP"] == instance.private_ip
    env_file = systemd.root / ENV_FILE
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert environment_file(env_file.read_text()) == {"API_TOKEN": VALUE}
    unit = (systemd.root / UNIT).read_text()
    assert unit_lines(unit, "ExecStartPre") == [
        "/usr/local/lib/dfbench/pod-ip", f"/usr/local/lib/dfbench/secrets API_TOKEN={PARAMETER}"]
    assert unit_lines(unit, "EnvironmentFile") == ["-/run/dfbench/worker.env", "-/run/dfbench/secrets.env"]
    # Nowhere else: not in the unit, not in `latest`, not in any request dfbench made (it asked
    # only whether the parameter exists: DescribeParameters answers names and types).
    latest = inspector.client("s3").get_object(Bucket=cluster.bucket, Key=LATEST_KEY)["Body"].read().decode()
    assert latest.partition("\n")[2] == unit
    assert [c.operation for c in recorder.calls if c.service == "ssm" and "Parameter" in c.operation] == [
        "DescribeParameters", "DescribeParameters"]
    sent = json.dumps([c.params for c in recorder.calls], default=str)
    assert "w0rd" not in sent + latest + unit


# --- on the instance: the helper the unit runs before every start --------------------------------


def run_secrets_helper(root: Path, unit: str, bin_dir: Path) -> subprocess.CompletedProcess[str]:
    """The unit's secrets ExecStartPre as systemd runs it: the helper as the install writes it,
    the unit's Environment= (AWS_REGION), the AWS CLI on PATH (here: the emulator's stand-in)."""
    helper_line = next(line for line in unit_lines(unit, "ExecStartPre") if "secrets" in line)
    program, *words = shlex.split(helper_line)
    helper = root / program.lstrip("/")
    helper.parent.mkdir(parents=True, exist_ok=True)
    helper.write_text(SECRETS_SCRIPT)
    helper.chmod(0o755)
    environment = dict(line.split("=", 1) for line in unit_lines(unit, "Environment"))
    return subprocess.run([str(helper), *words], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **environment, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                               "DFBENCH_ROOT": str(root)}, check=False)


def test_the_helper_writes_each_value_escaped_to_a_0600_file_and_fails_on_an_unreadable_one(
        aws: Any, inspector: Any, tmp_path: Path) -> None:
    ssm = inspector.client("ssm")
    ssm.put_parameter(Name=PARAMETER, Value=VALUE, Type="SecureString")
    ssm.put_parameter(Name="/dfbench/s/plain", Value="second", Type="String")
    unit = worker_unit(bucket="bench-bucket", region="us-east-1",
                       secrets={"API_TOKEN": PARAMETER, "OTHER": "/dfbench/s/plain"})
    root, bin_dir = tmp_path / "root", aws_cli.bin_dir(tmp_path / "bin")

    started = run_secrets_helper(root, unit, bin_dir)

    assert started.returncode == 0, started.stderr
    env_file = root / ENV_FILE
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in env_file.parent.iterdir()) == ["secrets.env"]  # no temporary left
    assert "w0rd" not in unit and "w0rd" not in started.stdout + started.stderr
    # Read back as systemd reads an EnvironmentFile, every value is what Parameter Store holds.
    assert environment_file(env_file.read_text()) == {"API_TOKEN": VALUE, "OTHER": "second"}

    # A parameter gone (deleted, or the role may not read it) fails the start; the last file stays.
    ssm.delete_parameter(Name=PARAMETER)
    failed = run_secrets_helper(root, unit, bin_dir)
    assert failed.returncode == 1
    assert "ParameterNotFound" in failed.stderr
    assert f"dfbench: cannot read SSM parameter {PARAMETER} for API_TOKEN" in failed.stderr
    assert environment_file(env_file.read_text()) == {"API_TOKEN": VALUE, "OTHER": "second"}
    assert sorted(p.name for p in env_file.parent.iterdir()) == ["secrets.env"]


def test_a_unit_without_secrets_is_unchanged() -> None:
    unit = worker_unit(bucket="bench-bucket", region="us-east-1")
    assert "secrets" not in unit
    assert unit_lines(unit, "ExecStartPre") == ["/usr/local/lib/dfbench/pod-ip"]


def test_the_stand_in_reads_environment_files_by_systemd_s_documented_rules() -> None:
    """The harness's reading of EnvironmentFile= (what the assertions above rely on), on the
    cases systemd.exec(5) describes."""
    text = ("# a comment\n; another\n\nPLAIN=  a b  \nCONTINUED=one\\\ntwo\nSINGLE='a \\ \"b\" $c'\n"
            'DOUBLE="x \\" \\\\ \\$HOME \\` \\n y\nnext"\nESCAPED=a\\ b\n')
    assert environment_file(text) == {
        "PLAIN": "a b", "CONTINUED": "onetwo", "SINGLE": 'a \\ "b" $c',
        "DOUBLE": 'x " \\ $HOME ` \\n y\nnext', "ESCAPED": "a b"}
