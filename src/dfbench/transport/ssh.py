"""The ``ssh`` transport: a local port forwarded over one SSH session to a worker's HTTP port.

On a cluster the session goes to the instance's public IP as ``ec2-user`` with an ephemeral key
that ``authorize`` pushes through EC2 Instance Connect right before each connect (AWS keeps a
pushed key for 60 s only), and the forwarded port is the worker's 127.0.0.1:9000. It needs the
caller's address in ``ssh_ingress_cidrs`` of the cluster spec, nothing installed locally, and no
key pair registered in EC2.

Host keys are pinned per host in dfbench's own known_hosts file (:mod:`dfbench.transport.known_hosts`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from paramiko.common import cMSG_CHANNEL_DATA

from dfbench.errors import ConfigError, HostKeyMismatch, TransportError
from dfbench.transport.base import local_listener
from dfbench.transport.known_hosts import entry_name, lookup, pin

log = logging.getLogger("dfbench")
# paramiko logs every failed handshake or dropped session with a traceback at ERROR level, and
# with no handler configured Python prints those to stderr; dfbench reports the failure itself
# (as TransportError). A NullHandler keeps them quiet unless the application configures logging.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

__all__ = ["EphemeralKey", "SshTransport", "fingerprint"]

EPHEMERAL_COMMENT = "dfbench-ephemeral"
_CHUNK = 64 * 1024
# How often a pump waiting on a channel looks whether the connection was given up.
_POLL_S = 0.5


def fingerprint(key: paramiko.PKey | bytes) -> str:
    """A key's fingerprint as OpenSSH prints it (``ssh-keygen -l``, the instance console):
    ``SHA256:`` and the unpadded base64 of the SHA-256 of the public key blob."""
    blob = key if isinstance(key, bytes) else key.asbytes()
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _parse_public_line(line: str) -> tuple[str, bytes]:
    """(key type, public key blob) of an OpenSSH public key line ``type base64 [comment]``; the
    blob starts with its own type, which must agree."""
    parts = line.split()
    if len(parts) < 2:
        raise ConfigError(f"Not an SSH public key line: {line!r} (expected 'ssh-ed25519 AAAA... comment').")
    try:
        blob = base64.b64decode(parts[1], validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        inner = blob[4:4 + length].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError):
        raise ConfigError(f"Not an SSH public key line: {line!r} (its key is not valid base64).") from None
    if inner != parts[0]:
        raise ConfigError(f"SSH public key line {line!r} says {parts[0]} but holds a {inner} key.")
    return parts[0], blob


def _key_type_of_algorithm(algorithm: str) -> str:
    # RFC 8332: RSA keys ("ssh-rsa") are used with the rsa-sha2-256/512 signature algorithms.
    return "ssh-rsa" if algorithm.startswith("rsa-sha2-") else algorithm


class EphemeralKey:
    """A fresh ed25519 key pair that lives in memory for one command: its public half is pushed
    with EC2 Instance Connect, so no key pair is ever registered in EC2 or left on disk.

    Generated with ``cryptography`` because paramiko can load ed25519 keys but not create them."""

    def __init__(self, private: ed25519.Ed25519PrivateKey) -> None:
        self._private = private
        self._openssh = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                              serialization.NoEncryption())
        self.pkey = paramiko.Ed25519Key(file_obj=io.StringIO(self._openssh.decode("ascii")))
        public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        self.public_line = f"{public.decode('ascii')} {EPHEMERAL_COMMENT}"

    @classmethod
    def generate(cls) -> EphemeralKey:
        return cls(ed25519.Ed25519PrivateKey.generate())

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.pkey)

    def write_private(self, path: str | Path) -> Path:
        """Write the private key in OpenSSH format, readable by its owner only (``ssh`` refuses a
        private key others can read), for an ``ssh -i`` command line."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(descriptor, 0o600)  # the mode of os.open applies to new files only
            os.write(descriptor, self._openssh)
        finally:
            os.close(descriptor)
        return path


class _Forward:
    """One forwarded TCP connection: a local client socket and its direct-tcpip channel, pumped
    by two blocking threads, client → channel (upstream) and channel → client (downstream).

    The channel ends as RFC 4254 §5.3 says and in the one order OpenSSH survives. sshd frees a
    channel as soon as it has both sent and received CHANNEL_CLOSE; a later message naming it
    makes sshd drop the whole session ("ieof packet referred to nonexistent channel"), or, once
    sshd has reused the number, lands on another connection's channel. paramiko builds each
    message under the channel's lock but sends it after releasing that lock, so two threads'
    messages can leave in the opposite order to the one they were built in. Hence:

    - only the upstream pump sends data and EOF, each checked against the channel's state and
      sent in one step (``_send_ordered``), so no CLOSE built after the check leaves before it;
    - CLOSE is sent by whichever pump finishes last, after the other made its last channel call,
      so nothing of ours follows it (a CLOSE sent by one pump used to overtake the EOF the other
      had just built, whenever a client left without reading its whole answer). When the server
      closed first, paramiko has answered its CLOSE already (``Channel._handle_close``) and
      ``close()`` sends nothing;
    - a pump that fails never closes the channel itself: it marks the forward aborted and shuts
      the client socket down, which wakes the other pump (at once when it waits on the client
      socket, within ``_POLL_S`` when it waits on the channel), and the last one out closes.

    paramiko's own window adjustments, sent by ``Channel.recv`` in the downstream pump, are built
    and sent the paramiko way; they stop at the server's EOF, which sshd sends before any CLOSE of
    its own, so one could only pass such a CLOSE if the server's EOF and CLOSE both arrived while
    ``recv`` was between the two steps.
    """

    def __init__(self, client: socket.socket, channel: paramiko.Channel, done: Callable[[_Forward], None]) -> None:
        self.client = client
        self.channel = channel
        self._done = done
        self._running = 2
        self._lock = threading.Lock()
        self._aborted = False

    def start(self, number: int) -> None:
        # Channel reads time out so that the downstream pump sees an abort.
        self.channel.settimeout(_POLL_S)
        threading.Thread(target=self._upstream, name=f"ssh-forward-{number}-up", daemon=True).start()
        threading.Thread(target=self._downstream, name=f"ssh-forward-{number}-down", daemon=True).start()

    def abort(self) -> None:
        """Give up on this connection: both pumps stop at their next step; the last one closes."""
        self._aborted = True
        try:
            self.client.shutdown(socket.SHUT_RDWR)  # wakes a pump blocked on the client socket
        except OSError:
            pass  # already shut down, or reset by the client

    def _upstream(self) -> None:
        """Client socket → channel; the client's EOF becomes the channel's EOF (a half-close: the
        answer may still be on its way back)."""
        channel = self.channel
        try:
            while not self._aborted and (data := self.client.recv(_CHUNK)):
                self._send_data(data)
            if not self._aborted:
                # Channel._send_eof sends EOF once (closing the channel counts as having sent it).
                self._send_ordered(lambda: None if channel.closed else channel._send_eof())
        except (OSError, EOFError, paramiko.SSHException):
            self.abort()  # the client reset, or the channel or session is gone
        finally:
            self._finished()

    def _send_data(self, data: bytes) -> None:
        """What ``Channel.sendall`` does, each packet sent with ``_send_ordered``."""
        channel = self.channel
        while data:
            with channel.lock:
                # paramiko's condition on the channel's lock, notified by window adjustments and
                # by the channel's close.
                while channel.out_window_size == 0 and not channel.closed and not self._aborted:
                    channel.out_buffer_cv.wait(_POLL_S)
                # Channel._wait_for_send_window's limits: the window and a packet's payload. This
                # pump is the channel's only sender, so the window can only have grown by the time
                # the packet is built.
                size = min(len(data), channel.out_window_size, channel.out_max_packet_size - 64)
            if self._aborted:
                return

            def build(chunk: bytes = data[:size]) -> paramiko.Message | None:
                if channel.closed:
                    return None
                channel.out_window_size -= len(chunk)
                message = paramiko.Message()
                message.add_byte(cMSG_CHANNEL_DATA)
                message.add_int(channel.remote_chanid)
                message.add_string(chunk)
                return message

            if self._send_ordered(build) is None:
                raise OSError("the channel is closed")
            data = data[size:]

    def _send_ordered(self, build: Callable[[], paramiko.Message | None]) -> paramiko.Message | None:
        """Build a message under the channel's lock and send it before any message paramiko
        builds afterwards; None (nothing sent) when ``build`` finds nothing to send.

        paramiko sends under the session's ``clear_to_send_lock`` (``Transport._send_user_message``)
        what it built earlier under the channel's lock, and its own thread answers the server's
        CLOSE that way (``Channel._handle_close``). sshd closes on its own once writing to the
        worker failed (the worker reset the connection with our data in flight), so that answer
        could leave before a data packet built just earlier. Here the check, the build and the
        send all happen under ``clear_to_send_lock``, taken first (paramiko never takes it while
        holding a channel's lock, so the two cannot deadlock): a CLOSE built after the check
        leaves after this message. Like ``_send_user_message``, it waits out a key exchange
        (which clears ``clear_to_send``) without holding the lock."""
        transport = self.channel.transport
        deadline = time.monotonic() + transport.clear_to_send_timeout
        while True:
            transport.clear_to_send.wait(0.1)
            if not transport.active:
                raise EOFError("the SSH session is closed")
            with transport.clear_to_send_lock:
                if transport.clear_to_send.is_set():
                    with self.channel.lock:
                        message = build()
                    if message is not None:
                        transport._send_message(message)
                    return message
            if time.monotonic() > deadline:
                raise paramiko.SSHException("Key-exchange timed out waiting for key negotiation")

    def _downstream(self) -> None:
        """Channel → client socket; the server's EOF becomes a FIN to the client (SHUT_WR)."""
        try:
            while True:
                try:
                    data = self.channel.recv(_CHUNK)
                except TimeoutError:
                    if self._aborted:
                        return
                    continue
                if not data:
                    break
                self.client.sendall(data)
            self.client.shutdown(socket.SHUT_WR)
            if self.channel.closed:
                # The server closed the channel (after our EOF, or because the worker is gone): what
                # the client still sends has nowhere to go.
                self.abort()
        except OSError:
            self.abort()  # the client went away without reading everything
        finally:
            self._finished()

    def _finished(self) -> None:
        with self._lock:
            self._running -= 1
            if self._running:
                return
        try:
            self.channel.close()  # EOF (unless sent) and CLOSE: the last messages for this channel
        except (OSError, EOFError, paramiko.SSHException):
            pass  # the session is gone already (closed, or dropped): so is the channel
        self.client.close()
        self._done(self)


def _reset(client: socket.socket) -> None:
    """Close with an RST instead of a FIN, so the HTTP client sees a connection reset (nothing to
    read) rather than an empty answer."""
    try:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    client.close()


class _PromptAckSocket:
    """The SSH connection's socket, acknowledging every segment at once (Linux TCP_QUICKACK).

    sshd does not disable Nagle's algorithm on a connection that only forwards ports, so a small
    packet that follows another (the body after the headers; the channel EOF after the data)
    waits until the previous one is acknowledged, and the receiver's delayed ACK holds that for
    40 ms on Linux: without this, every forwarded HTTP exchange waits 40 ms for nothing. The
    flag does not stick (the kernel drops back to delayed ACKs), so it is set before each read.
    paramiko reads through ``recv`` only; everything else goes to the socket itself."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._quickack = getattr(socket, "TCP_QUICKACK", None)  # Linux only

    def recv(self, size: int) -> bytes:
        if self._quickack is not None:
            try:
                self._sock.setsockopt(socket.IPPROTO_TCP, self._quickack, 1)
            except OSError:
                self._quickack = None
        return self._sock.recv(size)

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


class SshTransport:
    """A worker's HTTP port reached through one SSH session, while the context is open.

    ``url`` is a local ``http://127.0.0.1:PORT``; each TCP connection to it becomes a direct-tcpip
    channel to ``remote_host:remote_port`` as seen from the SSH server. The session is verified
    against the pinned host key before anything is forwarded, kept alive, and reconnected once
    if it drops (``reconnects``); after a second drop, or a failed reconnect, connections are
    refused and ``failure`` says why.
    """

    kind = "ssh"

    def __init__(self, *, host: str, port: int = 22, user: str = "ec2-user", key_file: str | Path | None = None,
                 pkey: paramiko.PKey | None = None, known_hosts: str | Path, host_key_alias: str | None = None,
                 pinned_host_keys: Sequence[str] = (), remote_host: str = "127.0.0.1", remote_port: int = 9000,
                 authorize: Callable[[], None] | None = None, connect_timeout_s: float = 10.0,
                 keepalive_s: float = 15.0, local_port: int = 0) -> None:
        if (key_file is None) == (pkey is None):
            raise ConfigError("SshTransport needs exactly one of key_file and pkey.")
        if pkey is None:
            assert key_file is not None
            try:
                pkey = paramiko.PKey.from_path(str(key_file))
            except paramiko.PasswordRequiredException:
                raise ConfigError(f"The SSH key {key_file} is encrypted; dfbench uses no agent and asks no "
                                  "passphrase: give an unencrypted key (or none: dfbench makes one).") from None
            except (OSError, paramiko.SSHException, ValueError) as error:
                raise ConfigError(f"Cannot read the SSH private key {key_file}: {error}") from None
        self.host = host
        self.port = port
        self.user = user
        self.pkey = pkey
        self.known_hosts = Path(known_hosts)
        self.host_key_alias = host_key_alias
        self.host_key_name = entry_name(host, port, host_key_alias)
        self.pinned_host_keys = [_parse_public_line(line) for line in pinned_host_keys]
        self.remote_host = remote_host
        self.remote_port = remote_port
        self.authorize = authorize
        self.connect_timeout_s = connect_timeout_s
        self.keepalive_s = keepalive_s
        self.local_port = local_port
        self.url = ""
        self.description = f"ssh {user}@{host}:{port} → {remote_host}:{remote_port}"
        self.reconnects = 0
        self.failure: TransportError | None = None
        self.forwarded = 0  # TCP connections given a channel
        self._session: paramiko.Transport | None = None
        self._listener: socket.socket | None = None
        self._accepter: threading.Thread | None = None
        self._forwards: set[_Forward] = set()
        self._state_lock = threading.Lock()
        self._reconnect_lock = threading.Lock()
        self._closed = False

    @property
    def session(self) -> paramiko.Transport | None:
        """The paramiko session in use (a new object after a reconnect)."""
        return self._session

    # --- the context --------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self._closed = False
        try:
            self._session = self._connect()
            listener = local_listener(self.kind, self.local_port)
            self._listener = listener
        except BaseException:
            self.close()
            raise
        local_port = listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{local_port}"
        self.description = (f"ssh {self.user}@{self.host}:{self.port} → {self.remote_host}:{self.remote_port} "
                            f"(local 127.0.0.1:{local_port})")
        self._accepter = threading.Thread(target=self._accept_loop, name=f"ssh-accept-{local_port}", daemon=True)
        self._accepter.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Stop listening, close every forwarded connection and the SSH session. Idempotent."""
        self._closed = True
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # on Linux this wakes the thread blocked in accept()
            except OSError:
                pass
            listener.close()
        with self._state_lock:
            forwards = list(self._forwards)
        # The session's end closes every channel at once (paramiko marks them closed, which wakes
        # the pumps, and sends no per-channel message): the forwards only drop their clients.
        for forward in forwards:
            forward.abort()
        session = self._session
        if session is not None:
            session.close()
        accepter, self._accepter = self._accepter, None
        if accepter is not None and accepter is not threading.current_thread():
            accepter.join(timeout=5)

    # --- forwarding ---------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        number = 0
        while not self._closed:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed
            if self._closed:
                _reset(client)
                return
            number += 1
            # Opening a channel is a round trip to the server (and may reconnect): not in this
            # thread, or one slow open would hold up every connection behind it.
            threading.Thread(target=self._forward, args=(client, number), name=f"ssh-forward-{number}",
                             daemon=True).start()

    def _forward(self, client: socket.socket, number: int) -> None:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            channel = self._open_channel(client.getpeername())
        except paramiko.ChannelException as error:
            # The server could not connect to remote_host:remote_port (the worker is not listening).
            # Only this connection fails; the session stays up for the next one.
            log.debug("ssh: %s:%s refused a forward to %s:%s: %s", self.host, self.port, self.remote_host,
                      self.remote_port, error)
            _reset(client)
            return
        except (TransportError, OSError, EOFError, paramiko.SSHException) as error:
            log.debug("ssh: forward to %s:%s failed: %s", self.remote_host, self.remote_port, error)
            _reset(client)
            return
        forward = _Forward(client, channel, self._forward_done)
        with self._state_lock:
            if self._closed:
                channel.close()
                _reset(client)
                return
            self._forwards.add(forward)
            self.forwarded += 1
        forward.start(number)

    def _forward_done(self, forward: _Forward) -> None:
        with self._state_lock:
            self._forwards.discard(forward)

    def _open_channel(self, origin: tuple[str, int]) -> paramiko.Channel:
        """A direct-tcpip channel (RFC 4254 §7.2) to the remote address, over the live session or
        over the one reconnect allowed when the session is found dead."""
        if self.failure is not None:
            raise self.failure
        session = self._session
        if session is None or not session.is_active():
            session = self._revive(session)
        destination = (self.remote_host, self.remote_port)
        try:
            return session.open_channel("direct-tcpip", destination, origin, timeout=self.connect_timeout_s)
        except paramiko.ChannelException:
            raise  # the server is fine; the destination refused
        except (paramiko.SSHException, EOFError, OSError):
            if session.is_active():
                raise
            # paramiko raises "SSH session not active" (or the error that ended it) when the
            # session died under this open.
            session = self._revive(session)
            return session.open_channel("direct-tcpip", destination, origin, timeout=self.connect_timeout_s)

    def _revive(self, dead: paramiko.Transport | None) -> paramiko.Transport:
        """Replace a dropped session, once per transport lifetime. Concurrent connections that
        all find the same session dead wait here for one reconnect and share it."""
        with self._reconnect_lock:
            if self.failure is not None:
                raise self.failure
            current = self._session
            if current is not None and current is not dead and current.is_active():
                return current  # another connection already reconnected
            if self._closed:
                raise TransportError("ssh", "The SSH transport is closed.")
            where = f"{self.user}@{self.host}:{self.port}"
            if self.reconnects >= 1:
                self.failure = TransportError(
                    "ssh", f"The SSH session to {where} dropped again after one reconnect; giving up on it. "
                    "Check that the instance is running and reachable (`dfbench status`), then run the command again.")
                log.warning("%s", self.failure)
                raise self.failure
            self.reconnects += 1
            log.warning("ssh: the session to %s dropped; reconnecting (once)", where)
            try:
                session = self._connect()
            except HostKeyMismatch as error:
                self.failure = error
                log.warning("%s", error)
                raise
            except Exception as error:  # any failure here is recorded as the transport's failure
                self.failure = TransportError(
                    "ssh", f"The SSH session to {where} dropped and the one reconnect failed: {error}")
                log.warning("%s", self.failure)
                raise self.failure from error
            self._session = session
            if dead is not None:
                dead.close()
            return session

    # --- connecting ---------------------------------------------------------------------------

    def _connect(self) -> paramiko.Transport:
        """Authorize (push the key), connect, verify the host key, authenticate with the key only."""
        if self.authorize is not None:
            self.authorize()  # EC2 Instance Connect keys expire 60 s after the push: push every time
        where = f"{self.host}:{self.port}"
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout_s)
        except socket.gaierror as error:
            raise TransportError("ssh", f"Cannot resolve the SSH host {self.host!r}: {error}.") from None
        except ConnectionRefusedError:
            raise TransportError(
                "ssh", f"SSH to {where} was refused: nothing accepts connections on port {self.port} there. "
                "The instance may still be booting (sshd not up yet); if it is up, check that its security group "
                "admits your IP address on that port (ssh_ingress_cidrs in the cluster spec).") from None
        except TimeoutError:
            raise TransportError(
                "ssh", f"No answer from {where} within {self.connect_timeout_s:.0f}s. The security group must "
                "admit your public IP address on TCP port 22: add your CIDR to ssh_ingress_cidrs in the cluster "
                "spec and provision again (and the instance needs a public IP).") from None
        except OSError as error:
            raise TransportError(
                "ssh", f"Cannot reach {where}: {error.strerror or error}. Check your network, that the instance has "
                "a public IP, and that your IP address is in ssh_ingress_cidrs of the cluster spec.") from None
        # Requests and answers are small and latency-bound: no Nagle delay on our side either.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        session = paramiko.Transport(_PromptAckSocket(sock))  # type: ignore[arg-type]
        try:
            self._prefer_pinned_key_types(session)
            session.banner_timeout = self.connect_timeout_s
            session.handshake_timeout = self.connect_timeout_s
            session.auth_timeout = self.connect_timeout_s
            try:
                session.start_client(timeout=self.connect_timeout_s)
                # start_client returns quietly at its timeout; this raises if the handshake is not done.
                presented = session.get_remote_server_key()
            except (paramiko.SSHException, EOFError, OSError) as error:
                detail = str(error)
                if session.is_active() and not session.initial_kex_done:
                    detail = f"no key exchange within {self.connect_timeout_s:g}s"
                if self._expected_keys() and "host key" in detail:
                    # "Incompatible ssh peer (no acceptable host key)": we offered only the pinned key
                    # types, and a server holding none of them is not the pinned one.
                    raise HostKeyMismatch(where, self.host_key_name, self._expected_fingerprints(),
                                          f"none of the pinned key types ({detail})", str(self.known_hosts)) from None
                raise TransportError(
                    "ssh", f"SSH handshake with {where} failed: {detail}. Is an SSH server answering there? "
                    "A fresh instance may need another minute.") from None
            self._check_host_key(presented)
            try:
                # Public key only: no agent, no ~/.ssh, no password (paramiko.Transport, unlike
                # SSHClient.connect, looks for nothing by itself).
                session.auth_publickey(self.user, self.pkey)
            except paramiko.BadAuthenticationType as error:
                raise TransportError(
                    "ssh", f"{where} does not accept public-key logins (it allows {', '.join(error.allowed_types)}); "
                    "dfbench needs an instance that accepts EC2 Instance Connect keys.") from None
            except paramiko.AuthenticationException:
                raise TransportError(
                    "ssh", f"{where} refused the key for user {self.user!r}. The instance must accept EC2 Instance "
                    f"Connect keys for {self.user!r} (Amazon Linux 2023 does, with its ec2-instance-connect package) "
                    "and the key is valid only 60 s after it is pushed; check the user name and the instance's "
                    "AMI, then retry.") from None
            except (paramiko.SSHException, EOFError, OSError) as error:
                raise TransportError("ssh", f"SSH login to {where} failed: {error}. Retry; if it persists, "
                                            "check the instance's sshd (`dfbench logs`).") from None
            # An SSH-level message every keepalive_s of silence keeps NAT and firewall state for an
            # idle session alive (paramiko counts whole seconds; 0 turns it off).
            session.set_keepalive(max(1, round(self.keepalive_s)) if self.keepalive_s > 0 else 0)
        except BaseException:
            session.close()
            raise
        return session

    # --- host keys ----------------------------------------------------------------------------

    def _known_keys(self) -> list[paramiko.PKey]:
        return lookup(self.known_hosts, self.host_key_name)

    def _expected_keys(self) -> list[tuple[str, bytes]]:
        """(type, blob) of the keys the server must present one of: the filed ones, else the pinned
        ones, else none (trust on first use)."""
        known = self._known_keys()
        if known:
            return [(key.get_name(), key.asbytes()) for key in known]
        return list(self.pinned_host_keys)

    def _expected_fingerprints(self) -> str:
        return ", ".join(f"{kind} {fingerprint(blob)}" for kind, blob in self._expected_keys())

    def _prefer_pinned_key_types(self, session: paramiko.Transport) -> None:
        """Offer only the host key algorithms of the keys we hold for this host, so the server
        presents a key we can compare (OpenSSH's client orders them the same way)."""
        kinds = {kind for kind, _ in self._expected_keys()}
        if not kinds:
            return
        options = session.get_security_options()
        wanted = [alg for alg in options.key_types if _key_type_of_algorithm(alg) in kinds]
        if wanted:
            options.key_types = wanted

    def _check_host_key(self, presented: paramiko.PKey) -> None:
        """Pinned per host, before authentication and so before anything is forwarded:
        a filed key must match; else a key from the instance console must match (and is filed);
        else the key is trusted on first use (and filed, with a warning)."""
        where = f"{self.host}:{self.port}"
        blob = presented.asbytes()
        presented_text = f"{presented.get_name()} {fingerprint(presented)}"
        known = self._known_keys()
        if known:
            if any(key.asbytes() == blob for key in known):
                return
            raise HostKeyMismatch(where, self.host_key_name, self._expected_fingerprints(), presented_text,
                                  str(self.known_hosts))
        if self.pinned_host_keys:
            if not any(pinned == blob for _, pinned in self.pinned_host_keys):
                raise HostKeyMismatch(where, self.host_key_name, self._expected_fingerprints(), presented_text,
                                      str(self.known_hosts))
            self._file_key(presented)
            return
        log.warning("ssh: trusting the host key of %s (%s) on first use: %s; pinned in %s", self.host_key_name,
                    where, presented_text, self.known_hosts)
        self._file_key(presented)

    def _file_key(self, key: paramiko.PKey) -> None:
        pin(self.known_hosts, self.host_key_name, key.get_name(), key.get_base64())
