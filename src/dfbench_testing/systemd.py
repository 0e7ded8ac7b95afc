"""An instance's systemd, for the worker only: the ``systemctl`` commands dfbench's install script
runs (``daemon-reload``, ``enable``, ``is-active --quiet``, ``restart`` of ``worker.service``),
with the installed binary standing for a local worker.

The binaries a test deploys are stand-ins (``worker_binary``: an ELF header, nothing that runs),
so a restart starts the command the test gave for the sha256 of what is installed at
``$DFBENCH_ROOT/usr/local/bin/worker`` (a local DataFusion worker with its own commit, say),
stopping the previous one first, as a restart does. Unlike systemd, ``restart`` returns once the
new worker accepts connections on its port (bounded): the install script's ``/info`` check then
passes at its first try instead of after its one-second sleeps. A sha the test gave no command for
starts nothing: the install's check then fails as it would for a worker that does not come up.

``StandinSystemd(folder, port=..., workers={sha: argv})`` writes the configuration and a bin
folder holding ``systemctl`` and the emulator's ``aws`` (:mod:`dfbench_testing.aws_cli`);
``environment`` is what the agent's scripts need (PATH first, the configuration, DFBENCH_ROOT).
``started`` lists the shas started, in order; leaving the ``with`` block stops the worker.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

CONFIG = "DFBENCH_STANDIN_SYSTEMD"
_WAIT_S = 30.0


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")  # a zombie has exited; nobody here reaps it


def _stop(state: Path) -> None:
    pid_file = state / "worker.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    pid_file.unlink()
    if not _alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + _WAIT_S
    while _alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + _WAIT_S
        time.sleep(0.02)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _restart(config: dict, state: Path) -> int:
    _stop(state)
    binary = Path(os.environ.get("DFBENCH_ROOT", "")) / "usr/local/bin/worker"
    sha = hashlib.sha256(binary.read_bytes()).hexdigest()
    command = config["workers"].get(sha)
    with (state / "started").open("a") as log:
        log.write(f"{sha}\n")
    if command is None:
        return 0  # the unit "starts" and its process fails at once
    with (state / "worker.log").open("a") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    (state / "worker.pid").write_text(str(process.pid))
    deadline = time.monotonic() + _WAIT_S
    while not _listening(config["port"]) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return 0


def systemctl(argv: list[str]) -> int:
    config = json.loads(Path(os.environ[CONFIG]).read_text())
    state = Path(config["state"])
    with (state / "systemctl.log").open("a") as log:
        log.write(shlex.join(argv) + "\n")
    if argv in (["daemon-reload"], ["enable", "worker.service"]):
        return 0
    if argv == ["is-active", "--quiet", "worker.service"]:
        pid_file = state / "worker.pid"
        return 0 if pid_file.exists() and _alive(int(pid_file.read_text())) else 3
    if argv == ["restart", "worker.service"]:
        return _restart(config, state)
    print(f"stand-in systemctl: unsupported: systemctl {shlex.join(argv)}", file=sys.stderr)
    return 1


class StandinSystemd:
    def __init__(self, folder: Path, *, port: int, workers: dict[str, list[str]]) -> None:
        self.folder = folder
        self.state = folder / "state"
        self.root = folder / "root"
        for path in (self.state, self.root):
            path.mkdir(parents=True, exist_ok=True)
        self.config = folder / "systemd.json"
        self.config.write_text(json.dumps({"port": port, "workers": workers, "state": str(self.state)}))
        from dfbench_testing import aws_cli

        self.bin = aws_cli.bin_dir(folder / "bin")
        program = self.bin / "systemctl"
        # Run as a file, not a module of the harness: importing the harness would cost each call a second.
        program.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(__file__)} \"$@\"\n")
        program.chmod(0o755)

    @property
    def environment(self) -> dict[str, str]:
        return {"PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}", CONFIG: str(self.config),
                "DFBENCH_ROOT": str(self.root)}

    @property
    def started(self) -> list[str]:
        path = self.state / "started"
        return path.read_text().split() if path.exists() else []

    def __enter__(self) -> StandinSystemd:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        _stop(self.state)


if __name__ == "__main__":
    sys.exit(systemctl(sys.argv[1:]))
