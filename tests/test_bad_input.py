"""Every bad input of issue 13, through the command line as a user types it: one line on stderr
starting with "error:", exit 2, no traceback, and nothing written anywhere.

The table is the contract: a new bad input found later gets a row here. Commands that would
need AWS are given none (no credentials, no endpoint): each must be refused before any call."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dfbench.cli import main

RESULTS = "tpch_sf1/.results-remote"

# (name, argv, files to create first {relative path: content or None for a folder}, what stderr names)
CASES: list[tuple[str, list[str], dict[str, str | None], str]] = [
    ("worker port", ["worker", "--port", "70000"], {}, "70000 is not a TCP port"),
    ("tunnel port", ["tunnel", "--cluster", "c", "--port", "70000"], {}, "70000 is not a TCP port"),
    ("tunnel port text", ["tunnel", "--cluster", "c", "--port", "http"], {}, "not a port number"),
    ("worker on the LAN", ["worker", "--host", "0.0.0.0"], {}, "--allow-remote"),
    ("ssh to the world", ["plan", "--cluster", "c", "--ssh-cidr", "0.0.0.0/0"], {}, "--allow-wide-ssh"),
    ("ssh cidr host bits", ["plan", "--cluster", "c", "--ssh-cidr", "10.1.2.3/8"], {}, "10.1.2.3/8"),
    *[(f"{' '.join(argv[:2])} on a file", [*argv, "--data-dir", "afile"], {"afile": "x"}, "afile is a file")
      for argv in (["data", "list"], ["data", "sync", "tpch_sf1"], ["data", "generate", "--sf", "0.01"],
                   ["bench", "--sf", "0.01"], ["compare", "--dataset", "tpch_sf1", "a", "b"])],
    ("data dir under a file", ["data", "generate", "--sf", "0.01", "--data-dir", "afile/data"], {"afile": "x"},
     "afile is a file"),
    *[(f"dataset {name!r} for {argv[0]}", [*argv, name] if argv[0] == "data" else [*argv, "--dataset", name], {},
       "Invalid dataset name")
      for name in ("../escape", "/etc", "a/b", "..")
      for argv in (["data", "sync"], ["compare", "a", "b"], ["bench", "--url", "http://127.0.0.1:9"])],
    *[(f"result with {field}", ["compare", "--dataset", "tpch_sf1", "--data-dir", "d", "a", "b"],
       {f"d/{RESULTS}/a/q1.json": json.dumps({"iterations": [{"elapsed": 1.5, "rowCount": 4}]}),
        f"d/{RESULTS}/b/q1.json": json.dumps(document)}, mentions)
      for field, document, mentions in (
          ("elapsed text", {"iterations": [{"elapsed": "fast"}]}, "elapsed must be a number"),
          ("iterations a number", {"elapsed": 1.0, "iterations": 3}, "no \"iterations\" list"),
          ("rowCount text", {"iterations": [{"elapsed": 1.0, "rowCount": "x"}]}, "rowCount must be a whole number"),
          ("tasks negative", {"iterations": [{"elapsed": 1.0, "tasks": -2}]}, "tasks must be a whole number"),
          ("id a list", {"id": ["q1"], "iterations": [{"elapsed": 1.0}]}, "id must be a string"),
          ("error a number", {"iterations": [{"elapsed": 1.0, "error": 5}]}, "error must be a string"),
          ("a list", [1, 2], "is not a benchmark result"),
      )],
]

# `bench --dataset` on this machine in a new folder: the dataset is checked before the local worker
# starts (which would refuse a missing --data-dir in words of its own), so both an empty folder and
# an empty data folder get the one line that says how to make the dataset.
CASES += [
    (f"bench {where}", ["bench", "--dataset", "tpch_sf1"], files,
     "No dataset 'tpch_sf1' in benchmarks/data: make it with `dfbench data generate --sf 1`")
    for where, files in (("in an empty folder", {}), ("with an empty data folder", {"benchmarks/data": None}))
]

# compare: several datasets are for --engines only; BASE NEW compares one.
CASES += [("compare two datasets", ["compare", "--dataset", "tpch_sf1,tpch/sf10", "a", "b"], {},
           "several datasets go with --engines")]

# --secret-env (deploy): the reference is checked before the binary and before any AWS call.
_DEPLOY = ["deploy", "--cluster", "s", "--binary", "worker", "--env", "RUST_LOG=info", "--secret-env"]
CASES += [
    # An engine is a folder of the results folder: a path would read results from elsewhere.
    *[(f"engine {name!r} for compare", ["compare", "--dataset", "tpch_sf1", "--data-dir", "d", name, "b"],
       {"d/tpch_sf1/x/q1.json": "{}", "d/tpch_sf1/.results-remote/b/q1.json": "{}"}, "Invalid engine name")
      for name in ("../x", "..", "a/b")],
]

CASES += [
    (f"secret {name}", [*_DEPLOY, text], {}, mentions)
    for name, text, mentions in (
        ("lower-case name", "api_token=ssm:/dfbench/s/t", "'api_token' is not an environment variable name"),
        ("name starting with a digit", "1TOKEN=ssm:/dfbench/s/t", "is not an environment variable name"),
        ("dfbench's own variable", "POD_IP=ssm:/dfbench/s/t", "dfbench sets POD_IP itself"),
        ("also given as --env", "RUST_LOG=ssm:/dfbench/s/t", "RUST_LOG is given both as --env and as --secret-env"),
        ("the value itself", "TOKEN=hunter2", "give an SSM parameter, not the value: TOKEN=ssm:/dfbench/s/"),
        ("another cluster's parameter", "TOKEN=ssm:/dfbench/other/t", "is not under /dfbench/s/"),
        ("outside /dfbench", "TOKEN=ssm:/prod/db/password", "is not under /dfbench/s/"),
        ("the prefix alone", "TOKEN=ssm:/dfbench/s/", "is not under /dfbench/s/"),
        ("a space", "TOKEN=ssm:/dfbench/s/api token", "is not an SSM parameter name"),
        ("a wildcard", "TOKEN=ssm:/dfbench/s/*", "is not an SSM parameter name"),
        ("a parent folder", "TOKEN=ssm:/dfbench/s/../other/t", "is not an SSM parameter name"),
        ("a trailing slash", "TOKEN=ssm:/dfbench/s/t/", "is not an SSM parameter name"),
        ("a double slash", "TOKEN=ssm:/dfbench/s//t", "is not an SSM parameter name"),
        ("too deep", "TOKEN=ssm:/dfbench/s/" + "/".join("abcdefghijklmn"), "longer than SSM allows"),
        ("without NAME=", "ssm:/dfbench/s/t", "must look like NAME=VALUE"),
    )
]
# ab --cluster: BASE and NEW are builds, checked before any AWS call like deploy's.
_AB = ["ab", "--dataset", "tpch_sf1", "--cluster", "c"]
CASES += [
    ("ab the same build twice", [*_AB, "worker", "./worker"], {}, "BASE and NEW are the same worker"),
    ("ab a missing binary", [*_AB, "base", "new"], {}, "No worker binary at base"),
    ("ab a secret of another cluster", [*_AB, "base", "new", "--secret-env", "T=ssm:/dfbench/d/t"], {},
     "is not under /dfbench/c/"),
    ("ab a deploy option with URLs", ["ab", "http://127.0.0.1:1", "http://127.0.0.1:2", "--dataset", "tpch_sf1",
                                      "--env", "RUST_LOG=info"], {}, "--env only with --cluster"),
]

# sweep and clusters: a duration and a region are checked before any AWS call.
CASES += [
    ("sweep age without a unit", ["sweep", "--older-than", "5"], {}, "'5' is not a duration such as 30m, 2h or 1d"),
    ("sweep age in weeks", ["sweep", "--older-than", "2w"], {}, "'2w' is not a duration"),
    ("sweep negative age", ["sweep", "--older-than=-1h"], {}, "'-1h' is not a duration"),
    ("sweep one region and all", ["sweep", "--region", "us-east-1", "--all-regions"], {},
     "--all-regions: not allowed with argument --region"),
    ("sweep a region that is none", ["sweep", "--region", "nowhere"], {}, "'nowhere' is not an AWS region"),
    ("clusters a region that is none", ["clusters", "--region", "nowhere"], {}, "'nowhere' is not an AWS region"),
]

# How many rounds, and the handicap and run-to-run numbers of issue 25: checked before any worker is
# contacted (the URLs below answer nothing) and before any AWS call.
_AB_URLS = ["ab", "http://127.0.0.1:1", "http://127.0.0.1:2", "--dataset", "tpch_sf1"]
CASES += [
    ("ab until zero", [*_AB_URLS, "--until", "0"], {}, "--until must be a percentage above 0 and below 100"),
    ("ab until 150%", [*_AB, "base", "new", "--until", "150"], {}, "not 150"),
    ("ab max-rounds below rounds", [*_AB_URLS, "--rounds", "6", "--max-rounds", "4"], {},
     "--max-rounds must be a whole number no smaller than --rounds (6)"),
    ("ab negative seed", [*_AB_URLS, "--seed", "-1"], {}, "--seed must be a whole number of at least 0"),
    ("ab no rounds", [*_AB_URLS, "--rounds", "0"], {}, "rounds must be a whole number of at least 1"),
    ("worker slowdown above 1", ["worker", "--slowdown", "2"], {}, "--slowdown must be a fraction from 0 to 1"),
    ("worker slowdown negative", ["worker", "--slowdown", "-0.1"], {}, "--slowdown must be a fraction"),
    ("worker slowdown text", ["worker", "--slowdown", "ten"], {}, "'ten' is not a number"),
    ("compare run-to-run above 100%", ["compare", "--dataset", "tpch_sf1", "--run-to-run", "150", "a", "b"], {},
     "--run-to-run must be a percentage from 0 to 100"),
]


def _make(root: Path, files: dict[str, str | None]) -> None:
    for rel, content in files.items():
        path = root / rel
        if content is None:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)


def _tree(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*")}


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder, a home and a state folder of the test's own, and no AWS at all."""
    for name in [n for n in os.environ if n.startswith("AWS_")] + ["BENCHMARK_BUCKET"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.mark.parametrize(("argv", "files", "mentions"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(place: Path, capsys: pytest.CaptureFixture[str],
                                                         argv: list[str], files: dict[str, str | None],
                                                         mentions: str) -> None:
    _make(place, files)
    before = _tree(place.parent)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert mentions in lines[0]
    assert _tree(place.parent) == before


# An unreadable folder: root reads every folder whatever its mode through two capabilities
# (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so as root the command runs without them (setpriv drops
# them from its bounding set): still root, so it reaches the checkout wherever the clone lands (a
# 0700 folder from mktemp -d, a path with spaces), but held to the locked folder's mode 000. As any
# other user it runs in this process.
UNREADABLE = [["data", "list"], ["data", "sync", "tpch_sf1"], ["data", "generate", "--sf", "0.01"],
              ["bench", "--sf", "0.01"], ["compare", "--dataset", "tpch_sf1", "a", "b"]]
WITHOUT_DAC_CAPABILITIES = ["setpriv", "--bounding-set=-dac_override,-dac_read_search",
                            "--inh-caps=-dac_override,-dac_read_search"]


@pytest.mark.parametrize("argv", UNREADABLE, ids=[" ".join(a[:2]) for a in UNREADABLE])
def test_an_unreadable_data_folder_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      argv: list[str]) -> None:
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o000)
    try:
        if os.geteuid() != 0:
            code = main([*argv, "--data-dir", str(folder)])
            err = capsys.readouterr().err
        else:
            if shutil.which("setpriv") is None:
                pytest.skip("as root this needs setpriv (util-linux) to drop the capabilities that read any folder")
            done = subprocess.run(
                [*WITHOUT_DAC_CAPABILITIES, sys.executable, "-c",
                 "import sys; from dfbench.cli import main; sys.exit(main(sys.argv[1:]))",
                 *argv, "--data-dir", str(folder)],
                capture_output=True, text=True, timeout=120, cwd=tmp_path,
                env={**os.environ, "HOME": str(tmp_path)}, check=False)
            code, err = done.returncode, done.stderr
    finally:
        folder.chmod(0o700)
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "cannot read" in lines[0], err
