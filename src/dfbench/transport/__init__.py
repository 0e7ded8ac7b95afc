"""How a request reaches a worker: the way in chosen (:mod:`.choice`), opened (:mod:`.ssh`,
:mod:`.ssm_plugin`, :mod:`.relay`), checked and kept (:mod:`.connection`); the host-key pins
(:mod:`.known_hosts`) and a debugging shell (:mod:`.shell`).

Only what every transport shares is re-exported here; importing the package stays as cheap as
the command line needs (``--via``'s choices), so ``ClusterConnection`` is imported from
:mod:`dfbench.transport.connection`."""

from dfbench.transport.base import VIAS, WORKER_PORT, DirectTransport, Transport

__all__ = ["VIAS", "WORKER_PORT", "DirectTransport", "Transport"]
