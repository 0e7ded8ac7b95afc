"""``dfbench ab --cluster C BASE NEW`` end to end: a cluster in moto whose one instance is this
machine (LocalAgent runs every SSM command here, the deploys' install script included, with the
stand-in systemd starting a local DataFusion worker for the installed build), two distinguishable
worker builds, queries through the relay."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

import dfbench
from dfbench.ab import abba_order
from dfbench.aws.ssm import OUTPUT_PREFIX
from dfbench.cli import main
from dfbench.data import sync_dataset
from dfbench.worker.build import check_binary
from dfbench.worker.scripts import LATEST_KEY
from dfbench_testing import NEW_LAYOUT, OLD_LAYOUT, Imds, LocalAgent, StandInCargo, StandinSystemd, worker_binary

DATASET = "tpch_sf0.01"
DEPLOY = "dfbench: deploy worker "


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# With checkouts, BASE is one of upstream's layout before the worker moved (#729/#732) and NEW one
# of today's: each side builds its own workspace's worker package.
PACKAGES = {"base": "datafusion-distributed-benchmarks", "new": "datafusion-distributed-remote-worker"}


@pytest.mark.parametrize("sources", ["binaries", "checkouts"])
def test_ab_on_a_cluster_deploys_the_sides_alternately_one_command_each_and_files_both(
        aws: Any, recorder: Any, faults: Any, inspector: Any, tpch: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sources: str) -> None:
    cluster = dfbench.provision(dfbench.ClusterSpec(name="ab", instance_count=1))
    sync_dataset(DATASET, cluster=cluster, data_dir=tpch, progress=False)
    [instance] = cluster.instances
    # Two builds of the current kind that differ in one byte: two sha256s, two artifacts.
    base = worker_binary(tmp_path / "base", kind="current")
    new = worker_binary(tmp_path / "new", kind="current")
    new.write_bytes(new.read_bytes() + b"\1")
    shas = {"base": check_binary(base), "new": check_binary(new)}
    sides = {"base": base, "new": new}
    if sources == "checkouts":
        cargo = StandInCargo(tmp_path / "cargo")
        monkeypatch.setenv("PATH", f"{cargo.bindir}{os.pathsep}{os.environ['PATH']}")
        for role, layout in (("base", OLD_LAYOUT), ("new", NEW_LAYOUT)):
            (tmp_path / f"{role}-checkout").mkdir()
            sides[role] = cargo.checkout(tmp_path / f"{role}-checkout", layout, sides[role])
    port = free_port()

    def local_worker(commit: str) -> list[str]:
        """What each build stands for: the local worker reporting the build's commit, knowing the
        instance as its peer, reading the cluster's bucket."""
        return [sys.executable, "-m", "dfbench.worker.local", "--port", str(port), "--quiet", "--commit", commit,
                "--worker-urls", f"http://{instance.private_ip}:9001", "--s3-bucket", cluster.bucket]

    imds = Imds(instance.private_ip)
    systemd = StandinSystemd(tmp_path / "instance", port=port, imds_url=imds.url,
                             workers={shas["base"]: local_worker("base0000"), shas["new"]: local_worker("new00000")})
    for name, value in systemd.environment.items():
        monkeypatch.setenv(name, value)
    # The scripts run here for real and take real seconds (a worker starting, a Python stand-in per
    # aws or systemctl call): waits may not shrink to the emulator's thousandth.
    monkeypatch.setenv("DFBENCH_TIME_SCALE", "0.05")
    recorder.clear()
    with imds, systemd, LocalAgent(faults, s3=inspector.client("s3"), bucket=cluster.bucket, prefix=OUTPUT_PREFIX,
                             port_map={9000: port}, ec2=inspector.client("ec2")):
        code = main(["ab", "--cluster", "ab", str(sides["base"]), str(sides["new"]), "--dataset", DATASET,
                     "--rounds", "2",
                     "--queries", "q1,q6", "--via", "relay", "--base-name", "main", "--new-name", "branch",
                     "--data-dir", str(tpch)])
    output = capsys.readouterr()
    assert code == 0, output.err

    # ABBA over two rounds is base, new | new, base: three deploys, base, new, base, each ONE
    # SendCommand to the cluster by tag; the instance started exactly those builds in that order.
    deploys = [c.params for c in recorder.named("SendCommand") if c.params["Comment"].startswith(DEPLOY)]
    assert [d["Comment"].removeprefix(DEPLOY) for d in deploys] == [shas[r][:12] for r in ("base", "new", "base")]
    assert all(d["Targets"] == [{"Key": "tag:dfbench:cluster", "Values": ["ab"]}] and "InstanceIds" not in d
               for d in deploys)
    assert systemd.started == [shas["base"], shas["new"], shas["base"]]
    # Each artifact uploaded once; `latest` (what booting instances install) left alone.
    uploads = [c.params["Key"] for c in recorder.calls if c.operation in ("PutObject", "CreateMultipartUpload")
               and c.params.get("Key", "").startswith(".dfbench/artifacts/")]
    assert sorted(uploads) == sorted(f".dfbench/artifacts/worker/{sha}/worker" for sha in shas.values())
    assert LATEST_KEY not in {c.params.get("Key") for c in recorder.named("PutObject")}

    results = tpch / DATASET / ".results-remote"
    for engine, role, commit in (("main", "base", "base0000"), ("branch", "new", "new00000")):
        for query, rows in (("q1", 4), ("q6", 1)):
            document = json.loads((results / engine / f"{query}.json").read_text())
            assert [i["rowCount"] for i in document["iterations"]] == [rows, rows]  # one iteration per round
            assert document["runId"].endswith(f"-{role}")
        run = json.loads((results / engine / "run.json").read_text())
        # Each side's queries ran on its own build.
        assert run["worker_info"]["git_commit_hash"] == commit
        assert run["ab"]["order"] == abba_order(2) and run["ab"]["sha256"] == shas[role]
        assert len(run["ab"]["deploys"]) == {"base": 2, "new": 1}[role]
        assert run["cluster"]["name"] == "ab" and run["location"] == f"s3://{cluster.bucket}"
        assert run["ab"]["package"] == (PACKAGES[role] if sources == "checkouts" else None)
    if sources == "checkouts":
        assert [c.args[2] for c in cargo.builds()] == [PACKAGES["base"], PACKAGES["new"]]
    assert output.out.startswith(f"=== Comparing {DATASET} results from engine 'main' [prev] with 'branch' [new] ===")
    assert "rows differ" not in output.out
