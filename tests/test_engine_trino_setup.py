"""Trino's install plan (dfbench.engines.trino_setup): its step, status and remove scripts run for
real with bash, each stand-in instance with its own root, systemd and dnf (dfbench_testing.units),
downloading from the release site on loopback, its service a stand-in Trino release's launcher
(dfbench_testing.trino_release) on its own loopback port.

The nodes' private addresses are 127.0.0.11 and 127.0.0.12: loopback, only written into the
configuration (nothing connects to them), and left alone by the rewrite of 127.0.0.1:8080."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from dfbench.engines.setup import EnginePlan, Machine, Node, parse_status, success_line
from dfbench.engines.trino_setup import JAVA_PACKAGE, METASTORE_PREFIX, TRINO_PORT, TRINO_VERSION, trino_plan
from dfbench.errors import ConfigError
from dfbench_testing import system_tool
from dfbench_testing.releases import ReleaseSite
from dfbench_testing.ssm import localize
from dfbench_testing.trino_release import instance_environment, publish_trino, tarball_path
from dfbench_testing.units import StandinUnits

BUCKET = "bench-bucket"
REGION = "eu-west-1"
C5N_2XLARGE = Machine("c5n.2xlarge", 21 * 1024, 8)
NODES = [Node("i-0aaaaaaaaaaaaaaa1", "127.0.0.11"), Node("i-0bbbbbbbbbbbbbbb2", "127.0.0.12")]
SERVICE = "dfbench-trino.service"
TARBALL = tarball_path(TRINO_VERSION)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def plan(machine: Machine = C5N_2XLARGE, nodes: list[Node] = NODES, **options: Any) -> EnginePlan:
    return trino_plan(nodes=nodes, machine=machine, bucket=BUCKET, region=REGION, **options)


@dataclass
class Instance:
    node: Node
    units: StandinUnits
    site: ReleaseSite
    port: int
    nodes: int
    buckets: dict[str, str]

    @property
    def root(self) -> Path:
        return self.units.root

    @property
    def install(self) -> Path:
        return self.root / "opt/dfbench/trino" / TRINO_VERSION

    def run(self, script: str, *, path_first: Path | None = None, ready_timeout: int = 20,
            nodes: int | None = None) -> subprocess.CompletedProcess[str]:
        """``script`` as this instance's agent runs it, its port 8080 this instance's."""
        file = self.root.parent / "script.sh"
        file.write_text(localize(script, {TRINO_PORT: self.port}))
        env = {**os.environ, **self.units.environment, "AWS_SSM_INSTANCE_ID": self.node.instance_id,
               "DFBENCH_DOWNLOAD_BASE": self.site.base, "DFBENCH_READY_TIMEOUT": str(ready_timeout),
               **instance_environment({TRINO_PORT: self.port}, nodes=self.nodes if nodes is None else nodes,
                                      buckets=self.buckets)}
        if path_first is not None:
            env["PATH"] = f"{path_first}{os.pathsep}{env['PATH']}"
        return subprocess.run(["bash", str(file)], env=env, capture_output=True, text=True, timeout=90, check=False)

    def step(self, engine_plan: EnginePlan, name: str, **options: Any) -> subprocess.CompletedProcess[str]:
        return self.run(next(step.script for step in engine_plan.steps if step.name == name), **options)


def succeeded(result: subprocess.CompletedProcess[str], engine_step: str) -> bool:
    lines = result.stdout.strip().splitlines()
    return result.returncode == 0 and lines[-1:] == [success_line("trino", engine_step)]


def install(instance: Instance, engine_plan: EnginePlan) -> None:
    for step in engine_plan.steps:
        result = instance.run(step.script)
        assert succeeded(result, step.name), (step.name, result.stdout, result.stderr)


@pytest.fixture
def site() -> Iterator[ReleaseSite]:
    with ReleaseSite() as served:
        yield served


@pytest.fixture
def packages(site: ReleaseSite) -> dict[str, dict[str, str]]:
    return publish_trino(site, TRINO_VERSION)


@pytest.fixture
def instances(tmp_path: Path, site: ReleaseSite, packages: dict[str, dict[str, str]]) -> Iterator[list[Instance]]:
    bucket_folder = tmp_path / "bucket"
    bucket_folder.mkdir()
    with ExitStack() as stack:
        found = []
        for node in NODES:
            # A space in every path, as a checkout under such a folder has: the unit and the launcher quote theirs.
            units = stack.enter_context(StandinUnits(tmp_path / f"instance {node.instance_id}", packages=packages))
            found.append(Instance(node, units, site, free_port(), len(NODES), {BUCKET: str(bucket_folder)}))
        yield found


@pytest.fixture
def alone(instances: list[Instance]) -> Instance:
    """The first instance, as the only node of a plan of one."""
    return replace(instances[0], nodes=1)


def properties(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def statement(port: int, sql: str) -> list[list[Any]]:
    """The rows of ``sql`` through Trino's client protocol (POST, then nextUri until none)."""
    def call(url: str, body: bytes | None = None) -> dict[str, Any]:
        request = urllib.request.Request(url, data=body, headers={"X-Trino-User": "test", "X-Trino-Schema": "tpch"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return dict(json.load(answer))

    document, rows = call(f"http://127.0.0.1:{port}/v1/statement", sql.encode()), []
    while True:
        assert "error" not in document, document["error"]
        rows += document.get("data", [])
        if "nextUri" not in document:
            return rows
        document = call(document["nextUri"])


# --- the plan ------------------------------------------------------------------------------


@pytest.mark.parametrize(("memory_mib", "heap_gib"), [(21 * 1024, 10), (8 * 1024, 4), (1024, 1), (3 * 1024, 1),
                                                      (384 * 1024, 192)])
def test_memory_is_half_the_instance_and_leaves_heap_free(memory_mib: int, heap_gib: int) -> None:
    settings = plan(Machine("x.large", memory_mib, 4)).settings
    assert settings["heap_gib"] == heap_gib
    per_node = int(settings["query.max-memory-per-node"].removesuffix("MB"))
    headroom = int(settings["memory.heap-headroom-per-node"].removesuffix("MB"))
    assert per_node == heap_gib * 1024 * 80 // 100 and headroom == heap_gib * 1024 * 15 // 100
    assert per_node + headroom < heap_gib * 1024
    assert settings["query.max-memory"] == f"{per_node * len(NODES)}MB"


def test_plan_records_its_choices() -> None:
    engine_plan = plan()
    assert (engine_plan.engine, engine_plan.version, engine_plan.port) == ("trino", "476", 8080)
    assert engine_plan.bucket_prefixes == (METASTORE_PREFIX + "/",)
    assert engine_plan.settings == {"heap_gib": 10, "query.max-memory-per-node": "8192MB",
                                    "memory.heap-headroom-per-node": "1536MB", "query.max-memory": "16384MB",
                                    "java": JAVA_PACKAGE, "coordinator": NODES[0].instance_id}
    assert [step.name for step in engine_plan.steps] == ["packages", "download", "configure", "verify"]
    assert plan(version="480").version == "480"


@pytest.mark.parametrize(("options", "words"), [
    ({"version": "475"}, "476 or later"),
    ({"version": "476; rm -rf /"}, "Not a Trino version"),
    ({"version": "4.7.6"}, "Not a Trino version"),
    ({"version": "0476"}, "Not a Trino version"),
    ({"bucket": "Bad_Bucket"}, "invalid S3 bucket name"),
    ({"bucket": "a..b"}, "invalid S3 bucket name"),
    ({"region": "eu-west"}, "not an AWS region"),
    ({"region": "eu-west-1; id"}, "not an AWS region"),
    ({"nodes": []}, "No instances"),
    ({"machine": Machine("x.large", 0, 2)}, "reports no memory"),
])
def test_bad_input_is_one_config_error(options: dict[str, Any], words: str) -> None:
    arguments = {"nodes": NODES, "machine": C5N_2XLARGE, "bucket": BUCKET, "region": REGION, **options}
    with pytest.raises(ConfigError, match=words):
        trino_plan(**arguments)


@pytest.mark.parametrize(("instance_id", "ip"), [("i-xyz", "10.0.0.1"), ("i-0aaaaaaaaaaaaaaa1; id", "10.0.0.1"),
                                                 ("i-0aaaaaaaaaaaaaaa1", "10.0.0.256"),
                                                 ("i-0aaaaaaaaaaaaaaa1", "10.0.0.1 $(id)")])
def test_a_bad_node_is_a_config_error(instance_id: str, ip: str) -> None:
    with pytest.raises(ConfigError):
        plan(nodes=[Node(instance_id, ip)])


def test_every_script_passes_shellcheck() -> None:
    engine_plan = plan()
    scripts = {step.name: step.script for step in engine_plan.steps}
    scripts |= {"status": engine_plan.status_script, "remove": engine_plan.remove_script}
    for name, script in scripts.items():
        result = subprocess.run([system_tool("shellcheck"), "--shell=bash", "-"], input=script, capture_output=True,
                                text=True, check=False)
        assert result.returncode == 0, (name, result.stdout)


# --- on two instances ----------------------------------------------------------------------


def test_two_nodes_install_then_converge(instances: list[Instance], site: ReleaseSite) -> None:
    coordinator, worker = instances
    engine_plan = plan()
    for step in engine_plan.steps:
        for instance in instances:
            result = instance.run(step.script)
            assert succeeded(result, step.name), (step.name, instance.node, result.stdout, result.stderr)
            if step.name == "verify" and instance is coordinator:
                assert "Trino 476: 2 active nodes" in result.stdout
    for instance in instances:
        etc = instance.install / "etc"
        assert properties(etc / "node.properties") == {
            "node.environment": "dfbench", "node.id": instance.node.instance_id,
            "node.data-dir": str(instance.root / "var/lib/dfbench/trino")}
        assert "-Xmx10G" in (etc / "jvm.config").read_text().split()
        config = properties(etc / "config.properties")
        assert config["discovery.uri"] == "http://127.0.0.11:8080"
        assert config["http-server.http.port"] == "8080"
        assert properties(etc / "catalog/hive.properties") == {
            "connector.name": "hive", "hive.metastore": "file", "fs.native-s3.enabled": "true",
            "hive.metastore.catalog.dir": f"s3://{BUCKET}/.dfbench/trino-metastore", "s3.region": REGION}
        assert instance.units.active(SERVICE) and instance.units.enabled(SERVICE)
        assert instance.units.installed_packages == [JAVA_PACKAGE]
        assert not (instance.root / "opt/dfbench/trino" / f"trino-server-{TRINO_VERSION}.tar.gz").exists()
        unit = (instance.root / "etc/systemd/system" / SERVICE).read_text()
        assert f'ExecStart="{instance.install}/bin/launcher" run' in unit and "Type=simple" in unit
        assert f"JAVA_HOME={instance.root}/usr/lib/jvm/java-24-amazon-corretto" in unit
    coordinator_config = properties(coordinator.install / "etc/config.properties")
    worker_config = properties(worker.install / "etc/config.properties")
    assert coordinator_config["coordinator"] == "true"
    assert coordinator_config["node-scheduler.include-coordinator"] == "true"
    assert coordinator_config["query.max-memory"] == "16384MB"
    assert worker_config["coordinator"] == "false" and "query.max-memory" not in worker_config
    assert statement(coordinator.port, "SELECT count(*) FROM system.runtime.nodes WHERE state = 'active'") == [[2]]

    # Everything again: nothing downloaded or installed again, nothing restarted.
    requests, starts = len(site.requests), [instance.units.starts(SERVICE) for instance in instances]
    assert starts == [1, 1]
    for step in engine_plan.steps:
        for instance in instances:
            assert succeeded(instance.run(step.script), step.name)
    assert site.requests[requests:] == []
    assert [instance.units.starts(SERVICE) for instance in instances] == starts
    assert site.downloads(".tar.gz") == [TARBALL, TARBALL]


def test_tables_over_the_bucket(alone: Instance, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    coordinator = alone
    folder = Path(coordinator.buckets[BUCKET]) / "tpch_sf1/nation"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"n_nationkey": [0, 1, 2], "n_name": ["ALGERIA", "ARGENTINA", "BRAZIL"]}),
                   folder / "part-0.parquet")
    install(coordinator, plan(nodes=NODES[:1]))
    statement(coordinator.port, "CREATE SCHEMA IF NOT EXISTS hive.tpch")
    statement(coordinator.port, f"CREATE TABLE hive.tpch.nation (n_nationkey bigint,\nn_name varchar) WITH "
                                f"(external_location = 's3://{BUCKET}/tpch_sf1/nation', format = 'PARQUET')")
    assert statement(coordinator.port, "SELECT count(*) FROM nation") == [[3]]
    with pytest.raises(AssertionError, match="No bucket 'other'"):
        statement(coordinator.port, "CREATE TABLE hive.tpch.t (n_nationkey bigint) WITH "
                                    "(external_location = 's3://other/x', format = 'PARQUET')")
    with pytest.raises(AssertionError, match="outside the stand-in's data"):
        statement(coordinator.port, f"CREATE TABLE hive.tpch.t (n_nationkey bigint) WITH "
                                    f"(external_location = 's3://{BUCKET}/../../etc', format = 'PARQUET')")


def test_verify_fails_unless_every_node_is_active(instances: list[Instance]) -> None:
    coordinator = instances[0]
    engine_plan = plan()
    for name in ("packages", "download", "configure"):
        assert succeeded(coordinator.step(engine_plan, name, nodes=1), name)
    result = coordinator.step(engine_plan, "verify", ready_timeout=1)
    assert result.returncode != 0
    assert "counts 1 active nodes, not 2" in result.stderr
    coordinator.run("systemctl stop dfbench-trino.service")
    result = coordinator.step(engine_plan, "verify", ready_timeout=1)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "Trino on this instance does not answer" in result.stderr


def test_a_version_other_than_the_running_one_fails_verify(alone: Instance,
                                                           site: ReleaseSite) -> None:
    coordinator = alone
    single = plan(nodes=NODES[:1])
    install(coordinator, single)
    later = plan(nodes=NODES[:1], version="477")
    result = coordinator.step(later, "verify", ready_timeout=1)
    assert result.returncode != 0 and "Trino 476 answers on this instance, not 477" in result.stderr
    # Another version: its own folder, the unit runs it after a restart.
    publish_trino(site, "477")
    starts = coordinator.units.starts(SERVICE)
    install(coordinator, later)
    assert coordinator.units.starts(SERVICE) == starts + 1
    status = parse_status("trino", coordinator.run(later.status_script).stdout)
    assert status["installed"] == "477"


def test_a_killed_download_or_extraction_converges(alone: Instance, site: ReleaseSite,
                                                   tmp_path: Path) -> None:
    instance = alone
    engine_plan = plan(nodes=NODES[:1])
    home = instance.root / "opt/dfbench/trino"
    real_curl, real_tar = shutil.which("curl"), shutil.which("tar")
    # The step killed (SIGKILL: no trap runs) halfway through the tarball's download, then right
    # after its extraction, before the rename.
    killers = tmp_path / "killers"
    killers.mkdir()
    (killers / "curl").write_text(
        "#!/bin/bash\n"
        'if [[ ${*: -1} == *.tar.gz ]]; then\n'
        '    while (($#)); do [[ $1 == -o ]] && out=$2; shift; done\n'
        '    printf half >"$out"; kill -9 "$PPID"; exit 1\n'
        "fi\n"
        f'exec {shlex.quote(str(real_curl))} "$@"\n')
    (killers / "curl").chmod(0o755)
    result = instance.step(engine_plan, "download", path_first=killers)
    assert result.returncode == -9
    assert [path.name for path in home.iterdir()] == [path.name for path in home.glob("trino-server-476.tar.gz.*")]
    assert len(list(home.iterdir())) == 1 and not instance.install.exists()

    (killers / "curl").unlink()
    (killers / "tar").write_text(f'#!/bin/bash\n{shlex.quote(str(real_tar))} "$@"\nkill -9 "$PPID"\n')
    (killers / "tar").chmod(0o755)
    result = instance.step(engine_plan, "download", path_first=killers)
    assert result.returncode == -9
    assert sorted(path.name.split(".")[1] for path in home.iterdir()) == ["extract", "tar"]
    assert not instance.install.exists()

    result = instance.step(engine_plan, "download")
    assert succeeded(result, "download"), result.stderr
    assert sorted(path.name for path in home.iterdir()) == [TRINO_VERSION]
    assert (instance.install / "bin/launcher").exists()
    assert site.downloads(".tar.gz") == [TARBALL]  # the checked tarball was kept for the second try
    install(instance, engine_plan)
    assert instance.units.active(SERVICE)


def test_a_damaged_tarball_is_refused_then_a_good_one_installs(alone: Instance, site: ReleaseSite) -> None:
    instance = alone
    engine_plan = plan(nodes=NODES[:1])
    good = site.files[TARBALL]
    site.damage(TARBALL)
    result = instance.step(engine_plan, "download")
    assert result.returncode == 3
    assert f"{TARBALL} has sha1" in result.stderr and "says" in result.stderr
    assert list((instance.root / "opt/dfbench/trino").iterdir()) == []
    site.files[TARBALL] = good
    install(instance, engine_plan)
    assert instance.units.active(SERVICE)


def test_other_memory_rewrites_jvm_config_and_restarts(alone: Instance) -> None:
    instance = alone
    install(instance, plan(nodes=NODES[:1]))
    assert instance.units.starts(SERVICE) == 1
    smaller = plan(Machine("c5n.xlarge", 10752, 4), nodes=NODES[:1])
    assert succeeded(instance.step(smaller, "configure"), "configure")
    assert "-Xmx5G" in (instance.install / "etc/jvm.config").read_text().split()
    assert properties(instance.install / "etc/config.properties")["query.max-memory-per-node"] == "4096MB"
    assert instance.units.starts(SERVICE) == 2 and instance.units.active(SERVICE)


def test_a_restart_cut_short_is_made_by_the_next_run(alone: Instance, tmp_path: Path) -> None:
    install(alone, plan(nodes=NODES[:1]))
    # The new configuration written, then the step killed as it restarts the service.
    killers = tmp_path / "killers"
    killers.mkdir()
    (killers / "systemctl").write_text(
        '#!/bin/bash\nif [[ $1 == restart ]]; then kill -9 "$PPID"; exit 1; fi\n'
        f'exec {shlex.quote(str(alone.units.bin / "systemctl"))} "$@"\n')
    (killers / "systemctl").chmod(0o755)
    smaller = plan(Machine("c5n.xlarge", 10752, 4), nodes=NODES[:1])
    assert alone.step(smaller, "configure", path_first=killers).returncode == -9
    assert "-Xmx5G" in (alone.install / "etc/jvm.config").read_text().split()
    assert alone.units.starts(SERVICE) == 1
    # Nothing differs on disk any more, yet the running service read the old files.
    assert succeeded(alone.step(smaller, "configure"), "configure")
    assert alone.units.starts(SERVICE) == 2
    assert succeeded(alone.step(smaller, "configure"), "configure")
    assert alone.units.starts(SERVICE) == 2


def test_a_service_that_does_not_start_fails_configure_with_its_journal(
        tmp_path: Path, site: ReleaseSite, packages: dict[str, dict[str, str]]) -> None:
    # A Java the launcher refuses: the service exits at once and never answers.
    java = {JAVA_PACKAGE: {path: "#!/bin/sh\necho 'openjdk version \"21.0.7\" 2025-04-15' >&2\n"
                           for path in packages[JAVA_PACKAGE]}}
    with StandinUnits(tmp_path / "old-java", packages=java) as units:
        instance = Instance(NODES[0], units, site, free_port(), 1, {})
        engine_plan = plan(nodes=NODES[:1])
        for name in ("packages", "download"):
            assert succeeded(instance.step(engine_plan, name), name)
        result = instance.step(engine_plan, "configure", ready_timeout=2)
    assert result.returncode != 0 and success_line("trino", "configure") not in result.stdout
    assert "did not answer on port 8080" in result.stderr
    assert "Trino requires Java 24+ (found 21)" in result.stderr


def test_status_and_remove(instances: list[Instance]) -> None:
    coordinator, worker = instances
    engine_plan = plan()

    def status(instance: Instance) -> dict[str, str]:
        result = instance.run(engine_plan.status_script)
        assert result.returncode == 0, result.stderr
        return parse_status("trino", result.stdout)

    assert status(coordinator) == {"installed": "none", "active": "no", "role": "coordinator"}
    for step in engine_plan.steps[:3]:
        for instance in instances:
            assert succeeded(instance.run(step.script), step.name)
    assert status(coordinator) == {"installed": "476", "active": "yes", "role": "coordinator"}
    assert status(worker) == {"installed": "476", "active": "yes", "role": "worker"}
    worker.run("systemctl stop dfbench-trino.service")
    assert status(worker) == {"installed": "476", "active": "no", "role": "worker"}

    for instance in instances:
        for _ in range(2):
            result = instance.run(engine_plan.remove_script)
            assert succeeded(result, "remove"), result.stderr
        assert not instance.units.active(SERVICE) and not instance.units.enabled(SERVICE)
        assert not (instance.root / "etc/systemd/system" / SERVICE).exists()
        assert not (instance.root / "opt/dfbench/trino").exists()
        assert not (instance.root / "var/lib/dfbench/trino").exists()
        assert status(instance)["installed"] == "none" and status(instance)["active"] == "no"
