"""A Trino release for the engines' release site (releases.py), and the Java package it runs on,
for Trino installs (dfbench.engines.trino_setup) run on this machine.

:func:`publish_trino` publishes ``trino-server-<version>.tar.gz`` where Maven Central keeps it
(``repo1.maven.org/maven2/io/trino/trino-server/<v>/``), holding one top folder as Trino's does,
with ``bin/launcher``, and returns the packages a ``StandinUnits`` needs: Corretto's ``java``,
which answers ``-version`` as Java 24 does. ``bin/launcher run [--etc-dir=DIR]`` (this file, run
as a program) starts a :class:`~dfbench_testing.trino.TrinoStandIn` after reading what Trino's
launcher and server read, and refusing what they refuse:

- ``etc/node.properties``: ``node.environment``, ``node.id`` and ``node.data-dir`` (created);
- ``etc/jvm.config``: ``-Xmx<n>G``; ``$JAVA_HOME/bin/java`` (else ``java`` on PATH) at least 24;
- ``etc/config.properties``: ``coordinator``, ``http-server.http.port``, ``discovery.uri``, and
  ``query.max-memory-per-node`` plus ``memory.heap-headroom-per-node`` below the heap;
- ``etc/catalog/hive.properties``: ``connector.name=hive``.

Several stand-in instances share this machine, so each gets its own port: the configured port's
entry in the instance's port map (:mod:`dfbench_testing.units`), which the test also rewrites the
scripts' ``127.0.0.1:8080`` with (:func:`dfbench_testing.ssm.localize`); its bucket map gives the
folders ``s3://<bucket>/`` tables read. ``NODES`` is how many nodes the coordinator's
``system.runtime.nodes`` lists (nothing announces itself here). :func:`instance_environment`
writes the three.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from dfbench_testing.releases import ReleaseSite
from dfbench_testing.units import bucket_folders, local_port

NODES = "DFBENCH_TRINO_NODES"
JAVA_VERSION = "24.0.1"
_DATA_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(B|kB|MB|GB|TB)$")
_UNITS = {"B": 1, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


def tarball_path(version: str) -> str:
    return f"repo1.maven.org/maven2/io/trino/trino-server/{version}/trino-server-{version}.tar.gz"


def publish_trino(site: ReleaseSite, version: str) -> dict[str, dict[str, str]]:
    """Publishes Trino ``version`` on ``site`` (a ReleaseSite); returns ``packages`` for
    StandinUnits: the Corretto package and its ``java``."""
    from dfbench.engines.trino_setup import JAVA_HOME, JAVA_PACKAGE
    from dfbench_testing.tools import python_script_program

    with tempfile.TemporaryDirectory() as folder:
        launcher = python_script_program(Path(folder) / "launcher", __file__, version)
        body = io.BytesIO()
        with tarfile.open(fileobj=body, mode="w:gz") as tar:
            top = f"trino-server-{version}"
            for name in (top, f"{top}/bin", f"{top}/lib"):
                entry = tarfile.TarInfo(name)
                entry.type, entry.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(entry)
            tar.add(launcher, f"{top}/bin/launcher")
            notice = f"Trino {version}, a stand-in for dfbench's tests\n".encode()
            entry = tarfile.TarInfo(f"{top}/NOTICE")
            entry.size = len(notice)
            tar.addfile(entry, io.BytesIO(notice))
    site.publish(tarball_path(version), body.getvalue())
    # Real java prints its version on stderr.
    java = f"#!/bin/sh\necho 'openjdk version \"{JAVA_VERSION}\" 2025-04-15' >&2\n"
    return {JAVA_PACKAGE: {f"{JAVA_HOME}/bin/java": java}}


def instance_environment(ports: dict[int, int], *, nodes: int = 1,
                         buckets: dict[str, str] | None = None) -> dict[str, str]:
    """What one stand-in instance's scripts (and so its service) run with."""
    from dfbench_testing import units

    return {**units.instance_environment(ports, buckets), NODES: str(nodes)}


def _properties(path: Path) -> dict[str, str]:
    if not path.exists():
        raise SystemExit(f"ERROR: {path} does not exist")
    found = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            found[key.strip()] = value.strip()
    return found


def _size(text: str, name: str) -> int:
    match = _DATA_SIZE.match(text)
    if not match:
        raise SystemExit(f"ERROR: {name}: invalid data size {text!r}")
    return int(float(match[1]) * _UNITS[match[2]])


def _java_major() -> int:
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.access(java, os.X_OK):
        raise SystemExit(f"ERROR: no java at {java or 'PATH'}")
    said = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)', said)
    return int(match[1]) if match else 0


def launch(version: str, argv: list[str]) -> None:
    """``bin/launcher run [--etc-dir=DIR]``: the checks of the module's docstring, then the node
    until it is stopped."""
    from dfbench_testing.trino import TrinoStandIn

    options = [word for word in argv if word.startswith("--etc-dir=")]
    if argv[:1] != ["run"] or len(argv) != 1 + len(options):
        raise SystemExit(f"stand-in launcher: unsupported: launcher {' '.join(argv)}")
    etc = Path(options[-1].removeprefix("--etc-dir=")) if options else Path(__file__).parent.parent / "etc"
    java = _java_major()
    if java < 24:
        raise SystemExit(f"ERROR: Trino requires Java 24+ (found {java})")
    node = _properties(etc / "node.properties")
    for key in ("node.environment", "node.id", "node.data-dir"):
        if not node.get(key):
            raise SystemExit(f"ERROR: {key} is not set in {etc / 'node.properties'}")
    heap = re.search(r"^-Xmx(\d+)G$", (etc / "jvm.config").read_text(), re.MULTILINE)
    if heap is None:
        raise SystemExit(f"ERROR: no -Xmx<n>G in {etc / 'jvm.config'}")
    config = _properties(etc / "config.properties")
    for key in ("coordinator", "http-server.http.port", "discovery.uri"):
        if key not in config:
            raise SystemExit(f"ERROR: {key} is not set in {etc / 'config.properties'}")
    per_node = _size(config.get("query.max-memory-per-node", "0B"), "query.max-memory-per-node")
    headroom = _size(config.get("memory.heap-headroom-per-node", "0B"), "memory.heap-headroom-per-node")
    if per_node + headroom >= int(heap[1]) << 30:
        # Trino's words when the two leave no heap for anything else.
        raise SystemExit("ERROR: Invalid memory configuration. The sum of max query memory per node and "
                         "heap headroom cannot be larger than the available heap memory")
    if _properties(etc / "catalog" / "hive.properties").get("connector.name") != "hive":
        raise SystemExit("ERROR: catalog hive: connector.name is not hive")
    data_dir = Path(node["node.data-dir"])
    data_dir.mkdir(parents=True, exist_ok=True)
    configured = int(config["http-server.http.port"])
    port = local_port(configured) or configured
    standin = TrinoStandIn(data_dir, port=port, version=version, coordinator=config["coordinator"] == "true",
                           nodes=int(os.environ.get(NODES) or 1), buckets=bucket_folders())
    standin.start()
    print(f"stand-in Trino {version} node {node['node.id']} on {standin.url}", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    standin.stop()


if __name__ == "__main__":
    # Run as a file, this folder comes first on sys.path, where moto.py and trino.py would stand
    # in for the packages of those names.
    del sys.path[0]
    # Blocked before the server's threads start, so that sigwait receives them.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    launch(sys.argv[1], sys.argv[2:])
