"""A benchmark on a cluster, end to end: moto for AWS, dfbench's local worker standing in for every
instance's worker, reached through the relay (SSM commands run on this machine by LocalAgent) or
through SSH (a real sshd on loopback, keys pushed with EC2 Instance Connect)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dfbench
from dfbench.aws import ssm as remote
from dfbench.cli import main
from dfbench.data import sync_dataset
from dfbench.errors import ClusterUnhealthy, ConfigError, HostKeyMismatch, TransportError, WorkerUnreachable
from dfbench.worker.artifacts import publish_worker
from dfbench.worker.client import WorkerClient
from dfbench.worker.process import LocalWorkerProcess
from dfbench_testing import Faults, InstanceSide, LocalAgent, Recorder, Sshd, hooked, python_program, worker_binary

DATASET = "tpch_sf0.01"
COMMIT = "e2e0c0ffee"


@pytest.fixture
def cluster(aws: Any, tpch: Path, inspector: Any) -> dfbench.Cluster:
    """Two instances, SSH open to loopback, the dataset in the cluster's bucket."""
    found = dfbench.provision(dfbench.ClusterSpec(name="e2e", instance_count=2, ssh_ingress_cidrs=("127.0.0.1/32",)))
    sync_dataset(DATASET, cluster=found, data_dir=tpch, progress=False)
    # moto builds its SSM backend (seconds) at the first SSM call after a reset: here, not inside
    # a relayed /info.
    inspector.client("ssm").list_commands()
    return found


def worker_for(cluster: dfbench.Cluster, *, peers: int | None = None, commit: str = COMMIT) -> LocalWorkerProcess:
    """The local worker as every instance's: its /info lists the first ``peers`` instances."""
    urls = ",".join(f"http://{i.private_ip}:9001" for i in cluster.instances[:peers])
    return LocalWorkerProcess(args=["--worker-urls", urls, "--commit", commit, "--s3-bucket", cluster.bucket])


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def agent_for(faults: Faults, inspector: Any, cluster: dfbench.Cluster, worker_url: str) -> LocalAgent:
    return LocalAgent(faults, s3=inspector.client("s3"), bucket=cluster.bucket, prefix=remote.OUTPUT_PREFIX,
                      port_map={9000: port_of(worker_url)})


def test_make_bench_remote_runs_through_the_relay_and_compares_with_the_previous_run(
        cluster: dfbench.Cluster, faults: Faults, recorder: Recorder, inspector: Any, tpch: Path,
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    command = ["bench", "--cluster", "e2e", "--via", "relay", "--dataset", DATASET, "--queries", "q1,q6",
               "--iterations", "2", "--engine", "feature", "--data-dir", str(tpch)]
    # What `dfbench deploy` of a current worker publishes: the run records that kind.
    publish_worker(worker_binary(tmp_path / "worker", kind="current"), bucket=cluster.bucket, kind="current",
                   dns_name=cluster.workers_dns_name, progress=False)
    with worker_for(cluster) as worker, agent_for(faults, inspector, cluster, worker.url) as agent:
        assert main(command) == 0
        first = capsys.readouterr()
        assert main(command) == 0
        second = capsys.readouterr()

    results = tpch / DATASET / ".results-remote" / "feature"
    for query, rows in (("q1", 4), ("q6", 1)):
        document = json.loads((results / f"{query}.json").read_text())
        assert [i["rowCount"] for i in document["iterations"]] == [rows, rows]
        assert all(i["elapsed"] > 0 and "error" not in i for i in document["iterations"])
    run = json.loads((results / "run.json").read_text())
    assert run["status"] == "complete" and run["location"] == f"s3://{cluster.bucket}"
    assert run["cluster"]["transport"] == "relay" and run["cluster"]["worker_kind"] == "current"
    # Published from a binary, not built by dfbench: no cargo package or features on record.
    assert (run["cluster"]["worker_package"], run["cluster"]["worker_features"]) == (None, [])
    assert run["cluster"]["coordinator"] == cluster.instances[0].instance_id
    assert [i["instance_id"] for i in run["cluster"]["instances"]] == [i.instance_id for i in cluster.instances]
    assert [h["commit"] for h in run["cluster"]["health"]] == [COMMIT, COMMIT]
    assert run["worker_info"]["git_commit_hash"] == COMMIT
    assert "no previous run" in first.out
    assert "q1: prev=" in second.out and "TOTAL" in second.out
    # Every instance's /info went through its own relay; queries only to the coordinator.
    by_instance: dict[str, int] = {}
    for send in recorder.named("SendCommand"):
        [target] = send.params["InstanceIds"]
        by_instance[target] = by_instance.get(target, 0) + 1
    coordinator, other = (i.instance_id for i in cluster.instances)
    assert by_instance[other] == 2  # one health check per run
    assert by_instance[coordinator] > 20
    # The tables were created on the bucket's copy of the dataset.
    scripts = [r.script for r in agent.runs.values()]
    assert any(f"s3%3A%2F%2F{cluster.bucket}%2F{DATASET}%2Flineitem%2F" in s for s in scripts)


def test_an_unhealthy_cluster_stops_before_any_query_with_a_table_per_instance(
        cluster: dfbench.Cluster, faults: Faults, inspector: Any, tpch: Path) -> None:
    missing = cluster.instances[1]
    with worker_for(cluster, peers=1) as worker, agent_for(faults, inspector, cluster, worker.url) as agent:
        with pytest.raises(ClusterUnhealthy) as raised:
            dfbench.run_benchmark(dataset=DATASET, cluster=cluster, via="relay", queries="q1", data_dir=tpch,
                                  engine="unhealthy", progress=False)
    message = str(raised.value)
    assert set(raised.value.problems) == {i.instance_id for i in cluster.instances}
    assert f"peer list lacks {missing.instance_id} ({missing.private_ip})" in message
    assert "1/2" in message and COMMIT[:12] in message
    assert "dfbench deploy --cluster e2e" in message and "dfbench logs --cluster e2e" in message
    assert not (tpch / DATASET / ".results-remote" / "unhealthy").exists()
    assert all("sql=" not in r.script for r in agent.runs.values())

    # Told to skip the check (a worker whose peer list dfbench misreads), the run goes ahead.
    with worker_for(cluster, peers=1) as worker, agent_for(faults, inspector, cluster, worker.url):
        assert main(["bench", "--cluster", "e2e", "--via", "relay", "--no-check", "--dataset", DATASET,
                     "--queries", "q6", "--iterations", "1", "--engine", "unchecked", "--data-dir", str(tpch)]) == 0
    run = json.loads((tpch / DATASET / ".results-remote" / "unchecked" / "run.json").read_text())
    assert run["status"] == "complete" and run["cluster"]["health"] == []


def test_bad_remote_input_is_refused_before_any_aws_call(aws: Any, recorder: Recorder, tpch: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    found = dfbench.provision(dfbench.ClusterSpec(name="closed", instance_count=1))
    recorder.clear()
    with pytest.raises(ConfigError, match=r"--ssh-cidr"):
        dfbench.run_benchmark(dataset=DATASET, cluster=found, via="ssh", data_dir=tpch)
    with pytest.raises(ConfigError, match=r"Unknown transport"):
        dfbench.run_benchmark(dataset=DATASET, cluster=found, via="carrier-pigeon", data_dir=tpch)
    with pytest.raises(ConfigError, match=r"iterations"):
        dfbench.run_benchmark(dataset=DATASET, cluster=found, iterations=0, data_dir=tpch)
    assert recorder.calls == []
    # A dataset that was never synced: named, with the command that fixes it, before any transport.
    assert main(["bench", "--cluster", "closed", "--via", "relay", "--dataset", "tpch_sf3", "--data-dir",
                 str(tpch)]) == 2
    error = capsys.readouterr().err
    assert "dfbench data sync tpch_sf3" in error and "Traceback" not in error
    assert not any(c.operation == "SendCommand" for c in recorder.calls)


def test_a_missing_plugin_is_named_with_its_install_link(aws: Any, recorder: Recorder, tpch: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    found = dfbench.provision(dfbench.ClusterSpec(name="plugin", instance_count=1))
    monkeypatch.setenv("PATH", str(tpch))  # no session-manager-plugin anywhere
    recorder.clear()
    with pytest.raises(TransportError, match=r"session-manager-working-with-install-plugin"):
        with dfbench.ClusterConnection(found, via="ssm"):
            pass
    assert not any(c.operation == "StartSession" for c in recorder.calls)



@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    with Sshd(tmp_path / "sshd") as server:
        yield server


def on_loopback(cluster: dfbench.Cluster) -> dfbench.Cluster:
    """The cluster with every instance's public address being this machine's, where sshd stands in."""
    return cluster.model_copy(update={"instances": [i.model_copy(update={"public_ip": "127.0.0.1"})
                                                    for i in cluster.instances]})


def test_a_library_run_over_ssh_pins_each_instance_and_pushes_a_key_per_connection(
        cluster: dfbench.Cluster, sshd: Sshd, recorder: Recorder, tpch: Path, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    options = {"ssh_port": sshd.port, "ssh_user": sshd.user, "known_hosts": known_hosts}
    with hooked(InstanceSide(sshd).hook), worker_for(cluster) as worker:
        options["worker_port"] = port_of(worker.url)
        run = dfbench.run_benchmark(dataset=DATASET, cluster=on_loopback(cluster), via="ssh", queries="q3",
                                    iterations=1, data_dir=tpch, engine="over-ssh", progress=False,
                                    transport_options=options)
        url = json.loads((run.results_dir / "run.json").read_text())["url"]
        # The tunnel closed with the run.
        with pytest.raises(WorkerUnreachable):
            WorkerClient(url).info()

    assert run.ok and run.remote and run.outcome("q3").rows == 138  # the repository's q3: no LIMIT
    assert run.results_dir == tpch / DATASET / ".results-remote" / "over-ssh"
    instance_ids = [i.instance_id for i in cluster.instances]
    # One ephemeral key pushed per instance, as the instance's login user; host keys from the console.
    pushes = [c.params for c in recorder.named("SendSSHPublicKey")]
    assert sorted(p["InstanceId"] for p in pushes) == sorted(instance_ids)
    assert {p["InstanceOSUser"] for p in pushes} == {sshd.user}
    assert len({p["SSHPublicKey"] for p in pushes}) == 2
    assert sorted(c.params["InstanceId"] for c in recorder.named("GetConsoleOutput")) == sorted(instance_ids)
    pins = sorted(known_hosts.read_text().splitlines())
    assert pins == sorted(f"{i} {sshd.host_public_key}" for i in instance_ids)

    # Pinned now: a second connection reads no console.
    recorder.clear()
    with hooked(InstanceSide(sshd).hook), worker_for(cluster) as worker:
        options["worker_port"] = port_of(worker.url)
        with dfbench.ClusterConnection(on_loopback(cluster), via="ssh", **options) as connection:
            assert WorkerClient(connection.url).info()["git_commit_hash"] == COMMIT
    assert recorder.named("GetConsoleOutput") == []


def test_a_changed_host_key_stops_the_run_before_any_query(cluster: dfbench.Cluster, recorder: Recorder,
                                                            tpch: Path, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    first = cluster.instances[0]
    with Sshd(tmp_path / "real") as real, Sshd(tmp_path / "impostor") as impostor:
        known_hosts.write_text(f"{first.instance_id} {real.host_public_key}\n")
        with hooked(InstanceSide(impostor).hook), worker_for(cluster) as worker:
            with pytest.raises(HostKeyMismatch) as refused:
                dfbench.run_benchmark(dataset=DATASET, cluster=on_loopback(cluster), via="ssh", queries="q1",
                                      data_dir=tpch, engine="impostor", progress=False,
                                      transport_options={"ssh_port": impostor.port, "ssh_user": impostor.user,
                                                         "known_hosts": known_hosts,
                                                         "worker_port": port_of(worker.url)})
    assert refused.value.alias == first.instance_id
    assert "remove its line" in str(refused.value)
    assert not (tpch / DATASET / ".results-remote" / "impostor").exists()


def test_dfbench_shell_runs_a_command_over_ssh_with_the_pinned_host_key(
        cluster: dfbench.Cluster, sshd: Sshd, recorder: Recorder, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    target = on_loopback(cluster)
    marker = tmp_path / "ran-here"
    with hooked(InstanceSide(sshd).hook):
        code = dfbench.shell(target, instance=1, via="ssh", command=["touch", str(marker)], ssh_port=sshd.port,
                             ssh_user=sshd.user, known_hosts=known_hosts)
        failing = dfbench.shell(target, instance=1, via="ssh", command=["sh", "-c", "exit 7"], ssh_port=sshd.port,
                                ssh_user=sshd.user, known_hosts=known_hosts)
    assert code == 0 and marker.exists() and failing == 7
    second = cluster.instances[1].instance_id
    assert known_hosts.read_text() == f"{second} {sshd.host_public_key}\n"
    assert [c.params["InstanceId"] for c in recorder.named("SendSSHPublicKey")] == [second, second]
    # Pinned since the first call: the second read no console output.
    assert [c.params["InstanceId"] for c in recorder.named("GetConsoleOutput")] == [second]


def test_dfbench_tunnel_holds_the_way_open_until_ctrl_c(cluster: dfbench.Cluster, faults: Faults, inspector: Any,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    seen: dict[str, Any] = {}

    def use_then_interrupt() -> None:
        try:
            deadline = time.monotonic() + 60
            while "url" not in seen and time.monotonic() < deadline:
                for line in capsys.readouterr().out.splitlines():
                    if line.startswith("{"):
                        seen.update(json.loads(line))
                time.sleep(0.05)
            seen["info through the tunnel"] = WorkerClient(seen["url"], info_timeout=30).info()
        finally:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # Ctrl-C

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with worker_for(cluster) as worker, agent_for(faults, inspector, cluster, worker.url):
        threading.Thread(target=use_then_interrupt, daemon=True).start()
        code = main(["tunnel", "--cluster", "e2e", "--via", "relay", "--instance", "1", "--port", str(port), "--json"])
        after = capsys.readouterr()

    assert code == 0, after.err
    assert seen["instance_id"] == cluster.instances[1].instance_id and seen["transport"] == "relay"
    assert seen["url"] == f"http://127.0.0.1:{port}"
    assert seen["info through the tunnel"]["git_commit_hash"] == COMMIT
    assert f"closed the way to {seen['instance_id']}" in after.err
    with pytest.raises(WorkerUnreachable):
        WorkerClient(seen["url"]).info()


def test_dfbench_shell_over_session_manager_runs_the_plugin_attached_and_ends_the_session(
        aws: Any, faults: Faults, recorder: Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found = dfbench.provision(dfbench.ClusterSpec(name="shell", instance_count=2))
    session = "dfbench-user-0a1b2c3d4e5f67890"
    faults.respond("ssm", "StartSession", {"SessionId": session, "TokenValue": "token",
                                           "StreamUrl": f"wss://ssmmessages.us-east-1.amazonaws.com/v1/data-channel/"
                                                        f"{session}?role=publish_subscribe"})
    faults.respond("ssm", "TerminateSession", {"SessionId": session})
    # A stand-in plugin: records how it was started, exits as the remote shell did.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    plugin = bin_dir / "session-manager-plugin"
    python_program(plugin, "import json, os, sys\n"
                      "if sys.argv[1:] == ['--version']:\n    print('1.2.707.0'); sys.exit(0)\n"
                      f"json.dump({{'argv': sys.argv[1:], 'path': os.environ.get('PATH'), "
                      f"'response': os.environ.get('AWS_SSM_START_SESSION_RESPONSE')}}, open({str(tmp_path / 'seen.json')!r}, 'w'))\n"
                      "sys.exit(3)\n")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")

    assert dfbench.shell(found, instance=1) == 3  # auto: the plugin is installed
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["path"] == os.environ["PATH"]  # the whole environment, not only the plugin's variables
    assert json.loads(seen["argv"][4])["Target"] == found.instances[1].instance_id
    assert seen["argv"][2] == "StartSession" and json.loads(seen["response"])["SessionId"] == session
    [start] = recorder.named("StartSession")
    assert start.params == {"Target": found.instances[1].instance_id}
    assert [c.params["SessionId"] for c in recorder.named("TerminateSession")] == [session]
    with pytest.raises(ConfigError, match=r"dfbench exec"):
        dfbench.shell(found, via="ssm", command=["uptime"])


def test_make_bench_remote_is_the_cli_on_the_cluster(tmp_path: Path) -> None:
    """`make bench REMOTE=1` as the README gives it: the Makefile's own expansion (make -n runs nothing)."""
    root = Path(__file__).resolve().parent.parent
    shown = subprocess.run(["make", "-n", "-s", "-C", str(root), "bench", "REMOTE=1", "DATASET=tpch_sf10", "VIA=ssh",
                            "CLUSTER=bench", "REGION=eu-west-1", "QUERIES=q1,q3"],
                           capture_output=True, text=True, check=True).stdout
    [command] = [line for line in shown.replace("\\\n", " ").splitlines() if "dfbench bench" in line]
    words = command.split()
    assert words[0].endswith("/dfbench") and words[1] == "bench"
    options = " ".join(words[2:])
    for expected in ("--cluster bench", "--region eu-west-1", "--via ssh", "--dataset tpch_sf10", "--queries q1,q3"):
        assert expected in options
    assert "--url" not in options


def test_auto_falls_back_to_the_relay_when_ssh_cannot_connect(cluster: dfbench.Cluster, faults: Faults, inspector: Any,
                                                              recorder: Recorder, tpch: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no Session Manager plugin: auto picks ssh (port 22 is open)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]  # nothing listens there once the probe is closed
    with worker_for(cluster) as worker, agent_for(faults, inspector, cluster, worker.url):
        run = dfbench.run_benchmark(dataset=DATASET, cluster=on_loopback(cluster), queries="q6", iterations=1,
                                    data_dir=tpch, engine="fallback", progress=False,
                                    # No console here: the connection itself is what fails.
                                    transport_options={"ssh_port": closed, "known_hosts": tmp_path / "known_hosts",
                                                       "trust_on_first_use": True})
    assert run.ok and run.outcome("q6").rows == 1
    manifest = json.loads((run.results_dir / "run.json").read_text())
    assert manifest["cluster"]["transport"] == "relay" and manifest["reached_by"].startswith("relay")
    assert "falling back to the relay" in caplog.text and "ssh_ingress_cidrs" in caplog.text
    assert len(recorder.named("SendSSHPublicKey")) == 2  # ssh was tried on both instances first


def test_a_tunnel_to_an_instance_without_a_worker_says_to_deploy_one(cluster: dfbench.Cluster, faults: Faults,
                                                                    inspector: Any,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"  # no worker listens there
    with agent_for(faults, inspector, cluster, closed):
        assert main(["tunnel", "--cluster", "e2e", "--via", "relay"]) == 1
    error = capsys.readouterr().err
    assert f"No worker at {cluster.instances[0].instance_id}" in error
    assert "dfbench deploy --cluster e2e" in error and "dfbench logs --cluster e2e" in error
    assert "dfbench worker" not in error and "Traceback" not in error


def test_dfbench_health_shows_every_worker_and_fails_on_an_unhealthy_one(
        cluster: dfbench.Cluster, faults: Faults, inspector: Any, capsys: pytest.CaptureFixture[str]) -> None:
    with worker_for(cluster) as worker, agent_for(faults, inspector, cluster, worker.url):
        assert main(["health", "--cluster", "e2e", "--via", "relay"]) == 0
        healthy = capsys.readouterr().out
        assert main(["health", "--cluster", "e2e", "--via", "relay", "--json"]) == 0
        records = json.loads(capsys.readouterr().out)
    assert all(i.instance_id in healthy for i in cluster.instances) and "every peer known" in healthy
    assert [(r["instance_id"], r["commit"], r["peers"], r["problems"]) for r in records] == [
        (i.instance_id, COMMIT, 2, []) for i in cluster.instances]
    with worker_for(cluster, peers=1) as worker, agent_for(faults, inspector, cluster, worker.url):
        assert main(["health", "--cluster", "e2e", "--via", "relay"]) == 1
    error = capsys.readouterr().err
    assert "not ready to benchmark" in error and "peer list lacks" in error and "Traceback" not in error


# --- host keys: from the console, polled; never trusted on first use unless asked ---------------


def test_console_host_keys_are_polled_until_ec2_posts_them(cluster: dfbench.Cluster, sshd: Sshd, recorder: Recorder,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """EC2 answers an empty console for minutes after boot: dfbench waits for the keys (saying so)
    instead of connecting to whatever answers at the address."""
    side = InstanceSide(sshd, blank_reads=5)
    with hooked(side.hook), worker_for(cluster) as worker, caplog.at_level("INFO", logger="dfbench"):
        with dfbench.ClusterConnection(on_loopback(cluster), via="ssh", check=False, ssh_port=sshd.port,
                                       ssh_user=sshd.user, worker_port=port_of(worker.url)) as connection:
            assert WorkerClient(connection.url).info()["git_commit_hash"] == COMMIT
    assert side.reads > 5
    assert "waiting for the SSH host keys of" in caplog.text and "first use" not in caplog.text
    first = cluster.instances[0].instance_id
    # The shared pins file under the user's state folder, the user's alone.
    pins = Path(os.environ["XDG_STATE_HOME"]) / "dfbench" / "known_hosts"
    assert pins.read_text() == f"{first} {sshd.host_public_key}\n"
    assert (pins.stat().st_mode & 0o777, pins.parent.stat().st_mode & 0o777) == (0o600, 0o700)


def test_no_console_key_is_one_clear_error_unless_first_use_is_trusted(
        cluster: dfbench.Cluster, sshd: Sshd, caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    options = {"ssh_port": sshd.port, "ssh_user": sshd.user, "known_hosts": known_hosts, "check": False}
    with hooked(InstanceSide(sshd, blank_reads=None).hook), worker_for(cluster) as worker:
        options["worker_port"] = port_of(worker.url)
        with pytest.raises(TransportError, match=r"No SSH host key of .* --trust-first-key") as refused:
            dfbench.ClusterConnection(on_loopback(cluster), via="ssh", **options).__enter__()
        assert "\n" not in str(refused.value)
        assert "Accepted publickey" not in sshd.log() and not known_hosts.exists()

        with caplog.at_level("WARNING", logger="dfbench"), \
                dfbench.ClusterConnection(on_loopback(cluster), via="ssh", trust_on_first_use=True,
                                          **options) as connection:
            assert WorkerClient(connection.url).info()["git_commit_hash"] == COMMIT
    assert "on first use" in caplog.text
    assert known_hosts.read_text() == f"{cluster.instances[0].instance_id} {sshd.host_public_key}\n"


def test_the_pins_file_is_the_user_s_whatever_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dfbench.transport.known_hosts import default_path

    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert default_path() == tmp_path / "home" / ".local" / "state" / "dfbench" / "known_hosts"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert default_path() == tmp_path / "state" / "dfbench" / "known_hosts"
