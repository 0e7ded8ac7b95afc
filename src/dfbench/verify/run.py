"""`dfbench verify-aws`: one cheap run on a real account that observes each assumption README lists
as not verified against real AWS, then deletes everything it made, however it ends.

It says what it will create, how long it may take and what it may cost, and asks (``confirm``);
then it runs the steps (steps.py) with the cleanup stack and the NotFound watch in place, unwinds
the stack, judges every probe (probes.py) and writes the report."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from botocore.exceptions import ClientError

from dfbench.aws.session import add_client_hook, connect, default_bucket_name, default_region
from dfbench.errors import error_code
from dfbench.verify.cleanup import CleanupStack, Interrupted, signals_raise
from dfbench.verify.probes import PROBES
from dfbench.verify.records import Facts, VerifyReport, judge
from dfbench.verify.steps import INSTANCE_TYPE, STEPS, TTL_HOURS, VERIFY_KEY, VOLUME_GIB, Made, Run, new_run_id
from dfbench.verify.watch import Watch

log = logging.getLogger("dfbench")

# us-east-1's on-demand price of the instance type (AWS's EC2 pricing page), for the estimate.
_HOURLY_USD = 0.0104
_GP3_GB_MONTH_USD = 0.08


def plan_lines(*, region: str, account: str, bucket: str, run_id: str) -> list[str]:
    """What the run creates, its time bound and its estimated cost, for the confirmation."""
    most = TTL_HOURS * (_HOURLY_USD + VOLUME_GIB * _GP3_GB_MONTH_USD / 730)
    return [
        (f"dfbench verify-aws will create, in account {account}, region {region}, run {run_id} "
        f"(every resource tagged {VERIFY_KEY}={run_id} and dfbench:managed=true, named dfbench-verify-{run_id}):"),
        "  - a VPC with one subnet, an internet gateway, a route table and a security group admitting no one",
        "  - an IAM role and instance profile (SSM agent; read the bucket; read /dfbench/dfbench-verify-<id>/*)",
        "  - a Route 53 private hosted zone on that VPC, with one record",
        "  - two SSM SecureString parameters",
        (f"  - objects under s3://{bucket}/.dfbench/verify/{run_id}/ (the bucket is created, and deleted "
        "afterwards, only if it does not exist)"),
        (f"  - one {INSTANCE_TYPE} on-demand instance (Amazon Linux 2023, {VOLUME_GIB} GiB gp3), which terminates "
        f"itself after {TTL_HOURS:g} h should this process die; two launches EC2 must refuse"),
        "Time: about 10 minutes; every wait is bounded (all bounds together, cleanup included: about an hour).",
        (f"Cost: under ${most + 0.005:.2f} (the instance at most {TTL_HOURS:g} h at us-east-1's ${_HOURLY_USD}/h and "
        "its volume; the hosted zone is free when deleted within 12 hours; parameters, commands and the few "
        "requests cost nothing or fractions of a cent; other regions differ by cents)."),
        "Everything is deleted at the end, on an error, on Ctrl-C and on SIGTERM.",
    ]


def verify_aws(*, region: str | None = None, profile: str | None = None, report: Path | None = None,
               confirm: Callable[[str], bool] = lambda _: True) -> VerifyReport | None:
    """Run every probe; returns the report (also written to ``report`` and its .md), or None when
    ``confirm`` declined, before anything was created."""
    aws = connect(region=default_region(region), profile=profile)
    account = aws.account()
    run_id = new_run_id()
    bucket = os.environ.get("BENCHMARK_BUCKET") or default_bucket_name(account, aws.region)
    if not confirm("\n".join(plan_lines(region=aws.region, account=account, bucket=bucket, run_id=run_id))):
        return None
    watch, stack, facts = Watch(), CleanupStack(), Facts()
    run = Run(aws=aws, run_id=run_id, stack=stack, facts=facts, run_instances=lambda: watch.run_instances,
              made=Made(bucket=bucket))
    started_at, started = datetime.now(UTC), time.monotonic()
    interrupted = False
    remove = add_client_hook(watch.hook)
    try:
        with signals_raise():
            try:
                _steps(run)
            except Interrupted as signal:
                log.warning("%s: cleaning up", signal)
                interrupted = True
            finally:
                stack.unwind()
    finally:
        remove()
    facts.record("watch", windows=watch.by_kind())
    result = VerifyReport(run_id=run_id, region=aws.region, account=account, endpoint=aws.endpoint_url,
                          started=started_at.isoformat(timespec="seconds"), seconds=time.monotonic() - started,
                          interrupted=interrupted, findings=[judge(p, facts) for p in PROBES], left=stack.left)
    if report is not None:
        result.write(report)
    return result


def _steps(run: Run) -> None:
    """Each step in order; the first that fails ends the run (the later ones need what it makes),
    its error kept for the rows it leaves unobserved."""
    for name, step in STEPS:
        log.info("verify-aws: %s", name)
        try:
            step(run)
        except Exception as error:  # whatever stops a step, the run reports what it saw and cleans up
            code = error_code(error) if isinstance(error, ClientError) else type(error).__name__
            run.facts.failures[name] = f"{code}: {error}".replace("\n", " ")
            log.warning("verify-aws: step %s failed (%s); the steps after it are skipped", name, code)
            return
