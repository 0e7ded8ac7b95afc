"""An instance's systemd and package manager for engine installs (Trino's, Spark's): ``systemctl``
for any unit, ``journalctl -u``, ``rpm -q`` and ``dnf install``, as an engine's step scripts
(dfbench.engines.setup) run them.

``systemctl`` reads units at ``$DFBENCH_ROOT/etc/systemd/system/<name>`` and knows ``daemon-reload``,
``enable``, ``disable``, ``is-active``, ``start``, ``stop`` and ``restart`` (``--quiet`` and
``--now`` accepted). A start runs the unit's ``ExecStart`` as systemd runs a ``Type=simple``
service: in the background, with ``Environment=``, ``EnvironmentFile=`` (read with systemd's
rules, :func:`dfbench_testing.systemd.environment_file`) and ``WorkingDirectory=``; an absolute path
that exists under DFBENCH_ROOT is taken there (the installed ``/opt/...`` programs), any other as it
is, in ``WorkingDirectory=`` or else DFBENCH_ROOT (systemd's ``/``). Its output goes to the unit's
journal. ``is-active`` is whether that process lives. Unlike
systemd, nothing is restarted when it exits: a test sees a service that died as inactive.

``rpm -q --quiet P`` answers whether ``dnf install`` installed P here; ``dnf install -y [-q] P...``
records them and writes the files the test gave for each package (``packages={name: {path under
DFBENCH_ROOT: text}}``, executable), which is how a "package" brings its programs (java, python3.11).
A package the test did not list fails as an unknown package does.

Several stand-in instances share this machine, and the services their units start learn from the
instance's environment (:func:`instance_environment`) where they are: ``PORTS``, each port the
instance's scripts and configuration name mapped to this machine's port it really has (the same
map LocalAgent rewrites the scripts' ``127.0.0.1:<port>`` with: :func:`dfbench_testing.ssm.localize`),
and ``BUCKETS``, the local folder that stands for each bucket (``s3://`` and ``s3a://`` alike).

``StandinUnits(folder, packages=...)`` writes the configuration and a bin folder holding the four
programs (and the emulator's ``aws``); ``environment`` is what the agent's scripts need (PATH first,
the configuration, DFBENCH_ROOT); leaving the ``with`` block stops every service it started.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

CONFIG = "DFBENCH_STANDIN_UNITS"
UNIT_DIR = "etc/systemd/system"
PORTS = "DFBENCH_STANDIN_PORTS"  # JSON {"<port on the instance>": <port here>}
BUCKETS = "DFBENCH_STANDIN_BUCKETS"  # JSON {"<bucket>": "<folder>"}


def instance_environment(ports: Mapping[int, int], buckets: Mapping[str, str] | None = None) -> dict[str, str]:
    """What one stand-in instance's scripts (and so the services they start) run with."""
    return {PORTS: json.dumps({str(k): v for k, v in ports.items()}), BUCKETS: json.dumps(dict(buckets or {}))}


def local_port(port: int) -> int | None:
    """The port here standing for the instance's ``port``; None when the instance maps none."""
    mapped = json.loads(os.environ.get(PORTS) or "{}").get(str(port))
    return None if mapped is None else int(mapped)


def bucket_folders() -> dict[str, str]:
    """Each bucket's local folder, from the instance's environment."""
    return {bucket: str(folder).rstrip("/") for bucket, folder in json.loads(os.environ.get(BUCKETS) or "{}").items()}


def _name(word: str) -> str:
    return word if "." in word else f"{word}.service"


def _unit(root: Path, name: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in (root / UNIT_DIR / name).read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith(("#", ";", "[")):
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def _words(value: str) -> list[str]:
    return [word.replace("$$", "$").replace("%%", "%") for word in shlex.split(value)]


def _under(root: Path, path: str) -> str:
    rooted = root / path.lstrip("/")
    return str(rooted) if os.path.isabs(path) and rooted.exists() else path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _pid(state: Path, name: str) -> int | None:
    path = state / f"{name}.pid"
    if not path.exists():
        return None
    pid = int(path.read_text())
    return pid if _alive(pid) else None


def _stop(state: Path, name: str) -> None:
    pid = _pid(state, name)
    (state / f"{name}.pid").unlink(missing_ok=True)
    if pid is None:
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)


def _start(state: Path, root: Path, name: str) -> int:
    from dfbench_testing.systemd import environment_file

    if _pid(state, name) is not None:
        return 0
    path = root / UNIT_DIR / name
    if not path.exists():
        print(f"Failed to start {name}: Unit {name} not found.", file=sys.stderr)
        return 5
    unit = _unit(root, name)
    env = dict(os.environ)
    env.update(word.split("=", 1) for value in unit.get("Environment", []) for word in _words(value))
    for value in unit.get("EnvironmentFile", []):
        file = root / value.removeprefix("-").lstrip("/")
        if file.exists():
            env.update(environment_file(file.read_text()))
    program, *args = _words(unit["ExecStart"][-1])
    # systemd starts a service in / unless WorkingDirectory= says otherwise, never in the caller's
    # folder (which LocalAgent deletes once the script ends): here, the instance's root.
    directory = _under(root, unit["WorkingDirectory"][-1]) if "WorkingDirectory" in unit else str(root)
    with (state / f"{name}.journal").open("a") as journal:
        process = subprocess.Popen([_under(root, program), *args], stdout=journal, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env, cwd=directory, start_new_session=True)
    (state / f"{name}.pid").write_text(str(process.pid))
    return 0


def systemctl(config: dict, argv: list[str]) -> int:
    state, root = Path(config["state"]), Path(os.environ.get("DFBENCH_ROOT", "/"))
    with (state / "systemctl.log").open("a") as log:
        log.write(shlex.join(argv) + "\n")
    words = [word for word in argv if word not in ("--quiet", "-q", "--no-block")]
    now = "--now" in words
    words = [word for word in words if word != "--now"]
    verb, names = words[0], [_name(word) for word in words[1:]]
    if verb == "daemon-reload":
        return 0
    for name in names:
        if verb in ("enable", "disable"):
            if verb == "enable" and not (root / UNIT_DIR / name).exists():
                print(f"Failed to enable unit: Unit file {name} does not exist.", file=sys.stderr)
                return 1
            (state / f"{name}.enabled").touch() if verb == "enable" else (state / f"{name}.enabled").unlink(
                missing_ok=True)
            if now and verb == "disable":
                _stop(state, name)
            if now and verb == "enable" and _start(state, root, name):
                return 1
        elif verb == "is-active":
            if _pid(state, name) is None:
                return 3
        elif verb == "stop":
            _stop(state, name)
        elif verb in ("start", "restart"):
            if verb == "restart":
                _stop(state, name)
            with (state / "starts.log").open("a") as log:
                log.write(name + "\n")
            code = _start(state, root, name)
            if code:
                return code
        else:
            print(f"stand-in systemctl: unsupported: systemctl {shlex.join(argv)}", file=sys.stderr)
            return 1
    return 0


def journalctl(config: dict, argv: list[str]) -> int:
    """``journalctl -u NAME [--no-pager] [-n N]``: the last N lines the unit's process printed."""
    name = _name(argv[argv.index("-u") + 1])
    lines = int(argv[argv.index("-n") + 1]) if "-n" in argv else 10
    path = Path(config["state"]) / f"{name}.journal"
    if path.exists():
        sys.stdout.write("".join(path.read_text(errors="replace").splitlines(keepends=True)[-lines:]))
    return 0


def rpm(config: dict, argv: list[str]) -> int:
    installed = Path(config["state"]) / "packages"
    known = set(installed.read_text().split()) if installed.exists() else set()
    names = [word for word in argv if not word.startswith("-")]
    return 0 if names and all(name in known for name in names) else 1


def dnf(config: dict, argv: list[str]) -> int:
    root = Path(os.environ.get("DFBENCH_ROOT", "/"))
    names = [word for word in argv[1:] if not word.startswith("-")]
    if argv[:1] != ["install"] or not names:
        print(f"stand-in dnf: unsupported: dnf {shlex.join(argv)}", file=sys.stderr)
        return 1
    unknown = [name for name in names if name not in config["packages"]]
    if unknown:
        print(f"Error: Unable to find a match: {' '.join(unknown)}", file=sys.stderr)
        return 1
    for name in names:
        for relative, text in config["packages"][name].items():
            path = root / relative.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            path.chmod(0o755)
    with (Path(config["state"]) / "packages").open("a") as log:
        log.write("".join(f"{name}\n" for name in names))
    return 0


class StandinUnits:
    def __init__(self, folder: Path, *, packages: dict[str, dict[str, str]] | None = None,
                 root: Path | None = None) -> None:
        self.state = folder / "units-state"
        self.root = root or folder / "root"
        for path in (self.state, self.root):
            path.mkdir(parents=True, exist_ok=True)
        self.config = folder / "units.json"
        self.config.write_text(json.dumps({"state": str(self.state), "packages": packages or {}}))
        from dfbench_testing import aws_cli
        from dfbench_testing.tools import python_script_program

        self.bin = aws_cli.bin_dir(folder / "units-bin")
        for name in ("systemctl", "journalctl", "rpm", "dnf"):
            # Run as a file, not a module of the harness: importing the harness would cost each call a second.
            python_script_program(self.bin / name, __file__, name)

    @property
    def environment(self) -> dict[str, str]:
        return {"PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}", CONFIG: str(self.config),
                "DFBENCH_ROOT": str(self.root)}

    def active(self, name: str) -> bool:
        return _pid(self.state, _name(name)) is not None

    def enabled(self, name: str) -> bool:
        return (self.state / f"{_name(name)}.enabled").exists()

    def starts(self, name: str) -> int:
        """How many times the unit was started or restarted."""
        path = self.state / "starts.log"
        return path.read_text().split().count(_name(name)) if path.exists() else 0

    def journal(self, name: str) -> str:
        path = self.state / f"{_name(name)}.journal"
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def installed_packages(self) -> list[str]:
        path = self.state / "packages"
        return path.read_text().split() if path.exists() else []

    def stop_all(self) -> None:
        for pid_file in self.state.glob("*.pid"):
            _stop(self.state, pid_file.name.removesuffix(".pid"))

    def __enter__(self) -> StandinUnits:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop_all()


if __name__ == "__main__":
    _command, *_argv = sys.argv[1:]
    _config = json.loads(Path(os.environ[CONFIG]).read_text())
    sys.exit({"systemctl": systemctl, "journalctl": journalctl, "rpm": rpm, "dnf": dnf}[_command](_config, _argv))
