"""The cluster's life cycle: plan, provision, status and teardown over the aws/ modules."""

from dfbench.cluster.provision import OUTPUTS_DIR, plan, provision, status, teardown, write_outputs_file

__all__ = ["OUTPUTS_DIR", "plan", "provision", "status", "teardown", "write_outputs_file"]
