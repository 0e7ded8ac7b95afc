"""How a request reaches a worker: the way in chosen (:mod:`.choice`), opened (:mod:`.ssh`,
:mod:`.ssm_plugin`, :mod:`.relay`), checked and kept (:mod:`.connection`); the host-key pins
(:mod:`.known_hosts`) and a debugging shell (:mod:`.shell`)."""

from dfbench.transport.base import DirectTransport, Transport
from dfbench.transport.choice import VIAS, WORKER_PORT, choose, open_transport, pick_instance
from dfbench.transport.connection import ClusterConnection

__all__ = ["VIAS", "WORKER_PORT", "ClusterConnection", "DirectTransport", "Transport", "choose", "open_transport",
           "pick_instance"]
