"""dfbench's SSH host-key pins: the one file that holds them, how a key is pinned, looked up and
forgotten.

The file is in OpenSSH's known_hosts format, one line per instance id (``i-... type base64``), so
``ssh -o UserKnownHostsFile=... -o HostKeyAlias=<instance id>`` reads it too. Filed by instance id,
not address: public IPs are reused by other instances, but a replaced instance gets a new id, so
a changed key under the same id is a real warning sign. The SSH transport and ``dfbench shell``
pin keys; teardown forgets the pins of the instances it terminated (their ids never come back).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Set
from pathlib import Path
from typing import TYPE_CHECKING

from dfbench.files import write_atomically

if TYPE_CHECKING:
    import paramiko



def default_path() -> Path:
    """``$XDG_STATE_HOME/dfbench/known_hosts`` (``~/.local/state/dfbench/known_hosts`` without
    it): the user's, shared by every checkout and every folder dfbench runs in, so a pin made once
    is checked everywhere. Read at each call: the environment decides, not the import."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "dfbench" / "known_hosts"
# Several transports (one per worker) may pin keys into the same file at once.
_LOCK = threading.Lock()


def entry_name(host: str, port: int = 22, alias: str | None = None) -> str:
    """The name a host's key is filed under, as OpenSSH writes it: the HostKeyAlias when there is
    one (dfbench uses the instance id), else ``host`` for port 22 and ``[host]:port`` for any
    other port."""
    if alias:
        return alias
    return host if port == 22 else f"[{host}]:{port}"


def pin(path: Path, name: str, key_type: str, key_base64: str) -> None:
    """Append ``name type base64`` to the file (mode 0600). Appending never loses a line another
    transport wrote meanwhile, unlike paramiko's HostKeys.save, which rewrites the file."""
    with _LOCK:
        # The folder is the user's alone (0700), as ~/.ssh is; the file 0600.
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.fchmod(descriptor, 0o600)
            size = os.fstat(descriptor).st_size
            if size and os.pread(descriptor, 1, size - 1) != b"\n":
                os.write(descriptor, b"\n")
            os.write(descriptor, f"{name} {key_type} {key_base64}\n".encode())
        finally:
            os.close(descriptor)


def lookup(path: Path, name: str) -> list[paramiko.PKey]:
    """The keys filed under ``name`` ([] when none, or no file yet)."""
    # paramiko is imported here, not at the top: provision imports this module for forget(), and
    # `import dfbench` should not pay for paramiko.
    import paramiko

    if not path.exists():
        return []
    entries = paramiko.HostKeys(str(path)).lookup(name)
    return list(entries.values()) if entries else []


def forget(instance_ids: Set[str], path: Path | None = None) -> None:
    """Drop the pins of terminated instances (from :func:`default_path` unless ``path``); every
    other line stays as it is."""
    if not instance_ids:
        return
    path = path or default_path()
    with _LOCK:
        if not path.exists():
            return
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if not set(line.split(" ", 1)[0].split(",")) & instance_ids]
        if len(kept) != len(lines):
            write_atomically(path, "".join(kept), mode=0o600)
