"""The ``ssh`` transport: a local port forwarded over one SSH session to a worker's HTTP port.

On a cluster the session goes to the instance's public IP as ``ec2-user`` with an ephemeral key
that ``authorize`` pushes through EC2 Instance Connect right before each connect (AWS keeps a
pushed key for 60 s only), and the forwarded port is the worker's 127.0.0.1:9000. It needs the
caller's address in ``ssh_ingress_cidrs`` of the cluster spec, nothing installed locally, and no
key pair registered in EC2.

Host keys are pinned per host in dfbench's own known_hosts file (:mod:`dfbench.transport.known_hosts`).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import paramiko

from dfbench.errors import ConfigError, HostKeyMismatch, TransportError
from dfbench.transport.base import local_listener
from dfbench.transport.forward import Forward, PromptAckSocket, reset
from dfbench.transport.keys import fingerprint, key_type_of_algorithm, parse_public_line
from dfbench.transport.known_hosts import entry_name, lookup, pin

log = logging.getLogger("dfbench")
# paramiko logs every failed handshake or dropped session with a traceback at ERROR level, and
# with no handler configured Python prints those to stderr; dfbench reports the failure itself
# (as TransportError). A NullHandler keeps them quiet unless the application configures logging.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

__all__ = ["SshTransport"]


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
                 keepalive_s: float = 15.0, local_port: int = 0, trust_on_first_use: bool = False) -> None:
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
        self.pinned_host_keys = [parse_public_line(line) for line in pinned_host_keys]
        self.remote_host = remote_host
        self.remote_port = remote_port
        self.authorize = authorize
        self.connect_timeout_s = connect_timeout_s
        self.keepalive_s = keepalive_s
        self.local_port = local_port
        self.trust_on_first_use = trust_on_first_use
        self.url = ""
        self.description = f"ssh {user}@{host}:{port} → {remote_host}:{remote_port}"
        self.reconnects = 0
        self.failure: TransportError | None = None
        self.forwarded = 0  # TCP connections given a channel
        self._session: paramiko.Transport | None = None
        self._listener: socket.socket | None = None
        self._accepter: threading.Thread | None = None
        self._forwards: set[Forward] = set()
        self._state_lock = threading.Lock()
        self._reconnect_lock = threading.Lock()
        self._closed = threading.Event()  # set by close(), read by the accept and forward threads

    @property
    def session(self) -> paramiko.Transport | None:
        """The paramiko session in use (a new object after a reconnect)."""
        return self._session

    # --- the context --------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self._closed.clear()
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
        self._closed.set()
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
        while not self._closed.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed
            if self._closed.is_set():
                reset(client)
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
            reset(client)
            return
        except (TransportError, OSError, EOFError, paramiko.SSHException) as error:
            log.debug("ssh: forward to %s:%s failed: %s", self.remote_host, self.remote_port, error)
            reset(client)
            return
        forward = Forward(client, channel, self._forward_done)
        with self._state_lock:
            if self._closed.is_set():
                channel.close()
                reset(client)
                return
            self._forwards.add(forward)
            self.forwarded += 1
        forward.start(number)

    def _forward_done(self, forward: Forward) -> None:
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
            if self._closed.is_set():
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
        session = paramiko.Transport(PromptAckSocket(sock))
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
        wanted = [alg for alg in options.key_types if key_type_of_algorithm(alg) in kinds]
        if wanted:
            options.key_types = wanted

    def _check_host_key(self, presented: paramiko.PKey) -> None:
        """Pinned per host, before authentication and so before anything is forwarded:
        a filed key must match; else a key from the instance console must match (and is filed);
        else, only with ``trust_on_first_use``, the key is trusted (and filed, with a warning); without
        it nothing is trusted."""
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
        if not self.trust_on_first_use:
            raise TransportError("ssh", f"No host key pinned for {self.host_key_name} ({where}) in {self.known_hosts} "
                                        f"and none from its console: refusing the unverified key {presented_text}; "
                                        "pass trust_on_first_use=True (--trust-first-key) to accept it.")
        log.warning("ssh: trusting the host key of %s (%s) on first use: %s; pinned in %s", self.host_key_name,
                    where, presented_text, self.known_hosts)
        self._file_key(presented)

    def _file_key(self, key: paramiko.PKey) -> None:
        pin(self.known_hosts, self.host_key_name, key.get_name(), key.get_base64())
