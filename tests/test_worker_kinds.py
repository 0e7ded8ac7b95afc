"""Worker kinds: told apart by the strings of the binary, overridden, refused; their command lines;
and the stand-in workers of both kinds that later tests run in place of the real ones."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dfbench.errors import ConfigError
from dfbench.models import Instance
from dfbench.worker import kinds
from dfbench.worker.health import judge
from dfbench_testing import worker_binary

STANDINS = Path(__file__).parent / "standins"
POD_IP_MESSAGE = b"POD_IP is not set"
DNS_FLAG = b"worker-dns-name"
TAG = b"tag:BenchmarkCluster"


def fake_worker(path: Path, *markers: bytes, at: int = 4096, size: int = 64 * 1024) -> Path:
    """An executable-looking file with ``markers`` written one after another from ``at``, the
    way string literals sit side by side in a binary's read-only data."""
    worker_binary(path, size=max(size, at + sum(len(m) for m in markers) + 16), kind=None)
    with open(path, "r+b") as handle:
        handle.seek(at)
        handle.write(b"".join(markers))
    return path


def test_each_kind_is_told_by_its_strings(tmp_path):
    assert kinds.detect_kind(fake_worker(tmp_path / "current", b"Error", POD_IP_MESSAGE, b"--", DNS_FLAG)) == "current"
    assert kinds.detect_kind(fake_worker(tmp_path / "older", b"running", TAG, b"datafusion")) == "tag-discovery"


def test_a_binary_of_neither_kind_is_refused_in_one_line(tmp_path):
    for markers in [(), (DNS_FLAG,), (POD_IP_MESSAGE,), (b"BenchmarkCluster",)]:
        with pytest.raises(ConfigError) as raised:
            kinds.detect_kind(fake_worker(tmp_path / "other", *markers))
        message = str(raised.value)
        assert "\n" not in message
        assert "#630" in message and "#621" in message and "--worker-kind current|tag-discovery" in message


def test_the_override_wins_and_is_checked(tmp_path):
    other = fake_worker(tmp_path / "stripped")
    assert kinds.detect_kind(other, "tag-discovery") == "tag-discovery"
    assert kinds.detect_kind(fake_worker(tmp_path / "older", TAG), "current") == "current"
    with pytest.raises(ConfigError, match="current or tag-discovery"):
        kinds.detect_kind(other, "kubernetes")


def test_a_string_split_across_reads_is_found(tmp_path):
    # At the real chunk size: the marker straddles the first 1 MiB boundary.
    big = fake_worker(tmp_path / "big", TAG, at=kinds.CHUNK_SIZE - 7, size=kinds.CHUNK_SIZE + 4096)
    assert kinds.detect_kind(big) == "tag-discovery"
    # Every offset around a boundary, with chunks shorter than the marker itself.
    for at in range(64, 64 + 40):
        path = fake_worker(tmp_path / f"at{at}", POD_IP_MESSAGE, b"\0", DNS_FLAG, at=at, size=256)
        assert kinds.markers_in(path, chunk_size=16) == {POD_IP_MESSAGE, DNS_FLAG}, at


def test_command_line_of_each_kind():
    name = "workers.mine.us-east-1.dfbench.internal"
    assert kinds.worker_arguments("current", bucket="my-bucket", dns_name=name) == [
        "--bucket", "my-bucket", "--worker-dns-name", name]
    assert kinds.worker_arguments("tag-discovery", bucket="my-bucket") == ["--bucket", "my-bucket"]
    for bad in [dict(kind="current", bucket="my-bucket", dns_name=None),
                dict(kind="current", bucket="my-bucket", dns_name="two words"),
                dict(kind="current", bucket="my-bucket", dns_name="a\n--bucket other"),
                dict(kind="tag-discovery", bucket="my-bucket", dns_name=name),
                dict(kind="tag-discovery", bucket="Not A Bucket")]:
        with pytest.raises(ConfigError):
            kinds.worker_arguments(bad.pop("kind"), **bad)


# --- the stand-in workers --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def info(port: int) -> dict:
    status, body = get(f"http://127.0.0.1:{port}/info")
    assert status == 200
    return json.loads(body)


@contextmanager
def standin(script: str, *args: str, env: dict[str, str]) -> Iterator[int]:
    """Run a stand-in (executed as a program: its shebang and mode are part of the test) on a
    free loopback port until its /info answers; yields the port."""
    port = free_port()
    process = subprocess.Popen([str(STANDINS / script), "--port", str(port), *args],
                               env={"PATH": os.environ["PATH"], **env}, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, process.stderr.read().decode()  # type: ignore[union-attr]
            try:
                get(f"http://127.0.0.1:{port}/info")
                break
            except OSError:
                assert time.monotonic() < deadline, f"{script} did not answer on port {port}"
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stderr.close()  # type: ignore[union-attr]


def test_current_standin_refuses_to_start_without_pod_ip():
    done = subprocess.run([str(STANDINS / "worker_current.py"), "--port", str(free_port())],
                          env={"PATH": os.environ["PATH"]}, capture_output=True, timeout=30, check=False)
    assert done.returncode == 1 and b"POD_IP is not set" in done.stderr


def test_current_standin_reads_its_peers_from_the_name(tmp_path):
    name = "workers.mine.us-east-1.dfbench.internal"
    hosts = tmp_path / "hosts"
    hosts.write_text("# as /etc/hosts\n" + "".join(f"127.0.0.{n} {name}\n" for n in (4, 2, 3, 2))
                     + "127.0.0.9 other.internal\n")
    env = {"POD_IP": "127.0.0.2", "DFBENCH_STANDIN_RESOLVE": str(hosts), "DFBENCH_STANDIN_COMMIT": "c" * 40}
    with standin("worker_current.py", "--bucket", "b", "--worker-dns-name", name, "--broadcast-joins",
                 env=env) as port:
        first = info(port)
        assert first["worker_urls"] == [f"http://127.0.0.{n}:9001/" for n in (2, 3, 4)]
        assert first["git_commit_hash"] == "c" * 40 and first["errors"] == [] and first["build_time_utc"]
        # Resolved again at every request: the record's new values show at once.
        hosts.write_text("".join(f"127.0.0.{n} {name}\n" for n in (5, 6)))
        assert info(port)["worker_urls"] == ["http://127.0.0.5:9001/", "http://127.0.0.6:9001/"]
        # A name that stops resolving leaves the last list, as upstream's resolver loop does.
        hosts.write_text("")
        assert info(port)["worker_urls"] == ["http://127.0.0.5:9001/", "http://127.0.0.6:9001/"]

        assert get(f"http://127.0.0.1:{port}/") == (500, b"Missing 'sql' parameter")
        assert get(f"http://127.0.0.1:{port}/?sql=%20;%20") == (500, b"Empty 'sql' parameter")
        status, body = get(f"http://127.0.0.1:{port}/?sql=SELECT%201")
        assert status == 200 and json.loads(body)["count"] == 0


def test_tag_discovery_standin_reads_its_peers_from_the_tagged_instances(tmp_path):
    def instance(ip: str, state: str, tags: dict[str, str]) -> dict:
        return {"PrivateIpAddress": ip, "State": {"Name": state},
                "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}

    described = tmp_path / "instances.json"
    tag = {"BenchmarkCluster": "datafusion"}
    described.write_text(json.dumps({"Reservations": [
        {"Instances": [instance("127.0.0.3", "running", tag), instance("127.0.0.2", "running", tag)]},
        {"Instances": [instance("127.0.0.4", "stopped", tag), instance("127.0.0.5", "running", {"Other": "x"})]},
    ]}))
    # No POD_IP: this kind needs nothing from its environment.
    with standin("worker_tag_discovery.py", "--bucket", "b", env={"DFBENCH_STANDIN_INSTANCES": str(described)}) \
            as port:
        assert info(port)["worker_urls"] == ["http://127.0.0.3:9001/", "http://127.0.0.2:9001/"]

    refused = subprocess.run([str(STANDINS / "worker_tag_discovery.py"), "--port", str(free_port()),
                              "--worker-dns-name", "x"], env={"PATH": os.environ["PATH"]}, capture_output=True,
                             timeout=30, check=False)
    assert refused.returncode != 0


def test_the_health_judge_takes_either_kind_s_peer_list(tmp_path):
    """Each kind's /info as its stand-in serves it (http://IP:9001/ per peer) is judged against
    the cluster's instances: exactly them is healthy, a stale address or a missing one is not."""
    cluster = [Instance(instance_id=f"i-{n:017x}", name=f"c-{n}", private_ip=f"10.0.1.{10 + n}", public_ip=None,
                        availability_zone="us-east-1a", instance_type="c5n.2xlarge", state="running",
                        image_id="ami-0123456789abcdef0", spot=False,
                        launch_time=datetime(2026, 12, 1, tzinfo=UTC)) for n in range(3)]
    name = "workers.h.us-east-1.dfbench.internal"
    hosts = tmp_path / "hosts"
    described = tmp_path / "instances.json"

    def publish(addresses: list[str]) -> None:
        hosts.write_text("".join(f"{a} {name}\n" for a in addresses))
        described.write_text(json.dumps({"Reservations": [{"Instances": [
            {"PrivateIpAddress": a, "State": {"Name": "running"},
             "Tags": [{"Key": "BenchmarkCluster", "Value": "datafusion"}]} for a in addresses]}]}))

    current = {"POD_IP": cluster[0].private_ip, "DFBENCH_STANDIN_RESOLVE": str(hosts)}
    older = {"DFBENCH_STANDIN_INSTANCES": str(described)}
    live = [i.private_ip for i in cluster]
    with standin("worker_current.py", "--bucket", "b", "--worker-dns-name", name, env=current) as now, \
            standin("worker_tag_discovery.py", "--bucket", "b", env=older) as before:
        for port in (now, before):
            publish(live)
            assert [h.problems for h in judge(cluster, {i.instance_id: info(port) for i in cluster})] == [()] * 3
            publish([*live, "10.0.1.99"])  # an instance gone, still listed
            assert all("the cluster has 3" in h.problems[0]
                       for h in judge(cluster, {i.instance_id: info(port) for i in cluster}))
            publish(live[:2])
            assert all(h.problems == (f"peer list lacks {cluster[2].instance_id} (10.0.1.12)",)
                       for h in judge(cluster, {i.instance_id: info(port) for i in cluster}))
