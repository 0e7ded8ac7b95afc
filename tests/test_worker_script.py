"""The scripts that install the worker on an instance, run locally with bash against a temporary
root, with stand-ins for systemctl, aws, curl, journalctl and cloud-init on PATH."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dfbench.errors import ConfigError
from dfbench.worker.scripts import (
    INSTALLED_MARKER,
    POD_IP_SCRIPT,
    SECRETS_SCRIPT,
    boot_script,
    install_script,
    latest_record,
    ttl_script,
    worker_unit,
)
from dfbench_testing import Imds, system_tool

BUCKET = "bench-bucket"
REGION = "eu-west-1"

# Each stand-in appends its arguments to <fake>/<name>.log. systemctl keeps the service state
# in a file so `is-active` answers what the last restart did; aws serves <fake>/bucket/<key>
# and fails like the real CLI for anything else.
STANDINS = {
    "systemctl": r"""
echo "$*" >>"$FAKE/systemctl.log"
case $1 in
    is-active) [[ -f $FAKE/active ]] ;;
    restart)
        if [[ -f $FAKE/start_fails ]]; then
            echo "Job for worker.service failed because the control process exited with error code." >&2
            exit 1
        fi
        touch "$FAKE/active" ;;
esac
""",
    "aws": r"""
echo "$*" >>"$FAKE/aws.log"
[[ $1 == s3 && $2 == cp ]] || { echo "fake aws: unsupported: $*" >&2; exit 252; }
src=${*: -2:1} dest=${*: -1}
path=${src#s3://} bucket=${src#s3://}
bucket=${bucket%%/*} key=${path#*/}
if [[ -f $FAKE/deny ]]; then
    echo "fatal error: An error occurred (403) when calling the HeadObject operation: Forbidden" >&2
    exit 1
fi
# $FAKE/unready/<name>: how many more reads of a key ending in /<name> fail as on a first boot whose
# role credentials have not reached the instance yet (the CLI's words and exit status 253).
unready=$FAKE/unready/${key##*/}
if [[ -f $unready && $(<"$unready") -gt 0 ]]; then
    echo $(($(<"$unready") - 1)) >"$unready"
    echo "Unable to locate credentials. You can configure credentials by running \"aws configure\"." >&2
    exit 253
fi
if [[ $bucket != "$FAKE_BUCKET" || ! -f $FAKE/bucket/$key ]]; then
    echo "fatal error: An error occurred (404) when calling the HeadObject operation: Key \"$key\" does not exist" >&2
    exit 1
fi
if [[ $dest == - ]]; then cat "$FAKE/bucket/$key"; else cp "$FAKE/bucket/$key" "$dest"; fi
""",
    "curl": r"""
echo "$*" >>"$FAKE/curl.log"
if [[ -f $FAKE/curl_down ]]; then
    echo "curl: (7) Failed to connect to 127.0.0.1 port 9000 after 0 ms: Connection refused" >&2
    exit 7
fi
[[ ${*: -1} == http://127.0.0.1:9000/info ]] || exit 22
echo '{"git_commit_hash":"abc"}'
""",
    "journalctl": r"""
echo "$*" >>"$FAKE/journalctl.log"
echo "worker[812]: thread 'main' panicked: failed to bind 0.0.0.0:9000: address in use"
""",
    # Exit 2 is cloud-init's "done, degraded": the install must go on.
    "cloud-init": r"""
echo "$*" >>"$FAKE/cloud-init.log"
exit 2
""",
}


@dataclass
class Machine:
    """A temporary root plus the stand-ins' state, and a way to run a script against both."""

    root: Path
    fake: Path
    env: dict[str, str]

    @property
    def binary(self) -> Path:
        return self.root / "usr/local/bin/worker"

    @property
    def unit(self) -> Path:
        return self.root / "etc/systemd/system/worker.service"

    @property
    def record(self) -> Path:
        return self.root / "var/lib/dfbench/worker.sha256"

    def publish(self, content: bytes, sha: str | None = None) -> str:
        """Put a worker in the fake bucket under its sha256 (or under ``sha`` to corrupt it)."""
        sha = sha or hashlib.sha256(content).hexdigest()
        path = self.fake / "bucket/.dfbench/artifacts/worker" / sha / "worker"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return sha

    def log(self, name: str) -> list[str]:
        path = self.fake / f"{name}.log"
        return path.read_text().splitlines() if path.exists() else []

    def run(self, script: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-c", script], env={**self.env, **env}, capture_output=True, text=True,
                              timeout=30, check=False)


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in STANDINS.items():
        path = bin_dir / name
        path.write_text("#!/bin/bash\nset -u\n" + body.lstrip())
        path.chmod(0o755)
    fake = tmp_path / "fake"
    fake.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "DFBENCH_ROOT": str(root),
           "FAKE": str(fake), "FAKE_BUCKET": BUCKET}
    env.pop("DFBENCH_READY_TIMEOUT", None)
    env["DFBENCH_S3_RETRY_DELAY"] = "0"  # the boot script's retries, without their pauses
    return Machine(root=root, fake=fake, env=env)


def install(machine: Machine, sha: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return machine.run(install_script(bucket=BUCKET, sha256=sha, region=REGION, **kwargs))


def stamps(*paths: Path) -> list[tuple[int, int]]:
    return [(p.stat().st_ino, p.stat().st_mtime_ns) for p in paths]


def test_install_verifies_the_binary_writes_the_exact_unit_and_starts_the_service(machine: Machine) -> None:
    content = b"\x7fELF worker v1"
    sha = machine.publish(content)

    result = install(machine, sha, args=["--threads", "8", "two words"], env={"RUST_LOG": "debug"})

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"dfbench: installed {sha}" == INSTALLED_MARKER + sha
    assert machine.binary.read_bytes() == content
    assert hashlib.sha256(machine.binary.read_bytes()).hexdigest() == sha
    assert machine.binary.stat().st_mode & 0o777 == 0o755
    assert sorted(p.name for p in machine.binary.parent.iterdir()) == ["worker"]
    assert machine.unit.read_text() == (
        "[Unit]\n"
        "Description=DataFusion Distributed benchmark worker\n"
        "After=network-online.target\n"
        "Wants=network-online.target\n"
        "\n"
        "[Service]\n"
        "ExecStartPre=/usr/local/lib/dfbench/pod-ip\n"
        "EnvironmentFile=-/run/dfbench/worker.env\n"
        "ExecStart=/usr/local/bin/worker --bucket bench-bucket --threads 8 'two words'\n"
        "Environment=AWS_REGION=eu-west-1\n"
        "Environment=RUST_LOG=debug\n"
        "Restart=always\n"
        "RestartSec=2\n"
        "User=root\n"
        "LimitNOFILE=1048576\n"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )
    assert machine.record.read_text() == f"{sha}\n"
    # The helpers a unit may run before each start are installed with it (--secret-env's too).
    for name, text in (("pod-ip", POD_IP_SCRIPT), ("secrets", SECRETS_SCRIPT)):
        helper = machine.root / "usr/local/lib/dfbench" / name
        assert helper.read_text() == text and helper.stat().st_mode & 0o777 == 0o755
    assert machine.log("cloud-init") == ["status --wait"]
    [download] = machine.log("aws")
    source, destination = download.rsplit(" ", 1)
    assert source == f"s3 cp --region {REGION} --only-show-errors s3://{BUCKET}/.dfbench/artifacts/worker/{sha}/worker"
    # Downloaded next to the target, so the final rename stays on one filesystem.
    assert destination.startswith(f"{machine.binary}.")
    assert machine.log("systemctl") == ["daemon-reload", "enable worker.service", "restart worker.service"]
    assert machine.log("curl") == ["-fsS --max-time 2 http://127.0.0.1:9000/info"]


def test_second_run_with_the_service_active_changes_nothing(machine: Machine) -> None:
    sha = machine.publish(b"worker v1")
    assert install(machine, sha).returncode == 0
    before = stamps(machine.binary, machine.unit, machine.record)
    calls = len(machine.log("systemctl")), len(machine.log("aws"))

    result = install(machine, sha)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"dfbench: worker {sha} already installed and active"
    assert stamps(machine.binary, machine.unit, machine.record) == before
    assert machine.log("systemctl")[calls[0]:] == ["is-active --quiet worker.service"]
    assert len(machine.log("aws")) == calls[1]


def test_an_inactive_service_is_restarted_without_downloading_again(machine: Machine) -> None:
    sha = machine.publish(b"worker v1")
    assert install(machine, sha).returncode == 0
    (machine.fake / "active").unlink()
    downloads = len(machine.log("aws"))

    result = install(machine, sha)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"dfbench: installed {sha}"
    assert machine.log("systemctl")[-1] == "restart worker.service"
    assert len(machine.log("aws")) == downloads


def test_force_restarts_an_installed_and_active_worker(machine: Machine) -> None:
    sha = machine.publish(b"worker v1")
    assert install(machine, sha).returncode == 0
    calls = len(machine.log("systemctl"))

    result = install(machine, sha, force=True)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"dfbench: installed {sha}"
    assert "already installed" not in result.stdout
    # The unit did not change: no daemon-reload, only enable and restart.
    assert machine.log("systemctl")[calls:] == ["enable worker.service", "restart worker.service"]


def test_a_corrupted_download_is_refused_and_the_previous_binary_stays(machine: Machine) -> None:
    good = b"worker v1"
    first = machine.publish(good)
    assert install(machine, first).returncode == 0
    wanted = hashlib.sha256(b"worker v2").hexdigest()
    machine.publish(b"worker v2, truncated in transit", sha=wanted)
    calls = len(machine.log("systemctl"))

    result = install(machine, wanted)

    assert result.returncode == 3
    assert f"expected {wanted}" in result.stderr
    assert "dfbench: installed" not in result.stdout
    assert machine.binary.read_bytes() == good
    assert sorted(p.name for p in machine.binary.parent.iterdir()) == ["worker"]
    assert machine.record.read_text() == f"{first}\n"
    assert machine.log("systemctl")[calls:] == []


def test_an_upgrade_replaces_the_binary_and_restarts(machine: Machine) -> None:
    assert install(machine, machine.publish(b"worker v1")).returncode == 0
    new = machine.publish(b"worker v2")
    calls = len(machine.log("systemctl"))

    result = install(machine, new)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"dfbench: installed {new}"
    assert machine.binary.read_bytes() == b"worker v2"
    assert machine.record.read_text() == f"{new}\n"
    assert machine.log("systemctl")[calls:] == ["enable worker.service", "restart worker.service"]


def test_changed_args_rewrite_the_unit_and_reload_systemd(machine: Machine) -> None:
    sha = machine.publish(b"worker v1")
    assert install(machine, sha, args=["--threads", "8"]).returncode == 0
    binary = stamps(machine.binary)
    calls = len(machine.log("systemctl"))
    secrets = machine.root / "run/dfbench/secrets.env"  # what the old unit's secrets helper wrote
    secrets.parent.mkdir(parents=True)
    secrets.write_text('TOKEN="old"\n')

    result = install(machine, sha, args=["--threads", "16"])

    assert result.returncode == 0, result.stderr
    assert not secrets.exists()  # the new unit names no secret: the old values are gone
    assert "ExecStart=/usr/local/bin/worker --bucket bench-bucket --threads 16\n" in machine.unit.read_text()
    assert machine.log("systemctl")[calls:] == [
        "daemon-reload", "enable worker.service", "restart worker.service"
    ]
    assert stamps(machine.binary) == binary


def test_worker_never_answering_fails_with_the_journal(machine: Machine) -> None:
    sha = machine.publish(b"worker v1")
    (machine.fake / "curl_down").touch()

    started = time.monotonic()
    result = machine.run(install_script(bucket=BUCKET, sha256=sha, region=REGION), DFBENCH_READY_TIMEOUT="1")

    assert result.returncode == 4
    assert time.monotonic() - started < 5
    assert "did not answer http://127.0.0.1:9000/info within 1s" in result.stderr
    assert "panicked: failed to bind 0.0.0.0:9000" in result.stderr
    assert machine.log("journalctl") == ["-u worker.service --no-pager -n 50"]
    assert len(machine.log("curl")) == 2
    assert "dfbench: installed" not in result.stdout


def test_a_start_that_fails_ends_the_install_with_the_journal(machine: Machine) -> None:
    """An ExecStartPre failing (a secret parameter unreadable) fails `systemctl restart`: the
    install says so with the journal at once, without waiting for /info."""
    sha = machine.publish(b"worker v1")
    (machine.fake / "start_fails").touch()

    result = install(machine, sha)

    assert result.returncode == 4
    assert "dfbench: worker.service did not start; last journal lines:" in result.stderr
    assert "panicked" in result.stderr  # the stand-in journal's line
    assert machine.log("journalctl") == ["-u worker.service --no-pager -n 50"]
    assert machine.log("curl") == [] and "dfbench: installed" not in result.stdout


def test_boot_without_a_published_worker_does_nothing(machine: Machine) -> None:
    result = machine.run(boot_script(bucket=BUCKET, region=REGION))

    assert result.returncode == 0, result.stderr
    assert "no worker published yet" in result.stdout
    assert machine.log("aws") == [(f"s3 cp --region {REGION} --only-show-errors "
                                  f"s3://{BUCKET}/.dfbench/artifacts/worker/latest -")]
    assert machine.log("systemctl") == []
    assert list(machine.root.iterdir()) == []


def test_boot_installs_the_latest_published_worker(machine: Machine) -> None:
    machine.publish(b"worker v1")
    latest = machine.publish(b"worker v2")
    (machine.fake / "bucket/.dfbench/artifacts/worker/latest").write_text(latest + "\n")

    result = machine.run(boot_script(bucket=BUCKET, region=REGION))

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"dfbench: installed {latest}"
    assert machine.binary.read_bytes() == b"worker v2"
    assert "ExecStart=/usr/local/bin/worker --bucket bench-bucket\n" in machine.unit.read_text()
    assert machine.log("systemctl")[-1] == "restart worker.service"
    # User data runs inside cloud-init: waiting for cloud-init there would wait for itself.
    assert machine.log("cloud-init") == []


def test_boot_installs_the_latest_worker_with_the_last_deploy_s_arguments(machine: Machine) -> None:
    sha = machine.publish(b"worker v3")
    unit = worker_unit(bucket=BUCKET, region=REGION, args=["--threads", "8", "it's"], env={"RUST_LOG": "debug"})
    (machine.fake / "bucket/.dfbench/artifacts/worker/latest").write_text(latest_record(sha, unit))

    result = machine.run(boot_script(bucket=BUCKET, region=REGION))

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"dfbench: installed {sha}"
    assert machine.unit.read_text() == unit  # byte for byte, final newline included
    # The deploy of the same build with the same arguments then has nothing to do.
    again = machine.run(install_script(bucket=BUCKET, sha256=sha, region=REGION, args=["--threads", "8", "it's"],
                                       env={"RUST_LOG": "debug"}))
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == f"dfbench: worker {sha} already installed and active"


def test_boot_fails_when_latest_cannot_be_read(machine: Machine) -> None:
    (machine.fake / "deny").touch()

    result = machine.run(boot_script(bucket=BUCKET, region=REGION))

    assert result.returncode == 1
    assert "(403)" in result.stderr
    assert "try 11 of 12" in result.stderr and "try 12" not in result.stderr
    assert len(machine.log("aws")) == 12  # about a minute at 5 s apart, then it gives up
    assert machine.log("systemctl") == []


def test_boot_waits_for_a_new_role_s_credentials_before_installing(machine: Machine) -> None:
    sha = machine.publish(b"worker v1")
    (machine.fake / "bucket/.dfbench/artifacts/worker/latest").write_text(sha + "\n")
    (machine.fake / "unready").mkdir()
    (machine.fake / "unready/latest").write_text("3")
    (machine.fake / "unready/worker").write_text("2")

    result = machine.run(boot_script(bucket=BUCKET, region=REGION))

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"dfbench: installed {sha}"
    assert machine.binary.read_bytes() == b"worker v1"
    reads = [line.split()[-2] for line in machine.log("aws")]
    assert [r.rsplit("/", 1)[1] for r in reads] == ["latest"] * 4 + ["worker"] * 3
    assert "reading s3://bench-bucket/.dfbench/artifacts/worker/latest failed (try 3 of 12)" in result.stderr
    assert "Unable to locate credentials" in result.stderr
    assert sorted(p.name for p in machine.binary.parent.iterdir()) == ["worker"]  # no temporary left


def test_a_deploy_does_not_retry_a_failed_download(machine: Machine) -> None:
    """The role of a deployed cluster is old: a deploy's failed download is a real fault, shown at once."""
    sha = machine.publish(b"worker v1")
    (machine.fake / "unready").mkdir()
    (machine.fake / "unready/worker").write_text("1")

    result = install(machine, sha)

    assert result.returncode != 0
    assert "Unable to locate credentials" in result.stderr
    assert len(machine.log("aws")) == 1 and not machine.binary.exists()


def test_install_needs_no_tool_amazon_linux_2023_minimal_lacks(machine: Machine, tmp_path: Path) -> None:
    """Only bash, coreutils and the stand-ins (systemctl, aws, curl, ...) on PATH: no cmp
    (diffutils), which AL2023's minimal images do not have. A second install of the same build
    then still finds the unit unchanged and does nothing."""
    tools = tmp_path / "al2023"
    tools.mkdir()
    for name in ("bash", "cat", "chmod", "cp", "date", "mkdir", "mktemp", "mv", "rm", "sha256sum", "sleep", "touch"):
        (tools / name).symlink_to(shutil.which(name))
    path = f"{machine.env['PATH'].split(os.pathsep)[0]}{os.pathsep}{tools}"
    sha = machine.publish(b"worker v1")
    first = machine.run(install_script(bucket=BUCKET, sha256=sha, region=REGION), PATH=path)
    assert first.returncode == 0, first.stderr

    again = machine.run(install_script(bucket=BUCKET, sha256=sha, region=REGION), PATH=path)

    assert again.returncode == 0, again.stderr
    assert "command not found" not in first.stderr + again.stderr
    assert again.stdout.splitlines()[-1] == f"dfbench: worker {sha} already installed and active"


TTL_STANDINS = {
    # The clock is $FAKE_NOW for `date +%s`; any other use of date is the real one.
    "date": '[[ $* == "+%s" ]] && { echo "$FAKE_NOW"; exit 0; }\nexec /bin/date "$@"\n',
    "systemd-run": 'echo "$*" >>"$FAKE/systemd-run.log"\n',
}


def test_the_time_to_live_is_armed_again_at_every_boot_from_the_first_boot_s_deadline(machine: Machine) -> None:
    bin_dir = Path(machine.env["PATH"].split(os.pathsep)[0])
    for name, body in TTL_STANDINS.items():
        (bin_dir / name).write_text("#!/bin/bash\nset -u\n" + body)
        (bin_dir / name).chmod(0o755)
    unit = machine.root / "etc/systemd/system/dfbench-ttl.service"
    check = machine.root / "usr/local/lib/dfbench/ttl-check"

    first = machine.run(ttl_script(1.5), FAKE_NOW="1000")  # first boot: 1.5 h = 5400 s from now
    assert first.returncode == 0, first.stderr
    assert "ExecStart=/usr/local/lib/dfbench/ttl-check 6400\n" in unit.read_text()
    assert "WantedBy=multi-user.target" in unit.read_text() and "1970-01-01 01:46:40 UTC" in unit.read_text()
    assert check.stat().st_mode & 0o111
    assert machine.log("systemctl") == ["daemon-reload", "enable dfbench-ttl.service"]
    assert machine.log("systemd-run") == [("--unit=dfbench-ttl-timer --description=dfbench time-to-live "
                                          "--on-active=5400s /usr/bin/systemctl poweroff")]

    # User data run again (cloud-init re-run by hand): the first deadline stands.
    again = machine.run(ttl_script(8), FAKE_NOW="2000")
    assert again.returncode == 0 and "ttl-check 6400" in unit.read_text() and len(machine.log("systemd-run")) == 1

    # A reboot before the deadline: the timer for what is left. One after it: power off at once.
    assert machine.run(f"{check} 6400", FAKE_NOW="3000").returncode == 0
    assert machine.log("systemd-run")[-1].endswith("--on-active=3400s /usr/bin/systemctl poweroff")
    assert machine.run(f"{check} 6400", FAKE_NOW="7000").returncode == 0
    assert machine.log("systemctl")[-1] == "poweroff" and len(machine.log("systemd-run")) == 2


def test_unit_words_stay_literal_for_systemd() -> None:
    unit = worker_unit(bucket=BUCKET, region=REGION, args=["50%", "$HOME", "it's", "a\\b"],
                       env={"OPTS": "a b", "PRICE": "5$"})
    lines = unit.splitlines()
    assert "ExecStart=/usr/local/bin/worker --bucket bench-bucket 50%% '$$HOME' \"it's\" 'a\\\\b'" in lines
    assert "Environment='OPTS=a b'" in lines
    assert "Environment='PRICE=5$'" in lines


@pytest.mark.parametrize("key", ["lower", "1ABC", "A-B", ""])
def test_invalid_environment_names_are_refused(key: str) -> None:
    with pytest.raises(ConfigError, match="environment variable name"):
        install_script(bucket=BUCKET, sha256="a" * 64, region=REGION, env={key: "x"})


@pytest.mark.parametrize("kwargs", [{"sha256": "A" * 64}, {"sha256": "abc"}, {"args": ["a\nb"]}])
def test_invalid_sha_or_multiline_args_are_refused(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        install_script(**{"bucket": BUCKET, "sha256": "a" * 64, "region": REGION, **kwargs})


SCRIPTS = {
    "install": lambda: install_script(bucket=BUCKET, sha256="a" * 64, region=REGION, args=["--x", "y z"],
                                      env={"RUST_LOG": "info"}, force=True),
    "boot": lambda: boot_script(bucket=BUCKET, region=REGION),
    "time-to-live": lambda: ttl_script(2.5),
    "pod-ip": lambda: POD_IP_SCRIPT,
    "secrets": lambda: SECRETS_SCRIPT,
}


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_parse(name: str) -> None:
    result = subprocess.run(["bash", "-n"], input=SCRIPTS[name](), capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_pass_shellcheck(name: str) -> None:
    result = subprocess.run([system_tool("shellcheck"), "--shell=bash", "-"], input=SCRIPTS[name](),
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


# --- POD_IP at every start, and the stand-in workers run as the unit runs them ----------------

STANDIN_WORKERS = Path(__file__).parent / "standins"
RECORD = "workers.mine.eu-west-1.dfbench.internal"


@pytest.fixture
def imds() -> Iterator[Imds]:
    with Imds("10.0.3.7") as server:
        yield server


def unit_directives(unit: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in unit.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            found.setdefault(key, []).append(value)
    return found


def start_pre(machine: Machine, unit: dict[str, list[str]], imds_url: str) -> subprocess.CompletedProcess[str]:
    """The unit's ExecStartPre, run as systemd runs it, with the real curl (not the stand-in)."""
    [helper] = unit["ExecStartPre"]
    return subprocess.run([str(machine.root / helper.lstrip("/"))], capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ["PATH"], "DFBENCH_ROOT": str(machine.root),
                               "DFBENCH_IMDS_URL": imds_url}, check=False)


def unit_environment(machine: Machine, unit: dict[str, list[str]]) -> dict[str, str]:
    """Environment= then the EnvironmentFile (a leading - : optional), as systemd assembles them."""
    env = dict(value.split("=", 1) for value in unit.get("Environment", []))
    for file in unit.get("EnvironmentFile", []):
        path = machine.root / file.lstrip("-").lstrip("/")
        if path.exists():
            env.update(line.split("=", 1) for line in path.read_text().splitlines() if line)
    return env


def test_pod_ip_is_read_from_imdsv2_at_every_start(machine: Machine, imds: Imds) -> None:
    sha = machine.publish(b"\x7fELF current worker")
    assert install(machine, sha, kind="current", dns_name=RECORD).returncode == 0
    unit = unit_directives(machine.unit.read_text())
    assert unit["ExecStart"] == [f"/usr/local/bin/worker --bucket {BUCKET} --worker-dns-name {RECORD}"]
    assert unit["EnvironmentFile"] == ["-/run/dfbench/worker.env"]
    # Nothing is baked at deploy time: the address exists only once a start has asked IMDS.
    assert not (machine.root / "run").exists() and "POD_IP" not in machine.unit.read_text()

    first = start_pre(machine, unit, imds.url)
    assert first.returncode == 0, first.stderr
    env_file = machine.root / "run/dfbench/worker.env"
    assert env_file.read_text() == "POD_IP=10.0.3.7\n" and env_file.stat().st_mode & 0o777 == 0o644
    assert imds.requests == [("PUT", "/latest/api/token"), ("GET", "/latest/meta-data/local-ipv4")]
    assert unit_environment(machine, unit) == {"AWS_REGION": REGION, "POD_IP": "10.0.3.7"}

    # Another start after the address changed (a stopped and started instance): the new one.
    imds.address = "10.0.9.1"
    assert start_pre(machine, unit, imds.url).returncode == 0
    assert env_file.read_text() == "POD_IP=10.0.9.1\n"
    assert sorted(p.name for p in env_file.parent.iterdir()) == ["worker.env"]

    # An answer that is no address fails the start, and the file keeps the last good one.
    imds.address = "<html>proxy</html>"
    failed = start_pre(machine, unit, imds.url)
    assert failed.returncode == 1 and "not an IPv4 address" in failed.stderr
    assert env_file.read_text() == "POD_IP=10.0.9.1\n"


def run_installed_worker(machine: Machine, unit: dict[str, list[str]], env: dict[str, str]) -> subprocess.Popen:
    [command] = unit["ExecStart"]
    program, *args = shlex.split(command)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return subprocess.Popen([str(machine.root / program.lstrip("/")), *args, "--port", str(port)],
                            env={"PATH": os.environ["PATH"], "PYTHONPATH": str(STANDIN_WORKERS), **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def worker_info(process: subprocess.Popen, port: int) -> dict:
    deadline = time.monotonic() + 20
    while True:
        assert process.poll() is None, process.communicate()[1]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/info", timeout=5) as answer:
                return json.loads(answer.read())
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_current_standin_runs_under_the_unit_and_finds_its_peers_by_the_name(machine: Machine, imds: Imds,
                                                                               tmp_path: Path) -> None:
    sha = machine.publish((STANDIN_WORKERS / "worker_current.py").read_bytes())
    assert install(machine, sha, kind="current", dns_name=RECORD).returncode == 0
    assert machine.binary.stat().st_mode & 0o777 == 0o755
    unit = unit_directives(machine.unit.read_text())
    hosts = tmp_path / "hosts"
    hosts.write_text(f"10.0.3.7 {RECORD}\n10.0.3.8 {RECORD}\n")
    seams = {"DFBENCH_STANDIN_RESOLVE": str(hosts)}

    # Started without the helper having run: no POD_IP, and the worker refuses, as upstream's does.
    refused = run_installed_worker(machine, unit, {**unit_environment(machine, unit), **seams})
    _, stderr = refused.communicate(timeout=30)
    assert refused.returncode == 1 and "POD_IP is not set" in stderr

    assert start_pre(machine, unit, imds.url).returncode == 0
    process = run_installed_worker(machine, unit, {**unit_environment(machine, unit), **seams})
    try:
        port = int(process.args[-1])
        assert worker_info(process, port)["worker_urls"] == ["http://10.0.3.7:9001/", "http://10.0.3.8:9001/"]
    finally:
        process.terminate()
        process.communicate(timeout=10)


def test_tag_discovery_unit_passes_the_bucket_only(machine: Machine) -> None:
    sha = machine.publish((STANDIN_WORKERS / "worker_tag_discovery.py").read_bytes())
    assert install(machine, sha, kind="tag-discovery").returncode == 0
    unit = unit_directives(machine.unit.read_text())
    assert unit["ExecStart"] == [f"/usr/local/bin/worker --bucket {BUCKET}"]
    with pytest.raises(ConfigError, match="takes no DNS name"):
        install_script(bucket=BUCKET, sha256=sha, region=REGION, kind="tag-discovery", dns_name=RECORD)
    with pytest.raises(ConfigError, match="needs a DNS name"):
        install_script(bucket=BUCKET, sha256=sha, region=REGION, kind="current")
