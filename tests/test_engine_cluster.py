"""Trino and Spark on a cluster, end to end on this machine: ``dfbench engine install|status|remove``
against the emulator, each step's SendCommand run for real by LocalAgent on two stand-in instances
(their own root folder, systemd, packages and ports), downloading from a loopback release site;
then ``bench --cluster --engines datafusion,trino,spark`` through SSH to loopback, and a teardown
that leaves nothing of them."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import dfbench
from dfbench.aws.iam import TRINO_METASTORE_PREFIX
from dfbench.aws.ssm import OUTPUT_PREFIX
from dfbench.cli import main
from dfbench.data import sync_dataset
from dfbench.engine_setup import engine_status, install_engine, read_record, record_key, remove_engine
from dfbench.engines.spark_setup import MASTER_PORT, MASTER_UI_PORT, SPARK_SERVICE_PORT, SPARK_VERSION
from dfbench.engines.trino_setup import TRINO_PORT, TRINO_VERSION
from dfbench.errors import CommandFailed, ConfigError
from dfbench.worker.process import LocalWorkerProcess
from dfbench_testing import InstanceSide, LocalAgent, Sshd, hooked
from dfbench_testing.releases import ReleaseSite
from dfbench_testing.spark_release import publish as publish_spark
from dfbench_testing.spark_release import python_package
from dfbench_testing.trino_release import instance_environment, publish_trino, tarball_path
from dfbench_testing.units import StandinUnits

DATASET = "tpch_sf0.01"
COMMIT = "e2e0c0ffee"
TRINO_SERVICE = "dfbench-trino.service"
SPARK_UNITS = ("dfbench-spark-master.service", "dfbench-spark-worker.service", "dfbench-spark-service.service")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class StandIn:
    """One instance of the cluster as it runs on this machine."""

    instance_id: str
    units: StandinUnits
    ports: dict[int, int]  # the instance's ports → this machine's

    @property
    def trino_port(self) -> int:
        return self.ports[TRINO_PORT]


@dataclass
class Emulated:
    cluster: dfbench.Cluster
    site: ReleaseSite
    instances: list[StandIn]
    agent: Any  # a function making the LocalAgent (one per `with`: it removes its rules on exit)

    def units(self, index: int) -> StandinUnits:
        return self.instances[index].units


@pytest.fixture
def emulated(aws: Any, faults: Any, inspector: Any, tpch: Path, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulated]:
    cluster = dfbench.provision(dfbench.ClusterSpec(name="eng", instance_count=2,
                                                    ssh_ingress_cidrs=("127.0.0.1/32",)))
    inspector.client("ssm").list_commands()  # moto builds its SSM backend here, not inside a step
    with ReleaseSite() as site, ExitStack() as stack:
        publish_spark(site)
        java_17 = {"/usr/lib/jvm/java-17-amazon-corretto/bin/java": "#!/bin/sh\n"}
        packages = {**publish_trino(site, TRINO_VERSION), **python_package(), "tar": {}, "gzip": {},
                    "java-17-amazon-corretto-headless": java_17}
        instances = []
        master = free_port()  # every instance reaches Spark's master on the first one's 7077
        for instance in cluster.instances:
            # A space in every path, as a checkout under such a folder has.
            units = stack.enter_context(StandinUnits(tmp_path / f"instance {instance.instance_id}",
                                                     packages=packages))
            ports = {TRINO_PORT: free_port(), MASTER_PORT: master, MASTER_UI_PORT: free_port(),
                     SPARK_SERVICE_PORT: free_port()}
            instances.append(StandIn(instance.instance_id, units, ports))
        monkeypatch.setenv("DFBENCH_DOWNLOAD_BASE", site.base)
        monkeypatch.setenv("DFBENCH_READY_TIMEOUT", "30")
        # The scripts run here for real and take real seconds: waits may not shrink to a thousandth.
        monkeypatch.setenv("DFBENCH_TIME_SCALE", "0.05")

        def agent(port_map: dict[int, int] | None = None) -> LocalAgent:
            buckets = {cluster.bucket: str(tpch)}
            return LocalAgent(faults, s3=inspector.client("s3"), bucket=cluster.bucket, prefix=OUTPUT_PREFIX,
                              ec2=inspector.client("ec2"), port_map=port_map,
                              environment={i.instance_id: {**i.units.environment,
                                                           **instance_environment(i.ports, nodes=2,
                                                                                  buckets=buckets)}
                                           for i in instances},
                              instance_ports={i.instance_id: i.ports for i in instances})

        yield Emulated(cluster, site, instances, agent)


def sends(recorder: Any) -> list[str]:
    return [c.params.get("Comment", "") for c in recorder.named("SendCommand")]


def test_install_is_one_command_per_step_and_a_second_install_changes_nothing(
        emulated: Emulated, recorder: Any, inspector: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cluster = emulated.cluster
    recorder.clear()
    with emulated.agent():
        assert main(["engine", "install", "trino", "--cluster", "eng"]) == 0
    shown = capsys.readouterr().out
    assert f"trino {TRINO_VERSION} installed on eng (2 instances)" in shown and "heap_gib=" in shown
    # One SendCommand per step, to the whole cluster by its tag, not one per instance.
    assert sends(recorder) == [f"dfbench: trino {step}" for step in ("packages", "download", "configure", "verify")]
    assert all(c.params.get("Targets") and not c.params.get("InstanceIds") for c in recorder.named("SendCommand"))
    # Both instances run Trino: the first as coordinator, each configured with its own node id.
    for index, instance in enumerate(emulated.instances):
        assert emulated.units(index).active(TRINO_SERVICE)
        etc = emulated.units(index).root / "opt/dfbench/trino" / TRINO_VERSION / "etc"
        config = (etc / "config.properties").read_text()
        assert ("coordinator=true" in config) == (index == 0)
        assert f"discovery.uri=http://{cluster.instances[0].private_ip}:{TRINO_PORT}" in config
        assert f"node.id={instance.instance_id}" in (etc / "node.properties").read_text()
    record = read_record(cluster, "trino")
    assert record is not None and record.version == TRINO_VERSION and record.port == TRINO_PORT
    assert record.instance_ids == [i.instance_id for i in cluster.instances]
    # moto's c5n.2xlarge: half its memory as heap, recorded.
    assert record.settings["heap_gib"] == 10 and record.settings["coordinator"] == cluster.instances[0].instance_id

    downloads, starts = list(emulated.site.downloads()), [emulated.units(i).starts(TRINO_SERVICE) for i in (0, 1)]
    assert downloads == [tarball_path(TRINO_VERSION)] * 2
    with emulated.agent():
        again = install_engine("trino", "eng")
    assert emulated.site.downloads() == downloads  # nothing downloaded again
    assert [emulated.units(i).starts(TRINO_SERVICE) for i in (0, 1)] == starts  # nothing restarted
    assert again.record.settings == record.settings

    with emulated.agent():
        [status] = engine_status("eng", ["trino"])
    assert status.ready and [i.values["role"] for i in status.instances] == ["coordinator", "worker"]


def test_a_failed_step_names_the_instance_records_nothing_and_the_next_install_finishes(
        emulated: Emulated, recorder: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cluster = emulated.cluster
    emulated.site.damage(tarball_path(TRINO_VERSION))
    recorder.clear()
    with emulated.agent(), pytest.raises(CommandFailed) as raised:
        install_engine("trino", "eng")
    message = str(raised.value)
    assert all(i.instance_id in message for i in cluster.instances)
    assert "trino step download" in message and "sha1" in message
    # Nothing after the failed step ran, and nothing is recorded as installed.
    assert sends(recorder) == ["dfbench: trino packages", "dfbench: trino download"]
    assert read_record(cluster, "trino") is None
    assert not any(emulated.units(i).active(TRINO_SERVICE) for i in (0, 1))

    # The same failure through the CLI: one message naming the instances, exit 1, no traceback.
    with emulated.agent():
        assert main(["engine", "install", "trino", "--cluster", "eng"]) == 1
    err = capsys.readouterr().err
    assert cluster.instances[0].instance_id in err and "Traceback" not in err

    publish_trino(emulated.site, TRINO_VERSION)  # the mirror is repaired
    with emulated.agent():
        report = install_engine("trino", "eng")
    assert [step.name for step in report.steps] == ["packages", "download", "configure", "verify"]
    assert read_record(cluster, "trino") is not None
    assert all(emulated.units(i).active(TRINO_SERVICE) for i in (0, 1))


@pytest.mark.parametrize("engine", ["trino", "spark"])
def test_an_install_interrupted_between_steps_converges_when_run_again(emulated: Emulated, engine: str) -> None:
    """Ctrl-C while the configure step is being sent: the downloads are done, nothing configured,
    nothing recorded. The next install downloads nothing again and finishes."""
    cluster = emulated.cluster
    services = {"trino": [TRINO_SERVICE], "spark": list(SPARK_UNITS)}[engine]
    sent: list[str] = []

    def interrupt_at_configure(client: Any) -> None:
        def before(params: dict[str, Any], **_: Any) -> None:
            sent.append(params.get("Comment", ""))
            if params.get("Comment") == f"dfbench: {engine} configure":
                raise KeyboardInterrupt
        if client.meta.service_model.service_name == "ssm":
            client.meta.events.register("provide-client-params.ssm.SendCommand", before)

    with emulated.agent(), hooked(interrupt_at_configure), pytest.raises(KeyboardInterrupt):
        install_engine(engine, "eng")
    assert sent == [f"dfbench: {engine} {step}" for step in ("packages", "download", "configure")]
    assert read_record(cluster, engine) is None
    assert not any(emulated.units(i).active(unit) for i in (0, 1) for unit in services)
    downloads = list(emulated.site.downloads())
    with emulated.agent():
        install_engine(engine, "eng")
    assert emulated.site.downloads() == downloads
    assert emulated.units(0).active(services[-1]) and emulated.units(1).active(services[0 if engine == "trino" else 1])
    assert read_record(cluster, engine) is not None


def test_remove_leaves_nothing_on_the_instances_nor_in_the_bucket_and_may_run_twice(
        emulated: Emulated, inspector: Any) -> None:
    cluster = emulated.cluster
    s3 = inspector.client("s3")
    with emulated.agent():
        install_engine("trino", "eng")
    # What Trino's coordinator writes there (a schema's declaration), as the metastore would.
    s3.put_object(Bucket=cluster.bucket, Key=f"{TRINO_METASTORE_PREFIX}/tpch_sf0.01/.trinoSchema", Body=b"{}")
    with emulated.agent():
        removal = remove_engine("trino", "eng")
        assert remove_engine("trino", "eng").deleted_keys == 0
        [status] = engine_status("eng", ["trino"])
    assert removal.deleted_keys == 1
    listed = s3.list_objects_v2(Bucket=cluster.bucket, Prefix=".dfbench/")
    keys = [o["Key"] for o in listed.get("Contents", [])]
    assert not any(k.startswith((TRINO_METASTORE_PREFIX, record_key("trino"))) for k in keys)
    for index in (0, 1):
        units = emulated.units(index)
        assert not units.active(TRINO_SERVICE) and not (units.root / "opt/dfbench/trino").exists()
        assert not (units.root / "etc/systemd/system" / TRINO_SERVICE).exists()
    assert status.record is None and {i.values["installed"] for i in status.instances} == {"none"}


def test_what_cannot_be_installed_is_refused_before_any_command(emulated: Emulated, recorder: Any,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    recorder.clear()
    for argv, expected in (
            (["engine", "install", "trino", "--cluster", "eng", "--version", "400"], "Trino 400 needs an older Java"),
            (["engine", "install", "trino", "--cluster", "eng", "--version", "47a"], "Not a Trino version"),
            (["engine", "install", "presto", "--cluster", "eng"], "invalid choice"),
            (["engine", "status", "--cluster", "nowhere"], "No dfbench cluster named 'nowhere'"),
    ):
        assert main(argv) == (1 if "nowhere" in argv else 2), argv
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert recorder.named("SendCommand") == []
    with pytest.raises(ConfigError, match=r"dfbench deploy"):
        install_engine("datafusion", "eng")


def test_a_role_that_may_not_write_the_metastore_is_refused_with_the_fix(emulated: Emulated, inspector: Any,
                                                                         recorder: Any) -> None:
    """A cluster provisioned before Trino's metastore existed: its role's policy lacks the prefix."""
    cluster = emulated.cluster
    iam = inspector.client("iam")
    policy = json.loads(json.dumps(iam.get_role_policy(RoleName=cluster.role_name,
                                                       PolicyName="dfbench-worker")["PolicyDocument"]))
    policy["Statement"] = [s for s in policy["Statement"] if s.get("Sid") != "TrinoMetastore"]
    iam.put_role_policy(RoleName=cluster.role_name, PolicyName="dfbench-worker", PolicyDocument=json.dumps(policy))
    recorder.clear()
    with pytest.raises(ConfigError, match=r"dfbench provision --cluster eng"):
        install_engine("trino", "eng")
    assert recorder.named("SendCommand") == []
    # provision puts it back, and the install goes through.
    dfbench.provision(dfbench.ClusterSpec(name="eng", instance_count=2, ssh_ingress_cidrs=("127.0.0.1/32",)))
    with emulated.agent():
        install_engine("trino", "eng")


def test_spark_installs_a_master_a_worker_per_instance_and_the_service_then_converges(
        emulated: Emulated, recorder: Any, inspector: Any) -> None:
    cluster = emulated.cluster
    recorder.clear()
    with emulated.agent():
        report = install_engine("spark", "eng")
    assert sends(recorder) == [f"dfbench: spark {step}" for step in ("packages", "download", "configure", "verify")]
    master, service = SPARK_UNITS[0], SPARK_UNITS[2]
    assert [emulated.units(i).active(master) for i in (0, 1)] == [True, False]
    assert [emulated.units(i).active(service) for i in (0, 1)] == [True, False]
    assert all(emulated.units(i).active(SPARK_UNITS[1]) for i in (0, 1))
    # dfbench's own code, which the service runs from, is in the bucket by its sha256.
    code = report.record.settings["code_sha256"]
    listed = inspector.client("s3").list_objects_v2(Bucket=cluster.bucket, Prefix=".dfbench/artifacts/engines/")
    assert [o["Key"] for o in listed["Contents"]] == [f".dfbench/artifacts/engines/dfbench-{code}.zip"]
    assert report.record.version == SPARK_VERSION and report.record.port == SPARK_SERVICE_PORT
    assert report.record.settings["executor_memory"] == "5g"  # a quarter of c5n.2xlarge's 21 GiB

    starts = [{unit: emulated.units(i).starts(unit) for unit in SPARK_UNITS} for i in (0, 1)]
    downloads = list(emulated.site.downloads())
    recorder.clear()
    with emulated.agent():
        install_engine("spark", "eng")
    assert emulated.site.downloads() == downloads
    assert [{unit: emulated.units(i).starts(unit) for unit in SPARK_UNITS} for i in (0, 1)] == starts
    assert not [c for c in recorder.named("PutObject") if ".dfbench/artifacts/" in c.params.get("Key", "")]

    with emulated.agent():
        [status] = engine_status("eng", ["spark"])
        assert main(["engine", "status", "spark", "--cluster", "eng"]) == 0
        remove_engine("spark", "eng")
        assert main(["engine", "status", "--cluster", "eng"]) == 0  # nothing recorded: nothing to be ready
    assert status.ready
    assert not any(emulated.units(i).active(unit) for i in (0, 1) for unit in SPARK_UNITS)
    assert read_record(cluster, "spark") is None


def on_loopback(cluster: dfbench.Cluster) -> dfbench.Cluster:
    """The cluster with every instance's public address this machine's, where sshd stands in."""
    return cluster.model_copy(update={"instances": [i.model_copy(update={"public_ip": "127.0.0.1"})
                                                    for i in cluster.instances]})


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    with Sshd(tmp_path / "sshd") as server:
        yield server


def test_bench_on_the_cluster_files_three_engines_with_the_same_rows_and_teardown_leaves_nothing(
        emulated: Emulated, sshd: Sshd, tpch: Path, tmp_path: Path, inspector: Any) -> None:
    """Upstream's headline on one cluster: the DataFusion workers, then Trino and Spark as
    `engine install` put them there, each query on every engine in turn, rows compared."""
    cluster = emulated.cluster
    sync_dataset(DATASET, cluster=cluster, data_dir=tpch, progress=False)
    with emulated.agent():
        install_engine("trino", "eng")
        install_engine("spark", "eng")
    peers = ",".join(f"http://{i.private_ip}:9001" for i in cluster.instances)
    first = emulated.instances[0]
    options = {"ssh_port": sshd.port, "ssh_user": sshd.user, "known_hosts": tmp_path / "known_hosts"}
    with hooked(InstanceSide(sshd).hook), LocalWorkerProcess(args=["--worker-urls", peers, "--commit", COMMIT,
                                                                   "--s3-bucket", cluster.bucket]) as worker:
        assert worker.url is not None
        options["worker_port"] = int(worker.url.rsplit(":", 1)[1])
        run = dfbench.bench_engines(engines="datafusion,trino,spark", dataset=DATASET, cluster=on_loopback(cluster),
                                    via="ssh", queries="q1,q3,q6,q15", iterations=1, data_dir=tpch, progress=False,
                                    transport_options=options,
                                    engine_ports={"trino": first.trino_port,
                                                  "spark": first.ports[SPARK_SERVICE_PORT]})

    assert [side.name for side in run.sides][1:] == ["trino", "spark"]
    assert all(o.status == "ok" for side in run.sides for o in side.outcomes.values()), [
        (side.name, o.id, o.status) for side in run.sides for o in side.outcomes.values()]
    assert set(run.rows_checked) == {"q1", "q3", "q6", "q15"}
    assert all(d is None for engines in run.rows_checked.values() for d in engines.values())
    assert sorted(run.totals.compared) == ["q1", "q15", "q3", "q6"]
    for side in run.sides:
        folder = tpch / DATASET / ".results-remote" / side.name
        manifest = json.loads((folder / "run.json").read_text())
        assert manifest["status"] == "complete" and manifest["cluster"]["name"] == "eng"
        assert sorted(p.name for p in folder.glob("q*.json")) == ["q1.json", "q15.json", "q3.json", "q6.json"]
    trino = json.loads((tpch / DATASET / ".results-remote" / "trino" / "run.json").read_text())
    assert trino["cluster"]["engine_install"]["version"] == TRINO_VERSION

    # Trino through the relay is refused before anything is opened.
    with pytest.raises(ConfigError, match=r"relay"):
        dfbench.bench_engines(engines="datafusion,trino", dataset=DATASET, cluster=cluster, via="relay",
                              data_dir=tpch, progress=False)

    report = dfbench.teardown("eng", delete_bucket=True)
    assert report.clean, report.left
    assert inspector.client("s3").list_buckets()["Buckets"] == []


def test_the_command_line_benchmarks_the_cluster_s_engines_through_the_relay(
        emulated: Emulated, tpch: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`dfbench bench --cluster --engines datafusion,spark --via relay`: every request an SSM command."""
    cluster = emulated.cluster
    sync_dataset(DATASET, cluster=cluster, data_dir=tpch, progress=False)
    argv = ["bench", "--cluster", "eng", "--via", "relay", "--engines", "datafusion,spark", "--dataset", DATASET,
            "--queries", "q6", "--iterations", "1", "--data-dir", str(tpch)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "spark is not installed on 'eng'" in err and "dfbench engine install spark --cluster eng" in err
    peers = ",".join(f"http://{i.private_ip}:9001" for i in cluster.instances)
    with LocalWorkerProcess(args=["--worker-urls", peers, "--commit", COMMIT, "--s3-bucket", cluster.bucket]) as worker:
        assert worker.url is not None
        with emulated.agent(port_map={9000: int(worker.url.rsplit(":", 1)[1])}):
            install_engine("spark", "eng")
            assert main(argv) == 0
    shown = capsys.readouterr().out
    assert "spark" in shown and "1 of 1 queries returned the same rows on every engine" in shown
    assert (tpch / DATASET / ".results-remote" / "spark" / "q6.json").exists()
