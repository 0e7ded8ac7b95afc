"""The worker binary: build it (optional), check it is a Linux x86-64 executable, publish it to S3,
install it on every instance of a cluster through SSM Run Command and check that it serves; and
commands and logs on the instances (``exec_command``, ``logs``).

Published artifacts are content-addressed::

    s3://<bucket>/.dfbench/artifacts/worker/<sha256>/worker    the binary, sha256 also in its metadata
    s3://<bucket>/.dfbench/artifacts/worker/latest             the sha256 of the last one published,
                                                               then the worker.service it runs under

so publishing the same binary twice uploads nothing, and an instance's boot script installs
whatever ``latest`` names (see ``dfbench.worker_script``).
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import shutil
import struct
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from s3transfer.manager import TransferManager
from s3transfer.subscribers import BaseSubscriber

from dfbench.provision import status as cluster_status
from dfbench.aws import ssm
from dfbench.aws.session import connect, default_region
from dfbench.datasets import _missing_bucket, _progress, sha256_file
from dfbench import health
from dfbench.errors import (BuildFailed, ClusterNotFound, CommandFailed, ConfigError, WorkersDisagree, aws_errors,
                            error_code)
from dfbench.models import Cluster, Instance, Record
from dfbench.worker_script import (ARTIFACT_PREFIX, INSTALLED_MARKER, LATEST_KEY, install_script, latest_record,
                                   worker_unit)

log = logging.getLogger("dfbench")

TARGET = "x86_64-unknown-linux-gnu"
# The seed's build: zig as the linker gives a Linux x86-64 binary from macOS or ARM machines too.
DEFAULT_BUILD_COMMAND = ["cargo", "zigbuild", "-p", "datafusion-distributed-benchmarks", "--release",
                         "--bin", "worker", "--target", TARGET]
DEFAULT_OUTPUT = f"target/{TARGET}/release/worker"
_BUILD = " ".join(DEFAULT_BUILD_COMMAND)
_CROSS_COMPILE = f"the cluster runs Linux on x86-64: cross-compile with `{_BUILD}`"
_ZIGBUILD_SETUP = (f"`cargo install --locked cargo-zigbuild`, `rustup target add {TARGET}` and zig "
                   "(`pip install ziglang`, or https://ziglang.org/download/)")
_RUST_INSTALL = ("cargo is not on PATH. Install Rust with rustup (https://rustup.rs): "
                 "`curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh` (if it is installed, add "
                 f"~/.cargo/bin to PATH); the worker build then also needs {_ZIGBUILD_SETUP}.")
_NO_ZIGBUILD = "no such command: `zigbuild`"
_TAIL_LINES = 30

# Multipart above 16 MiB (a DataFusion release binary is larger), in 8 MiB parts sent in parallel.
_TRANSFER = TransferConfig(multipart_threshold=16 * 1024 * 1024, multipart_chunksize=8 * 1024 * 1024,
                           max_concurrency=8, use_threads=True)


class Build(Record):
    """A worker built from a checkout. ``commit``/``branch``/``dirty`` are None when the folder is
    not a git checkout (or git is not installed); they describe the sources as the build began."""

    binary: Path
    sha256: str
    size: int
    commit: str | None
    branch: str | None  # None also for a detached HEAD
    dirty: bool | None
    built_at: datetime


class Artifact(Record):
    """A worker binary in the bucket; ``uploaded`` is False when it was there already."""

    sha256: str
    key: str
    size: int
    uploaded: bool
    url: str


def artifact_key(sha256: str) -> str:
    return f"{ARTIFACT_PREFIX}/{sha256}/worker"


# ---------------------------------------------------------------------------------------------
# build


def _git(repo: Path, *args: str) -> str | None:
    """A git command's output in ``repo``; None when git is missing or ``repo`` is no checkout."""
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _run_build(command: list[str], repo: Path) -> None:
    """Run the build in ``repo``, echoing its output as it comes; keep the tail for the error."""
    process = subprocess.Popen(command, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               errors="replace")
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    zigbuild_missing = False
    try:
        assert process.stdout is not None
        for line in process.stdout:
            sys.stderr.write(line)
            sys.stderr.flush()
            tail.append(line.rstrip())
            zigbuild_missing = zigbuild_missing or _NO_ZIGBUILD in line
        code = process.wait()
    except BaseException:
        process.kill()
        process.wait()
        raise
    if code == 0:
        return
    if zigbuild_missing:
        raise ConfigError(f"cargo has no zigbuild subcommand, which the worker build uses. Install it: "
                          f"{_ZIGBUILD_SETUP}.")
    raise BuildFailed(command, code, list(tail), str(repo))


def build_worker(repo_dir: str | Path, *, command: Sequence[str] = DEFAULT_BUILD_COMMAND,
                 output: str | Path = DEFAULT_OUTPUT) -> Build:
    """Build the worker in the user's datafusion-distributed checkout and describe the result.

    ``output`` is relative to ``repo_dir`` (or absolute). The binary must come out as a Linux
    x86-64 executable (:func:`check_binary`).
    """
    repo = Path(repo_dir).resolve()
    argv = list(command)
    if not repo.is_dir():
        raise ConfigError(f"{repo} is not a folder: pass your datafusion-distributed checkout to build the worker.")
    if not argv:
        raise ConfigError("The build command is empty: pass the command that builds the worker.")
    if shutil.which(argv[0]) is None:
        if Path(argv[0]).name == "cargo":
            raise ConfigError(_RUST_INSTALL)
        raise ConfigError(f"`{argv[0]}` (the build command) is not on PATH: install it or change the command.")
    # Read before building: the build itself may add files git sees (an output folder that is not
    # ignored), and the record is about the sources that were compiled.
    commit = _git(repo, "rev-parse", "HEAD")
    branch = _git(repo, "rev-parse", "--abbrev-ref", "HEAD")
    status = _git(repo, "status", "--porcelain")
    log.info("building the worker in %s: %s", repo, " ".join(argv))
    _run_build(argv, repo)
    binary = repo / output
    if not binary.is_file():
        raise ConfigError(f"`{' '.join(argv)}` succeeded but wrote no file at {binary}: "
                          "pass the path the build writes as output.")
    sha = check_binary(binary)
    return Build(binary=binary, sha256=sha, size=binary.stat().st_size, commit=commit,
                 branch=None if branch == "HEAD" else branch, dirty=None if status is None else bool(status),
                 built_at=datetime.now(UTC))


# ---------------------------------------------------------------------------------------------
# check: the ELF header (https://refspecs.linuxfoundation.org/elf/gabi4+/ch4.eheader.html)

_ELF_MAGIC = b"\x7fELF"
_ELF_CLASSES = {1: "32-bit", 2: "64-bit"}  # EI_CLASS
_ELF_BYTE_ORDER = {1: "<", 2: ">"}  # EI_DATA
_EM_X86_64 = 0x3E
_ET_EXEC, _ET_DYN = 2, 3  # a classic executable, a position-independent one (what Rust links)
_LINUX_ABIS = {0, 3}  # EI_OSABI: System V (what Rust emits), GNU/Linux
_MACHINES = {0x03: "x86 (32-bit)", 0x08: "MIPS", 0x14: "PowerPC", 0x15: "PowerPC 64", 0x16: "s390x",
             0x28: "ARM (32-bit)", 0x3E: "x86-64", 0xB7: "aarch64 (arm64)", 0xF3: "RISC-V"}
_OTHER_ABIS = {1: "HP-UX", 2: "NetBSD", 6: "Solaris", 9: "FreeBSD", 12: "OpenBSD"}
_ELF_TYPES = {0: "of no type", 1: "relocatable object (.o)", 4: "core dump"}
# Mach-O, 32 and 64 bit in either byte order, and universal ("fat") binaries.
_MACHO_MAGICS = {bytes.fromhex(m) for m in ("feedface", "feedfacf", "cefaedfe", "cffaedfe", "cafebabe")}


def _header_problem(header: bytes) -> str | None:
    """Why a file starting with ``header`` is not a Linux x86-64 executable, or None if it is."""
    rebuild = f"build the worker with `{_BUILD}`"
    if not header:
        return f"an empty file (an interrupted build or copy?): {rebuild}"
    if header[:4] in _MACHO_MAGICS:
        return f"a macOS binary (Mach-O): {_CROSS_COMPILE}"
    if header[:2] == b"#!":
        return f"a script, not the compiled worker: {rebuild}"
    if header[:2] == b"MZ":
        return f"a Windows executable: {_CROSS_COMPILE}"
    if header[:4] != _ELF_MAGIC:
        return f"not an executable (no ELF header): {rebuild}"
    if len(header) < 20 or header[4] not in _ELF_CLASSES or header[5] not in _ELF_BYTE_ORDER:
        return f"a truncated or corrupt ELF file: {rebuild}"
    e_type, e_machine = struct.unpack_from(f"{_ELF_BYTE_ORDER[header[5]]}HH", header, 16)
    bits = _ELF_CLASSES[header[4]]
    if e_machine != _EM_X86_64 or bits != "64-bit":
        arch = _MACHINES.get(e_machine, f"machine type {e_machine:#x}")
        return f"a {bits} ELF binary for {arch}: {_CROSS_COMPILE}"
    if header[7] not in _LINUX_ABIS:
        system = _OTHER_ABIS.get(header[7], f"OS ABI {header[7]}")
        return f"an x86-64 binary for {system}, not Linux: {_CROSS_COMPILE}"
    if e_type not in (_ET_EXEC, _ET_DYN):
        kind = _ELF_TYPES.get(e_type, f"of type {e_type:#x}")
        return f"an ELF {kind}, not a linked executable: {rebuild}"
    return None


def check_binary(path: str | Path) -> str:
    """The sha256 of ``path`` once its header shows a Linux x86-64 ELF executable; ConfigError
    (saying how to build or cross-compile one) for anything else."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            header = handle.read(64)  # the whole ELF64 header
    except FileNotFoundError:
        raise ConfigError(f"No worker binary at {path}. Build it in your datafusion-distributed checkout with "
                          f"`{_BUILD}` (it is written to {DEFAULT_OUTPUT}).") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder: pass the worker binary ({DEFAULT_OUTPUT} in your checkout).") from None
    problem = _header_problem(header)
    if problem is not None:
        raise ConfigError(f"{path} is not a Linux x86-64 executable: it is {problem}.")
    return sha256_file(path)


# ---------------------------------------------------------------------------------------------
# publish


class _Advance(BaseSubscriber):  # type: ignore[misc]
    def __init__(self, advance: Callable[[int], None]) -> None:
        self._advance = advance

    def on_progress(self, future: Any, bytes_transferred: int, **_: Any) -> None:
        self._advance(bytes_transferred)


def _stored_size(s3: Any, bucket: str, key: str) -> int | None:
    try:
        return int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
    except ClientError as error:
        # HEAD answers carry no body, so a missing key and a missing bucket both read "404";
        # the upload that follows tells them apart.
        if error_code(error) in {"404", "NoSuchKey"}:
            return None
        raise


def _upload(s3: Any, path: Path, bucket: str, key: str, sha256: str, size: int, progress: bool) -> None:
    with _progress(progress, transfer=True) as bar, TransferManager(s3, _TRANSFER) as manager:
        task = bar.add_task(f"upload worker → s3://{bucket}/{key}", total=size, files="")
        future = manager.upload(str(path), bucket, key,
                                extra_args={"Metadata": {"sha256": sha256}, "ContentType": "application/octet-stream"},
                                subscribers=[_Advance(lambda n: bar.advance(task, n))])
        future.result()


def publish_worker(binary: str | Path, *, bucket: str, region: str | None = None, profile: str | None = None,
                   args: Sequence[str] = (), env: Mapping[str, str] | None = None,
                   progress: bool = True) -> Artifact:
    """Upload the worker binary to ``s3://<bucket>/.dfbench/artifacts/worker/<sha256>/worker``
    unless it is there already, and point ``.dfbench/artifacts/worker/latest`` at it, with the
    ``worker.service`` for ``args`` and ``env`` (what instances booting later install).

    The binary is checked first: nothing reaches S3 for a file that could not run on the cluster.
    """
    path = Path(binary)
    sha = check_binary(path)
    size = path.stat().st_size
    key = artifact_key(sha)
    region = default_region(region)
    record = latest_record(sha, worker_unit(bucket=bucket, region=region, args=args, env=env))
    aws = connect(region=region, profile=profile)
    with aws_errors(profile):
        s3 = aws.client("s3")
        try:
            stored = _stored_size(s3, bucket, key)
            uploaded = stored != size
            if stored is not None and uploaded:
                # Same sha, other size: not what publish wrote (a foreign or damaged object).
                log.warning("s3://%s/%s holds %d bytes, not %d: uploading it again", bucket, key, stored, size)
            if uploaded:
                _upload(s3, path, bucket, key, sha, size, progress)
            s3.put_object(Bucket=bucket, Key=LATEST_KEY, Body=record.encode(), ContentType="text/plain")
        except ClientError as error:
            if error_code(error) == "NoSuchBucket":
                raise _missing_bucket(bucket) from None
            raise
    log.info("worker %s %s s3://%s/%s", sha[:12], "uploaded to" if uploaded else "already in", bucket, key)
    return Artifact(sha256=sha, key=key, size=size, uploaded=uploaded, url=f"s3://{bucket}/{key}")


# ---------------------------------------------------------------------------------------------
# deploy, exec, logs: one SendCommand per call, to the cluster by tag (aws/ssm.py)

# Instances SSM can reach now or soon; a stopped one never comes online.
_REACHABLE_STATES = ("pending", "running")
# Enough of a failed instance's output for its tail, whatever the size of the whole log.
_TAIL_BYTES = 16 * 1024
VERIFY_TIMEOUT_S = 120
EXEC_TIMEOUT_S = 600
_INFO_SCRIPT = "curl -fsS --max-time 5 http://127.0.0.1:9000/info\n"
# journalctl --since accepts absolute times ("2026-01-31 12:00:00"), relative ones ("-1h",
# "1 hour ago"), "@<unix seconds>" and words (today, yesterday): nothing else needs other characters.
_SINCE = re.compile(r"^[A-Za-z0-9 :+.@-]{1,64}$")
_MAX_LOG_LINES = 100_000

Installed = Literal["installed", "already", "failed"]

# The install script's exit codes (dfbench.worker_script), and what they mean for the user.
_EXIT_HINTS = {
    3: "the downloaded binary's sha256 is wrong: the artifact in S3 is damaged or was replaced (the "
       "installed binary is kept); delete it and deploy again to upload it anew",
    4: "the worker did not answer http://127.0.0.1:9000/info after its restart: its journal is above "
       "(`dfbench logs` shows more)",
}


class InstanceDeploy(Record):
    """The deploy on one instance. ``installed`` is "already" when that sha was installed and running
    (nothing was restarted), "failed" whenever the script did not end with its success line."""

    instance_id: str
    name: str | None
    status: str  # SSM's CommandInvocation Status
    status_details: str
    exit_code: int | None
    installed: Installed
    output_tail: str
    output_url: str | None
    commit: str | None = None  # git_commit_hash from the worker's /info, once verified

    @property
    def ok(self) -> bool:
        return self.installed != "failed"

    @property
    def label(self) -> str:
        return f"{self.instance_id} ({self.name})" if self.name else self.instance_id


class DeployReport(Record):
    """What ``deploy_worker`` did. ``verified`` is None when the workers were not checked
    (``verify=False``, or the install failed somewhere); ``problems`` are what the check found."""

    cluster: str
    region: str
    sha256: str
    uploaded: bool
    artifact_url: str
    build: Build | None
    command_id: str
    results: list[InstanceDeploy]
    verified: bool | None
    problems: list[str]

    @property
    def failed(self) -> list[InstanceDeploy]:
        return [r for r in self.results if not r.ok]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.problems

    def raise_for_failures(self) -> None:
        """CommandFailed naming every instance where the install failed, with its status, exit
        code, what that means, its last output lines and full-output URL; WorkersDisagree when
        the install succeeded everywhere but the workers' /info did not check out."""
        failed = self.failed
        if failed:
            first = failed[0]
            raise CommandFailed(first.instance_id, first.exit_code, first.output_tail, status=first.status,
                                failed=tuple(r.instance_id for r in failed),
                                details="\n".join(_describe_failure(r, self.sha256) for r in failed))
        if self.problems:
            raise WorkersDisagree(self.cluster, self.problems)


class CommandOutput(Record):
    """A command's result on one instance. ``complete`` is False when SSM cut the output and S3
    did not have the rest: ``stdout``/``stderr`` then hold the beginning only."""

    instance_id: str
    name: str | None
    status: str
    status_details: str
    exit_code: int | None
    stdout: str
    stderr: str
    complete: bool
    output_url: str | None

    @property
    def ok(self) -> bool:
        return self.status == "Success"

    @property
    def label(self) -> str:
        return f"{self.instance_id} ({self.name})" if self.name else self.instance_id


def _describe_failure(result: InstanceDeploy, sha256: str) -> str:
    code = "no exit code" if result.exit_code is None else f"exit code {result.exit_code}"
    if result.status == "Success":
        hint = f"the script ended without printing `{INSTALLED_MARKER}{sha256}`"
    elif result.status == "Failed":
        hint = _EXIT_HINTS.get(result.exit_code or 0, "")
    else:
        hint = ssm.failure_hint(result.status, result.status_details)
    lines = [f"  {result.label}: {result.status} ({code})" + (f": {hint}" if hint else "")]
    lines += [f"    | {line}" for line in result.output_tail.splitlines()]
    if result.output_url:
        lines.append(f"    full output: {result.output_url}")
    return "\n".join(lines)


def _resolve(cluster: Cluster | str, region: str | None, profile: str | None) -> Cluster:
    if isinstance(cluster, Cluster):
        return cluster
    found = cluster_status(cluster, region=region, profile=profile)
    if found is None:
        raise ClusterNotFound(cluster, default_region(region))
    return found


def _targets(cluster: Cluster) -> list[Instance]:
    """The instances a command reaches, once the cluster can take one at all."""
    again = f"`dfbench provision --cluster {cluster.name} --region {cluster.region}`"
    if not cluster.instances:
        raise ConfigError(f"Cluster {cluster.name!r} ({cluster.region}) has no instances: {again} launches them.")
    stopped = [i for i in cluster.instances if i.state not in _REACHABLE_STATES]
    if stopped:
        listed = ", ".join(f"{i.instance_id} ({i.name}, {i.state})" for i in stopped)
        raise ConfigError(f"SSM cannot reach stopped instances of cluster {cluster.name!r}: {listed}. "
                          f"{again} starts them.")
    if not cluster.bucket:
        raise ConfigError(f"Cluster {cluster.name!r} has no bucket on record (a partly provisioned cluster): "
                          f"{again} completes it.")
    return cluster.instances


def _send(cluster: Cluster, instances: Sequence[Instance], *, script: str, comment: str, timeout_s: int,
          profile: str | None) -> tuple[Any, list[ssm.Invocation]]:
    """One command on every instance, output to the cluster's bucket; the S3 client is returned
    for reading what SSM cut."""
    aws = connect(region=cluster.region, profile=profile)
    with aws_errors(profile):
        invocations = ssm.run_command(aws.client("ssm"), cluster=cluster.name,
                                      instance_ids=[i.instance_id for i in instances], script=script,
                                      comment=comment, output_bucket=cluster.bucket, output_prefix=ssm.OUTPUT_PREFIX,
                                      execution_timeout_s=timeout_s)
    return aws.client("s3"), invocations


def _outcome(invocation: ssm.Invocation, sha256: str) -> Installed:
    """Read from the last line the install script prints (dfbench.worker_script)."""
    if not invocation.ok or invocation.stdout_cut:
        return "failed"
    last = invocation.stdout.rstrip("\n").rpartition("\n")[2]
    if last == f"{INSTALLED_MARKER}{sha256}":
        return "installed"
    if last == f"dfbench: worker {sha256} already installed and active":
        return "already"
    return "failed"


def deploy_worker(
    cluster: Cluster | str, *, binary: str | Path | None = None, build_dir: str | Path | None = None,
    args: Sequence[str] = (), env: Mapping[str, str] | None = None, force_restart: bool = False,
    verify: bool = True, region: str | None = None, profile: str | None = None,
    timeout_s: int = ssm.EXECUTION_TIMEOUT_S, progress: bool = True,
) -> DeployReport:
    """Install the worker on every instance of ``cluster`` (a Cluster, or a name looked up in
    ``region``) and run it as ``worker.service`` with ``args`` and ``env``.

    ``binary`` is the cross-compiled worker, or ``build_dir`` a datafusion-distributed checkout
    to build it in. The binary is published to the cluster's bucket by sha256 (uploaded only when
    absent), then ONE SendCommand installs it everywhere: instances that run that sha already
    restart nothing unless ``force_restart``. With ``verify``, a second command reads every
    worker's /info: one commit everywhere, and each worker knows every instance.

    Failures on instances do not raise: the report says where (``report.ok``, ``report.failed``),
    and ``report.raise_for_failures()`` turns them into an error. Everything that can be checked
    locally (the cluster, its instances, the binary, args and env) is, before any upload."""
    if (binary is None) == (build_dir is None):
        raise ConfigError("Pass either the worker binary (binary=, --binary) or a datafusion-distributed checkout "
                          "to build it in (build_dir=, --build).")
    if binary is not None:
        check_binary(binary)  # a wrong local file fails before any AWS call
    found = _resolve(cluster, region, profile)
    instances = _targets(found)
    worker_unit(bucket=found.bucket, region=found.region, args=args, env=env)  # refuses bad args and env
    build = build_worker(build_dir) if build_dir is not None else None
    source = build.binary if build is not None else binary
    assert source is not None  # one of the two, checked above
    # publish_worker checks the binary before its first S3 call.
    artifact = publish_worker(source, bucket=found.bucket, region=found.region, profile=profile, args=args, env=env,
                              progress=progress)
    sha = artifact.sha256
    script = install_script(bucket=found.bucket, sha256=sha, region=found.region, args=args, env=env,
                            force=force_restart)
    log.info("installing worker %s on %d instance(s) of %s", sha[:12], len(instances), found.name)
    s3, invocations = _send(found, instances, script=script, comment=f"dfbench: deploy worker {sha[:12]}",
                            timeout_s=timeout_s, profile=profile)
    # The outcome is the output's last line: where SSM kept only the beginning, or the install
    # failed, the end is read from S3 (only there, so a deploy that went well reads nothing).
    unsure = [i for i, inv in enumerate(invocations) if _outcome(inv, sha) == "failed"]
    with aws_errors(profile):
        for index, full in zip(unsure, ssm.read_output(s3, [invocations[i] for i in unsure], last_bytes=_TAIL_BYTES),
                               strict=True):
            invocations[index] = full
    names = {i.instance_id: i.name for i in found.instances}
    results = [InstanceDeploy(instance_id=inv.instance_id, name=names.get(inv.instance_id), status=inv.status,
                              status_details=inv.status_details, exit_code=inv.exit_code,
                              installed=_outcome(inv, sha), output_tail=inv.output_tail, output_url=inv.output_url)
               for inv in invocations]
    verified: bool | None = None
    problems: list[str] = []
    if verify and all(r.ok for r in results):
        commits, problems = _verify(found, instances, profile)
        results = [r.model_copy(update={"commit": commits.get(r.instance_id)}) for r in results]
        verified = not problems
    report = DeployReport(cluster=found.name, region=found.region, sha256=sha, uploaded=artifact.uploaded,
                          artifact_url=artifact.url, build=build, command_id=invocations[0].command_id,
                          results=results, verified=verified, problems=problems)
    log.info("worker %s: %d installed, %d already running, %d failed%s", sha[:12],
             sum(r.installed == "installed" for r in results), sum(r.installed == "already" for r in results),
             len(report.failed), "" if verified is None else "; verified" if verified else "; NOT verified")
    return report


def _verify(cluster: Cluster, instances: Sequence[Instance],
            profile: str | None) -> tuple[dict[str, str], list[str]]:
    """Every worker's /info, read on its instance: the commit each one reports, and what is wrong
    with the cluster (see :func:`dfbench.health.judge`)."""
    outputs = _collect(cluster, instances, script=_INFO_SCRIPT, comment="dfbench: verify worker /info",
                       timeout_s=VERIFY_TIMEOUT_S, profile=profile)
    infos: dict[str, dict[str, Any] | str] = {}
    for out in outputs:
        if not out.ok:
            last = (out.stderr or out.stdout).strip().rpartition("\n")[2]
            infos[out.instance_id] = f"{out.status}: {last}"
            continue
        try:
            infos[out.instance_id] = json.loads(out.stdout)
        except ValueError:
            infos[out.instance_id] = f"not JSON: {out.stdout.strip()[:200]}"
    healths = health.judge(instances, infos)
    return {h.instance_id: h.commit for h in healths if h.commit}, health.problems_text(healths)


def _collect(cluster: Cluster, instances: Sequence[Instance], *, script: str, comment: str, timeout_s: int,
             profile: str | None) -> list[CommandOutput]:
    s3, invocations = _send(cluster, instances, script=script, comment=comment, timeout_s=timeout_s,
                            profile=profile)
    with aws_errors(profile):
        invocations = ssm.read_output(s3, invocations)
    names = {i.instance_id: i.name for i in cluster.instances}
    return [CommandOutput(instance_id=inv.instance_id, name=names.get(inv.instance_id), status=inv.status,
                          status_details=inv.status_details, exit_code=inv.exit_code, stdout=inv.stdout,
                          stderr=inv.stderr, complete=not (inv.stdout_cut or inv.stderr_cut),
                          output_url=inv.output_url)
            for inv in invocations]


def exec_command(cluster: Cluster | str, command: str | Sequence[str], *, region: str | None = None,
                 profile: str | None = None, timeout_s: int = EXEC_TIMEOUT_S) -> list[CommandOutput]:
    """Run ``command`` as root on every instance of ``cluster``: a string is shell text (pipes and
    all), a list is one command whose words are quoted. Returns each instance's whole stdout,
    stderr and exit code; a non-zero exit does not raise (exported as ``dfbench.exec``)."""
    text = command if isinstance(command, str) else shlex.join(command)
    if not text.strip():
        raise ConfigError("The command to run on the instances is empty.")
    found = _resolve(cluster, region, profile)
    return _collect(found, _targets(found), script=text + "\n", comment=f"dfbench exec: {text}",
                    timeout_s=timeout_s, profile=profile)


def logs(cluster: Cluster | str, *, lines: int = 200, since: str | None = None, region: str | None = None,
         profile: str | None = None) -> list[CommandOutput]:
    """The last ``lines`` lines of ``worker.service``'s journal on every instance, from ``since``
    on when given (any time journalctl accepts: "-1h", "2026-01-31 12:00", "today")."""
    if not 1 <= lines <= _MAX_LOG_LINES:
        raise ConfigError(f"lines must be between 1 and {_MAX_LOG_LINES}, not {lines}.")
    if since is not None and not _SINCE.match(since):
        raise ConfigError(f"Not a time journalctl --since accepts: {since!r} (e.g. -1h, \"2026-01-31 12:00\", "
                          "today; letters, digits, spaces and : + . @ - only).")
    words = ["journalctl", "-u", "worker.service", "--no-pager", "-n", str(lines)]
    found = _resolve(cluster, region, profile)
    return _collect(found, _targets(found), script=shlex.join(words + (["--since", since] if since else [])) + "\n",
                    comment="dfbench logs: worker.service", timeout_s=EXEC_TIMEOUT_S, profile=profile)
