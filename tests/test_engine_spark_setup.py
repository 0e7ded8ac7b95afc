"""Spark's install on a cluster (dfbench.engines.spark_setup), its scripts run for real with bash:
two stand-in instances on this machine, each its own DFBENCH_ROOT and StandinUnits, Spark's
release from a loopback ReleaseSite (dfbench_testing.spark_release), dfbench's code from the
emulated bucket through the stand-in ``aws`` CLI. The master and worker stand-ins register for
real, and the service stand-in answers Spark's statements with DataFusion over TPC-H SF 0.01."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import boto3
import pytest

from dfbench.bench.queries import expected_rows, tpch_queries
from dfbench.engines.dialect import adapt_query, table_statements
from dfbench.engines.setup import EnginePlan, Machine, Node, parse_status, success_line
from dfbench.engines.spark_setup import (
    RELEASES,
    SPARK_VERSION,
    ServiceCode,
    service_code,
    service_code_key,
    spark_plan,
)
from dfbench.errors import ConfigError
from dfbench.worker.client import WorkerClient
from dfbench_testing import spark_release, system_tool
from dfbench_testing.releases import ReleaseSite
from dfbench_testing.spark_release import publish, python_package
from dfbench_testing.ssm import localize
from dfbench_testing.units import StandinUnits, instance_environment

BUCKET = "spark-bench-bucket"
REGION = "us-east-1"
NODES = [Node("i-0000000000000000a", "10.0.1.10"), Node("i-0000000000000000b", "10.0.1.11")]
MACHINE = Machine("c5n.2xlarge", 21 * 1024, 8)  # c5n.2xlarge, as the CDK tooling's settings were for
UNITS = ("dfbench-spark-master", "dfbench-spark-worker", "dfbench-spark-service")
PACKAGES = {"java-17-amazon-corretto-headless": {"/usr/lib/jvm/java-17-amazon-corretto/bin/java": "#!/bin/sh\n"},
            "tar": {}, "gzip": {}, **python_package()}
TARBALL = RELEASES[SPARK_VERSION].url.removeprefix("https://")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Instance:
    node: Node
    units: StandinUnits
    env: dict[str, str]
    ports: dict[int, int]

    @property
    def root(self) -> Path:
        return self.units.root

    def run(self, script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-c", localize(script, self.ports)], env=self.env, capture_output=True,
                              text=True, timeout=180, stdin=subprocess.DEVNULL, check=False)


@dataclass
class Cluster:
    instances: list[Instance]
    site: ReleaseSite
    plan: EnginePlan

    def step(self, name: str) -> list[subprocess.CompletedProcess[str]]:
        """One step on every instance at once, as one SSM command runs."""
        script = next(step.script for step in self.plan.steps if step.name == name)
        with ThreadPoolExecutor(len(self.instances)) as pool:
            return list(pool.map(lambda instance: instance.run(script), self.instances))

    def install(self) -> None:
        for step in self.plan.steps:
            for instance, done in zip(self.instances, self.step(step.name), strict=True):
                assert done.returncode == 0, f"{step.name} on {instance.node.instance_id}: {done.stderr[-3000:]}"
                assert done.stdout.splitlines()[-1] == success_line("spark", step.name)

    def status(self, instance: Instance) -> dict[str, str]:
        done = instance.run(self.plan.status_script)
        assert done.returncode == 0, done.stderr
        return parse_status("spark", done.stdout)

    def starts(self) -> list[dict[str, int]]:
        return [{name: instance.units.starts(name) for name in UNITS} for instance in self.instances]

    @property
    def first(self) -> Instance:
        return self.instances[0]

    def master_state(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.first.ports[8082]}/json/", timeout=5) as answer:
            return dict(json.load(answer))


def upload_code(extra: bytes = b"") -> ServiceCode:
    """dfbench's code in the emulated bucket, where the integrator uploads it; ``extra`` makes
    another version of it (one more file in the zip)."""
    data, sha = service_code()
    if extra:
        buffer = io.BytesIO(data)
        with zipfile.ZipFile(buffer, "a") as archive:
            archive.writestr("dfbench/extra.txt", extra)
        data = buffer.getvalue()
        sha = hashlib.sha256(data).hexdigest()
    boto3.client("s3", region_name=REGION).put_object(Bucket=BUCKET, Key=service_code_key(sha), Body=data)
    return ServiceCode(service_code_key(sha), sha)


@pytest.fixture
def cluster(aws: Any, tpch: Path, tmp_path: Path) -> Iterator[Cluster]:
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    master = free_port()
    with ReleaseSite() as site:
        publish(site)
        instances = []
        for index, node in enumerate(NODES):
            units = StandinUnits(tmp_path / f"instance-{index}", packages=PACKAGES)
            # Every instance reaches the master on 7077; its web UI and the service are its own.
            ports = {7077: master, 8082: free_port(), 9003: free_port()}
            env = {**os.environ, **units.environment, "AWS_SSM_INSTANCE_ID": node.instance_id,
                   "DFBENCH_DOWNLOAD_BASE": site.base, "DFBENCH_READY_TIMEOUT": "30",
                   **instance_environment(ports, {BUCKET: str(tpch)})}
            instances.append(Instance(node, units, env, ports))
        try:
            yield Cluster(instances, site, spark_plan(nodes=NODES, machine=MACHINE, bucket=BUCKET, region=REGION,
                                                      code=upload_code()))
        finally:
            for instance in instances:
                instance.units.stop_all()


def test_two_instances_install_spark_with_one_master_two_workers_and_the_service(cluster: Cluster) -> None:
    cluster.install()
    first, second = cluster.instances
    # Units per role: the master and the service on the first instance only.
    assert all(first.units.active(name) for name in UNITS)
    assert second.units.active("dfbench-spark-worker")
    assert not (second.root / "etc/systemd/system/dfbench-spark-master.service").exists()
    assert not (second.root / "etc/systemd/system/dfbench-spark-service.service").exists()
    assert sorted(first.units.installed_packages) == sorted(PACKAGES)
    # The master counted both workers, registered with the cores and memory the Machine gives.
    state = cluster.master_state()
    assert sorted(w["host"] for w in state["workers"] if w["state"] == "ALIVE") == ["10.0.1.10", "10.0.1.11"]
    assert {(w["cores"], w["memory"]) for w in state["workers"]} == {(8, 5 * 1024)}
    verify = cluster.step("verify")[0]
    assert "master lists 2 ALIVE workers" in verify.stdout
    defaults = (first.root / f"opt/dfbench/spark/{SPARK_VERSION}/conf/spark-defaults.conf").read_text()
    assert "spark.executor.memory 5g\n" in defaults and "spark.driver.memory 2g\n" in defaults
    assert f"spark.hadoop.fs.s3a.endpoint.region {REGION}\n" in defaults
    assert "IAMInstanceCredentialsProvider" in defaults
    assert (first.root / f"opt/dfbench/spark/{SPARK_VERSION}/jars/hadoop-aws-3.4.1.jar").exists()
    assert (second.root / f"opt/dfbench/spark/{SPARK_VERSION}/jars/bundle-2.24.6.jar").exists()
    service = (first.root / "etc/systemd/system/dfbench-spark-service.service").read_text()
    assert "--master spark://10.0.1.10:7077 --driver-host 10.0.1.10" in service
    assert f"--data-url s3a://{BUCKET}/" in service and "--driver-memory 2g" in service
    assert cluster.plan.settings["executor_memory"] == "5g"
    assert cluster.plan.settings["master_instance_id"] == NODES[0].instance_id
    # The service answers Spark's statements: tables over s3a://, a view (TPC-H q15), queries.
    client = WorkerClient(f"http://127.0.0.1:{first.ports[9003]}")
    assert "spark 4.0.0" in client.info()["engine"]
    for table in ("supplier", "lineitem"):
        for statement in table_statements("spark", "tpch_sf0.01", table, f"s3://{BUCKET}/tpch_sf0.01/{table}/"):
            client.query(statement)
    q15 = adapt_query("spark", tpch_queries(only=["q15"])[0])
    for statement in q15.setup:
        client.query(statement)
    assert len(client.rows(q15.statement)["rows"]) == expected_rows("q15", 0.01)
    for statement in q15.teardown:
        client.query(statement)
    assert cluster.status(first) == {"installed": SPARK_VERSION, "role": "master", "active.master": "yes",
                                     "active.worker": "yes", "active.service": "yes", "active": "yes"}
    assert cluster.status(second) == {"installed": SPARK_VERSION, "role": "worker", "active.worker": "yes",
                                      "active": "yes"}


def test_a_second_install_downloads_and_restarts_nothing(cluster: Cluster) -> None:
    cluster.install()
    downloads, starts = list(cluster.site.downloads()), cluster.starts()
    cluster.install()
    assert cluster.site.downloads() == downloads
    assert cluster.starts() == starts == [dict.fromkeys(UNITS, 1), {**dict.fromkeys(UNITS, 0),
                                                                     "dfbench-spark-worker": 1}]


def test_a_stopped_service_is_started_again(cluster: Cluster) -> None:
    cluster.install()
    subprocess.run(["systemctl", "stop", "dfbench-spark-worker"], env=cluster.instances[1].env, check=True)
    cluster.install()
    assert cluster.starts()[1]["dfbench-spark-worker"] == 2
    assert cluster.starts()[0] == dict.fromkeys(UNITS, 1)


def test_a_damaged_download_fails_with_exit_3_and_the_next_run_converges(cluster: Cluster) -> None:
    body = cluster.site.files[TARBALL]
    cluster.site.damage(TARBALL)
    done = cluster.step("download")
    assert [d.returncode for d in done] == [3, 3]
    assert f"{TARBALL} has sha512" in done[0].stderr and "says" in done[0].stderr
    assert not (cluster.first.root / "opt/dfbench/spark" / SPARK_VERSION).exists()
    cluster.site.files[TARBALL] = body
    cluster.install()


def test_a_damaged_jar_fails_with_exit_3(cluster: Cluster) -> None:
    jar = RELEASES[SPARK_VERSION].jars[1].removeprefix("https://")
    cluster.site.damage(jar)
    done = cluster.step("download")
    assert [d.returncode for d in done] == [3, 3]
    assert "bundle-2.24.6.jar has sha1" in done[1].stderr
    assert not (cluster.instances[1].root / f"opt/dfbench/spark/{SPARK_VERSION}/jars/bundle-2.24.6.jar").exists()


def test_code_that_is_not_what_the_plan_says_is_refused(cluster: Cluster) -> None:
    code = ServiceCode(service_code_key("0" * 64), "0" * 64)
    boto3.client("s3", region_name=REGION).put_object(Bucket=BUCKET, Key=code.key, Body=b"something else")
    plan = spark_plan(nodes=NODES, machine=MACHINE, bucket=BUCKET, region=REGION, code=code)
    done = cluster.first.run(plan.steps[1].script)
    assert done.returncode == 3
    assert f"expected {'0' * 64}" in done.stderr
    assert not list((cluster.first.root / "opt/dfbench/spark/code").glob("*.zip"))


def test_changed_code_restarts_only_the_service(cluster: Cluster) -> None:
    cluster.install()
    old = cluster.plan.settings["code_sha256"]
    cluster.plan = spark_plan(nodes=NODES, machine=MACHINE, bucket=BUCKET, region=REGION,
                              code=upload_code(extra=b"another version"))
    cluster.install()
    assert cluster.starts() == [{**dict.fromkeys(UNITS, 1), "dfbench-spark-service": 2},
                                {**dict.fromkeys(UNITS, 0), "dfbench-spark-worker": 1}]
    zips = [path.name for path in (cluster.first.root / "opt/dfbench/spark/code").iterdir()]
    assert zips == [f"dfbench-{cluster.plan.settings['code_sha256']}.zip"] and old not in zips[0]


def test_remove_leaves_nothing_and_can_run_twice(cluster: Cluster) -> None:
    assert cluster.status(cluster.first) == {"installed": "no", "role": "master", "active.master": "no",
                                             "active.worker": "no", "active.service": "no", "active": "no"}
    cluster.install()
    for _ in range(2):
        for instance in cluster.instances:
            done = instance.run(cluster.plan.remove_script)
            assert done.returncode == 0, done.stderr
            assert done.stdout.splitlines()[-1] == success_line("spark", "remove")
    for instance in cluster.instances:
        assert not any(instance.units.active(name) or instance.units.enabled(name) for name in UNITS)
        assert not list((instance.root / "etc/systemd/system").iterdir())
        assert not (instance.root / "opt/dfbench/spark").exists()
        assert cluster.status(instance)["installed"] == "no"
    with pytest.raises(OSError):
        cluster.master_state()


def test_an_instance_outside_the_plan_is_refused(cluster: Cluster) -> None:
    stranger = replace(cluster.first, env={**cluster.first.env, "AWS_SSM_INSTANCE_ID": "i-0000000000000000c"})
    done = stranger.run(cluster.plan.steps[0].script)
    assert done.returncode == 5 and "not among the instances" in done.stderr


def _plan(**changes: Any) -> EnginePlan:
    arguments: dict[str, Any] = {"nodes": NODES, "machine": MACHINE, "bucket": BUCKET, "region": REGION,
                                 "code": ServiceCode(service_code_key("a" * 64), "a" * 64), **changes}
    return spark_plan(**arguments)


@pytest.mark.parametrize(("changes", "message"), [
    ({"version": "3.4.0"}, "Spark '3.4.0' is not one dfbench installs: choose 4.0.0."),
    ({"bucket": "Bad_Bucket"}, "3-63 characters"),
    ({"bucket": "b; rm -rf /"}, "3-63 characters"),
    ({"region": "us-east-1; reboot"}, "not an AWS region"),
    ({"nodes": []}, "No instances"),
    ({"nodes": [NODES[0], NODES[0]]}, "named twice"),
    ({"machine": Machine("t3.nano", 512, 2)}, "too small for Spark"),
])
def test_bad_input_is_one_config_error_line(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _plan(**changes)
    assert message in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize("node", [("i-0000000000000000a", "10.0.1.10; reboot"), ("i-$(reboot)", "10.0.1.10")])
def test_a_bad_node_is_a_config_error(node: tuple[str, str]) -> None:
    with pytest.raises(ConfigError):
        Node(*node)


def test_service_code_must_be_named_by_its_sha256() -> None:
    with pytest.raises(ConfigError, match="service_code"):
        ServiceCode(".dfbench/artifacts/engines/other.zip", "a" * 64)
    with pytest.raises(ConfigError):
        ServiceCode(service_code_key("A" * 64), "A" * 64)


@pytest.mark.parametrize(("memory_gib", "vcpus", "executor", "driver"), [(21, 8, "5g", "2g"), (8, 2, "2g", "1g"),
                                                                          (2, 2, "1g", "1g"), (64, 16, "16g", "2g")])
def test_memory_follows_the_instance(memory_gib: int, vcpus: int, executor: str, driver: str) -> None:
    plan = _plan(machine=Machine("x", memory_gib * 1024, vcpus))
    assert (plan.settings["executor_memory"], plan.settings["driver_memory"]) == (executor, driver)
    assert plan.settings["worker_cores"] == vcpus
    configure = next(step.script for step in plan.steps if step.name == "configure")
    assert f"--cores {vcpus} --memory {executor}" in configure and f"--driver-memory {driver}" in configure


def test_every_script_passes_shellcheck() -> None:
    plan = _plan()
    scripts = {step.name: step.script for step in plan.steps} | {"status": plan.status_script,
                                                                   "remove": plan.remove_script}
    for name, script in scripts.items():
        done = subprocess.run([system_tool("shellcheck"), "--shell=bash", "-"], input=script, capture_output=True,
                              text=True, check=False)
        assert done.returncode == 0, f"{name}: {done.stdout}"


def test_the_code_zip_is_deterministic_and_holds_only_sources() -> None:
    data, sha = service_code()
    assert service_code() == (data, sha) and hashlib.sha256(data).hexdigest() == sha
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        assert names == sorted(names) and "dfbench/engines/spark_service.py" in names
        assert all(name.startswith("dfbench/") and name.endswith(".py") and "__pycache__" not in name
                   for name in names)
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_the_service_imports_nothing_but_the_standard_library_from_the_zip(tmp_path: Path) -> None:
    """As on an instance: no site-packages (-S, -I), only the zip on sys.path. pyspark is not
    there either, which the import and the argument check never need (a session starts later)."""
    code = tmp_path / "dfbench.zip"
    code.write_bytes(service_code()[0])
    script = (f"import sys; sys.path.insert(0, {str(code)!r})\n"
              "from dfbench.engines import spark_service\n"
              "assert spark_service.__file__.startswith(sys.path[0]), spark_service.__file__\n"
              "code = spark_service.main(['--master', 'yarn'])\n"  # loads the HTTP side too, then refuses
              "assert code == 2, code\n"
              "outside = sorted({m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names) - {'dfbench'})\n"
              "print(','.join(m for m in outside if not m.startswith('_')))\n")
    done = subprocess.run([sys.executable, "-S", "-I", "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
    assert "--master 'yarn'" in done.stderr


def test_verify_fails_while_a_worker_is_missing(cluster: Cluster) -> None:
    cluster.install()
    subprocess.run(["systemctl", "stop", "dfbench-spark-worker"], env=cluster.instances[1].env, check=True)
    time.sleep(spark_release.ALIVE_S + 0.5)  # until the master calls it DEAD
    first = replace(cluster.first, env={**cluster.first.env, "DFBENCH_READY_TIMEOUT": "6"})
    done = first.run(next(step.script for step in cluster.plan.steps if step.name == "verify"))
    assert done.returncode == 4
    assert "lists 1 ALIVE workers, not 2" in done.stderr
