"""The workflow `dfbench github init` writes: read back as YAML and checked for what keeps a pull
request's code away from the AWS role, shellcheck on every run: script, and actionlint (the test
extra installs it)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dfbench.cli import main
from dfbench.errors import ConfigError
from dfbench.github.command import Limits
from dfbench.github.pipeline import cluster_name
from dfbench.github.workflow import ACTIONS, WORKFLOW_PATH, render_workflow, write_workflow
from dfbench_testing import system_tool

# What a job holding the role may use: nothing that checks out or builds code.
ROLE_JOB_ACTIONS = {"actions/download-artifact", "actions/setup-python", "aws-actions/configure-aws-credentials",
                    "actions/upload-artifact"}
BUILDING = re.compile(r"\b(cargo|rustc|rustup|make|cmake|npm|yarn|go build|pip install \.|pip install -e|"
                      r"git clone|git fetch|git checkout|\./)")


@pytest.fixture(scope="module")
def text() -> str:
    return render_workflow()


@pytest.fixture(scope="module")
def workflow(text: str) -> dict[str, Any]:
    document = yaml.safe_load(text)
    document["on"] = document.pop(True)  # YAML 1.1 reads the key `on` as true
    return document


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps", []))


def action(step: dict[str, Any]) -> str | None:
    return step["uses"].split("@")[0] if "uses" in step else None


def test_it_runs_on_pull_request_comments_and_by_hand_one_benchmark_at_a_time_per_pull_request(
        workflow: dict[str, Any]) -> None:
    assert workflow["on"]["issue_comment"] == {"types": ["created"]}
    assert set(workflow["on"]["workflow_dispatch"]["inputs"]) == {"pr", "command"}
    assert workflow["permissions"] == {}
    # One benchmark per pull request, and only requests queue for it: an ordinary comment's run
    # never enters the group (where it would cancel a waiting request).
    assert "concurrency" not in workflow
    assert workflow["jobs"]["bench"]["concurrency"] == {"group": "dfbench-pr-${{ needs.request.outputs.pr }}",
                                                        "cancel-in-progress": False}
    assert "github.event.issue.pull_request" in workflow["jobs"]["request"]["if"]


def test_only_the_benchmark_job_holds_the_role_and_it_builds_and_runs_no_pull_request_code(
        workflow: dict[str, Any]) -> None:
    jobs = workflow["jobs"]
    holding = [name for name, job in jobs.items() if job.get("permissions", {}).get("id-token") == "write"]
    assert holding == ["bench"]
    bench = jobs["bench"]
    assert {action(step) for step in steps(bench)} - {None} <= ROLE_JOB_ACTIONS
    for step in steps(bench):
        assert not BUILDING.search(step.get("run", "")), step
        assert action(step) != "actions/checkout"
    # It takes the builds as artifacts, checked against their sha256 before anything else runs.
    assert action(steps(bench)[0]) == "actions/download-artifact"
    assert "sha256sum --check" in steps(bench)[1]["run"]
    credentials = next(s for s in steps(bench) if action(s) == "aws-actions/configure-aws-credentials")
    assert credentials["with"]["role-to-assume"] == "${{ vars.DFBENCH_ROLE_ARN }}"
    assert set(credentials["with"]) == {"role-to-assume", "aws-region", "role-duration-seconds"}  # no stored keys
    # Teardown whatever happened, of the cluster the benchmark made.
    teardown = next(s for s in steps(bench) if s.get("name") == "Teardown")
    assert teardown["if"] == "always()"
    assert teardown["run"] == f'dfbench teardown --cluster "{cluster_name(0)[:-1]}$PR"'


def test_the_build_job_has_a_read_only_token_and_nothing_else(workflow: dict[str, Any], text: str) -> None:
    build = workflow["jobs"]["build"]
    assert build["permissions"] == {"contents": "read"}
    assert build["strategy"]["matrix"]["side"] == ["base", "head"]
    checkout = steps(build)[0]
    assert action(checkout) == "actions/checkout" and checkout["with"]["persist-credentials"] is False
    assert "cargo zigbuild -p datafusion-distributed-benchmarks --release --bin worker" in steps(build)[3]["run"]
    assert "secrets." not in yaml.safe_dump(build) and "vars." not in yaml.safe_dump(build)
    assert "actions/cache" not in text  # a cache a pull request's build wrote would feed later runs
    upload = steps(build)[-1]
    assert action(upload) == "actions/upload-artifact" and upload["with"]["name"] == "worker-${{ matrix.side }}"


def test_no_run_script_expands_an_expression(workflow: dict[str, Any]) -> None:
    """Not ${{ github.event... }} (a comment, a branch name, a title reaching a shell), nor any
    other: what a script needs comes through environment variables."""
    scripts = [step["run"] for job in workflow["jobs"].values() for step in steps(job) if "run" in step]
    assert len(scripts) >= 8
    assert [script for script in scripts if "${{" in script] == []


def test_every_action_is_pinned_by_its_full_commit_with_its_tag_beside_it(text: str) -> None:
    uses = [line.split("uses:", 1)[1].strip() for line in text.splitlines() if "uses:" in line]
    assert len(uses) == 9
    for use in uses:
        match = re.fullmatch(r"([\w-]+/[\w-]+)@([0-9a-f]{40}) # (v\d+\.\d+\.\d+)", use)
        assert match, use
        assert (match[1], match[2], match[3]) in ACTIONS.values()


def test_the_limits_reach_both_dfbench_steps(text: str) -> None:
    custom = render_workflow(limits=Limits(max_nodes=8, instance_types=("m5.2xlarge",), nodes=2))
    flags = "--max-nodes 8 --max-scale-factor 100 --max-rounds 20 --nodes 2 --instance-types m5.2xlarge"
    assert custom.count(flags) == 3


@pytest.fixture(scope="module")
def scripts_folder(workflow: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("scripts")
    paths = []
    for job_name, job in workflow["jobs"].items():
        for index, step in enumerate(steps(job)):
            if "run" in step:
                path = folder / f"{job_name}-{index}.sh"
                path.write_text("#!/bin/bash\n" + step["run"] + "\n")
                paths.append(path)
    return paths


def test_every_run_script_passes_shellcheck(scripts_folder: list[Path]) -> None:
    shellcheck = system_tool("shellcheck")
    done = subprocess.run([shellcheck, "--severity=style", *map(str, scripts_folder)], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stdout


def test_the_workflow_passes_actionlint(tmp_path: Path, text: str) -> None:
    found = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")
    if found is None:
        message = "actionlint is not installed: `make install` brings it (the test extra)"
        if os.environ.get("DFBENCH_REQUIRE_SYSTEM_TOOLS") == "1":
            pytest.fail(message)  # CI: a skip here would hide a broken install
        pytest.skip(message)
    path = tmp_path / WORKFLOW_PATH
    path.parent.mkdir(parents=True)
    path.write_text(text)
    done = subprocess.run([found, "-no-color", str(path)], capture_output=True, text=True, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_init_writes_it_once_and_never_overwrites_a_changed_one(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / ".git").mkdir()
    assert main(["github", "init", "--path", str(tmp_path)]) == 0
    path = tmp_path / WORKFLOW_PATH
    assert path.read_text() == render_workflow()
    assert main(["github", "init", "--path", str(tmp_path)]) == 0
    assert "unchanged:" in capsys.readouterr().out
    path.write_text(path.read_text() + "# mine\n")
    assert main(["github", "init", "--path", str(tmp_path)]) == 2
    assert "exists and differs" in capsys.readouterr().err and path.read_text().endswith("# mine\n")
    assert main(["github", "init", "--path", str(tmp_path), "--force"]) == 0
    assert path.read_text() == render_workflow()


@pytest.mark.parametrize("requirement", ['dfbench"; curl x', "dfbench==1 $HOME", ""])
def test_a_requirement_cannot_break_out_of_its_quotes(requirement: str) -> None:
    with pytest.raises(ConfigError, match="pip requirement"):
        render_workflow(requirement)


def test_init_needs_a_checkout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["github", "init", "--path", str(tmp_path)]) == 2
    assert "not a git checkout" in capsys.readouterr().err
    assert not (tmp_path / ".github").exists()
    with pytest.raises(ConfigError, match="no folder"):
        write_workflow(tmp_path / "missing")
