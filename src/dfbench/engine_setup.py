"""Trino and Spark on a cluster's instances: ``dfbench engine install|status|remove`` (ARCHITECTURE.md
§5b).

An engine's module plans its install (:mod:`dfbench.engines.trino_setup`,
:mod:`dfbench.engines.spark_setup`: the version, the memory derived from the instance type, the
step scripts); this module carries the plan out. Every step is ONE SSM command to every instance
of the cluster (:func:`dfbench.worker_deploy.send_script`), and the next step starts only once
every instance ended the step with its success line; an instance that did not is named with the
end of its output, and nothing after that step runs. The steps are idempotent on the instances, so
an install that failed or was interrupted anywhere is finished by running it again.

Once every step succeeded, the engine's record (version, settings, port, instances) is written to
``s3://<bucket>/.dfbench/engines/<engine>.json``: what ``engine status`` shows and what ``bench
--cluster --engines`` reads to reach the engine. Removing stops and deletes everything the steps
wrote on the instances, what the engine wrote in the bucket (Trino's metastore) and the record.
Tearing the cluster down removes all of it too: the instances are terminated and the bucket
deleted.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from dfbench.aws import ssm
from dfbench.aws.account import describe_instance_type
from dfbench.aws.iam import INLINE_POLICY_NAME, TRINO_METASTORE_PREFIX
from dfbench.aws.objects import list_objects, stored_size
from dfbench.aws.session import connect
from dfbench.data.sync import delete_keys
from dfbench.engines.dialect import DATAFUSION, SPARK, TRINO
from dfbench.engines.setup import (
    RECORD_PREFIX,
    EnginePlan,
    Machine,
    Node,
    parse_status,
    success_line,
)
from dfbench.errors import CommandFailed, ConfigError, DfbenchError, aws_errors, error_code
from dfbench.models import Cluster, Instance, Record
from dfbench.worker_deploy import CommandOutput, collect_output, find_cluster, send_script

log = logging.getLogger("dfbench")

# The engines dfbench installs on a cluster (DataFusion's worker is `dfbench deploy`'s).
CLUSTER_ENGINES = (TRINO, SPARK)
STATUS_TIMEOUT_S = 120
_TAIL_BYTES = 16 * 1024


class EngineRecord(Record):
    """An engine installed on a cluster, as its install recorded it in the bucket."""

    engine: str
    version: str
    settings: dict[str, Any]
    port: int  # on the first instance's loopback
    instance_ids: list[str]  # in the cluster's order: the first leads
    installed_at: datetime
    dfbench_version: str


class StepOutcome(Record):
    """One step on one instance."""

    instance_id: str
    name: str | None
    status: str
    exit_code: int | None
    ok: bool
    output_tail: str
    output_url: str | None


class StepReport(Record):
    name: str
    description: str
    seconds: float
    instances: list[StepOutcome]


class EngineInstall(Record):
    """What ``install_engine`` did: every step, then the record it wrote."""

    cluster: str
    region: str
    engine: str
    record: EngineRecord
    steps: list[StepReport]


class EngineRemoval(Record):
    cluster: str
    region: str
    engine: str
    instances: list[StepOutcome]
    deleted_keys: int  # what the engine had written in the bucket (Trino's metastore files)


class InstanceEngineStatus(Record):
    instance_id: str
    name: str | None
    reachable: bool  # the status command ran there
    values: dict[str, str]  # what the engine's status script printed (installed, active, role...)


class EngineStatus(Record):
    engine: str
    record: EngineRecord | None
    instances: list[InstanceEngineStatus]

    @property
    def ready(self) -> bool:
        """Recorded as installed, and every instance runs that version."""
        return self.record is not None and bool(self.instances) and all(
            i.reachable and i.values.get("installed") == self.record.version and i.values.get("active") == "yes"
            for i in self.instances)


def check_cluster_engine(engine: str) -> str:
    """``engine`` when dfbench installs it on a cluster; else a ConfigError saying what does."""
    if engine == DATAFUSION:
        raise ConfigError("DataFusion's worker is installed with `dfbench deploy --cluster C --binary worker` (or "
                          "--build <checkout>), not `dfbench engine install`.")
    if engine not in CLUSTER_ENGINES:
        raise ConfigError(f"Unknown engine {engine!r}: dfbench installs {' and '.join(CLUSTER_ENGINES)} on a cluster.")
    return engine


def record_key(engine: str) -> str:
    return f"{RECORD_PREFIX}/{engine}.json"


def _nodes(cluster: Cluster, instances: Sequence[Instance]) -> list[Node]:
    missing = [i.instance_id for i in instances if not i.private_ip]
    if missing:
        raise ConfigError(f"Instances {', '.join(missing)} of {cluster.name!r} have no private address yet: wait "
                          "until they run, then install again.")
    return [Node(i.instance_id, str(i.private_ip)) for i in instances]


def _machine(aws: Any, instances: Sequence[Instance], profile: str | None) -> Machine:
    """The smallest instance type of the cluster: the memory every node can give."""
    types = sorted({i.instance_type for i in instances})
    found = []
    with aws_errors(profile):
        for name in types:
            described = describe_instance_type(aws.client("ec2"), name)
            if described is None:
                raise ConfigError(f"EC2 does not know instance type {name!r} in this region.")
            found.append(Machine(name, described.memory_mib, described.vcpus))
    return min(found, key=lambda m: (m.memory_mib, m.vcpus))


def _plan(engine: str, cluster: Cluster, nodes: list[Node], machine: Machine, version: str | None,
          profile: str | None, *, publish: bool = True) -> EnginePlan:
    """The engine module's plan; ``publish``: what its steps download from the bucket is put
    there first (status and removal need only the plan's scripts)."""
    if engine == TRINO:
        from dfbench.engines.trino_setup import trino_plan

        return trino_plan(nodes=nodes, machine=machine, bucket=cluster.bucket, region=cluster.region,
                          version=version)
    from dfbench.engines.spark_setup import ServiceCode, service_code, service_code_key, spark_plan

    body, sha256 = service_code()
    code = ServiceCode(key=service_code_key(sha256), sha256=sha256)
    plan = spark_plan(nodes=nodes, machine=machine, bucket=cluster.bucket, region=cluster.region, code=code,
                      version=version)  # checks the version, before anything is uploaded
    if publish:
        _publish(cluster, code.key, body, profile)
    return plan


def _publish(cluster: Cluster, key: str, body: bytes, profile: str | None) -> None:
    """dfbench's own code, which Spark's service runs from on the first instance, put in the bucket
    under its sha256 unless it is there already."""
    aws = connect(region=cluster.region, profile=profile)
    with aws_errors(profile):
        s3 = aws.client("s3")
        if stored_size(s3, cluster.bucket, key) != len(body):
            s3.put_object(Bucket=cluster.bucket, Key=key, Body=body, ContentType="application/zip")


def _check_role(cluster: Cluster, engine: str, profile: str | None) -> None:
    """Trino writes its metastore with the instance role: a cluster provisioned by an older
    dfbench has a role that may not, which Trino would only say at the first CREATE SCHEMA."""
    if engine != TRINO:
        return
    aws = connect(region=cluster.region, profile=profile)
    with aws_errors(profile):
        try:
            document = aws.client("iam").get_role_policy(RoleName=cluster.role_name,
                                                         PolicyName=INLINE_POLICY_NAME)["PolicyDocument"]
        except ClientError as error:
            if error_code(error) != "NoSuchEntity":
                raise
            document = {}  # no policy at all: provision writes it too
    # boto3 hands the document over decoded (a dict); the prefix is looked for in its resources.
    text = json.dumps(document)
    if TRINO_METASTORE_PREFIX not in text:
        raise ConfigError(f"The instance role of {cluster.name!r} may not write Trino's metastore (provisioned by an "
                          f"older dfbench): `dfbench provision --cluster {cluster.name} --region {cluster.region}` "
                          "updates it.")


def install_engine(engine: str, cluster: Cluster | str, *, version: str | None = None, region: str | None = None,
                   profile: str | None = None) -> EngineInstall:
    """Install ``engine`` (trino or spark) on every instance of ``cluster``, at ``version`` (the
    pinned one by default), step by step (see the module docstring; each step is logged as it
    starts and ends). Raises CommandFailed naming every instance where a step failed, with the end
    of its output; run again to finish."""
    check_cluster_engine(engine)
    found, instances = find_cluster(cluster, region, profile)
    nodes = _nodes(found, instances)
    _check_role(found, engine, profile)
    aws = connect(region=found.region, profile=profile)
    machine = _machine(aws, instances, profile)
    plan = _plan(engine, found, nodes, machine, version, profile)
    log.info("installing %s %s on %d instance(s) of %s (%s, %d MiB): %d steps", engine, plan.version, len(nodes),
             found.name, machine.instance_type, machine.memory_mib, len(plan.steps))
    reports = []
    for number, step in enumerate(plan.steps, 1):
        log.info("%s step %d/%d %s: %s…", engine, number, len(plan.steps), step.name, step.description)
        started = time.monotonic()
        outcomes = _run_step(found, instances, engine, step.name, step.script, step.timeout_s, profile)
        report = StepReport(name=step.name, description=step.description, seconds=time.monotonic() - started,
                            instances=outcomes)
        reports.append(report)
        failed = [o for o in outcomes if not o.ok]
        if failed:
            raise _step_failed(engine, step.name, failed)
        log.info("%s step %d/%d %s: done on %d instance(s) in %.0f s", engine, number, len(plan.steps), step.name,
                 len(outcomes), report.seconds)
    from dfbench.runner import dfbench_version

    record = EngineRecord(engine=engine, version=plan.version, settings=plan.settings, port=plan.port,
                          instance_ids=[n.instance_id for n in nodes], installed_at=datetime.now(UTC),
                          dfbench_version=dfbench_version())
    with aws_errors(profile):
        aws.client("s3").put_object(Bucket=found.bucket, Key=record_key(engine), Body=record.model_dump_json(indent=2),
                                    ContentType="application/json")
    return EngineInstall(cluster=found.name, region=found.region, engine=engine, record=record, steps=reports)


def _run_step(cluster: Cluster, instances: Sequence[Instance], engine: str, step: str, script: str, timeout_s: int,
              profile: str | None) -> list[StepOutcome]:
    s3, invocations = send_script(cluster, instances, script=script, comment=f"dfbench: {engine} {step}",
                                  timeout_s=timeout_s, profile=profile)
    done = success_line(engine, step)

    def ok(invocation: ssm.Invocation) -> bool:
        return invocation.ok and not invocation.stdout_cut and \
            invocation.stdout.rstrip("\n").rpartition("\n")[2] == done

    # Only a failure's end is read from S3: a step that went well everywhere reads nothing.
    unsure = [index for index, invocation in enumerate(invocations) if not ok(invocation)]
    with aws_errors(profile):
        for index, full in zip(unsure, ssm.read_output(s3, [invocations[i] for i in unsure], last_bytes=_TAIL_BYTES),
                               strict=True):
            invocations[index] = full
    names = {i.instance_id: i.name for i in cluster.instances}
    return [StepOutcome(instance_id=inv.instance_id, name=names.get(inv.instance_id), status=inv.status,
                        exit_code=inv.exit_code, ok=ok(inv), output_tail=inv.output_tail, output_url=inv.output_url)
            for inv in invocations]


def _step_failed(engine: str, step: str, failed: list[StepOutcome]) -> CommandFailed:
    lines = []
    for outcome in failed:
        code = "no exit code" if outcome.exit_code is None else f"exit code {outcome.exit_code}"
        label = f"{outcome.instance_id} ({outcome.name})" if outcome.name else outcome.instance_id
        hint = "" if outcome.status in ("Success", "Failed") else f": {ssm.failure_hint(outcome.status, '')}"
        lines.append(f"  {label}: {engine} step {step}: {outcome.status} ({code}){hint}")
        lines += [f"    | {line}" for line in outcome.output_tail.splitlines()]
        if outcome.output_url:
            lines.append(f"    full output: {outcome.output_url}")
    first = failed[0]
    return CommandFailed(first.instance_id, first.exit_code, first.output_tail, status=first.status,
                         failed=tuple(o.instance_id for o in failed), details="\n".join(lines))


def read_record(cluster: Cluster, engine: str, profile: str | None = None) -> EngineRecord | None:
    """The engine's record in the cluster's bucket; None when it is not installed there."""
    aws = connect(region=cluster.region, profile=profile)
    with aws_errors(profile):
        try:
            body = aws.client("s3").get_object(Bucket=cluster.bucket, Key=record_key(engine))["Body"].read()
        except ClientError as error:
            if error_code(error) in ("NoSuchKey", "404"):
                return None
            raise
    try:
        return EngineRecord.model_validate_json(body)
    except ValueError as error:
        raise DfbenchError(f"s3://{cluster.bucket}/{record_key(engine)} is not an engine record ({error}): "
                           f"`dfbench engine install {engine} --cluster {cluster.name}` writes it again.") from None


def engine_status(cluster: Cluster | str, engines: Sequence[str] = CLUSTER_ENGINES, *, region: str | None = None,
                  profile: str | None = None) -> list[EngineStatus]:
    """Each engine's record and what every instance says of it (one SSM command per engine)."""
    for engine in engines:
        check_cluster_engine(engine)
    found, instances = find_cluster(cluster, region, profile)
    nodes = _nodes(found, instances)
    aws = connect(region=found.region, profile=profile)
    machine = _machine(aws, instances, profile)
    statuses = []
    for engine in engines:
        script = _plan(engine, found, nodes, machine, None, profile, publish=False).status_script
        outputs = collect_output(found, instances, script=script, comment=f"dfbench: {engine} status",
                                 timeout_s=STATUS_TIMEOUT_S, profile=profile)
        statuses.append(EngineStatus(engine=engine, record=read_record(found, engine, profile),
                                     instances=[_instance_status(engine, out) for out in outputs]))
    return statuses


def _instance_status(engine: str, out: CommandOutput) -> InstanceEngineStatus:
    return InstanceEngineStatus(instance_id=out.instance_id, name=out.name, reachable=out.ok,
                                values=parse_status(engine, out.stdout) if out.ok else
                                {"error": (out.stderr or out.stdout).strip().rpartition("\n")[2] or out.status})


def remove_engine(engine: str, cluster: Cluster | str, *, region: str | None = None,
                  profile: str | None = None) -> EngineRemoval:
    """Stop and delete ``engine`` on every instance, what it wrote in the bucket, then its
    record; a second run finds nothing and succeeds."""
    check_cluster_engine(engine)
    found, instances = find_cluster(cluster, region, profile)
    nodes = _nodes(found, instances)
    log.info("removing %s from %d instance(s) of %s…", engine, len(nodes), found.name)
    aws = connect(region=found.region, profile=profile)
    plan = _plan(engine, found, nodes, _machine(aws, instances, profile), None, profile, publish=False)
    outcomes = _run_step(found, instances, engine, "remove", plan.remove_script, STATUS_TIMEOUT_S, profile)
    failed = [o for o in outcomes if not o.ok]
    if failed:
        raise _step_failed(engine, "remove", failed)
    with aws_errors(profile):
        s3 = aws.client("s3")
        keys = [key for prefix in plan.bucket_prefixes for key in list_objects(s3, found.bucket, prefix)]
        delete_keys(s3, found.bucket, [*keys, record_key(engine)])
    return EngineRemoval(cluster=found.name, region=found.region, engine=engine, instances=outcomes,
                         deleted_keys=len(keys))
