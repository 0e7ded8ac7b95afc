"""An instance's systemd, for the worker only: the ``systemctl`` commands dfbench's install script
runs (``daemon-reload``, ``enable``, ``is-active --quiet``, ``restart`` of ``worker.service``) and
``journalctl`` for its journal, starting the worker the way the unit says.

A restart stops the running worker, then starts the unit at
``$DFBENCH_ROOT/etc/systemd/system/worker.service`` as systemd does: every ``ExecStartPre`` in
order (its program under DFBENCH_ROOT; one that fails fails the start, and ``systemctl`` exits 1
as systemd's does), each with the unit's ``Environment=`` and then its ``EnvironmentFile=``s as
they are at that moment (``-``: may be missing), read with systemd's rules
(:func:`environment_file`); then the worker, with that environment. The binaries a test deploys
are stand-ins (``worker_binary``: an ELF header, nothing that runs), so the worker started is the
command the test gave for the sha256 of what is installed at ``$DFBENCH_ROOT/usr/local/bin/worker``,
in place of ``ExecStart``; a sha without one starts nothing (the install's check then fails as for
a worker that does not come up). Unlike systemd, ``restart`` returns once the worker accepts
connections on its port (bounded), so the install's ``/info`` check passes at its first try
instead of after its one-second sleeps.

Programs started inherit the test's environment (the emulator's endpoint and credentials stand
for the instance role's), with ``DFBENCH_IMDS_URL`` set to ``imds_url`` when given (an ``Imds``).

``StandinSystemd(folder, port=..., workers={sha: argv}, imds_url=...)`` writes the configuration
and a bin folder holding ``systemctl``, ``journalctl`` and the emulator's ``aws``
(:mod:`dfbench_testing.aws_cli`); ``environment`` is what the agent's scripts need (PATH first,
the configuration, DFBENCH_ROOT). ``started`` lists the shas started, in order;
``worker_environment()`` is the running worker's environment (read from /proc); leaving the
``with`` block stops the worker.
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
UNIT = "etc/systemd/system/worker.service"
_WAIT_S = 30.0


def environment_file(text: str) -> dict[str, str]:
    """The assignments of an EnvironmentFile as systemd reads them (systemd.exec(5),
    EnvironmentFile=; src/basic/env-file.c): NAME=VALUE lines, blank lines and lines starting
    with # or ; skipped; a value either unquoted (surrounding blanks dropped, a backslash keeps
    the character after it, one ending a line joins the next), 'single-quoted' (verbatim) or
    "double-quoted" (a backslash before \\ " ` $ stands for that character, before a newline joins
    the lines, before anything else is kept); quoted values may span lines."""
    found: dict[str, str] = {}
    index, size = 0, len(text)
    while index < size:
        line_end = text.find("\n", index)
        line_end = size if line_end == -1 else line_end
        line = text[index:line_end].strip()
        if not line or line[0] in "#;" or "=" not in line:
            index = line_end + 1
            continue
        equals = text.index("=", index)
        name = text[index:equals].strip()
        index = equals + 1
        while index < size and text[index] in " \t":
            index += 1
        value: list[str] = []
        if index < size and text[index] in "'\"":
            quote = text[index]
            index += 1
            while text[index] != quote:
                if quote == '"' and text[index] == "\\":
                    after = text[index + 1]
                    value.append("" if after == "\n" else after if after in '\\"`$' else "\\" + after)
                    index += 2
                else:
                    value.append(text[index])
                    index += 1
            line_end = text.find("\n", index)
            index = size if line_end == -1 else line_end + 1
            found[name] = "".join(value)
            continue
        while index < size and text[index] != "\n":
            if text[index] == "\\" and index + 1 < size:
                value.append("" if text[index + 1] == "\n" else text[index + 1])
                index += 2
            else:
                value.append(text[index])
                index += 1
        index += 1
        found[name] = "".join(value).rstrip()
    return found


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


def _unit(path: Path) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith(("#", ";")):
            directives.setdefault(key, []).append(value)
    return directives


def _words(value: str) -> list[str]:
    """A unit's Exec or Environment value as words: quoting as a shell's (dfbench quotes whole
    words only), then systemd's doubled $ and % undone."""
    return [word.replace("$$", "$").replace("%%", "%") for word in shlex.split(value)]


def _environment(unit: dict[str, list[str]], root: Path) -> dict[str, str]:
    """Environment=, then every EnvironmentFile= as it is now: what a command of the unit gets."""
    env = dict(word.split("=", 1) for value in unit.get("Environment", []) for word in _words(value))
    for value in unit.get("EnvironmentFile", []):
        path = root / value.removeprefix("-").lstrip("/")
        if path.exists():
            env.update(environment_file(path.read_text()))
        elif not value.startswith("-"):
            raise FileNotFoundError(f"EnvironmentFile {value}: no such file")
    return env


def _restart(config: dict, state: Path) -> int:
    _stop(state)
    root = Path(os.environ.get("DFBENCH_ROOT", ""))
    unit = _unit(root / UNIT)
    base = {**os.environ, **({"DFBENCH_IMDS_URL": config["imds_url"]} if config.get("imds_url") else {})}
    with (state / "journal").open("a") as journal:
        for value in unit.get("ExecStartPre", []):
            program, *args = _words(value)
            done = subprocess.run([str(root / program.lstrip("/")), *args], env={**base, **_environment(unit, root)},
                                  stdout=journal, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=_WAIT_S,
                                  check=False)
            if done.returncode != 0:
                journal.write(f"worker.service: Control process exited, code=exited, status={done.returncode}\n")
                print("Job for worker.service failed because the control process exited with error code.",
                      file=sys.stderr)
                return 1
    sha = hashlib.sha256((root / "usr/local/bin/worker").read_bytes()).hexdigest()
    with (state / "started").open("a") as log:
        log.write(f"{sha}\n")
    command = config["workers"].get(sha)
    if command is None:
        return 0  # the unit "starts" and its process fails at once
    with (state / "journal").open("a") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env={**base, **_environment(unit, root)}, start_new_session=True)
    (state / "worker.pid").write_text(str(process.pid))
    deadline = time.monotonic() + _WAIT_S
    while not _listening(config["port"]) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return 0


def systemctl(config: dict, argv: list[str]) -> int:
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


def journalctl(config: dict, argv: list[str]) -> int:
    """``journalctl -u worker.service --no-pager -n N``: the last N lines the unit's commands printed."""
    lines = int(argv[argv.index("-n") + 1]) if "-n" in argv else 10
    path = Path(config["state"]) / "journal"
    if path.exists():
        sys.stdout.write("".join(path.read_text().splitlines(keepends=True)[-lines:]))
    return 0


class StandinSystemd:
    def __init__(self, folder: Path, *, port: int, workers: dict[str, list[str]], imds_url: str | None = None) -> None:
        self.state = folder / "state"
        self.root = folder / "root"
        for path in (self.state, self.root):
            path.mkdir(parents=True, exist_ok=True)
        self.config = folder / "systemd.json"
        self.config.write_text(json.dumps({"port": port, "workers": workers, "state": str(self.state),
                                           "imds_url": imds_url}))
        from dfbench_testing import aws_cli
        from dfbench_testing.tools import python_script_program

        self.bin = aws_cli.bin_dir(folder / "bin")
        for name in ("systemctl", "journalctl"):
            # Run as a file, not a module of the harness: importing the harness would cost each call a second.
            python_script_program(self.bin / name, __file__, name)

    @property
    def environment(self) -> dict[str, str]:
        return {"PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}", CONFIG: str(self.config),
                "DFBENCH_ROOT": str(self.root)}

    @property
    def started(self) -> list[str]:
        path = self.state / "started"
        return path.read_text().split() if path.exists() else []

    def worker_environment(self) -> dict[str, str]:
        """The running worker's environment, as the kernel holds it."""
        pid = (self.state / "worker.pid").read_text()
        entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        return dict(entry.decode().split("=", 1) for entry in entries if entry)

    def __enter__(self) -> StandinSystemd:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        _stop(self.state)


if __name__ == "__main__":
    _command, *_argv = sys.argv[1:]
    _config = json.loads(Path(os.environ[CONFIG]).read_text())
    sys.exit({"systemctl": systemctl, "journalctl": journalctl}[_command](_config, _argv))
