"""``--secret-env NAME=ssm:/dfbench/<cluster>/<parameter>``: the value lives in SSM Parameter Store
(moto's) and in a 0600 file under /run written at every start of the worker, nowhere else. (Bad
references are rows of tests/test_bad_input.py; the role's statement is in tests/test_security.py.)"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import dfbench
from dfbench.aws.ssm import OUTPUT_PREFIX
from dfbench.errors import ConfigError
from dfbench.worker.build import check_binary
from dfbench.worker.scripts import INSTALLED_MARKER, LATEST_KEY, SECRETS_SCRIPT, install_script, worker_unit
from dfbench.worker_deploy import deploy_worker
from dfbench_testing import FakeSsm, Run, aws_cli, worker_binary

PARAMETER = "/dfbench/s/api-token"
# Every character systemd's EnvironmentFile or a shell could take for syntax, and a second line.
VALUE = "p@ss \"w0rd\" $HOME ${X} `id` \\n \\ 'q' 50% #no-comment ;x\nsecond line"
ENV_FILE = "run/dfbench/secrets.env"


def systemd_environment(text: str) -> dict[str, str]:
    """An EnvironmentFile's assignments as systemd reads those the helper writes (NAME="value"):
    inside double quotes a backslash before \\ " ` $ stands for that character, a backslash before
    a newline continues the line, any other backslash is kept, and everything else (newlines
    included) is the value's (systemd.exec(5), EnvironmentFile=; env-file.c)."""
    found: dict[str, str] = {}
    position = 0
    while position < len(text):
        if text[position] == "\n":
            position += 1
            continue
        name, _, rest = text[position:].partition('="')
        value: list[str] = []
        index = 0
        while rest[index] != '"':
            if rest[index] == "\\":
                following = rest[index + 1]
                value.append("" if following == "\n" else following if following in '\\"`$' else "\\" + following)
                index += 2
            else:
                value.append(rest[index])
                index += 1
        found[name] = "".join(value)
        position += len(name) + 2 + index + 1
    return found


def unit_lines(unit: str, key: str) -> list[str]:
    return [line.partition("=")[2] for line in unit.splitlines() if line.startswith(f"{key}=")]


# --- a deploy: names travel, values do not ------------------------------------------------------


def test_a_deploy_with_a_secret_checks_it_exists_and_sends_and_stores_its_name_only(aws: Any, recorder: Any, faults: Any,
                                                             inspector: Any, tmp_path: Path) -> None:
    cluster = dfbench.provision(dfbench.ClusterSpec(name="s", instance_count=1))
    binary = worker_binary(tmp_path / "worker")
    recorder.clear()
    # A parameter that does not exist yet: refused before any upload or command.
    with pytest.raises(ConfigError, match=r"No such SSM parameter in us-east-1: API_TOKEN=/dfbench/s/api-token\. "
                                          r"Create it first, e\.g\. `aws ssm put-parameter"):
        deploy_worker("s", binary=binary, secrets={"API_TOKEN": f"ssm:{PARAMETER}"})
    assert not any(c.operation in ("PutObject", "CreateMultipartUpload", "SendCommand") for c in recorder.calls)
    inspector.client("ssm").put_parameter(Name=PARAMETER, Value=VALUE, Type="SecureString")
    sha = check_binary(binary)
    [instance] = cluster.instances
    fake = FakeSsm(faults, bucket=cluster.bucket, prefix=OUTPUT_PREFIX, s3=inspector.client("s3"))
    info = {"worker_urls": [f"http://{instance.private_ip}:9001"], "git_commit_hash": "c0ffee", "errors": []}
    fake.script(ping={instance.instance_id: "Online"},
                polls=[{instance.instance_id: Run("Success", 0, f"{INSTALLED_MARKER}{sha}\n")}],
                then=[[{instance.instance_id: Run("Success", 0, json.dumps(info))}]])
    recorder.clear()

    report = deploy_worker("s", binary=binary, secrets={"API_TOKEN": f"ssm:{PARAMETER}"})

    assert report.ok
    install = recorder.named("SendCommand")[0].params
    expected_unit = worker_unit(bucket=cluster.bucket, region="us-east-1", secrets={"API_TOKEN": PARAMETER})
    assert install["Parameters"]["commands"] == [install_script(
        bucket=cluster.bucket, sha256=sha, region="us-east-1", secrets={"API_TOKEN": PARAMETER})]
    assert unit_lines(expected_unit, "ExecStartPre") == [
        "/usr/local/lib/dfbench/pod-ip", f"/usr/local/lib/dfbench/secrets API_TOKEN={PARAMETER}"]
    assert unit_lines(expected_unit, "EnvironmentFile") == ["-/run/dfbench/worker.env", "-/run/dfbench/secrets.env"]
    latest = inspector.client("s3").get_object(Bucket=cluster.bucket, Key=LATEST_KEY)["Body"].read().decode()
    assert latest == f"{sha}\n{expected_unit}"
    # dfbench asked only whether the parameter exists (DescribeParameters: names and types, no
    # value), and no request it made carries the value.
    assert [c.operation for c in recorder.calls if c.service == "ssm" and "Parameter" in c.operation] == [
        "DescribeParameters"]
    sent = json.dumps([c.params for c in recorder.calls], default=str)
    assert "w0rd" not in sent and "w0rd" not in latest


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
                               "DFBENCH_ROOT": str(root)})


def test_the_instance_reads_the_secret_into_a_0600_file_the_worker_starts_with(aws: Any, inspector: Any,
                                                                               tmp_path: Path) -> None:
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
    secrets = systemd_environment(env_file.read_text())
    assert secrets == {"API_TOKEN": VALUE, "OTHER": "second"}
    # The worker starts with the unit's Environment= and then its EnvironmentFile=s: it sees the value.
    environment = {**dict(line.split("=", 1) for line in unit_lines(unit, "Environment")), **secrets}
    worker = subprocess.run([sys.executable, "-c", "import os, sys; sys.stdout.write(os.environ['API_TOKEN'])"],
                            capture_output=True, text=True, env=environment, timeout=30)
    assert worker.stdout == VALUE

    # A parameter gone (deleted, or the role may not read it) fails the start; the last file stays.
    ssm.delete_parameter(Name=PARAMETER)
    failed = run_secrets_helper(root, unit, bin_dir)
    assert failed.returncode == 1
    assert "ParameterNotFound" in failed.stderr
    assert f"dfbench: cannot read SSM parameter {PARAMETER} for API_TOKEN" in failed.stderr
    assert systemd_environment(env_file.read_text()) == {"API_TOKEN": VALUE, "OTHER": "second"}
    assert sorted(p.name for p in env_file.parent.iterdir()) == ["secrets.env"]


def test_a_unit_without_secrets_is_unchanged() -> None:
    unit = worker_unit(bucket="bench-bucket", region="us-east-1")
    assert "secrets" not in unit
    assert unit_lines(unit, "ExecStartPre") == ["/usr/local/lib/dfbench/pod-ip"]
