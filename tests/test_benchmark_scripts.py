"""The benchmark scripts that double as checks still run, and still pass their own checks.

Their numbers are not asserted here (BENCHMARKS.md holds them); what breaks when dfbench changes
is a script that no longer runs, or whose check fails: a no-op re-provision that mutates, a deploy
of more than two commands, a connection that costs more than one call per instance, a bundled query
that fails or returns other rows than DuckDB. Run with ``--no-write`` (and ``--quick`` where a script
has it): BENCHMARKS.md is left as it is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dfbench_testing import system_tool

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize(("script", "options", "heading"), [
    ("api_calls.py", [], "## AWS API calls per command"),
    ("deploy_calls.py", [], "SendCommand"),
    ("connect_calls.py", [], "## AWS API calls to open the way to a cluster"),
    # Its check: every query ok, each with DuckDB's row count.
    ("datasets.py", ["--quick"], "## Datasets: generation and download throughput"),
])
def test_benchmark_script_runs_and_its_checks_pass(script: str, options: list[str], heading: str,
                                                   tmp_path: Path) -> None:
    if script == "connect_calls.py":
        system_tool("/usr/sbin/sshd")
    before = (BENCHMARKS.parent / "BENCHMARKS.md").read_bytes()
    # Nothing of the test's own emulator or environment leaks in: the script starts its own.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DFBENCH_"))}
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), *options, "--no-write"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert heading in result.stdout
    assert (BENCHMARKS.parent / "BENCHMARKS.md").read_bytes() == before


def test_oncluster_benchmark_runs_and_finds_the_datasets_identical(tmp_path: Path) -> None:
    """The smallest run of it (SF 0.01, two parts): it fails itself when the bucket's on-cluster
    dataset differs from the local generation by one byte."""
    before = (BENCHMARKS.parent / "BENCHMARKS.md").read_bytes()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DFBENCH_"))}
    result = subprocess.run([sys.executable, str(BENCHMARKS / "oncluster_generate.py"), "--sf", "0.01",
                             "--partitions", "2", "--no-write"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "| 0.01 | 14 |" in result.stdout and "identical" in result.stdout
    assert "Estimate for AWS, not a measurement" in result.stdout
    assert (BENCHMARKS.parent / "BENCHMARKS.md").read_bytes() == before


def test_aa_real_runs_its_trials_and_reports_both_designs(tmp_path: Path) -> None:
    """The smallest run of it (SF 0.01, one or two trials of each experiment, real local workers):
    its trials are recorded one JSON line each, a second run adds none, and the report judges both
    designs and puts the fitted simulation beside them."""
    before = (BENCHMARKS.parent / "BENCHMARKS.md").read_bytes()
    command = [sys.executable, str(BENCHMARKS / "aa_real.py"), "--quick", "--out", str(tmp_path / "out"), "--no-write"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    lines = (tmp_path / "out" / "trials.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["experiment"] for line in lines) == [
        "ab-aa", "ab-aa", "ab-passes-aa", "ab-slow", "seq-aa", "seq-aa", "seq-slow"]
    assert "## A/A on real local workers" in result.stdout
    assert "| `dfbench ab`, 6 rounds |" in result.stdout and "| sequential pair with restart |" in result.stdout
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0 and len((tmp_path / "out" / "trials.jsonl").read_text().splitlines()) == 7
    assert (BENCHMARKS.parent / "BENCHMARKS.md").read_bytes() == before
