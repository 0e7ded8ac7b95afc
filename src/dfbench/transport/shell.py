"""A shell on one instance, for debugging: Session Manager when its plugin is installed, else the
system's ``ssh`` with a key pushed by EC2 Instance Connect and the host key pinned by dfbench."""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from dfbench.aws.session import Aws, connect
from dfbench.errors import ConfigError
from dfbench.models import Cluster, Instance
from dfbench.transport.choice import choose, console_pins, pick_instance, push_key, ssh_address
from dfbench.transport.known_hosts import default_path, pin

log = logging.getLogger("dfbench")


def shell(cluster: Cluster, *, instance: int | str | None = None, via: str = "auto", command: Sequence[str] = (),
          profile: str | None = None, ssh_port: int = 22, ssh_user: str = "ec2-user",
          known_hosts: str | Path | None = None, trust_on_first_use: bool = False) -> int:
    """Run an interactive shell (or ``command``, over SSH) on an instance with this terminal
    attached; returns its exit code. ``via``: auto (ssm when the plugin is installed, else ssh),
    ssm or ssh; the relay has no terminal to offer."""
    if via == "relay":
        raise ConfigError("The relay runs single requests, not a terminal: use --via ssm or --via ssh, "
                          "or `dfbench exec` for a command on every instance.")
    kind = choose(cluster, via)
    if kind == "relay":  # auto found neither the plugin nor an SSH rule
        kind = choose(cluster, "ssh")  # raises the ConfigError saying how to get either
    target = pick_instance(cluster, instance)
    aws = connect(region=cluster.region, profile=profile)
    if kind == "ssm":
        if command:
            raise ConfigError("Session Manager opens a terminal, not a command: run it in the shell, use "
                              "--via ssh, or `dfbench exec -- CMD` for every instance.")
        from dfbench.transport.ssm_plugin import shell_command, terminate_session

        ssm = aws.client("ssm")
        argv, env, session_id = shell_command(ssm, instance_id=target.instance_id, region=cluster.region,
                                              profile=profile)
        try:
            return _attached(argv, env={**os.environ, **env})
        finally:
            terminate_session(ssm, session_id, profile)
    return _ssh(aws, target, command=command, ssh_port=ssh_port, ssh_user=ssh_user,
                known_hosts=Path(known_hosts or default_path()), profile=profile, trust_on_first_use=trust_on_first_use)


def _ssh(aws: Aws, target: Instance, *, command: Sequence[str], ssh_port: int, ssh_user: str, known_hosts: Path,
         profile: str | None, trust_on_first_use: bool) -> int:
    from dfbench.transport.keys import EphemeralKey

    ssh = shutil.which("ssh")
    if ssh is None:
        raise ConfigError("No `ssh` command on this machine: install OpenSSH's client, or use --via ssm with the "
                          "Session Manager plugin.")
    host = ssh_address(target)
    strict = "yes"
    console_keys = console_pins(aws, target.instance_id, known_hosts, profile, trust_on_first_use=trust_on_first_use)
    # The ssh command checks against the file itself: the console's keys go there first.
    for line in console_keys or ():
        key_type, key_base64 = line.split()[:2]
        pin(known_hosts, target.instance_id, key_type, key_base64)
    if console_keys == []:
        log.warning("no host key of %s on its console yet: trusting the key it presents on first use (as asked)",
                    target.instance_id)
        strict = "accept-new"
    key = EphemeralKey.generate()
    push_key(aws, target.instance_id, ssh_user, key.public_line, profile)
    with tempfile.TemporaryDirectory(prefix="dfbench-ssh-") as folder:
        identity = key.write_private(Path(folder) / "id_ed25519")
        argv = [ssh, "-i", str(identity), "-p", str(ssh_port),
                # Only this key, only dfbench's pins (by instance id: the address may be reused).
                "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={known_hosts.resolve()}",
                "-o", f"HostKeyAlias={target.instance_id}", "-o", f"StrictHostKeyChecking={strict}",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15",
                f"{ssh_user}@{host}"]
        if command:
            argv += ["--", shlex.join(command)]
        log.info("running %s", shlex.join(argv))
        return _attached(argv)


def _attached(argv: list[str], env: dict[str, str] | None = None) -> int:
    """Run a terminal program in the foreground. Ctrl-C, Ctrl-\\ and Ctrl-Z belong to the remote
    shell: the terminal sends them to the whole foreground group, so dfbench ignores them while
    the program runs (as the AWS CLI does around the plugin) instead of dying under it."""
    ignored = (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP)
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in ignored}
    try:
        process = subprocess.Popen(argv, env=env, preexec_fn=_default_signals)
        return process.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _default_signals() -> None:
    """In the child, before exec: the terminal's signals act on the program as usual."""
    for number in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP):
        signal.signal(number, signal.SIG_DFL)
