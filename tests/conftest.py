"""Fixtures: moto in server mode on loopback, and the request recorder / fault injector."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from dfbench.data import generate_tpch
from dfbench_testing import (
    Ec2Rules,
    Faults,
    LaunchTokens,
    MotoGaps,
    MotoServer,
    PriceList,
    Recorder,
    RequestChecks,
    emulator_environment,
    hooked,
)


@pytest.fixture(scope="module")
def tpch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder holding TPC-H SF 0.01 (one file per table), made once per test module, which
    may add results to it."""
    folder = tmp_path_factory.mktemp("data")
    generate_tpch(0.01, partitions=1, data_dir=folder, progress=False)
    return folder


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture
def launch_tokens() -> LaunchTokens:
    """EC2's memory of RunInstances client tokens, for the test's emulated account."""
    return LaunchTokens()


@pytest.fixture
def price_list() -> PriceList:
    """AWS's Price List API (moto has none) for the test's account: a test changes its prices,
    or makes it refuse (``refuse``), before the calls."""
    return PriceList()


@pytest.fixture
def aws(moto_server: MotoServer, launch_tokens: LaunchTokens, price_list: PriceList, monkeypatch: pytest.MonkeyPatch,
        tmp_path) -> Iterator[MotoServer]:
    """A clean emulated account; dfbench's clients reach it through AWS_ENDPOINT_URL."""
    moto_server.reset()
    for name in ("AWS_PROFILE", "AWS_VAULT", "BENCHMARK_BUCKET", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        monkeypatch.delenv(name, raising=False)
    for name, value in emulator_environment(moto_server.url).items():
        monkeypatch.setenv(name, value)
    # Emulated AWS takes no time: shrink every poll interval instead of sleeping for real.
    monkeypatch.setenv("DFBENCH_TIME_SCALE", "0.001")
    monkeypatch.chdir(tmp_path)
    # AWS's own checks where moto and botocore lack them: the model's patterns, enums and limits,
    # and EC2's server-side rules (dfbench_testing.strict), on for every test; EC2's memory of
    # launch tokens (dfbench_testing.launches); the Price List API (dfbench_testing.pricing).
    with hooked(MotoGaps(moto_server.url).hook, RequestChecks().hook, Ec2Rules(moto_server.url).hook,
                launch_tokens.hook, price_list.hook):
        yield moto_server


@pytest.fixture
def recorder(aws: MotoServer) -> Iterator[Recorder]:
    recorder = Recorder()
    with hooked(recorder.hook):
        yield recorder


@pytest.fixture
def faults(aws: MotoServer) -> Iterator[Faults]:
    faults = Faults()
    with hooked(faults.hook):
        yield faults


class Inspector:
    """Plain boto3 clients, outside dfbench's client factory, to check what really exists. Each
    is built once per test: a client costs tens of milliseconds to build, and the convergence
    checks ask for several after every run."""

    def __init__(self) -> None:
        self._session = boto3.Session(region_name="us-east-1")
        self._clients: dict[tuple, object] = {}

    def client(self, service: str, **options):
        key = (service, *sorted(options.items()))
        if key not in self._clients:
            self._clients[key] = self._session.client(service, **options)
        return self._clients[key]


@pytest.fixture
def inspector(aws: MotoServer) -> Inspector:
    return Inspector()


@pytest.fixture(autouse=True)
def _own_state_folder(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test's XDG_STATE_HOME is a folder of its own: dfbench's SSH pins default to the
    user's state folder, and no test may read or write the real one."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
