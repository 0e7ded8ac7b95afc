"""`dfbench github run` before any cluster: the comment grammar (a pure function), the limits, and
the decision against a loopback stand-in of GitHub's API: ordinary comments make no request,
commands are checked for write access first, refusals get one reply, valid requests an eyes
reaction; none of it calls AWS."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dfbench.cli import main
from dfbench.errors import ConfigError
from dfbench.github.command import BenchRequest, Limits, Refusal, dataset_for, parse_comment, quoted
from dfbench_testing.github import GitHubStandin

BASE_SHA = "b" * 40
HEAD_SHA = "a" * 40


# The grammar.

@pytest.mark.parametrize("body", ["LGTM", "", "  \n", "please run /dfbench run tpch/sf1", "/dfbenchx run tpch_sf1",
                                  "> /dfbench run tpch/sf1 (quoting someone)"])
def test_an_ordinary_comment_is_no_command(body: str) -> None:
    assert parse_comment(body) is None


def test_a_full_command_gives_every_field_typed() -> None:
    request = parse_comment("\n  /dfbench run tpch/sf10 --nodes 8 --instance-type c6i.2xlarge --base release-1.2 "
                            "--set distributed.compression=zstd --set datafusion.execution.batch_size=4096 "
                            "--rounds 3 --queries q1,q3 q6\nThanks!")
    assert request == BenchRequest(
        line="/dfbench run tpch/sf10 --nodes 8 --instance-type c6i.2xlarge --base release-1.2 --set "
             "distributed.compression=zstd --set datafusion.execution.batch_size=4096 --rounds 3 --queries q1,q3 q6",
        dataset="tpch_sf10", nodes=8, instance_type="c6i.2xlarge", rounds=3, base="release-1.2",
        settings=(("distributed.compression", "zstd"), ("datafusion.execution.batch_size", "4096")),
        queries=("q1", "q3", "q6"))


def test_defaults_come_from_the_limits() -> None:
    limits = Limits(nodes=2, rounds=7, instance_types=("m5.2xlarge", "c5n.2xlarge"))
    assert parse_comment("/dfbench run tpcds_sf1 --nodes=3", limits) == BenchRequest(
        line="/dfbench run tpcds_sf1 --nodes=3", dataset="tpcds_sf1", nodes=3, instance_type="m5.2xlarge", rounds=7)


@pytest.mark.parametrize(("name", "dataset"), [("tpch/sf10", "tpch_sf10"), ("tpcds/sf1", "tpcds_sf1"),
                                              ("tpch_sf0.1", "tpch_sf0.1"), ("tpch/sf10.0", "tpch_sf10"),
                                              ("clickbench_0-100", "clickbench_0-100"),
                                              ("clickbench/0-100", "clickbench_0-100"),
                                              ("tpch/sorted_sf10", "tpch_sorted_sf10"),
                                              ("testdata/tpch/sf1", "tpch_sf1")])
def test_dataset_names_of_both_spellings(name: str, dataset: str) -> None:
    assert dataset_for(name) == dataset


@pytest.mark.parametrize("name", ["tpch", "tpch/10", "tpch/sf-1", "../tpch_sf1", "tpch_sf1/..", "imdb/sf1"])
def test_unknown_datasets_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="unknown dataset"):
        dataset_for(name)


REFUSALS = [
    ("/dfbench", "the only command"),
    ("/dfbench bench tpch/sf1", "not `bench`"),
    ("/dfbench run", "name the dataset"),
    ("/dfbench run --nodes 2", "name the dataset"),
    ("/dfbench run imdb", "unknown dataset `imdb`"),
    ("/dfbench run tpch/sf1000", "scale factor 1000 is over this repository's limit of 100"),
    ("/dfbench run tpch/sf1 --nodes 17", "from 1 to 16"),
    ("/dfbench run tpch/sf1 --nodes 0", "from 1 to 16"),
    ("/dfbench run tpch/sf1 --nodes two", "got `two`"),
    ("/dfbench run tpch/sf1 --rounds 21", "from 1 to 20"),
    ("/dfbench run tpch/sf1 --instance-type p5.48xlarge", "`p5.48xlarge` is not allowed"),
    ("/dfbench run tpch/sf1 --base ../etc", "not a branch, tag or commit"),
    ("/dfbench run tpch/sf1 --base -x", "not a branch, tag or commit"),
    ("/dfbench run tpch/sf1 --base 'a b'", "not a branch, tag or commit"),
    ("/dfbench run tpch/sf1 --base main --base dev", "given twice"),
    ("/dfbench run tpch/sf1 --set nokey", "key=value"),
    ("/dfbench run tpch/sf1 --set 'x;drop=1'", "Invalid setting name"),
    ("/dfbench run tpch/sf1 --queries q23", "q23"),
    ("/dfbench run tpch/sf1 --queries q1,q1", "q1"),
    ("/dfbench run tpch/sf1 --cluster prod", "unknown option `--cluster`"),
    ("/dfbench run tpch/sf1 extra", "unexpected `extra`"),
    ("/dfbench run tpch/sf1 --nodes", "needs a value"),
    ("/dfbench run 'tpch/sf1", "does not split into words"),
]


@pytest.mark.parametrize(("body", "reason"), REFUSALS)
def test_a_bad_command_is_refused_with_its_reason_and_the_way_to_write_it(body: str, reason: str) -> None:
    refusal = parse_comment(body)
    assert isinstance(refusal, Refusal), refusal
    assert reason in refusal.reason
    reply = refusal.reply()
    assert reason in reply and "/dfbench run DATASET [--nodes N]" in reply and "at most 16 nodes" in reply
    assert not reply.startswith("/dfbench")  # a reply is never a command itself


def test_the_commenters_text_is_quoted_whatever_its_backticks() -> None:
    text = "/dfbench run x ```` @maintainers"
    block = quoted(text)
    assert block.startswith("`````\n") and block.endswith("\n`````") and text in block


def test_limits_are_checked_themselves() -> None:
    with pytest.raises(ConfigError, match="between 1 and the maximum 4"):
        Limits(max_nodes=4, nodes=8)
    with pytest.raises(ConfigError, match="not an EC2 instance type"):
        Limits(instance_types=("big one",))
    assert "scale factor at most 1" in Limits(max_scale_factor=Decimal(1)).describe()


# The decision, through the command line, against the stand-in.

@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    with GitHubStandin("octo-org/datafusion-distributed") as standin:
        for name, value in standin.environment().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "outputs"))
        standin.permissions.update({"writer": "write", "keeper": "maintain", "reader": "read", "triager": "triage"})
        standin.pull(7, head_sha=HEAD_SHA, base_sha=BASE_SHA)
        standin.state.refs["release-1"] = "c" * 40
        yield standin


def comment_event(tmp_path: Path, body: str, *, login: str = "writer", on_pull: bool = True,
                  action: str = "created", kind: str = "User") -> Path:
    issue: dict[str, Any] = {"number": 7, "title": "$(rm -rf /)"}
    if on_pull:
        issue["pull_request"] = {"url": "https://api.github.com/repos/octo-org/datafusion-distributed/pulls/7"}
    path = tmp_path / "event.json"
    path.write_text(json.dumps({"action": action, "issue": issue, "comment": {
        "id": 99, "body": body, "user": {"login": login, "type": kind}, "author_association": "OWNER"}}))
    return path


def outputs(tmp_path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (tmp_path / "outputs").read_text().splitlines())


def run_check(event: Path, monkeypatch: pytest.MonkeyPatch, name: str = "issue_comment") -> int:
    monkeypatch.setenv("GITHUB_EVENT_NAME", name)
    return main(["github", "run", "--event", str(event)])


@pytest.mark.parametrize("body", ["Looks good to me", "/dfbenchmark is a nice name", ""])
def test_an_ordinary_comment_makes_no_request_at_all(github: Any, recorder: Any, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    assert run_check(comment_event(tmp_path, body), monkeypatch) == 0
    assert github.requests == [] and recorder.calls == []
    assert outputs(tmp_path) == {"proceed": "false"}


@pytest.mark.parametrize(("options", "why"), [({"on_pull": False}, "an issue"), ({"action": "edited"}, "an edit"),
                                              ({"kind": "Bot"}, "a bot")])
def test_a_command_that_is_no_request_is_ignored(github: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 options: dict[str, Any], why: str) -> None:
    assert run_check(comment_event(tmp_path, "/dfbench run tpch/sf1", **options), monkeypatch) == 0, why
    assert github.requests == []


def test_a_bad_command_gets_one_reply_and_nothing_else(github: Any, recorder: Any, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_check(comment_event(tmp_path, "/dfbench run tpch/sf1 --nodes 99"), monkeypatch) == 0
    assert [(r.method, r.route) for r in github.requests] == [
        ("GET", "/repos/{repo}/collaborators/writer/permission"), ("POST", "/repos/{repo}/issues/7/comments")]
    [(number, body)] = github.comments
    assert number == 7 and "`--nodes` takes a whole number from 1 to 16" in body and "Write it as" in body
    assert github.reactions == [] and recorder.calls == []
    assert outputs(tmp_path) == {"proceed": "false"}


@pytest.mark.parametrize("login", ["reader", "triager", "stranger"])
def test_a_commenter_without_write_access_is_refused_before_anything_else(
        github: Any, recorder: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, login: str) -> None:
    # Even a malformed command: the permission decides first, and says nothing about the syntax.
    for body in ("/dfbench run tpch/sf1", "/dfbench run nonsense"):
        github.state.requests.clear()
        github.state.comments.clear()
        assert run_check(comment_event(tmp_path, body, login=login), monkeypatch) == 0
        assert [(r.method, r.route) for r in github.requests] == [
            ("GET", f"/repos/{{repo}}/collaborators/{login}/permission"), ("POST", "/repos/{repo}/issues/7/comments")]
        [(_, reply)] = github.comments
        assert f"{login} has none" in reply and "unknown dataset" not in reply
    assert github.reactions == [] and recorder.calls == []


@pytest.mark.parametrize("login", ["writer", "keeper"])
def test_a_valid_command_gets_eyes_and_names_the_commits_to_build(
        github: Any, recorder: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, login: str) -> None:
    assert run_check(comment_event(tmp_path, "/dfbench run tpch/sf10 --nodes 2", login=login), monkeypatch) == 0
    assert [(r.method, r.route) for r in github.requests] == [
        ("GET", f"/repos/{{repo}}/collaborators/{login}/permission"),
        ("POST", "/repos/{repo}/issues/comments/99/reactions"),
        ("GET", "/repos/{repo}/pulls/7"), ("GET", "/repos/{repo}/commits/main")]
    assert github.reactions == [(99, "eyes")] and github.comments == []
    assert outputs(tmp_path) == {"proceed": "true", "base_sha": BASE_SHA, "head_sha": HEAD_SHA, "pr": "7"}
    assert recorder.calls == []
    # Every request carried the token and the API version.
    assert all(r.headers["authorization"] == f"Bearer {github.token}" and r.headers["x-github-api-version"]
               for r in github.requests)


def test_an_unknown_base_ref_is_answered(github: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_check(comment_event(tmp_path, "/dfbench run tpch/sf1 --base nope"), monkeypatch) == 0
    [(_, reply)] = github.comments
    assert "no branch, tag or commit `nope`" in reply
    assert outputs(tmp_path) == {"proceed": "false"}
    github.state.comments.clear()
    assert run_check(comment_event(tmp_path, "/dfbench run tpch/sf1 --base release-1"), monkeypatch) == 0
    assert outputs(tmp_path)["base_sha"] == "c" * 40 and github.comments == []


def test_a_dispatch_names_the_pull_request_and_the_command(github: Any, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    event = tmp_path / "dispatch.json"
    event.write_text(json.dumps({"inputs": {"pr": "7", "command": "/dfbench run tpcds/sf1"},
                                 "sender": {"login": "keeper"}}))
    assert run_check(event, monkeypatch, "workflow_dispatch") == 0
    assert outputs(tmp_path)["proceed"] == "true" and github.reactions == []
    event.write_text(json.dumps({"inputs": {"pr": "7; true", "command": "/dfbench run tpcds/sf1"},
                                 "sender": {"login": "keeper"}}))
    assert run_check(event, monkeypatch, "workflow_dispatch") == 2


def test_the_benchmark_job_decides_again_silently_before_any_aws_call(
        github: Any, recorder: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("base", "head"):
        (tmp_path / name).write_bytes(b"\x7fELF")
    monkeypatch.setenv("GITHUB_EVENT_NAME", "issue_comment")
    code = main(["github", "run", "--event", str(comment_event(tmp_path, "/dfbench run tpch/sf1", login="reader")),
                 "--base-binary", str(tmp_path / "base"), "--head-binary", str(tmp_path / "head")])
    assert code == 2 and "nothing was started" in capsys.readouterr().err
    assert github.comments == [] and github.reactions == [] and recorder.calls == []


@pytest.mark.parametrize(("argv", "message"), [
    (["--base-binary", "x"], "give both --base-binary and --head-binary"),
    (["--base-sha", "main"], "40-hex sha"),
    (["--max-scale-factor", "lots"], "not a number"),
    (["--nodes", "40"], "between 1 and the maximum 16"),
])
def test_bad_flags_are_one_line_before_anything(github: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str], argv: list[str],
                                                message: str) -> None:
    monkeypatch.setenv("GITHUB_EVENT_NAME", "issue_comment")
    code = main(["github", "run", "--event", str(comment_event(tmp_path, "/dfbench run tpch/sf1")), *argv])
    assert code == 2 and message in capsys.readouterr().err and github.requests == []


def test_a_broken_event_file_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GITHUB_EVENT_NAME", "issue_comment")
    (tmp_path / "e.json").write_text('{"action": "created"}')
    assert main(["github", "run", "--event", str(tmp_path / "e.json")]) == 2
    assert "lacks the fields of a GitHub issue_comment event" in capsys.readouterr().err
    monkeypatch.setenv("GITHUB_EVENT_NAME", "push")
    assert main(["github", "run", "--event", str(tmp_path / "e.json")]) == 2


def test_a_failed_build_is_reported_once_naming_the_step(github: Any, recorder: Any, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_EVENT_NAME", "issue_comment")
    event = comment_event(tmp_path, "/dfbench run tpch/sf1")
    assert main(["github", "run", "--event", str(event), "--failed-step", "build"]) == 0
    [(number, body)] = github.comments
    assert number == 7 and body.startswith("### dfbench: the **build** step failed")
    assert "Nothing was provisioned." in body and "actions/runs/4242" in body
    assert github.reactions == [] and recorder.calls == []
    assert main(["github", "run", "--event", str(event), "--failed-step", "$(x)"]) == 2
