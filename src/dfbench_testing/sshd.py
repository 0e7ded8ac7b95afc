"""A real OpenSSH server on loopback, standing in for the sshd of every instance of a cluster."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from dfbench_testing.tools import system_tool


class Sshd:
    """A real OpenSSH server on 127.0.0.1 for the SSH transport's tests (ARCHITECTURE.md §8): its own
    config, host key, authorized_keys and pid file in ``folder``, run in the foreground as
    ``sshd -D -e -f <config>`` so its log goes to ``folder/sshd.log`` (``.log()``).

    ``host_key`` reuses a private host key (the same machine again); by default one is generated.
    ``port`` asks for a given port (a restart on the same address); by default a free one. The user
    to log in as is the current one (root in CI; sshd run by another user can only log that user in).
    """

    def __init__(self, folder: Path, host_key: Path | None = None, *, port: int | None = None,
                 start_timeout_s: float = 10.0) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.user = getpass.getuser()
        self._sshd = system_tool("/usr/sbin/sshd")
        self.authorized_keys = self.folder / "authorized_keys"
        self.authorized_keys.touch()
        if host_key is None:
            host_key = self.folder / "ssh_host_ed25519_key"
            if not host_key.exists():
                subprocess.run([system_tool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", "dfbench-test-sshd",
                                "-f", str(host_key)], check=True, capture_output=True)
        elif Path(host_key).parent != self.folder:
            # sshd refuses a private host key others can read; keep a private copy of our own.
            copy = self.folder / Path(host_key).name
            shutil.copyfile(host_key, copy)
            shutil.copyfile(f"{host_key}.pub", f"{copy}.pub")
            host_key = copy
        os.chmod(host_key, 0o600)
        self.host_key = Path(host_key)
        self.host_public_key = " ".join(Path(f"{host_key}.pub").read_text().split()[:2])
        self.start_timeout_s = start_timeout_s
        self.port = port or 0
        self._process: Any = None
        self._log_file: Any = None
        self.start()

    def _write_config(self) -> Path:
        config = self.folder / "sshd_config"
        config.write_text("\n".join([
            "ListenAddress 127.0.0.1",
            f"Port {self.port}",
            f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            f"PidFile {self.folder / 'sshd.pid'}",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "AllowTcpForwarding yes",
            "PermitRootLogin prohibit-password",
            # One server stands in for every instance of a cluster: the handshakes that N servers
            # would take side by side all come here. sshd's default (10:30:100) drops 30% of the
            # connections beyond 10 unauthenticated ones.
            "MaxStartups 200",
            "LogLevel VERBOSE",
            "",
        ]))
        return config

    def start(self) -> None:
        """Start sshd (on ``self.port``, or a free port when it is 0) and wait for its banner."""
        if self._process is not None and self._process.poll() is None:
            return
        fixed = bool(self.port)
        # sshd's privilege separation directory; it refuses to start without it.
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        for _attempt in range(5):
            if not fixed:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", 0))
                    self.port = probe.getsockname()[1]
            config = self._write_config()
            self._log_file = open(self.folder / "sshd.log", "ab")
            self._process = subprocess.Popen([self._sshd, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL,
                                             stdout=self._log_file, stderr=self._log_file)
            deadline = time.monotonic() + self.start_timeout_s
            while time.monotonic() < deadline and self._process.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1) as probe:
                        if probe.recv(64).startswith(b"SSH-"):
                            return
                except OSError:
                    time.sleep(0.02)
            self.stop()
            # Another process took the port between the probe and sshd's bind: pick another.
            if fixed or "Address already in use" not in self.log():
                break
        raise RuntimeError(f"sshd did not start on 127.0.0.1:{self.port}:\n{self.log()}")

    def authorize(self, public_line: str) -> None:
        """Let the key in, as EC2 Instance Connect does on an instance (sshd reads the file per login)."""
        with self.authorized_keys.open("a") as keys:
            keys.write(public_line.strip() + "\n")

    def revoke_all(self) -> None:
        """Empty authorized_keys: Instance Connect's 60 s validity has passed for every pushed key."""
        self.authorized_keys.write_text("")

    def session_pids(self) -> list[int]:
        """The processes serving open SSH sessions: the listener's children (one per connection)
        and theirs (the post-authentication process, which holds the connection too)."""
        if self._process is None:
            return []
        parents: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        found, todo = [], list(parents.get(self._process.pid, []))
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(parents.get(pid, []))
        return found

    def drop_sessions(self) -> int:
        """Kill every open SSH session from the server side (what a reboot or sshd restart does to
        a client), leaving the listener up. Returns how many were killed."""
        pids = self.session_pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(pids)

    def stop(self) -> None:
        """Stop the listener and every session it started."""
        process = self._process
        if process is not None and process.poll() is None:
            self.drop_sessions()
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log(self) -> str:
        """What sshd logged (to stderr, with -e): the reason a login or a forward was refused."""
        path = self.folder / "sshd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> Sshd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
