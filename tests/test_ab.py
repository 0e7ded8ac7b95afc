"""dfbench ab: an interleaved A/B of two real local workers on real (tiny) TPC-H data."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dfbench.ab import abba_order
from dfbench.cli import main
from dfbench.data import generate_tpch
from dfbench.worker.process import LocalWorkerProcess

DATASET = "tpch_sf0.01"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    generate_tpch(0.01, partitions=2, data_dir=folder, progress=False)
    return folder


@pytest.fixture(scope="module")
def workers(data_dir: Path) -> Iterator[tuple[str, str]]:
    with LocalWorkerProcess(data_dir=data_dir) as first, LocalWorkerProcess(data_dir=data_dir) as second:
        yield first.url, second.url


def test_abba_order() -> None:
    assert abba_order(3) == ["base", "new", "new", "base", "base", "new"]


def test_two_identical_workers_interleave_file_both_sides_and_find_no_difference(
        workers: tuple[str, str], data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base_url, new_url = workers
    assert main(["ab", base_url, new_url, "--dataset", DATASET, "--rounds", "3", "--queries", "q1,q6",
                 "--data-dir", str(data_dir), "--fail-on-regression"]) == 0
    text = capsys.readouterr().out
    results = data_dir / DATASET / ".results-local"
    engines = sorted(path.name for path in results.iterdir())
    assert len(engines) == 2 and engines[0].endswith("-base") and engines[1].endswith("-new")
    base, new = engines
    assert text.startswith(f"=== Comparing {DATASET} results from engine '{base}' [prev] with '{new}' [new] ===\n")
    assert "   SUITE: unchanged" in text and "rows differ" not in text and "mixed" not in text
    run_ids = set()
    for engine, role in ((base, "base"), (new, "new")):
        for query, rows in (("q1", 4), ("q6", 1)):
            document = json.loads((results / engine / f"{query}.json").read_text())
            assert [i["rowCount"] for i in document["iterations"]] == [rows] * 3  # one iteration per round
            assert document["runId"].endswith(f"-{role}") and len(document["sqlSha256"]) == 64
            run_ids.add(document["runId"].removesuffix(f"-{role}"))
        manifest = json.loads((results / engine / "run.json").read_text())
        assert manifest["ab"]["role"] == role and manifest["ab"]["order"] == abba_order(3)
    assert len(run_ids) == 1  # both sides of one A/B
    assert not (data_dir / DATASET / "previous-local.json").exists()  # an A/B is no baseline


def test_same_worker_twice_is_refused(workers: tuple[str, str], data_dir: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ab", workers[0], workers[0], "--dataset", DATASET, "--data-dir", str(data_dir)]) == 2
    assert "same worker" in capsys.readouterr().err


STANDINS = Path(__file__).parent / "standins"


@contextmanager
def current_standin(tmp_path: Path, errors: list[str]) -> Iterator[str]:
    """Upstream's current worker as its stand-in runs it, /info reporting ``errors``; yields its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    hosts = tmp_path / f"hosts-{port}"
    hosts.write_text("127.0.0.1 workers.ab.internal\n")
    env = {"PATH": os.environ["PATH"], "POD_IP": "127.0.0.1", "DFBENCH_STANDIN_RESOLVE": str(hosts),
           "DFBENCH_STANDIN_ERRORS": json.dumps(errors)}
    process = subprocess.Popen([str(STANDINS / "worker_current.py"), "--port", str(port), "--worker-dns-name",
                                "workers.ab.internal"], env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"{url}/info", timeout=2).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "the stand-in did not start"
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_each_side_s_info_errors_are_shown_by_worker(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    unreachable = "Error connecting to http://10.0.1.12:9001/: transport error"
    with current_standin(tmp_path, [unreachable]) as base, current_standin(tmp_path, []) as new:
        assert main(["ab", base, new, "--dataset", DATASET, "--rounds", "1", "--queries", "q6", "--location",
                     "/data", "--data-dir", str(tmp_path / "data")]) == 0
    err = capsys.readouterr().err
    assert f"base worker {base}: /info reports: {unreachable}" in err
    assert f"new worker {new}" not in err
