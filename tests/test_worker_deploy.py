"""The worker binary: header checks on crafted files, the build with stand-in cargo executables in
a temporary git checkout, and publishing to S3 (moto)."""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dfbench.errors import BuildFailed, ConfigError
from dfbench.worker.artifacts import Artifact, publish_worker
from dfbench.worker.build import build_worker, check_binary
from dfbench.worker.scripts import latest_record, worker_unit

BUCKET = "dfbench-artifacts-test"
PREFIX = ".dfbench/artifacts/worker"
LATEST = f"{PREFIX}/latest"
TOOLING_ARGS = "zigbuild -p datafusion-distributed-benchmarks --release --bin worker --target x86_64-unknown-linux-gnu"
TOOLING_OUTPUT = "target/x86_64-unknown-linux-gnu/release/worker"
CROSS = ("cargo zigbuild -p datafusion-distributed-remote-worker --release --bin worker "
         "--target x86_64-unknown-linux-gnu")
MIB = 1024 * 1024
ARTIFACT_WRITES = {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"}


def elf_header(*, machine: int = 0x3E, bits: int = 64, osabi: int = 0, e_type: int = 2) -> bytes:
    """An ELF header as the gABI lays it out: e_ident, then e_type, e_machine, ... (little-endian)."""
    ident = b"\x7fELF" + bytes([2 if bits == 64 else 1, 1, 1, osabi]) + bytes(8)
    if bits == 64:
        rest = struct.pack("<HHIQQQIHHHHHH", e_type, machine, 1, 0x401000, 64, 0, 0, 64, 56, 0, 64, 0, 0)
    else:
        rest = struct.pack("<HHIIIIIHHHHHH", e_type, machine, 1, 0x8048000, 52, 0, 0, 52, 32, 0, 40, 0, 0)
    return ident + rest


def write_elf(path: Path, size: int = 64 * 1024, filler: bytes = b"\x90", **fields: int) -> Path:
    header = elf_header(**fields)
    path.write_bytes(header + filler * (size - len(header)))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- check_binary --------------------------------------------------------------------------------


@pytest.mark.parametrize("fields", [{}, {"e_type": 3, "osabi": 3}], ids=["ET_EXEC-SysV", "PIE-Linux"])
def test_a_linux_x86_64_executable_is_accepted_and_hashed(tmp_path: Path, fields: dict[str, int]) -> None:
    binary = write_elf(tmp_path / "worker", **fields)
    assert check_binary(binary) == sha256(binary)


@pytest.mark.skipif(sys.platform != "linux" or platform.machine() != "x86_64", reason="needs a Linux x86-64 host")
def test_a_real_linux_x86_64_executable_is_accepted() -> None:
    interpreter = Path(sys.executable).resolve()
    assert check_binary(interpreter) == sha256(interpreter)


REFUSED = {
    "aarch64": (elf_header(machine=0xB7), ["64-bit ELF binary for aarch64 (arm64)", CROSS]),
    "32-bit": (elf_header(bits=32, machine=0x03), ["32-bit ELF binary for x86 (32-bit)", CROSS]),
    "x32": (elf_header(bits=32), ["32-bit ELF binary for x86-64", CROSS]),
    "macho-64": (bytes.fromhex("cffaedfe07000001") + bytes(56), ["macOS binary", CROSS]),
    "macho-64-big-endian": (bytes.fromhex("feedfacf01000007") + bytes(56), ["macOS binary", CROSS]),
    "macho-universal": (bytes.fromhex("cafebabe00000002") + bytes(56), ["macOS binary", CROSS]),
    "freebsd": (elf_header(osabi=9), ["x86-64 binary for FreeBSD, not Linux", CROSS]),
    "object-file": (elf_header(e_type=1), ["relocatable object (.o), not a linked executable"]),
    "shell-script": (b"#!/bin/sh\nexec worker \"$@\"\n", ["a script, not the compiled worker", CROSS]),
    "text": (b"hello, worker\n", ["no ELF header", CROSS]),
    "truncated-elf": (elf_header()[:12], ["truncated or corrupt ELF"]),
    "empty": (b"", ["an empty file", CROSS]),
}


@pytest.mark.parametrize("name", REFUSED)
def test_anything_else_is_refused_with_what_it_is_and_how_to_build_one(tmp_path: Path, name: str) -> None:
    content, expected = REFUSED[name]
    path = tmp_path / "worker"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as raised:
        check_binary(path)
    message = str(raised.value)
    assert message.startswith(f"{path} is not a Linux x86-64 executable")
    for text in expected:
        assert text in message


def test_a_missing_binary_names_the_build_command(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"No worker binary at .*cargo zigbuild -p datafusion-distributed-remote-"):
        check_binary(tmp_path / "target" / "worker")
    with pytest.raises(ConfigError, match=r"is a folder"):
        check_binary(tmp_path)


# --- publish_worker ------------------------------------------------------------------------------


@pytest.fixture
def bucket(inspector) -> str:
    inspector.client("s3").create_bucket(Bucket=BUCKET)
    return BUCKET


def artifact_writes(recorder, key: str) -> list[str]:
    return [c.operation for c in recorder.calls if c.operation in ARTIFACT_WRITES and c.params.get("Key") == key]


def read(inspector, key: str) -> bytes:
    return inspector.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()


def test_publish_uploads_once_by_sha_and_points_latest_at_it(aws, recorder, inspector, bucket, tmp_path) -> None:
    binary = write_elf(tmp_path / "worker")
    sha = sha256(binary)
    key = f"{PREFIX}/{sha}/worker"

    first = publish_worker(binary, bucket=BUCKET, progress=False)
    assert first == Artifact(sha256=sha, kind="tag-discovery", key=key, size=binary.stat().st_size, uploaded=True,
                             url=f"s3://{BUCKET}/{key}")
    assert artifact_writes(recorder, key) == ["PutObject"]  # small: one request, no multipart
    assert read(inspector, key) == binary.read_bytes()
    assert inspector.client("s3").head_object(Bucket=BUCKET, Key=key)["Metadata"] == {"sha256": sha}
    assert read(inspector, LATEST).decode() == latest_record(sha, worker_unit(bucket=BUCKET, region="us-east-1"))

    recorder.clear()
    second = publish_worker(binary, bucket=BUCKET, progress=False)
    assert second == first.model_copy(update={"uploaded": False})
    assert [(c.operation, c.params["Key"]) for c in recorder.calls] == [("HeadObject", key), ("PutObject", LATEST)]


def test_a_large_binary_is_uploaded_in_parts(aws, recorder, inspector, bucket, tmp_path) -> None:
    binary = write_elf(tmp_path / "worker", size=20 * MIB)
    sha = sha256(binary)
    key = f"{PREFIX}/{sha}/worker"

    artifact = publish_worker(binary, bucket=BUCKET, progress=True)
    writes = artifact_writes(recorder, key)
    assert artifact.uploaded and writes[0] == "CreateMultipartUpload" and writes[-1] == "CompleteMultipartUpload"
    assert writes.count("UploadPart") >= 2 and "PutObject" not in writes
    assert hashlib.sha256(read(inspector, key)).hexdigest() == sha
    assert inspector.client("s3").head_object(Bucket=BUCKET, Key=key)["Metadata"] == {"sha256": sha}

    recorder.clear()
    assert publish_worker(binary, bucket=BUCKET, progress=False).uploaded is False
    assert artifact_writes(recorder, key) == []


def test_latest_follows_the_last_published_binary(aws, inspector, bucket, tmp_path) -> None:
    old = write_elf(tmp_path / "old", filler=b"\x01")
    new = write_elf(tmp_path / "new", filler=b"\x02")
    publish_worker(old, bucket=BUCKET, progress=False)
    publish_worker(new, bucket=BUCKET, progress=False)
    assert read(inspector, LATEST).decode().splitlines()[0] == sha256(new)
    # Going back to an earlier build uploads nothing but makes it the one instances boot with.
    assert publish_worker(old, bucket=BUCKET, progress=False).uploaded is False
    assert read(inspector, LATEST).decode().splitlines()[0] == sha256(old)


def test_an_object_of_another_size_under_the_key_is_replaced(aws, inspector, bucket, tmp_path) -> None:
    binary = write_elf(tmp_path / "worker")
    key = f"{PREFIX}/{sha256(binary)}/worker"
    inspector.client("s3").put_object(Bucket=BUCKET, Key=key, Body=b"half an upload")
    assert publish_worker(binary, bucket=BUCKET, progress=False).uploaded is True
    assert read(inspector, key) == binary.read_bytes()


def test_a_bad_binary_is_refused_before_any_aws_call(aws, recorder, inspector, bucket, tmp_path) -> None:
    arm = tmp_path / "arm" / "worker"
    macos = tmp_path / "macos" / "worker"
    for path, content in ((arm, elf_header(machine=0xB7) + bytes(100)), (macos, bytes.fromhex("cffaedfe") + bytes(60))):
        path.parent.mkdir()
        path.write_bytes(content)
    for binary in (arm, macos, tmp_path / "missing" / "worker"):
        with pytest.raises(ConfigError, match=r"cargo zigbuild"):
            publish_worker(binary, bucket=BUCKET, progress=False)
    assert recorder.calls == []
    assert inspector.client("s3").list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0


def test_a_missing_bucket_says_how_to_create_it(aws, tmp_path) -> None:
    binary = write_elf(tmp_path / "worker")
    with pytest.raises(ConfigError, match=f"S3 bucket '{BUCKET}' does not exist. `dfbench provision` creates it"):
        publish_worker(binary, bucket=BUCKET, progress=False)


# --- build_worker --------------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=dfbench", "-c", "user.email=dfbench@example.invalid", "-c", "commit.gpgsign=false"]
    done = subprocess.run(["git", "-C", str(repo), *identity, *args], check=True, capture_output=True, text=True)
    return done.stdout.strip()


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A committed git repository on branch `bench` (target/ deliberately not ignored)."""
    # Git must not find a repository above the temporary folder (for the not-a-checkout case).
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    repo = tmp_path / "checkout"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "bench")
    (repo / "Cargo.toml").write_text("[workspace]\n")
    git(repo, "add", "Cargo.toml")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


CARGO_BUILDS = """\
printf '%s\\n' "$PWD" "$*" > "$CARGO_LOG"
echo "   Compiling datafusion-distributed-benchmarks v0.1.0"
mkdir -p "$(dirname "$FAKE_OUTPUT")"
cp "$FAKE_WORKER" "$FAKE_OUTPUT"
echo "    Finished release [optimized] target(s)"
"""
CARGO_WITHOUT_ZIGBUILD = """\
echo "error: no such command: \\`zigbuild\\`" >&2
echo "" >&2
echo "	View all installed commands with \\`cargo --list\\`" >&2
exit 101
"""
CARGO_FAILS = """\
for i in $(seq 1 100); do echo "   Compiling crate-$i v1.0.0"; done
echo "error[E0425]: cannot find value \\`peers\\` in this scope" >&2
echo "error: could not compile \\`datafusion-distributed-benchmarks\\` (bin \\"worker\\") due to 1 previous error" >&2
exit 101
"""


# `cargo metadata` answered as cargo does for a checkout of upstream's layout before #729 (the worker
# a bin of datafusion-distributed-benchmarks), wherever the stand-in runs.
ANSWER_METADATA = f"""\
if [ "$1" = metadata ]; then
  exec {shlex.quote(sys.executable)} -c 'import json, pathlib; \
from dfbench_testing.cargo import OLD_LAYOUT, cargo_metadata; \
print(json.dumps(cargo_metadata(pathlib.Path.cwd(), OLD_LAYOUT)))'
fi
"""


@pytest.fixture
def cargo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Installs a stand-in `cargo` (bash answering `cargo metadata` for the old layout, else running
    ``body``) first on PATH; returns the file where it logs its folder and arguments. CARGO_BUILDS
    copies ``worker`` to $FAKE_OUTPUT."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "cargo.log"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")  # shadows a real cargo
    monkeypatch.setenv("CARGO_LOG", str(log))
    monkeypatch.setenv("FAKE_OUTPUT", TOOLING_OUTPUT)

    def install(body: str, worker: Path | None = None) -> Path:
        monkeypatch.setenv("FAKE_WORKER", str(worker or write_elf(tmp_path / "built-worker")))
        script = bindir / "cargo"
        script.write_text(f"#!{shutil.which('bash')}\nset -euo pipefail\n{ANSWER_METADATA}{body}")
        script.chmod(0o755)
        return log

    return install


def test_build_runs_the_cdk_tooling_command_in_the_checkout_and_records_its_commit(checkout, cargo, capsys) -> None:
    log = cargo(CARGO_BUILDS)
    before = datetime.now(UTC)
    build = build_worker(checkout)
    binary = checkout / TOOLING_OUTPUT
    assert log.read_text().splitlines() == [str(checkout), TOOLING_ARGS]
    assert build.binary == binary and build.sha256 == sha256(binary) and build.size == binary.stat().st_size
    assert build.commit == git(checkout, "rev-parse", "HEAD") and len(build.commit) == 40
    assert build.branch == "bench"
    # The build added an untracked target/ here, yet the sources it compiled were clean.
    assert build.dirty is False
    assert before <= build.built_at <= datetime.now(UTC) + timedelta(seconds=1)
    assert "Compiling datafusion-distributed-benchmarks" in capsys.readouterr().err  # streamed to the user


def test_build_of_a_modified_checkout_is_dirty(checkout, cargo) -> None:
    cargo(CARGO_BUILDS)
    (checkout / "Cargo.toml").write_text("[workspace]\nmembers = []\n")
    build = build_worker(checkout)
    assert build.dirty is True and build.commit == git(checkout, "rev-parse", "HEAD")


def test_build_outside_git_records_no_commit(tmp_path, checkout, cargo) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    cargo(CARGO_BUILDS)
    build = build_worker(plain)
    assert (build.commit, build.branch, build.dirty) == (None, None, None)
    assert build.sha256 == sha256(plain / TOOLING_OUTPUT)


def test_build_command_and_output_are_configurable(checkout, cargo, monkeypatch) -> None:
    log = cargo(CARGO_BUILDS)
    monkeypatch.setenv("FAKE_OUTPUT", "out/worker-bin")
    build = build_worker(checkout, command=["cargo", "build", "--release"], output="out/worker-bin")
    assert log.read_text().splitlines()[1] == "build --release"
    assert build.binary == checkout / "out" / "worker-bin"
    with pytest.raises(ConfigError, match=r"succeeded but wrote no file at .*elsewhere/worker"):
        build_worker(checkout, output="elsewhere/worker")


def test_a_build_for_the_wrong_architecture_is_refused(tmp_path, checkout, cargo) -> None:
    cargo(CARGO_BUILDS, worker=write_elf(tmp_path / "arm-worker", machine=0xB7))
    with pytest.raises(ConfigError, match=r"aarch64.*--target x86_64-unknown-linux-gnu"):
        build_worker(checkout)


def test_missing_zigbuild_says_how_to_install_it(checkout, cargo) -> None:
    cargo(CARGO_WITHOUT_ZIGBUILD)
    with pytest.raises(ConfigError) as raised:
        build_worker(checkout)
    message = str(raised.value)
    assert "cargo install --locked cargo-zigbuild" in message
    assert "rustup target add x86_64-unknown-linux-gnu" in message


def test_a_failing_build_reports_the_end_of_its_output(checkout, cargo) -> None:
    cargo(CARGO_FAILS)
    with pytest.raises(BuildFailed) as raised:
        build_worker(checkout)
    error = raised.value
    assert error.returncode == 101 and "exit code 101" in str(error)
    assert "cannot find value `peers`" in str(error) and "could not compile" in str(error)
    assert "crate-100 " in str(error) and "crate-1 " not in str(error)  # the tail, not all of it
    assert not (checkout / TOOLING_OUTPUT).exists()


def test_missing_cargo_says_how_to_install_rust(tmp_path, checkout, monkeypatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(ConfigError, match=r"cargo is not on PATH\. Install Rust with rustup") as raised:
        build_worker(checkout)
    assert "cargo install --locked cargo-zigbuild" in str(raised.value)


def test_bad_build_arguments_are_refused_before_running_anything(tmp_path, checkout) -> None:
    with pytest.raises(ConfigError, match=r"is not a folder"):
        build_worker(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match=r"The build command is empty"):
        build_worker(checkout, command=[])
    with pytest.raises(ConfigError, match=r"`no-such-builder` .* is not on PATH"):
        build_worker(checkout, command=["no-such-builder", "--release"])


def test_latest_carries_the_unit_of_the_deploy_for_instances_booting_later(aws, inspector, bucket, tmp_path) -> None:
    binary = write_elf(tmp_path / "worker")
    publish_worker(binary, bucket=BUCKET, region="eu-west-1", args=["--threads", "8"], env={"RUST_LOG": "info"},
                   progress=False)
    sha, unit = read(inspector, LATEST).decode().split("\n", 1)
    assert sha == sha256(binary)
    assert unit == worker_unit(bucket=BUCKET, region="eu-west-1", args=["--threads", "8"], env={"RUST_LOG": "info"})
    assert "ExecStart=/usr/local/bin/worker --bucket " + BUCKET + " --threads 8" in unit
