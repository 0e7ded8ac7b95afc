"""`dfbench verify-aws`: the run (run), its steps (steps), the probes (probes), the instance's
scripts (instance), the cleanup stack (cleanup), the NotFound watch (watch) and the report (records)."""

from dfbench.verify.probes import PROBES
from dfbench.verify.records import Finding, Probe, VerifyReport
from dfbench.verify.run import plan_lines, verify_aws

__all__ = ["PROBES", "Finding", "Probe", "VerifyReport", "plan_lines", "verify_aws"]
