"""The ssh transport against a real OpenSSH server on loopback (ARCHITECTURE.md §8) forwarding to dfbench's
local worker; EC2 Instance Connect and the console host keys against moto, with AWS's real
answers injected where moto's differ."""

from __future__ import annotations

import base64
import json
import socket
import stat
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dfbench.aws.instance_connect import (
    console_host_keys,
    parse_host_keys,
    send_ssh_public_key,
)
from dfbench.aws.session import connect
from dfbench.errors import (
    ConfigError,
    HostKeyMismatch,
    TransportError,
    WorkerUnreachable,
)
from dfbench.transport.keys import EphemeralKey, fingerprint
from dfbench.transport.ssh import SshTransport
from dfbench.worker.client import WorkerClient
from dfbench.worker.process import LocalWorkerProcess
from dfbench_testing import Sshd, cloud_init_console, console_response, hooked, system_tool

INSTANCE_ID = "i-0a1b2c3d4e5f67890"


@pytest.fixture(scope="module")
def worker() -> Iterator[int]:
    """The local worker's port: what the transport forwards to (the instance's 127.0.0.1:9000)."""
    with LocalWorkerProcess() as process:
        assert process.url is not None
        yield int(process.url.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def key() -> EphemeralKey:
    return EphemeralKey.generate()


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    with Sshd(tmp_path / "sshd") as server:
        yield server


@pytest.fixture
def known_hosts(tmp_path: Path) -> Path:
    return tmp_path / ".dfbench" / "known_hosts"


class Pushes:
    """``authorize`` as EC2 Instance Connect does it: each call lets the key in (for a while)."""

    def __init__(self, sshd: Sshd, key: EphemeralKey) -> None:
        self.sshd, self.key, self.calls = sshd, key, 0

    def __call__(self) -> None:
        self.calls += 1
        self.sshd.authorize(self.key.public_line)


def ssh(sshd: Sshd, key: EphemeralKey, known_hosts: Path, remote_port: int, **options: Any) -> SshTransport:
    options.setdefault("authorize", Pushes(sshd, key))
    options.setdefault("trust_on_first_use", True)  # no console here; the refusal has a test of its own
    return SshTransport(host="127.0.0.1", port=sshd.port, user=sshd.user, pkey=key.pkey, known_hosts=known_hosts,
                        remote_port=remote_port, connect_timeout_s=5, **options)


def get(url: str, path: str = "/health", timeout: float = 10) -> bytes:
    with urllib.request.urlopen(url + path, timeout=timeout) as response:
        return response.read()


def wait_until_dropped(transport: SshTransport) -> None:
    session = transport.session
    assert session is not None
    deadline = time.monotonic() + 5
    while session.is_active() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not session.is_active(), "the server-side kill did not end the SSH session"


# --- forwarding ---------------------------------------------------------------------------------


def test_info_and_sql_through_ssh(sshd, key, known_hosts, worker, caplog):
    with caplog.at_level("WARNING", logger="dfbench"), ssh(sshd, key, known_hosts, worker) as transport:
        assert transport.kind == "ssh"
        assert transport.url.startswith("http://127.0.0.1:")
        local_port = transport.url.rsplit(":", 1)[1]
        assert transport.description == (f"ssh {sshd.user}@127.0.0.1:{sshd.port} → 127.0.0.1:{worker} "
                                         f"(local 127.0.0.1:{local_port})")
        client = WorkerClient(transport.url)
        assert client.info()["worker_urls"] == [f"http://127.0.0.1:{worker}"]
        answer = client.query("SELECT 1 AS one")
        assert answer["count"] == 1 and "ProjectionExec" in answer["plan"]
    assert "Accepted publickey for" in sshd.log()
    # First contact without pinned keys: trusted on first use, filed as OpenSSH does, and said so.
    assert "on first use" in caplog.text and fingerprint_of(sshd) in caplog.text
    assert stat.S_IMODE(known_hosts.stat().st_mode) == 0o600
    assert known_hosts.read_text() == f"[127.0.0.1]:{sshd.port} {sshd.host_public_key}\n"
    found = subprocess.run([system_tool("ssh-keygen"), "-F", f"[127.0.0.1]:{sshd.port}", "-f", str(known_hosts)],
                           capture_output=True, text=True, check=False)
    assert found.returncode == 0, "ssh-keygen does not find the entry dfbench wrote"
    # Closed: the local port answers no more.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(local_port)), timeout=2).close()


def fingerprint_of(sshd: Sshd) -> str:
    printed = subprocess.run([system_tool("ssh-keygen"), "-l", "-f", f"{sshd.host_key}.pub"], capture_output=True,
                             text=True, check=True).stdout
    return printed.split()[1]


def test_bursts_of_short_connections_share_one_session(sshd, key, known_hosts, worker):
    """2,000 requests, each its own TCP connection, from 8 threads: every one answered, and no
    reconnect (the select()-based forwarder of paramiko's demo loses connections here)."""
    with ssh(sshd, key, known_hosts, worker) as transport:
        session = transport.session
        failures: list[str] = []

        def hammer() -> None:
            for _ in range(250):
                try:
                    if get(transport.url) != b"ok":
                        failures.append("wrong body")
                except OSError as error:
                    failures.append(repr(error))

        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        assert transport.forwarded == 2000
        assert transport.reconnects == 0 and transport.session is session and session.is_active()
        assert transport.failure is None


def test_half_close_is_forwarded(sshd, key, known_hosts, tmp_path):
    """A client that shuts down its sending side still gets the whole answer (EOF travels as a
    half-close, not a close)."""
    with socket.create_server(("127.0.0.1", 0)) as echo:
        port = echo.getsockname()[1]

        def serve() -> None:
            conn, _ = echo.accept()
            with conn:
                received = b""
                while data := conn.recv(4096):
                    received += data
                conn.sendall(b"got " + str(len(received)).encode())

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        with ssh(sshd, key, known_hosts, port) as transport, \
                socket.create_connection(("127.0.0.1", int(transport.url.rsplit(":", 1)[1])), timeout=5) as client:
            client.sendall(b"x" * 100_000)
            client.shutdown(socket.SHUT_WR)
            answer = b""
            while data := client.recv(4096):
                answer += data
        assert answer == b"got 100000"


# --- host keys ----------------------------------------------------------------------------------


def test_changed_host_key_is_refused(sshd, key, known_hosts, worker, tmp_path):
    with ssh(sshd, key, known_hosts, worker, host_key_alias=INSTANCE_ID) as transport:
        WorkerClient(transport.url).info()
    pinned = known_hosts.read_text()
    assert pinned == f"{INSTANCE_ID} {sshd.host_public_key}\n"

    # Another machine (another host key) answers for the same instance id.
    with Sshd(tmp_path / "impostor") as impostor:
        transport = ssh(impostor, key, known_hosts, worker, host_key_alias=INSTANCE_ID)
        with pytest.raises(HostKeyMismatch) as refused:
            transport.__enter__()
        error = refused.value
        assert error.alias == INSTANCE_ID and error.kind == "ssh"
        assert fingerprint_of(sshd) in error.expected and fingerprint_of(impostor) in error.presented
        assert str(known_hosts) in str(error)
        # Refused before authentication: nothing logged in, nothing forwarded, nothing re-pinned.
        assert "Accepted publickey" not in impostor.log()
        assert transport.url == "" and transport.forwarded == 0
        assert known_hosts.read_text() == pinned


def test_pinned_console_keys_decide_first_contact(sshd, key, known_hosts, worker, tmp_path, caplog):
    other = EphemeralKey.generate().public_line.replace("dfbench-ephemeral", "root@ip-10-0-0-7")
    transport = ssh(sshd, key, known_hosts, worker, host_key_alias=INSTANCE_ID, pinned_host_keys=[other])
    with pytest.raises(HostKeyMismatch) as refused:
        transport.__enter__()
    assert fingerprint(base64.b64decode(other.split()[1])) in refused.value.expected
    assert fingerprint_of(sshd) in refused.value.presented
    assert "Accepted publickey" not in sshd.log()
    assert not known_hosts.exists() or known_hosts.read_text() == ""

    console_lines = [other, f"{sshd.host_public_key} root@ip-10-0-0-7"]
    with caplog.at_level("WARNING", logger="dfbench"), \
            ssh(sshd, key, known_hosts, worker, host_key_alias=INSTANCE_ID,
                pinned_host_keys=console_lines) as transport:
        WorkerClient(transport.url).info()
    assert "first use" not in caplog.text
    assert known_hosts.read_text() == f"{INSTANCE_ID} {sshd.host_public_key}\n"


# --- reconnecting -------------------------------------------------------------------------------


def test_reconnects_once_then_gives_up(sshd, key, known_hosts, worker, caplog):
    pushes = Pushes(sshd, key)
    with caplog.at_level("WARNING", logger="dfbench"), \
            ssh(sshd, key, known_hosts, worker, authorize=pushes) as transport:
        first = transport.session
        assert pushes.calls == 1
        sshd.revoke_all()  # the pushed key expired (Instance Connect: 60 s): a reconnect must push again
        assert get(transport.url) == b"ok"

        assert sshd.drop_sessions() >= 1
        wait_until_dropped(transport)
        # 8 connections find the session dead at once: one reconnect serves them all.
        barrier = threading.Barrier(8)
        answers: list[bytes | str] = []

        def request() -> None:
            barrier.wait()
            try:
                answers.append(get(transport.url))
            except OSError as error:
                answers.append(repr(error))

        threads = [threading.Thread(target=request) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert answers == [b"ok"] * 8
        assert transport.reconnects == 1 and pushes.calls == 2
        assert transport.session is not first and transport.failure is None
        assert "reconnecting" in caplog.text

        sshd.revoke_all()
        sshd.drop_sessions()
        wait_until_dropped(transport)
        with pytest.raises(WorkerUnreachable):
            WorkerClient(transport.url).info()
        assert isinstance(transport.failure, TransportError)
        assert "dropped again" in str(transport.failure)
        assert str(transport.failure) in caplog.text
        with pytest.raises(WorkerUnreachable):  # and stays down: closed at once, no third session
            WorkerClient(transport.url).info()
        assert transport.reconnects == 1 and pushes.calls == 2


def test_failed_reconnect_is_the_failure(sshd, key, known_hosts, worker):
    with ssh(sshd, key, known_hosts, worker) as transport:
        assert get(transport.url) == b"ok"
        sshd.stop()  # the instance went away: the session drops and nothing answers on port 22
        wait_until_dropped(transport)
        with pytest.raises(WorkerUnreachable):
            WorkerClient(transport.url).info()
        assert transport.reconnects == 1
        assert isinstance(transport.failure, TransportError)
        assert "reconnect failed" in str(transport.failure) and "ssh_ingress_cidrs" in str(transport.failure)


def test_reconnect_checks_the_host_key_again(sshd, key, known_hosts, worker, tmp_path):
    with ssh(sshd, key, known_hosts, worker, host_key_alias=INSTANCE_ID) as transport:
        assert get(transport.url) == b"ok"
        port = sshd.port
        sshd.stop()
        wait_until_dropped(transport)
        with Sshd(tmp_path / "replaced", port=port) as replaced:  # same address, another machine
            with pytest.raises(WorkerUnreachable):
                WorkerClient(transport.url).info()
            assert isinstance(transport.failure, HostKeyMismatch)
            assert "Accepted publickey" not in replaced.log()


# --- errors -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_nothing_listening_names_the_ingress_cidrs(key, known_hosts, worker):
    calls = []
    transport = SshTransport(host="127.0.0.1", port=free_port(), user="ec2-user", pkey=key.pkey,
                             known_hosts=known_hosts, remote_port=worker, authorize=lambda: calls.append(1))
    with pytest.raises(TransportError) as refused:
        transport.__enter__()
    assert refused.value.kind == "ssh" and "ssh_ingress_cidrs" in str(refused.value)
    assert calls == [1]  # the key is pushed before each connect


def test_not_an_ssh_server(key, known_hosts, worker):
    with socket.create_server(("127.0.0.1", 0)) as silent:
        transport = SshTransport(host="127.0.0.1", port=silent.getsockname()[1], pkey=key.pkey,
                                 known_hosts=known_hosts, remote_port=worker, connect_timeout_s=0.5)
        with pytest.raises(TransportError, match=r"handshake"):
            transport.__enter__()


def test_key_not_accepted_names_instance_connect(sshd, key, known_hosts, worker):
    transport = ssh(sshd, key, known_hosts, worker, authorize=None)  # never pushed
    with pytest.raises(TransportError) as refused:
        transport.__enter__()
    message = str(refused.value)
    assert "Instance Connect" in message and repr(sshd.user) in message
    assert transport.session is None or not transport.session.is_active()


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


def test_closed_remote_port_fails_one_request_only(sshd, key, known_hosts):
    port = free_port()
    with ssh(sshd, key, known_hosts, port) as transport:
        with pytest.raises(WorkerUnreachable):
            WorkerClient(transport.url).info()
        assert "open FAILED" in sshd.log() or "failed" in sshd.log()
        server = ThreadingHTTPServer(("127.0.0.1", port), _Ok)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            assert get(transport.url) == b"ok"  # the worker came up: the same session forwards to it
        finally:
            server.shutdown()
            server.server_close()
        assert transport.reconnects == 0 and transport.failure is None


def test_close_is_idempotent_and_ends_open_connections(sshd, key, known_hosts, worker):
    transport = ssh(sshd, key, known_hosts, worker)
    with transport:
        held = socket.create_connection(("127.0.0.1", int(transport.url.rsplit(":", 1)[1])), timeout=5)
        deadline = time.monotonic() + 5
        while transport.forwarded == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
    transport.close()
    with held:
        assert held.recv(10) == b""  # the forwarded connection was closed with the transport
    assert transport.session is not None and not transport.session.is_active()


# --- keys ---------------------------------------------------------------------------------------


def test_ephemeral_key_works_for_the_ssh_command_line(tmp_path):
    key = EphemeralKey.generate()
    assert key.public_line.startswith("ssh-ed25519 AAAA") and key.public_line.endswith(" dfbench-ephemeral")
    path = key.write_private(tmp_path / "keys" / "id_ed25519")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    derived = subprocess.run([system_tool("ssh-keygen"), "-y", "-f", str(path)], capture_output=True, text=True,
                             check=True).stdout.split()
    assert derived[:2] == key.public_line.split()[:2]
    printed = subprocess.run([system_tool("ssh-keygen"), "-l", "-f", str(path)], capture_output=True, text=True,
                             check=True).stdout.split()[1]
    assert printed == fingerprint(key.pkey) == key.fingerprint
    assert EphemeralKey.generate().public_line != key.public_line


# --- EC2 Instance Connect and the console -------------------------------------------------------


def test_send_ssh_public_key_sends_what_aws_expects(aws, recorder, key):
    client = connect(region="us-east-1").client("ec2-instance-connect")
    send_ssh_public_key(client, instance_id=INSTANCE_ID, user="ec2-user", public_key=key.public_line)
    assert [call.params for call in recorder.named("SendSSHPublicKey")] == [
        {"InstanceId": INSTANCE_ID, "InstanceOSUser": "ec2-user", "SSHPublicKey": key.public_line}]


@pytest.mark.parametrize(("code", "says"), [
    ("EC2InstanceNotFoundException", "dfbench status"),
    ("EC2InstanceStateInvalidException", "not running"),
    ("EC2InstanceUnavailableException", "Wait a few minutes"),
    ("AuthException", "ec2-instance-connect:SendSSHPublicKey"),
    ("InvalidArgsException", "ED25519"),
])
def test_instance_connect_errors_name_the_fix(aws, faults, key, code, says):
    # moto answers Success for any instance id, state or user: AWS's errors are injected.
    faults.error("ec2-instance-connect", "SendSSHPublicKey", code, "as AWS says it", status=400)
    client = connect(region="us-east-1").client("ec2-instance-connect")
    with pytest.raises(TransportError) as failed:
        send_ssh_public_key(client, instance_id=INSTANCE_ID, user="ec2-user", public_key=key.public_line)
    assert failed.value.kind == "ssh" and says in str(failed.value) and INSTANCE_ID in str(failed.value)


def answer_console(text: str):
    def hook(client: Any) -> None:
        client.meta.events.register_first("before-send.ec2.GetConsoleOutput",
                                          lambda request, **_: console_response(INSTANCE_ID, text))
    return hooked(hook)


def test_console_host_keys_from_cloud_init(aws, recorder, sshd):
    ecdsa = ("ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBHN14OCnYTeMh09qRzmWhtXsCgMOQu5S"
             "4WLksyBkQsNFil50MPdN8EoE0hh4dw70UzctiMXmQW/vStGeeyLv7OA= root@ip-10-0-0-7.ec2.internal")
    ed25519 = f"{sshd.host_public_key} root@ip-10-0-0-7.ec2.internal"
    with answer_console(cloud_init_console([ecdsa, ed25519])):
        ec2 = connect(region="us-east-1").client("ec2")
        assert console_host_keys(ec2, INSTANCE_ID) == [ecdsa, ed25519]
    assert [c.params for c in recorder.named("GetConsoleOutput")] == [{"InstanceId": INSTANCE_ID, "Latest": True}]


def test_console_host_keys_absent(aws, recorder, inspector):
    """moto's console output is a fixed Xen boot log without cloud-init's block; so is a real
    instance's in its first minutes: no keys, after trying the live and the buffered output."""
    ec2 = connect(region="us-east-1").client("ec2")
    # One of the AMIs moto knows (its AMI validation is on, ARCHITECTURE.md §8).
    instance = inspector.client("ec2").run_instances(ImageId="ami-12c6146b", InstanceType="t3.micro", MinCount=1,
                                                     MaxCount=1)["Instances"][0]["InstanceId"]
    assert console_host_keys(ec2, instance) == []
    assert [c.params for c in recorder.named("GetConsoleOutput")] == [
        {"InstanceId": instance, "Latest": True}, {"InstanceId": instance}]


def test_parse_host_keys_takes_the_last_block_and_valid_keys():
    first = EphemeralKey.generate().public_line
    second = EphemeralKey.generate().public_line
    text = "\n".join([
        "-----BEGIN SSH HOST KEY KEYS-----", first, "-----END SSH HOST KEY KEYS-----",
        "reboot",
        "-----BEGIN SSH HOST KEY KEYS-----", f"ec2: {second}", "ssh-ed25519 AAAAnotbase64!!", second,
        "-----END SSH HOST KEY KEYS-----",
        "-----BEGIN SSH HOST KEY KEYS-----", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5",  # cut off: no END yet
    ])
    assert parse_host_keys(text) == [second]
    assert parse_host_keys("no block here") == []


def test_cluster_path_end_to_end(aws, recorder, sshd, key, known_hosts, worker):
    """What dfbench does for one instance: pin the host keys from the console, push the key with
    Instance Connect before connecting, connect under the instance id."""
    aws_ = connect(region="us-east-1")
    instance_connect = aws_.client("ec2-instance-connect")

    def instance_side(request: Any, **_: Any) -> None:
        # The instance's Instance Connect agent lets sshd find the pushed key (for 60 s).
        sshd.authorize(json.loads(request.body)["SSHPublicKey"])

    instance_connect.meta.events.register("before-send.ec2-instance-connect.SendSSHPublicKey", instance_side)
    with answer_console(cloud_init_console([f"{sshd.host_public_key} root@ip-10-0-0-7"])):
        pinned = console_host_keys(connect(region="us-east-1").client("ec2"), INSTANCE_ID)

    def push() -> None:
        send_ssh_public_key(instance_connect, instance_id=INSTANCE_ID, user=sshd.user, public_key=key.public_line)

    with SshTransport(host="127.0.0.1", port=sshd.port, user=sshd.user, pkey=key.pkey, known_hosts=known_hosts,
                      host_key_alias=INSTANCE_ID, pinned_host_keys=pinned, remote_port=worker,
                      authorize=push) as transport:
        assert WorkerClient(transport.url).info()["errors"] == []
    assert [c.params for c in recorder.named("SendSSHPublicKey")] == [
        {"InstanceId": INSTANCE_ID, "InstanceOSUser": sshd.user, "SSHPublicKey": key.public_line}]
    assert known_hosts.read_text() == f"{INSTANCE_ID} {sshd.host_public_key}\n"


def test_reading_a_missing_key_file_is_a_config_error(tmp_path, known_hosts):
    with pytest.raises(ConfigError, match=r"Cannot read"):
        SshTransport(host="127.0.0.1", key_file=tmp_path / "absent", known_hosts=known_hosts)
    path = EphemeralKey.generate().write_private(tmp_path / "id")
    assert SshTransport(host="127.0.0.1", key_file=path, known_hosts=known_hosts).pkey.get_name() == "ssh-ed25519"


def test_a_chosen_local_port_is_used_and_a_taken_one_is_named(sshd, key, known_hosts, worker):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    with ssh(sshd, key, known_hosts, worker, local_port=free) as transport:
        assert transport.url == f"http://127.0.0.1:{free}"
        assert WorkerClient(transport.url).info()["errors"] == []
        with pytest.raises(TransportError, match=f"127.0.0.1:{free}.*another program holds it") as taken:
            with ssh(sshd, key, known_hosts, worker, local_port=free):
                pass
        assert taken.value.kind == "ssh"
        # The failed second transport left the first one working.
        assert WorkerClient(transport.url).info()["errors"] == []


def test_an_unpinned_key_is_refused_unless_first_use_is_trusted(sshd, key, known_hosts, worker):
    transport = ssh(sshd, key, known_hosts, worker, host_key_alias=INSTANCE_ID, trust_on_first_use=False)
    with pytest.raises(TransportError, match=r"refusing the unverified key .* trust_on_first_use=True"):
        transport.__enter__()
    assert "Accepted publickey" not in sshd.log()
    assert not known_hosts.exists()


def test_the_paramiko_internals_the_forwarder_orders_its_messages_by_are_there():
    """transport/forward.py sends under paramiko's own send lock, through names paramiko does not
    document as public (pyproject admits any paramiko >= 3.4): a paramiko that renames them fails
    here, by name, rather than as a hang in an SSH burst."""
    import paramiko

    left, right = socket.socketpair()
    try:
        transport = paramiko.Transport(left)
        assert isinstance(transport.clear_to_send, threading.Event)
        assert hasattr(transport.clear_to_send_lock, "acquire") and hasattr(transport.clear_to_send_lock, "release")
        assert isinstance(transport.clear_to_send_timeout, int | float)
        assert callable(transport._send_message) and isinstance(transport.active, bool)
        assert hasattr(paramiko.Channel(0).lock, "acquire")  # the channel's lock, taken second
        transport.close()
    finally:
        left.close()
        right.close()
