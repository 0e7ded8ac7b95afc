"""Which way in reaches a cluster's worker (ARCHITECTURE.md §6), and that way opened to one instance.

The CDK tooling kept an SSM port-forward open in a second terminal, and stale tunnels were its most
common failure. Here every run opens its own way in, checks it, uses it and closes it:

- ``direct``: a URL the caller can already reach (the local worker, a VPN).
- ``ssh``: paramiko to the instance's public IP, with a key pushed for 60 s by EC2 Instance Connect;
  needs port 22 open to the caller (``ssh_ingress_cidrs`` in the cluster spec).
- ``ssm``: the Session Manager plugin's port forwarding, when the plugin is installed.
- ``relay``: neither plugin nor open port: every request runs on the instance as an SSM command.
- ``auto``: ssm when the plugin is installed, else ssh when the security group lets SSH in, else
  relay (always possible, slowest); ssh that cannot connect falls back to the relay (a changed
  host key does not: it stops everything; see :mod:`dfbench.transport.connection`).
"""

from __future__ import annotations

from pathlib import Path

from dfbench.aws.session import Aws
from dfbench.errors import ConfigError, TransportError, WaitTimeout, aws_errors
from dfbench.models import Cluster, Instance
from dfbench.transport.base import VIAS, WORKER_PORT, Transport
from dfbench.transport.known_hosts import default_path, lookup

# The states in which an instance's worker can answer.
REACHABLE_STATES = ("running",)
# How long to wait for the host keys on the console: EC2 posts the buffered console output with a
# delay of minutes after boot (see console_host_keys), and cloud-init prints the keys late in the
# first boot.
CONSOLE_KEYS_TIMEOUT_S = 600


def choose(cluster: Cluster, via: str = "auto") -> str:
    """The transport ``via`` means for ``cluster``; a ConfigError for one that cannot work."""
    from dfbench.transport.ssm_plugin import find_plugin

    if via not in VIAS:
        raise ConfigError(f"Unknown transport {via!r}: choose one of {', '.join(VIAS)}.")
    if via == "auto":
        if find_plugin():
            return "ssm"
        return "ssh" if cluster.ssh_ingress_cidrs else "relay"
    if via == "ssh" and not cluster.ssh_ingress_cidrs:
        raise ConfigError(
            f"Cluster {cluster.name!r} lets no SSH in: add your address to ssh_ingress_cidrs (`dfbench provision "
            f"--cluster {cluster.name} --ssh-cidr <your-ip>/32`), or use --via ssm (the Session Manager plugin) "
            "or --via relay (no plugin, no open port).")
    return via


def pick_instance(cluster: Cluster, instance: int | str | None = None) -> Instance:
    """An instance of the cluster by position (0 = the coordinator), id or Name; running."""
    again = f"`dfbench provision --cluster {cluster.name} --region {cluster.region}`"
    if not cluster.instances:
        raise ConfigError(f"Cluster {cluster.name!r} ({cluster.region}) has no instances: {again} launches them.")
    if instance is None or isinstance(instance, int) or instance.isdigit():
        position = int(instance or 0)
        if not 0 <= position < len(cluster.instances):
            raise ConfigError(f"Cluster {cluster.name!r} has {len(cluster.instances)} instance(s): "
                              f"give a position from 0 to {len(cluster.instances) - 1}.")
        chosen = cluster.instances[position]
    else:
        found = [i for i in cluster.instances if instance in (i.instance_id, i.name)]
        if not found:
            raise ConfigError(f"No instance {instance!r} in cluster {cluster.name!r}: give a position, an instance "
                              f"id or a Name ({', '.join(i.instance_id for i in cluster.instances)}).")
        chosen = found[0]
    if chosen.state not in REACHABLE_STATES:
        raise ConfigError(f"Instance {chosen.instance_id} ({chosen.name}) is {chosen.state}: {again} starts it.")
    return chosen


def open_transport(cluster: Cluster, instance: Instance, kind: str, *, aws: Aws, profile: str | None = None,
                   worker_port: int = WORKER_PORT, ssh_port: int = 22, ssh_user: str = "ec2-user",
                   known_hosts: str | Path | None = None, local_port: int = 0,
                   trust_on_first_use: bool = False) -> Transport:
    """An unopened transport of ``kind`` (as :func:`choose` returns it) to one instance's worker,
    listening on 127.0.0.1:``local_port`` (0: a free port). SSH checks the instance's host key
    against ``known_hosts`` (:func:`~dfbench.transport.known_hosts.default_path` by default), else
    its console output; ``trust_on_first_use`` accepts an unverified key when the console has none."""
    if kind == "ssm":
        from dfbench.transport.ssm_plugin import SsmTransport

        return SsmTransport(ssm=aws.client("ssm"), instance_id=instance.instance_id, region=cluster.region,
                            profile=profile, remote_port=worker_port, local_port=local_port)
    if kind == "relay":
        from dfbench.transport.relay import RelayTransport

        if not cluster.bucket:
            raise ConfigError(f"Cluster {cluster.name!r} has no bucket on record, and the relay reads long answers "
                              f"from it: `dfbench provision --cluster {cluster.name}` completes the cluster.")
        return RelayTransport(ssm=aws.client("ssm"), s3=aws.client("s3"), instance_id=instance.instance_id,
                              bucket=cluster.bucket, remote_port=worker_port, local_port=local_port)
    if kind == "ssh":
        return _ssh_transport(instance, aws=aws, profile=profile, worker_port=worker_port, ssh_port=ssh_port,
                              ssh_user=ssh_user, known_hosts=Path(known_hosts or default_path()), local_port=local_port,
                              trust_on_first_use=trust_on_first_use)
    raise ConfigError(f"Unknown transport {kind!r}: choose one of {', '.join(VIAS)}.")


def _ssh_transport(instance: Instance, *, aws: Aws, profile: str | None, worker_port: int, ssh_port: int,
                   ssh_user: str, known_hosts: Path, local_port: int, trust_on_first_use: bool) -> Transport:
    from dfbench.transport.keys import EphemeralKey
    from dfbench.transport.ssh import SshTransport

    host = ssh_address(instance)
    key = EphemeralKey.generate()
    pinned = console_pins(aws, instance.instance_id, known_hosts, profile, trust_on_first_use=trust_on_first_use) or []
    return SshTransport(host=host, port=ssh_port, user=ssh_user, pkey=key.pkey, known_hosts=known_hosts,
                        host_key_alias=instance.instance_id, pinned_host_keys=pinned, remote_port=worker_port,
                        trust_on_first_use=trust_on_first_use,
                        authorize=lambda: push_key(aws, instance.instance_id, ssh_user, key.public_line, profile),
                        local_port=local_port)


def ssh_address(instance: Instance) -> str:
    """Where SSH reaches an instance: its public IP (the security group admits the caller there)."""
    if not instance.public_ip:
        raise ConfigError(f"Instance {instance.instance_id} has no public IP address, so SSH cannot reach it: "
                          "use --via ssm or --via relay.")
    return instance.public_ip


def console_pins(aws: Aws, instance_id: str, known_hosts: Path, profile: str | None, *,
                 trust_on_first_use: bool = False) -> list[str] | None:
    """None when ``known_hosts`` pins the instance already; else the host keys cloud-init printed
    on its console at first boot. Read through the AWS API, so an impostor at the instance's
    address cannot fake them.

    EC2 posts the console output minutes after boot (the live buffer of ``Latest=True`` sooner, on
    Nitro instances only), so it is polled until the keys show, for CONSOLE_KEYS_TIMEOUT_S at most;
    then a TransportError. With ``trust_on_first_use`` it is read once, and [] (none yet) lets the
    caller accept the key the instance presents."""
    if lookup(known_hosts, instance_id):
        return None
    from dfbench.aws import instance_connect
    from dfbench.waiting import poll  # botocore: not for `dfbench --help`, which imports this module

    def read() -> tuple[bool, list[str] | str]:
        keys = instance_connect.console_host_keys(aws.client("ec2"), instance_id)
        return bool(keys), keys or "no host key in its console output yet"

    with aws_errors(profile):
        if trust_on_first_use:
            return instance_connect.console_host_keys(aws.client("ec2"), instance_id)
        try:
            keys = poll(read, what=f"the SSH host keys of {instance_id} on its console",
                        timeout=CONSOLE_KEYS_TIMEOUT_S, first=5, cap=30)
        except WaitTimeout:
            raise TransportError("ssh", f"No SSH host key of {instance_id} in its console output after "
                                        f"{CONSOLE_KEYS_TIMEOUT_S}s, so its identity cannot be checked: try again "
                                        "later, use --via ssm or relay, or pass --trust-first-key "
                                        "(trust_on_first_use=True) to accept the key it presents unverified.") from None
    assert isinstance(keys, list)
    return keys


def push_key(aws: Aws, instance_id: str, user: str, public_line: str, profile: str | None) -> None:
    """Let ``public_line`` log in as ``user`` for the next 60 s (EC2 Instance Connect)."""
    from dfbench.aws import instance_connect

    with aws_errors(profile):
        instance_connect.send_ssh_public_key(aws.client("ec2-instance-connect"), instance_id=instance_id, user=user,
                                             public_key=public_line)
