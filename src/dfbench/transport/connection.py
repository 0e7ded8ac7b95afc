"""A benchmark's way to a cluster: one transport per instance opened side by side, every worker
judged healthy, the coordinator's kept.

:class:`ClusterConnection` opens one transport per instance (the way in chosen by
:mod:`dfbench.transport.choice`), judges every worker's ``/info`` (:mod:`dfbench.worker.health`) and keeps
the coordinator's, the worker a benchmark sends its queries to.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from dfbench.aws.session import connect
from dfbench.errors import (
    ClusterUnhealthy,
    ConfigError,
    DfbenchError,
    HostKeyMismatch,
    TransportError,
    WorkerUnreachable,
)
from dfbench.models import Cluster, Instance
from dfbench.transport.base import WORKER_PORT, Transport
from dfbench.transport.choice import REACHABLE_STATES, choose, open_transport, pick_instance
from dfbench.worker.health import WorkerHealth, health_table, judge

log = logging.getLogger("dfbench")

# A relayed request is an SSM command: a second or more on AWS, longer when SSM throttles the
# side-by-side checks. Every other way in answers /info as fast as the worker does.
_RELAY_INFO_TIMEOUT_S = 60.0
# Transports opened side by side for the health check: plenty for 100 instances in a few rounds
# without one SSH handshake, plugin process or SSM command per instance at the same instant.
_PARALLEL_OPENS = 16


class ClusterConnection:
    """The way to a cluster's coordinator, after every worker was found healthy.

    On enter: one transport per running instance, opened side by side; each worker's ``/info``
    read through its own transport and judged (:func:`dfbench.worker.health.judge`); every transport but
    the coordinator's closed. An unhealthy cluster raises :class:`ClusterUnhealthy` with a table of
    what is wrong where; a failure every transport shares (no plugin, port 22 closed) is raised
    as it is. ``check=False`` opens only the chosen instance's transport and judges nothing
    (``dfbench tunnel``). ``url`` is the coordinator's local URL while open, on ``local_port``
    when one is given (9000 keeps scripts written for the CDK tooling's port-forward working)."""

    def __init__(self, cluster: Cluster, *, via: str = "auto", instance: int | str | None = None,
                 check: bool = True, profile: str | None = None, worker_port: int = WORKER_PORT,
                 ssh_port: int = 22, ssh_user: str = "ec2-user", known_hosts: str | Path | None = None,
                 local_port: int = 0, trust_on_first_use: bool = False) -> None:
        self.cluster = cluster
        self.via = via
        self.kind = choose(cluster, via)
        self.instance = pick_instance(cluster, instance)
        self.check = check
        self.local_port = local_port
        self.profile = profile
        self._options: dict[str, Any] = dict(worker_port=worker_port, ssh_port=ssh_port, ssh_user=ssh_user,
                                             known_hosts=known_hosts, trust_on_first_use=trust_on_first_use)
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
            stopped = [i for i in self.cluster.instances if i.state not in REACHABLE_STATES]
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
        except Exception as error:
            log.warning("closing %s failed: %s", getattr(transport, "description", transport), error)
