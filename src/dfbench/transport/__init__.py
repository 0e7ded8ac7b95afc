"""How a request reaches a worker (DESIGN section 6), opened and closed by dfbench itself.

The seed kept an SSM port-forward open in a second terminal, and stale tunnels were its most
common failure. Here every run opens its own way in, checks it, uses it and closes it:

- ``direct``: a URL the caller can already reach (the local worker, a VPN).
- ``ssh``: paramiko to the instance's public IP, with a key pushed for 60 s by EC2 Instance Connect;
  needs port 22 open to the caller (``ssh_ingress_cidrs`` in the cluster spec).
- ``ssm``: the Session Manager plugin's port forwarding, when the plugin is installed.
- ``relay``: neither plugin nor open port: every request runs on the instance as an SSM command.
- ``auto``: ssm when the plugin is installed, else ssh when the security group lets SSH in, else
  relay (always possible, slowest); ssh that cannot connect falls back to the relay (a changed
  host key does not: it stops everything).

:class:`ClusterConnection` opens one transport per instance side by side, judges every worker's
``/info`` (:mod:`dfbench.health`) and keeps the coordinator's, the worker a benchmark sends its
queries to.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from dfbench.aws.session import Aws, connect
from dfbench.errors import (ClusterUnhealthy, ConfigError, DfbenchError, HostKeyMismatch, TransportError,
                            WorkerUnreachable, aws_errors)
from dfbench.health import WorkerHealth, health_table, judge
from dfbench.models import Cluster, Instance
from dfbench.provision import KNOWN_HOSTS
from dfbench.transport.base import DirectTransport, Transport

log = logging.getLogger("dfbench")

VIAS = ("auto", "ssh", "ssm", "relay")
WORKER_PORT = 9000
# dfbench's own pins, one line per instance id (OpenSSH known_hosts format): a replaced instance
# gets a new id, so a changed key under the same id is a real warning sign. Teardown drops the
# pins of the instances it terminates.
DEFAULT_KNOWN_HOSTS = KNOWN_HOSTS
# A relayed request is an SSM command: a second or more on AWS, longer when SSM throttles the
# side-by-side checks. Every other way in answers /info as fast as the worker does.
_RELAY_INFO_TIMEOUT_S = 60.0
# Transports opened side by side for the health check: plenty for 100 instances in a few rounds
# without one SSH handshake, plugin process or SSM command per instance at the same instant.
_PARALLEL_OPENS = 16
_REACHABLE = ("running",)

__all__ = ["DEFAULT_KNOWN_HOSTS", "VIAS", "ClusterConnection", "DirectTransport", "Transport", "choose",
           "open_transport", "pick_instance"]


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
    if chosen.state not in _REACHABLE:
        raise ConfigError(f"Instance {chosen.instance_id} ({chosen.name}) is {chosen.state}: {again} starts it.")
    return chosen


def open_transport(cluster: Cluster, instance: Instance, kind: str, *, aws: Aws, profile: str | None = None,
                   worker_port: int = WORKER_PORT, ssh_port: int = 22, ssh_user: str = "ec2-user",
                   known_hosts: str | Path = DEFAULT_KNOWN_HOSTS, local_port: int = 0) -> Transport:
    """An unopened transport of ``kind`` (as :func:`choose` returns it) to one instance's worker,
    listening on 127.0.0.1:``local_port`` (0: a free port)."""
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
                              ssh_user=ssh_user, known_hosts=Path(known_hosts), local_port=local_port)
    raise ConfigError(f"Unknown transport {kind!r}: choose one of {', '.join(VIAS)}.")


def _ssh_transport(instance: Instance, *, aws: Aws, profile: str | None, worker_port: int, ssh_port: int,
                   ssh_user: str, known_hosts: Path, local_port: int) -> Transport:
    from dfbench.transport.ssh import EphemeralKey, SshTransport

    host = ssh_address(instance)
    key = EphemeralKey.generate()
    pinned = console_pins(aws, instance.instance_id, known_hosts, profile) or []
    return SshTransport(host=host, port=ssh_port, user=ssh_user, pkey=key.pkey, known_hosts=known_hosts,
                        host_key_alias=instance.instance_id, pinned_host_keys=pinned, remote_port=worker_port,
                        authorize=lambda: push_key(aws, instance.instance_id, ssh_user, key.public_line, profile),
                        local_port=local_port)


def ssh_address(instance: Instance) -> str:
    """Where SSH reaches an instance: its public IP (the security group admits the caller there)."""
    if not instance.public_ip:
        raise ConfigError(f"Instance {instance.instance_id} has no public IP address, so SSH cannot reach it: "
                          "use --via ssm or --via relay.")
    return instance.public_ip


def console_pins(aws: Aws, instance_id: str, known_hosts: Path, profile: str | None) -> list[str] | None:
    """None when ``known_hosts`` pins the instance already; else the host keys cloud-init printed
    on its console at first boot ([] when not there yet). Read through the AWS API, so an impostor
    at the instance's address cannot fake them."""
    import paramiko

    if known_hosts.exists() and paramiko.HostKeys(str(known_hosts)).lookup(instance_id):
        return None
    from dfbench.aws import instance_connect

    with aws_errors(profile):
        return instance_connect.console_host_keys(aws.client("ec2"), instance_id)


def push_key(aws: Aws, instance_id: str, user: str, public_line: str, profile: str | None) -> None:
    """Let ``public_line`` log in as ``user`` for the next 60 s (EC2 Instance Connect)."""
    from dfbench.aws import instance_connect

    with aws_errors(profile):
        instance_connect.send_ssh_public_key(aws.client("ec2-instance-connect"), instance_id=instance_id, user=user,
                                             public_key=public_line)


class ClusterConnection:
    """The way to a cluster's coordinator, after every worker was found healthy.

    On enter: one transport per running instance, opened side by side; each worker's ``/info``
    read through its own transport and judged (:func:`dfbench.health.judge`); every transport but
    the coordinator's closed. An unhealthy cluster raises :class:`ClusterUnhealthy` with a table of
    what is wrong where; a failure every transport shares (no plugin, port 22 closed) is raised
    as it is. ``check=False`` opens only the chosen instance's transport and judges nothing
    (``dfbench tunnel``). ``url`` is the coordinator's local URL while open, on ``local_port``
    when one is given (9000 keeps scripts written for the seed's port-forward working)."""

    def __init__(self, cluster: Cluster, *, via: str = "auto", instance: int | str | None = None,
                 check: bool = True, profile: str | None = None, worker_port: int = WORKER_PORT,
                 ssh_port: int = 22, ssh_user: str = "ec2-user", known_hosts: str | Path = DEFAULT_KNOWN_HOSTS,
                 local_port: int = 0) -> None:
        self.cluster = cluster
        self.via = via
        self.kind = choose(cluster, via)
        self.instance = pick_instance(cluster, instance)
        self.check = check
        self.local_port = local_port
        self.profile = profile
        self._options: dict[str, Any] = dict(worker_port=worker_port, ssh_port=ssh_port, ssh_user=ssh_user,
                                             known_hosts=known_hosts)
        self.health: list[WorkerHealth] = []
        self.info: dict[str, Any] = {}
        self._transport: Transport | None = None

    @property
    def url(self) -> str:
        if self._transport is None:
            raise DfbenchError("The cluster connection is not open.")
        return self._transport.url

    @property
    def description(self) -> str:
        return self._transport.description if self._transport is not None else f"{self.kind} (closed)"

    @property
    def info_timeout_s(self) -> float:
        from dfbench.worker.client import INFO_TIMEOUT_S

        return _RELAY_INFO_TIMEOUT_S if self.kind == "relay" else INFO_TIMEOUT_S

    def __enter__(self) -> Self:
        try:
            return self._open()
        except HostKeyMismatch:
            raise  # a warning sign, never worked around
        except TransportError as error:
            # auto chose SSH because the security group admits it, but the way is closed (the
            # caller's address changed, a firewall): the relay needs no open port.
            if self.via != "auto" or self.kind != "ssh":
                raise
            log.warning("ssh did not work (%s); falling back to the relay (SSM commands)", error)
            self.kind = "relay"
            return self._open()

    def _open(self) -> Self:
        targets = [self.instance]
        if self.check:
            again = f"`dfbench provision --cluster {self.cluster.name} --region {self.cluster.region}`"
            stopped = [i for i in self.cluster.instances if i.state not in _REACHABLE]
            if stopped:
                raise ConfigError("Instances of cluster {!r} are not running: {}. {} starts them.".format(
                    self.cluster.name, ", ".join(f"{i.instance_id} ({i.state})" for i in stopped), again))
            targets = list(self.cluster.instances)
        opened: dict[str, Transport] = {}
        try:
            infos, errors = self._reach_all(targets, opened)
            coordinator = self.instance.instance_id
            shared = _shared_failure(errors, len(targets))
            if shared is not None:
                raise shared
            if coordinator in errors:  # not opened, or no /info through it
                failure = errors[coordinator]
                if isinstance(failure, WorkerUnreachable):
                    raise WorkerUnreachable(
                        f"{coordinator} ({self.instance.name}) through {self.kind}", failure.detail,
                        hint=f"deploy the worker (`dfbench deploy --cluster {self.cluster.name} --binary <worker>`), "
                             f"or read why it fails (`dfbench logs --cluster {self.cluster.name}`)") from None
                raise failure
            if self.check:
                self.health = judge(targets, infos)
                if not all(h.ok for h in self.health):
                    raise ClusterUnhealthy(self.cluster.name, {h.instance_id: "; ".join(h.problems)
                                                               for h in self.health if not h.ok},
                                           health_table(self.health, len(targets)))
            info = infos[coordinator]
            assert isinstance(info, dict)  # errors hold every instance whose /info did not come
            self.info = info
            self._transport = opened.pop(coordinator)
        finally:
            # Every transport but the kept one; a failed __enter__ cleaned up after itself.
            _close_all(opened.values())
        log.info("reached %s through %s", self.instance.instance_id, self._transport.description)
        return self

    def _reach_all(self, targets: list[Instance], opened: dict[str, Transport]
                   ) -> tuple[dict[str, dict[str, Any] | str], dict[str, DfbenchError]]:
        """Open a transport to every target side by side (building one may call AWS too: the SSH
        host keys from the console) and read each worker's /info through it. Fills ``opened``
        as transports open, so that the caller closes them whatever happens; returns each
        instance's /info (or why there is none) and the errors by instance."""
        from dfbench.worker.client import WorkerClient

        aws = connect(region=self.cluster.region, profile=self.profile)
        infos: dict[str, dict[str, Any] | str] = {}
        errors: dict[str, DfbenchError] = {}

        def reach(instance: Instance) -> None:
            local_port = self.local_port if instance.instance_id == self.instance.instance_id else 0
            try:
                transport = open_transport(self.cluster, instance, self.kind, aws=aws, profile=self.profile,
                                           local_port=local_port, **self._options)
                transport.__enter__()
                opened[instance.instance_id] = transport
                infos[instance.instance_id] = WorkerClient(transport.url, info_timeout=self.info_timeout_s).info()
            except DfbenchError as error:
                errors[instance.instance_id] = error
                infos[instance.instance_id] = getattr(error, "detail", "") or str(error)

        log.info("opening %s to %d instance(s) of %s", self.kind, len(targets), self.cluster.name)
        with ThreadPoolExecutor(max_workers=min(_PARALLEL_OPENS, len(targets))) as pool:
            list(pool.map(reach, targets))
        return infos, errors

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.__exit__(kind, error, traceback)


def _shared_failure(errors: dict[str, DfbenchError], total: int) -> DfbenchError | None:
    """The error to raise as it is: the same kind of failure on every instance is about the way
    in (no plugin, port 22 closed, credentials), not about one worker."""
    if len(errors) != total or not errors:
        return None
    kinds = {(type(e), getattr(e, "kind", None)) for e in errors.values()}
    if len(kinds) == 1 and isinstance(next(iter(errors.values())), (TransportError, ConfigError)):
        return next(iter(errors.values()))
    return None


def _close_all(transports: Iterable[Transport]) -> None:
    for transport in list(transports):
        try:
            transport.__exit__(None, None, None)
        except Exception as error:  # noqa: BLE001 - closing must reach every transport
            log.warning("closing %s failed: %s", getattr(transport, "description", transport), error)
