"""Build the worker in a datafusion-distributed checkout, and check that a binary is a Linux
x86-64 executable (the cluster's platform) before anything is uploaded.
"""

from __future__ import annotations

import logging
import shutil
import struct
import subprocess
import sys
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from dfbench.errors import BuildFailed, ConfigError
from dfbench.files import sha256_file
from dfbench.models import Record
from dfbench.worker.cargo import checked_features, checked_package, find_worker_package

log = logging.getLogger("dfbench")

TARGET = "x86_64-unknown-linux-gnu"
# EC2's name for the one machine check_binary admits (ELF e_machine x86-64): the instances' and
# the AMI's architecture must be this one.
ARCHITECTURE = "x86_64"
# Where the worker lives upstream today (#729/#732); a checkout's own package is read from `cargo
# metadata` at build time (dfbench.worker.cargo), this name only fills the messages.
CURRENT_PACKAGE = "datafusion-distributed-remote-worker"
DEFAULT_OUTPUT = f"target/{TARGET}/release/worker"


def build_command(package: str, features: Sequence[str] = ()) -> list[str]:
    """The CDK tooling's build for ``package``'s ``worker`` bin: zig as the linker gives a Linux
    x86-64 binary from macOS or ARM machines too."""
    command = ["cargo", "zigbuild", "-p", package, "--release", "--bin", "worker", "--target", TARGET]
    return command + (["--features", ",".join(features)] if features else [])


_BUILD = " ".join(build_command(CURRENT_PACKAGE))
_CROSS_COMPILE = f"the cluster runs Linux on x86-64: cross-compile with `{_BUILD}`"
_ZIGBUILD_SETUP = (f"`cargo install --locked cargo-zigbuild`, `rustup target add {TARGET}` and zig "
                   "(`pip install ziglang`, or https://ziglang.org/download/)")
_RUST_INSTALL = ("cargo is not on PATH. Install Rust with rustup (https://rustup.rs): "
                 "`curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh` (if it is installed, add "
                 f"~/.cargo/bin to PATH); the worker build then also needs {_ZIGBUILD_SETUP}.")
_NO_ZIGBUILD = "no such command: `zigbuild`"
_TAIL_LINES = 30


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
    # The cargo package built and the features passed (None for a build command of the caller's).
    package: str | None = None
    features: tuple[str, ...] = ()


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


def build_worker(repo_dir: str | Path, *, package: str | None = None, features: Sequence[str] | str | None = None,
                 command: Sequence[str] | None = None, output: str | Path | None = None) -> Build:
    """Build the worker in the user's datafusion-distributed checkout and describe the result.

    By default the package is the workspace's one with a ``worker`` bin (``package`` chooses among
    several; :mod:`dfbench.worker.cargo`), built by :func:`build_command` with ``features``, and the
    binary is read from cargo's target directory. ``command`` and ``output`` (relative to
    ``repo_dir``, or absolute) replace both. The binary must come out as a Linux x86-64
    executable (:func:`check_binary`).
    """
    repo = Path(repo_dir).resolve()
    chosen = checked_package(package)
    wanted = checked_features(features)
    if not repo.is_dir():
        raise ConfigError(f"{repo} is not a folder: pass your datafusion-distributed checkout to build the worker.")
    if command is not None and (chosen is not None or wanted):
        raise ConfigError("A build command of your own takes no package or features: put them in the command.")
    argv = list(command) if command is not None else ["cargo"]
    if not argv:
        raise ConfigError("The build command is empty: pass the command that builds the worker.")
    if shutil.which(argv[0]) is None:
        if Path(argv[0]).name == "cargo":
            raise ConfigError(_RUST_INSTALL)
        raise ConfigError(f"`{argv[0]}` (the build command) is not on PATH: install it or change the command.")
    binary = repo / (output if output is not None else DEFAULT_OUTPUT)
    if command is None:
        found = find_worker_package(repo, chosen)
        chosen, argv = found.name, build_command(found.name, wanted)
        if output is None:
            binary = found.output(TARGET)
    # Read before building: the build itself may add files git sees (an output folder that is not
    # ignored), and the record is about the sources that were compiled.
    commit = _git(repo, "rev-parse", "HEAD")
    branch = _git(repo, "rev-parse", "--abbrev-ref", "HEAD")
    status = _git(repo, "status", "--porcelain")
    log.info("building the worker in %s: %s", repo, " ".join(argv))
    _run_build(argv, repo)
    if not binary.is_file():
        raise ConfigError(f"`{' '.join(argv)}` succeeded but wrote no file at {binary}: "
                          "pass the path the build writes as output.")
    sha = check_binary(binary)
    return Build(binary=binary, sha256=sha, size=binary.stat().st_size, commit=commit,
                 branch=None if branch == "HEAD" else branch, dirty=None if status is None else bool(status),
                 built_at=datetime.now(UTC), package=chosen, features=wanted)


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
