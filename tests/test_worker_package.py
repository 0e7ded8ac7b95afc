"""Which package a checkout builds the worker from: read from `cargo metadata` (a stand-in cargo
answering as cargo does) for upstream's layout before the worker moved (#729/#732) and after,
through build_worker and `dfbench deploy --build`, with --package and --features."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import dfbench
from dfbench.aws.ssm import OUTPUT_PREFIX
from dfbench.cli import main
from dfbench.errors import ConfigError
from dfbench.worker.artifacts import PublishedWorker, published_worker
from dfbench.worker.build import build_worker, check_binary
from dfbench.worker.cargo import worker_package
from dfbench.worker.scripts import INSTALLED_MARKER, LATEST_KEY
from dfbench_testing import NEW_LAYOUT, OLD_LAYOUT, FakeSsm, Run, StandInCargo, cargo_metadata, worker_binary

TARGET = "x86_64-unknown-linux-gnu"
OLD_PACKAGE, NEW_PACKAGE = "datafusion-distributed-benchmarks", "datafusion-distributed-remote-worker"
LAYOUTS = {"old": (OLD_LAYOUT, OLD_PACKAGE), "new": (NEW_LAYOUT, NEW_PACKAGE)}


def zigbuild(package: str, *features: str) -> list[str]:
    return (["zigbuild", "-p", package, "--release", "--bin", "worker", "--target", TARGET]
            + (["--features", ",".join(features)] if features else []))


@pytest.fixture
def cargo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StandInCargo:
    stand_in = StandInCargo(tmp_path / "cargo")
    monkeypatch.setenv("PATH", f"{stand_in.bindir}{os.pathsep}{os.environ['PATH']}")
    return stand_in


def checkout(tmp_path: Path, cargo: StandInCargo, layout: str, kind: str = "current") -> tuple[Path, Path]:
    """A checkout of ``layout`` and the worker binary its build produces."""
    root = tmp_path / f"checkout-{layout}"
    root.mkdir()
    worker = worker_binary(tmp_path / f"built-{layout}", kind=kind)
    worker.write_bytes(worker.read_bytes() + layout.encode())  # one sha256 per layout
    cargo.checkout(root, LAYOUTS[layout][0], worker)
    return root, worker


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_package_with_the_worker_bin_is_built_in_either_layout(tmp_path, cargo, layout) -> None:
    root, worker = checkout(tmp_path, cargo, layout)
    package = LAYOUTS[layout][1]

    build = build_worker(root)

    assert [(c.cwd, c.args) for c in cargo.calls] == [
        (str(root.resolve()), ["metadata", "--format-version", "1", "--no-deps"]),
        (str(root.resolve()), zigbuild(package))]
    assert build.binary == root.resolve() / "target" / TARGET / "release" / "worker"
    assert build.sha256 == check_binary(worker) and (build.package, build.features) == (package, ())


def test_features_pass_through_to_cargo_and_are_recorded(tmp_path, cargo) -> None:
    root, _ = checkout(tmp_path, cargo, "new")
    build = build_worker(root, features=["iceberg", "a,b"])
    assert cargo.builds()[-1].args == zigbuild(NEW_PACKAGE, "iceberg", "a", "b")
    assert build.features == ("iceberg", "a", "b")
    with pytest.raises(ConfigError, match="Invalid cargo feature 'x;rm'"):
        build_worker(root, features="x;rm")
    with pytest.raises(ConfigError, match="at most 1024 characters"):
        build_worker(root, features=[f"feature{n}" for n in range(200)])
    with pytest.raises(ConfigError, match="Invalid package name"):
        build_worker(root, package="--all")
    assert len(cargo.builds()) == 1  # the bad ones built nothing


def test_several_worker_packages_are_refused_with_their_names_unless_one_is_chosen(tmp_path) -> None:
    both = OLD_LAYOUT + [("datafusion-distributed-remote-worker", "benchmarks/remote-worker", [("bin", "worker")], {})]
    metadata = cargo_metadata(tmp_path, both)
    with pytest.raises(ConfigError) as raised:
        worker_package(metadata, tmp_path)
    assert str(raised.value) == (f"Several workspace packages in {tmp_path} have a bin named `worker`: "
                                 f"{OLD_PACKAGE}, {NEW_PACKAGE}. Choose one with --package.")
    assert worker_package(metadata, tmp_path, NEW_PACKAGE).name == NEW_PACKAGE
    assert worker_package(metadata, tmp_path, OLD_PACKAGE).manifest_path == tmp_path / "benchmarks" / "Cargo.toml"


def test_no_worker_package_or_a_wrong_choice_is_refused_with_what_there_is(tmp_path) -> None:
    no_worker = [p for p in NEW_LAYOUT if p[0] != NEW_PACKAGE]
    with pytest.raises(ConfigError, match=r"No workspace package in .* has a bin named `worker` \(packages: "
                                          r"datafusion-distributed, datafusion-distributed-benchmarks, "
                                          r"datafusion-distributed-cli\)"):
        worker_package(cargo_metadata(tmp_path, no_worker), tmp_path)
    new = cargo_metadata(tmp_path, NEW_LAYOUT)
    # In today's layout the benchmarks package has no worker bin (a bench target of that name is no bin).
    with pytest.raises(ConfigError, match=f"--package {OLD_PACKAGE}: it has no bin named `worker` .* "
                                          f"packages with a `worker` bin: {NEW_PACKAGE}"):
        worker_package(new, tmp_path, OLD_PACKAGE)
    with pytest.raises(ConfigError, match=r"--package nope: no such package in the workspace"):
        worker_package(new, tmp_path, "nope")


def test_a_folder_cargo_does_not_know_is_refused_with_cargo_s_reason(tmp_path, cargo) -> None:
    with pytest.raises(ConfigError, match=r"could not find `Cargo.toml`.*pass a datafusion-distributed checkout"):
        build_worker(tmp_path)
    assert cargo.builds() == []


# --- dfbench deploy --build ----------------------------------------------------------------------


def _installed(sha: str) -> Run:
    return Run("Success", 0, f"{INSTALLED_MARKER}{sha}\n")


def _info(cluster: dfbench.Cluster) -> Run:
    body = {"worker_urls": [f"http://{i.private_ip}:9001" for i in cluster.instances], "git_commit_hash": "c0ffee",
            "build_time_utc": "2026-12-01T10:00:00Z", "errors": []}
    return Run("Success", 0, json.dumps(body) + "\n")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_deploy_build_builds_the_right_package_and_records_it_with_the_artifact(
        aws: Any, faults: Any, inspector: Any, recorder: Any, tmp_path: Path, cargo: StandInCargo, layout: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    cluster = dfbench.provision(dfbench.ClusterSpec(name="pk", instance_count=2))
    root, worker = checkout(tmp_path, cargo, layout)
    sha = check_binary(worker)
    ids = [i.instance_id for i in cluster.instances]
    fake = FakeSsm(faults, bucket=cluster.bucket, prefix=OUTPUT_PREFIX, s3=inspector.client("s3"))
    fake.script(ping=dict.fromkeys(ids, "Online"), polls=[dict.fromkeys(ids, _installed(sha))],
                then=[[dict.fromkeys(ids, _info(cluster))]])
    features = ["--features", "iceberg"] if layout == "new" else []

    assert main(["deploy", "--cluster", "pk", "--build", str(root), *features]) == 0

    package = LAYOUTS[layout][1]
    assert cargo.builds()[-1].args == zigbuild(package, *(["iceberg"] if features else []))
    assert f"built from package {package}" in capsys.readouterr().out
    head = inspector.client("s3").head_object(Bucket=cluster.bucket, Key=LATEST_KEY)
    assert head["Metadata"] == {"worker-kind": "current", "worker-package": package,
                                "worker-features": "iceberg" if features else ""}
    # What a run on the cluster copies into run.json's cluster record.
    assert published_worker(inspector.client("s3"), cluster.bucket) == PublishedWorker(
        kind="current", package=package, features=("iceberg",) if features else ())


def test_deploy_build_refuses_an_ambiguous_checkout_before_any_aws_call(
        aws: Any, recorder: Any, tmp_path: Path, cargo: StandInCargo, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "both"
    root.mkdir()
    both = OLD_LAYOUT + [(NEW_PACKAGE, "benchmarks/remote-worker", [("bin", "worker")], {})]
    cargo.checkout(root, both, worker_binary(tmp_path / "w", kind="current"))
    assert main(["deploy", "--cluster", "pk", "--build", str(root)]) == 2
    err = capsys.readouterr().err
    assert "Choose one with --package" in err and NEW_PACKAGE in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert main(["deploy", "--cluster", "pk", "--binary", str(worker_binary(tmp_path / "b")), "--package", "x"]) == 2
    assert "go with --build, not with --binary" in capsys.readouterr().err
    assert recorder.calls == [] and cargo.builds() == []
