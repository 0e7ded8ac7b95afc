"""The SSH forwarder under load, against Debian's OpenSSH server on loopback: many short
connections, keep-alive connections, clients that leave without reading, and workers that close
first, close last or reset. Every test ends on the session it started with: sshd drops the whole
session at a message for a channel it has freed ("ieof packet referred to nonexistent channel"),
and the transport reconnects only once."""

from __future__ import annotations

import http.client
import socket
import struct
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dfbench.transport.keys import EphemeralKey
from dfbench.transport.ssh import SshTransport
from dfbench.worker.process import LocalWorkerProcess
from dfbench_testing import Sshd

THREADS = 8
PER_THREAD = 250
# What sshd logs when a message names a channel it has freed, just before it drops the session.
CHANNEL_ERRORS = ("bad id", "nonexistent channel", "Disconnecting")


@pytest.fixture(scope="module")
def key() -> EphemeralKey:
    return EphemeralKey.generate()


@pytest.fixture
def sshd(tmp_path: Path, key: EphemeralKey) -> Iterator[Sshd]:
    with Sshd(tmp_path / "sshd") as server:
        server.authorize(key.public_line)
        yield server


@pytest.fixture(scope="module")
def worker() -> Iterator[int]:
    """dfbench's local worker, as the instance's 127.0.0.1:9000: its port."""
    with LocalWorkerProcess() as process:
        assert process.url is not None
        yield int(process.url.rsplit(":", 1)[1])


def forward(sshd: Sshd, key: EphemeralKey, tmp_path: Path, remote_port: int) -> SshTransport:
    return SshTransport(host="127.0.0.1", port=sshd.port, user=sshd.user, pkey=key.pkey,
                        known_hosts=tmp_path / "known_hosts", remote_port=remote_port, connect_timeout_s=5,
                        trust_on_first_use=True)


def in_threads(work: Callable[[], None], threads: int = THREADS, each: int = PER_THREAD) -> list[str]:
    """``work`` ``each`` times in each of ``threads`` threads at once; the failures, as text."""
    failures: list[str] = []

    def loop() -> None:
        for _ in range(each):
            try:
                work()
            except Exception as error:
                failures.append(repr(error))

    running = [threading.Thread(target=loop) for _ in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    return failures


def assert_one_session(transport: SshTransport, session: Any, sshd: Sshd) -> None:
    assert transport.failure is None
    assert transport.reconnects == 0 and transport.session is session and session.is_active()
    complaints = [line for line in sshd.log().splitlines() if any(e in line for e in CHANNEL_ERRORS)]
    assert complaints == []


def local_port(transport: SshTransport) -> int:
    return int(transport.url.rsplit(":", 1)[1])


# --- workers that end connections their own way -------------------------------------------------


class RawWorker:
    """An HTTP/1.1 server of one answer that ends each connection as ``ending`` says:

    - ``closes-first``: answers with ``Connection: close`` and closes at once (the client's EOF
      comes after the server's);
    - ``closes-last``: answers and keeps the connection until the client closes it;
    - ``resets``: reads a little of the request and resets the connection (an RST, not a FIN)
      while the client is still sending, as a worker that crashes does.
    """

    ANSWER = b"ok"

    def __init__(self, ending: str) -> None:
        self.ending = ending
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            if self.ending == "resets":
                connection.recv(1024)
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            request = b""
            while b"\r\n\r\n" not in request:
                data = connection.recv(4096)
                if not data:
                    return
                request += data
            close = b"Connection: close\r\n" if self.ending == "closes-first" else b""
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + close
                               + b"Content-Length: %d\r\n\r\n" % len(self.ANSWER) + self.ANSWER)
            if self.ending == "closes-last":
                while connection.recv(4096):
                    pass

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def raw_worker(request: pytest.FixtureRequest) -> Iterator[RawWorker]:
    server = RawWorker(request.param)
    yield server
    server.close()


# --- the traffic --------------------------------------------------------------------------------


def test_one_request_per_connection_on_one_session(sshd, key, tmp_path, worker):
    """The burst that used to end the session after about 70 requests: 8 threads, 250 requests
    each, each its own connection (urllib sends Connection: close), to the local worker."""
    with forward(sshd, key, tmp_path, worker) as transport:
        session = transport.session

        def request() -> None:
            with urllib.request.urlopen(transport.url + "/info", timeout=20) as response:
                assert b"worker_urls" in response.read()

        assert in_threads(request) == []
        assert transport.forwarded == THREADS * PER_THREAD
        assert_one_session(transport, session, sshd)


def test_clients_that_leave_without_reading_the_answer(sshd, key, tmp_path, worker):
    """Each client reads the status line and closes with the body unread (its kernel answers the
    rest with a reset): one pump sees the reset while the other is ending the channel. The CLOSE
    sent by one used to overtake the EOF of the other, and sshd dropped the session."""
    with forward(sshd, key, tmp_path, worker) as transport:
        session = transport.session

        def request() -> None:
            response = urllib.request.urlopen(transport.url + "/info", timeout=20)
            assert response.status == 200
            response.close()

        assert in_threads(request) == []
        assert_one_session(transport, session, sshd)


def test_keep_alive_clients(sshd, key, tmp_path, worker):
    """8 connections held open, 250 requests on each, and one-shot requests in between."""
    with forward(sshd, key, tmp_path, worker) as transport:
        session = transport.session
        held = threading.local()
        connections: list[http.client.HTTPConnection] = []

        def keep_alive() -> None:
            if not hasattr(held, "connection"):
                held.connection = http.client.HTTPConnection("127.0.0.1", local_port(transport), timeout=20)
                connections.append(held.connection)
            held.connection.request("GET", "/health")
            response = held.connection.getresponse()
            assert (response.status, response.read()) == (200, b"ok")
            assert not response.will_close

        def one_shot() -> None:
            with urllib.request.urlopen(transport.url + "/health", timeout=20) as response:
                assert response.read() == b"ok"

        one_shots: list[str] = []
        background = threading.Thread(target=lambda: one_shots.extend(in_threads(one_shot, threads=2, each=50)))
        background.start()
        assert in_threads(keep_alive) == []
        background.join()
        for connection in connections:
            connection.close()
        assert one_shots == []
        assert transport.forwarded == THREADS + 2 * 50
        assert_one_session(transport, session, sshd)


@pytest.mark.parametrize("raw_worker", ["closes-first", "closes-last"], indirect=True)
def test_workers_that_close_first_or_last(sshd, key, tmp_path, raw_worker):
    with forward(sshd, key, tmp_path, raw_worker.port) as transport:
        session = transport.session

        def request() -> None:
            with urllib.request.urlopen(transport.url + "/", timeout=20) as response:
                assert response.read() == RawWorker.ANSWER

        assert in_threads(request) == []
        assert transport.forwarded == THREADS * PER_THREAD
        assert_one_session(transport, session, sshd)


@pytest.mark.parametrize("raw_worker", ["resets"], indirect=True)
def test_a_worker_that_resets_while_the_client_sends(sshd, key, tmp_path, raw_worker, worker):
    """sshd closes a channel on its own once writing to the worker fails; paramiko answers that
    CLOSE from its own thread, and a data packet the forwarder was sending at that instant used to
    follow the answer ("data packet referred to nonexistent channel"). The connections fail, as
    they must; the session lives on."""
    with forward(sshd, key, tmp_path, raw_worker.port) as transport:
        session = transport.session

        def upload() -> None:
            with socket.create_connection(("127.0.0.1", local_port(transport)), timeout=20) as client:
                try:
                    for _ in range(64):
                        client.sendall(b"x" * 16384)
                    client.shutdown(socket.SHUT_WR)
                    assert client.recv(10) == b""  # no answer: the worker is gone
                except (ConnectionResetError, BrokenPipeError):
                    pass  # the reset reached the client: as good as an empty answer

        assert in_threads(upload, each=50) == []
        assert_one_session(transport, session, sshd)
    # The same sshd forwards to a worker that answers, on a session of its own.
    with forward(sshd, key, tmp_path, worker) as transport, \
            urllib.request.urlopen(transport.url + "/health", timeout=20) as response:
        assert response.read() == b"ok"
