"""Deploy the worker to every instance of a cluster through SSM Run Command and check that it
serves (``deploy_worker``); commands and logs on the instances (``exec_command``, ``logs``,
``send_script``, ``collect_output``).

The binary is built (:mod:`dfbench.worker.build`) and published to the bucket
(:mod:`dfbench.worker.artifacts`) first; the install itself is the script of
:mod:`dfbench.worker.scripts`.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from dfbench.aws import ssm
from dfbench.aws.instances import other_clusters_with_tag
from dfbench.aws.parameters import parameter_types
from dfbench.aws.session import connect, default_region
from dfbench.config import TAG_DISCOVERY_TAG
from dfbench.errors import ClusterNotFound, CommandFailed, ConfigError, WorkersDisagree, aws_errors
from dfbench.models import Cluster, Instance, Record
from dfbench.provision import status as cluster_status
from dfbench.worker import health
from dfbench.worker.artifacts import Artifact, point_latest, upload_worker
from dfbench.worker.build import Build, build_worker, check_binary
from dfbench.worker.cargo import checked_features, find_worker_package
from dfbench.worker.kinds import WorkerKind, detect_kind, parse_kind
from dfbench.worker.scripts import INSTALLED_MARKER, install_script, worker_unit
from dfbench.worker.secrets import secret_parameters

log = logging.getLogger("dfbench")


# ---------------------------------------------------------------------------------------------
# deploy, exec, logs: one SendCommand per call, to the cluster by tag (aws/ssm.py)

# Instances SSM can reach now or soon; a stopped one never comes online.
_REACHABLE_STATES = ("pending", "running")
# Enough of a failed instance's output for its tail, whatever the size of the whole log.
_TAIL_BYTES = 16 * 1024
VERIFY_TIMEOUT_S = 120
EXEC_TIMEOUT_S = 600
_INFO_SCRIPT = "curl -fsS --max-time 5 http://127.0.0.1:9000/info\n"
# journalctl --since accepts absolute times ("2026-01-31 12:00:00"), relative ones ("-1h",
# "1 hour ago"), "@<unix seconds>" and words (today, yesterday): nothing else needs other characters.
_SINCE = re.compile(r"^[A-Za-z0-9 :+.@-]{1,64}$")
_MAX_LOG_LINES = 100_000

Installed = Literal["installed", "already", "failed"]

# The install script's exit codes (dfbench.worker.scripts), and what they mean for the user.
_EXIT_HINTS = {
    3: "the downloaded binary's sha256 is wrong: the artifact in S3 is damaged or was replaced (the "
       "installed binary is kept); delete it and deploy again to upload it anew",
    4: "the worker did not start, or did not answer http://127.0.0.1:9000/info after its restart: its journal "
       "is above (`dfbench logs` shows more)",
}


class InstanceDeploy(Record):
    """The deploy on one instance. ``installed`` is "already" when that sha was installed and running
    (nothing was restarted), "failed" whenever the script did not end with its success line."""

    instance_id: str
    name: str | None
    status: str  # SSM's CommandInvocation Status
    status_details: str
    exit_code: int | None
    installed: Installed
    output_tail: str
    output_url: str | None
    commit: str | None = None  # git_commit_hash from the worker's /info, once verified

    @property
    def ok(self) -> bool:
        return self.installed != "failed"

    @property
    def label(self) -> str:
        return f"{self.instance_id} ({self.name})" if self.name else self.instance_id


class DeployReport(Record):
    """What ``deploy_worker`` did. ``verified`` is None when the workers were not checked
    (``verify=False``, or the install failed somewhere); ``problems`` are what the check found."""

    cluster: str
    region: str
    sha256: str
    kind: WorkerKind
    uploaded: bool
    artifact_url: str
    build: Build | None
    command_id: str
    results: list[InstanceDeploy]
    verified: bool | None
    problems: list[str]

    @property
    def failed(self) -> list[InstanceDeploy]:
        return [r for r in self.results if not r.ok]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.problems

    def raise_for_failures(self) -> None:
        """CommandFailed naming every instance where the install failed, with its status, exit
        code, what that means, its last output lines and full-output URL; WorkersDisagree when
        the install succeeded everywhere but the workers' /info did not check out."""
        failed = self.failed
        if failed:
            first = failed[0]
            raise CommandFailed(first.instance_id, first.exit_code, first.output_tail, status=first.status,
                                failed=tuple(r.instance_id for r in failed),
                                details="\n".join(_describe_failure(r, self.sha256) for r in failed))
        if self.problems:
            raise WorkersDisagree(self.cluster, self.problems)


class CommandOutput(Record):
    """A command's result on one instance. ``complete`` is False when SSM cut the output and S3
    did not have the rest: ``stdout``/``stderr`` then hold the beginning only."""

    instance_id: str
    name: str | None
    status: str
    status_details: str
    exit_code: int | None
    stdout: str
    stderr: str
    complete: bool
    output_url: str | None

    @property
    def ok(self) -> bool:
        return self.status == "Success"

    @property
    def label(self) -> str:
        return f"{self.instance_id} ({self.name})" if self.name else self.instance_id


def _describe_failure(result: InstanceDeploy, sha256: str) -> str:
    code = "no exit code" if result.exit_code is None else f"exit code {result.exit_code}"
    if result.status == "Success":
        hint = f"the script ended without printing `{INSTALLED_MARKER}{sha256}`"
    elif result.status == "Failed":
        hint = _EXIT_HINTS.get(result.exit_code or 0, "")
    else:
        hint = ssm.failure_hint(result.status, result.status_details)
    lines = [f"  {result.label}: {result.status} ({code})" + (f": {hint}" if hint else "")]
    lines += [f"    | {line}" for line in result.output_tail.splitlines()]
    if result.output_url:
        lines.append(f"    full output: {result.output_url}")
    return "\n".join(lines)


def _resolve(cluster: Cluster | str, region: str | None, profile: str | None) -> Cluster:
    if isinstance(cluster, Cluster):
        return cluster
    found = cluster_status(cluster, region=region, profile=profile)
    if found is None:
        raise ClusterNotFound(cluster, default_region(region))
    return found


def _dns_name(cluster: Cluster, kind: WorkerKind) -> str | None:
    """The name the current kind finds its peers by (None for the tag-discovery kind)."""
    if kind != "current":
        return None
    if cluster.workers_dns_name is None:
        raise ConfigError(f"Cluster {cluster.name!r} has no workers DNS record for the current worker to find its "
                          f"peers by (provisioned by an older dfbench): `dfbench provision --cluster {cluster.name} "
                          f"--region {cluster.region}` adds it.")
    return cluster.workers_dns_name


def _refuse_shared_discovery_tag(cluster: Cluster, profile: str | None) -> None:
    """The tag-discovery worker takes every running instance tagged BenchmarkCluster=datafusion in
    the region as a peer: with another cluster's instances carrying it, both clusters' queries
    would be spread over the other's workers."""
    key, value = TAG_DISCOVERY_TAG
    aws = connect(region=cluster.region, profile=profile)
    with aws_errors(profile):
        others = other_clusters_with_tag(aws.client("ec2"), key, value, cluster.name)
    if others:
        raise ConfigError(f"Cannot deploy a tag-discovery worker to {cluster.name!r}: it finds its peers by the tag "
                          f"{key}={value}, which the live instances of {', '.join(sorted(others))} in {cluster.region} "
                          "carry too, so each cluster would use the other's workers. Tear the other cluster down "
                          "or stop its instances, or deploy a current worker (it finds peers by its cluster's DNS "
                          "name).")


def _targets(cluster: Cluster) -> list[Instance]:
    """The instances a command reaches, once the cluster can take one at all."""
    again = f"`dfbench provision --cluster {cluster.name} --region {cluster.region}`"
    if not cluster.instances:
        raise ConfigError(f"Cluster {cluster.name!r} ({cluster.region}) has no instances: {again} launches them.")
    stopped = [i for i in cluster.instances if i.state not in _REACHABLE_STATES]
    if stopped:
        listed = ", ".join(f"{i.instance_id} ({i.name}, {i.state})" for i in stopped)
        raise ConfigError(f"SSM cannot reach stopped instances of cluster {cluster.name!r}: {listed}. "
                          f"{again} starts them.")
    if not cluster.bucket:
        raise ConfigError(f"Cluster {cluster.name!r} has no bucket on record (a partly provisioned cluster): "
                          f"{again} completes it.")
    return cluster.instances


def send_script(cluster: Cluster, instances: Sequence[Instance], *, script: str, comment: str, timeout_s: int,
                profile: str | None) -> tuple[Any, list[ssm.Invocation]]:
    """One command on every instance (ONE SendCommand, to the cluster by tag), output to the
    cluster's bucket; the S3 client is returned for reading what SSM cut. Engine installs
    (dfbench.engine_setup) send their steps through it too."""
    aws = connect(region=cluster.region, profile=profile)
    with aws_errors(profile):
        invocations = ssm.run_command(aws.client("ssm"), cluster=cluster.name,
                                      instance_ids=[i.instance_id for i in instances], script=script,
                                      comment=comment, output_bucket=cluster.bucket, output_prefix=ssm.OUTPUT_PREFIX,
                                      execution_timeout_s=timeout_s, ec2=aws.client("ec2"))
    return aws.client("s3"), invocations


def _outcome(invocation: ssm.Invocation, sha256: str) -> Installed:
    """Read from the last line the install script prints (dfbench.worker.scripts)."""
    if not invocation.ok or invocation.stdout_cut:
        return "failed"
    last = invocation.stdout.rstrip("\n").rpartition("\n")[2]
    if last == f"{INSTALLED_MARKER}{sha256}":
        return "installed"
    if last == f"dfbench: worker {sha256} already installed and active":
        return "already"
    return "failed"


class Deployment(Record):
    """A worker checked, published to the cluster's bucket and ready to install: what
    :func:`install_deployment` sends, as often as needed (``dfbench ab --cluster`` alternates two)."""

    cluster: Cluster
    instances: list[Instance]
    artifact: Artifact
    build: Build | None
    kind: WorkerKind
    dns_name: str | None
    args: tuple[str, ...]
    env: dict[str, str]
    secrets: dict[str, str]  # variable name -> SSM parameter name (dfbench.worker.secrets)


def check_source(binary: str | Path | None, build_dir: str | Path | None, worker_kind: str | None, *,
                 package: str | None = None, features: Sequence[str] | str | None = None) -> WorkerKind | None:
    """The local checks of a worker to deploy, before any AWS call: one of ``binary`` and
    ``build_dir``, a binary that runs on the instances, and its kind (None for a checkout, known
    once built); ``package`` and ``features`` only for a checkout, and well formed."""
    if (binary is None) == (build_dir is None):
        raise ConfigError("Pass either the worker binary (binary=, --binary) or a datafusion-distributed checkout "
                          "to build it in (build_dir=, --build).")
    if binary is not None and (package is not None or checked_features(features)):
        raise ConfigError("--package and --features choose what a checkout builds: they go with --build, not with "
                          "--binary.")
    checked_features(features)
    if build_dir is not None:
        if not Path(build_dir).is_dir():
            raise ConfigError(f"{build_dir} is not a folder: pass your datafusion-distributed checkout to --build.")
        find_worker_package(Path(build_dir).resolve(), package)  # no package, or several: refused here
    if worker_kind is not None:
        parse_kind(worker_kind)
    if binary is None:
        return None
    check_binary(binary)  # a wrong local file fails before any AWS call
    return detect_kind(binary, worker_kind)


def find_cluster(cluster: Cluster | str, region: str | None, profile: str | None) -> tuple[Cluster, list[Instance]]:
    """The cluster (a Cluster, or a name looked up in ``region``) and the instances a command
    reaches, once it can take one at all."""
    found = _resolve(cluster, region, profile)
    return found, _targets(found)


def prepare_deployment(found: Cluster, instances: list[Instance], *, binary: str | Path | None = None,
                       build_dir: str | Path | None = None, kind: WorkerKind | None = None,
                       worker_kind: str | None = None, args: Sequence[str] = (), env: Mapping[str, str] | None = None,
                       secrets: Mapping[str, str] | None = None, profile: str | None = None,
                       progress: bool = True, package: str | None = None,
                       features: Sequence[str] | str | None = None) -> Deployment:
    """Build (``build_dir``: its workspace package with a ``worker`` bin, or ``package``, with
    ``features``) or take ``binary`` (of ``kind``, from :func:`check_source`), check the unit its
    arguments make and the secret parameters it reads, and publish the binary to the cluster's
    bucket by sha256 (uploaded only when absent). ``secrets`` are the checked ones
    (:func:`dfbench.worker.secrets.secret_parameters`)."""
    build = build_worker(build_dir, package=package, features=features) if build_dir is not None else None
    source = build.binary if build is not None else binary
    assert source is not None  # one of the two, checked by check_source
    kind = kind or detect_kind(source, worker_kind)
    dns_name = _dns_name(found, kind)
    parameters = dict(secrets or {})
    # Refuses bad args and env, before anything is uploaded.
    worker_unit(bucket=found.bucket, region=found.region, args=args, env=env, kind=kind, dns_name=dns_name,
                secrets=parameters)
    if parameters:
        _check_parameters(found, parameters, profile)
    if kind == "tag-discovery":
        _refuse_shared_discovery_tag(found, profile)
    # upload_worker checks the binary before its first S3 call.
    artifact = upload_worker(source, bucket=found.bucket, region=found.region, profile=profile, kind=kind,
                             progress=progress)
    return Deployment(cluster=found, instances=instances, artifact=artifact, build=build, kind=kind,
                      dns_name=dns_name, args=tuple(args), env=dict(env or {}), secrets=parameters)


def _check_parameters(cluster: Cluster, parameters: Mapping[str, str], profile: str | None) -> None:
    """Every secret parameter exists (by name: no value is read); a worker would not start without."""
    aws = connect(region=cluster.region, profile=profile)
    with aws_errors(profile):
        types = parameter_types(aws.client("ssm"), list(parameters.values()))
    missing = [f"{name}={parameter}" for name, parameter in parameters.items() if parameter not in types]
    if missing:
        raise ConfigError(f"No such SSM parameter in {cluster.region}: {', '.join(missing)}. Create it first, e.g. "
                          f"`aws ssm put-parameter --region {cluster.region} --type SecureString --name "
                          f"{parameters[missing[0].partition('=')[0]]} --value file://secret.txt`.")
    for name, parameter in parameters.items():
        if types[parameter] != "SecureString":
            log.warning("%s: SSM parameter %s is a %s, not a SecureString: anyone who may read parameters sees it "
                        "in clear", name, parameter, types[parameter])


def install_deployment(deployment: Deployment, *, force_restart: bool = False, verify: bool = True,
                       point_latest_after: bool = True, profile: str | None = None,
                       timeout_s: int = ssm.EXECUTION_TIMEOUT_S) -> DeployReport:
    """ONE SendCommand installing the published worker on every instance (instances running
    that sha already restart nothing unless ``force_restart``); with ``verify`` a second command
    reads every worker's /info; with ``point_latest_after``, ``latest`` names the worker once all
    of that succeeded."""
    found, instances, sha = deployment.cluster, deployment.instances, deployment.artifact.sha256
    script = install_script(bucket=found.bucket, sha256=sha, region=found.region, args=deployment.args,
                            env=deployment.env, force=force_restart, kind=deployment.kind,
                            dns_name=deployment.dns_name, secrets=deployment.secrets)
    log.info("installing worker %s on %d instance(s) of %s", sha[:12], len(instances), found.name)
    s3, invocations = send_script(found, instances, script=script, comment=f"dfbench: deploy worker {sha[:12]}",
                                  timeout_s=timeout_s, profile=profile)
    # The outcome is the output's last line: where SSM kept only the beginning, or the install
    # failed, the end is read from S3 (only there, so a deploy that went well reads nothing).
    unsure = [i for i, inv in enumerate(invocations) if _outcome(inv, sha) == "failed"]
    with aws_errors(profile):
        for index, full in zip(unsure, ssm.read_output(s3, [invocations[i] for i in unsure], last_bytes=_TAIL_BYTES),
                               strict=True):
            invocations[index] = full
    names = {i.instance_id: i.name for i in found.instances}
    results = [InstanceDeploy(instance_id=inv.instance_id, name=names.get(inv.instance_id), status=inv.status,
                              status_details=inv.status_details, exit_code=inv.exit_code,
                              installed=_outcome(inv, sha), output_tail=inv.output_tail, output_url=inv.output_url)
               for inv in invocations]
    verified: bool | None = None
    problems: list[str] = []
    if verify and all(r.ok for r in results):
        commits, problems = _verify(found, instances, profile)
        results = [r.model_copy(update={"commit": commits.get(r.instance_id)}) for r in results]
        verified = not problems
    artifact = deployment.artifact
    report = DeployReport(cluster=found.name, region=found.region, sha256=sha, kind=deployment.kind,
                          uploaded=artifact.uploaded, artifact_url=artifact.url, build=deployment.build,
                          command_id=invocations[0].command_id, results=results, verified=verified, problems=problems)
    if report.ok and point_latest_after:
        # Only now: instances booting later (replacements, scale-out) install what `latest` names,
        # as root, so a build that failed to install or to answer stays out of it.
        point_latest(sha, bucket=found.bucket, region=found.region, profile=profile, args=deployment.args,
                     env=deployment.env, kind=deployment.kind, dns_name=deployment.dns_name,
                     secrets=deployment.secrets, package=deployment.build.package if deployment.build else None,
                     features=deployment.build.features if deployment.build else ())
    log.info("worker %s: %d installed, %d already running, %d failed%s", sha[:12],
             sum(r.installed == "installed" for r in results), sum(r.installed == "already" for r in results),
             len(report.failed), "" if verified is None else "; verified" if verified else "; NOT verified")
    return report


def deploy_worker(
    cluster: Cluster | str, *, binary: str | Path | None = None, build_dir: str | Path | None = None,
    args: Sequence[str] = (), env: Mapping[str, str] | None = None, force_restart: bool = False,
    verify: bool = True, region: str | None = None, profile: str | None = None,
    timeout_s: int = ssm.EXECUTION_TIMEOUT_S, progress: bool = True, worker_kind: str | None = None,
    secrets: Mapping[str, str] | None = None, package: str | None = None,
    features: Sequence[str] | str | None = None,
) -> DeployReport:
    """Install the worker on every instance of ``cluster`` (a Cluster, or a name looked up in
    ``region``) and run it as ``worker.service`` with ``args``, ``env`` and ``secrets``.

    ``env`` values are not secret: they travel in the SSM command's parameters and stay readable
    in ``worker.service`` and in the bucket's ``latest`` record. ``secrets`` name SSM parameters
    instead ({"API_TOKEN": "ssm:/dfbench/<cluster>/api-token"}, see :mod:`dfbench.worker.secrets`):
    each instance reads them at every start of the worker into a 0600 file under /run, and their
    values appear nowhere else.

    ``binary`` is the cross-compiled worker, or ``build_dir`` a datafusion-distributed checkout
    to build it in: its workspace package with a bin named ``worker`` (``package`` when several
    have one), with cargo ``features``; the package and features are recorded in ``latest``'s
    metadata, which runs copy into ``run.json``. The binary is published to the cluster's bucket
    by sha256 (uploaded only when absent), then ONE SendCommand installs it everywhere:
    instances that run that sha already restart nothing unless ``force_restart``. With
    ``verify``, a second command reads every worker's /info: one commit everywhere, and each
    worker knows every instance. Only when all of
    that succeeded is ``.dfbench/artifacts/worker/latest`` (what instances booting later install)
    pointed at the new binary; after a failure it still names the previous one.

    Failures on instances do not raise: the report says where (``report.ok``, ``report.failed``),
    and ``report.raise_for_failures()`` turns them into an error. Everything that can be checked
    locally (the binary and its kind, the secrets' names and parameters) is, before any AWS call;
    the cluster, its instances, args, env and that the secret parameters exist, before any upload.

    The worker's kind (:mod:`dfbench.worker.kinds`) is read from the binary, or ``worker_kind``
    when given: the current kind is handed the cluster's workers DNS name; the tag-discovery kind
    is refused while another cluster's live instances carry the tag it hard-codes."""
    parameters = secret_parameters(secrets, cluster=cluster.name if isinstance(cluster, Cluster) else cluster,
                                   env=env)
    kind = check_source(binary, build_dir, worker_kind, package=package, features=features)
    found, instances = find_cluster(cluster, region, profile)
    deployment = prepare_deployment(found, instances, binary=binary, build_dir=build_dir, kind=kind,
                                    worker_kind=worker_kind, args=args, env=env, secrets=parameters,
                                    profile=profile, progress=progress, package=package, features=features)
    return install_deployment(deployment, force_restart=force_restart, verify=verify, profile=profile,
                              timeout_s=timeout_s)


def _verify(cluster: Cluster, instances: Sequence[Instance],
            profile: str | None) -> tuple[dict[str, str], list[str]]:
    """Every worker's /info, read on its instance: the commit each one reports, and what is wrong
    with the cluster (see :func:`dfbench.worker.health.judge`)."""
    outputs = collect_output(cluster, instances, script=_INFO_SCRIPT, comment="dfbench: verify worker /info",
                             timeout_s=VERIFY_TIMEOUT_S, profile=profile)
    infos: dict[str, dict[str, Any] | str] = {}
    for out in outputs:
        if not out.ok:
            last = (out.stderr or out.stdout).strip().rpartition("\n")[2]
            infos[out.instance_id] = f"{out.status}: {last}"
            continue
        try:
            infos[out.instance_id] = json.loads(out.stdout)
        except ValueError:
            infos[out.instance_id] = f"not JSON: {out.stdout.strip()[:200]}"
    healths = health.judge(instances, infos)
    return {h.instance_id: h.commit for h in healths if h.commit}, health.problems_text(healths)


def collect_output(cluster: Cluster, instances: Sequence[Instance], *, script: str, comment: str,
                   timeout_s: int, profile: str | None) -> list[CommandOutput]:
    s3, invocations = send_script(cluster, instances, script=script, comment=comment, timeout_s=timeout_s,
                                  profile=profile)
    with aws_errors(profile):
        invocations = ssm.read_output(s3, invocations)
    names = {i.instance_id: i.name for i in cluster.instances}
    return [CommandOutput(instance_id=inv.instance_id, name=names.get(inv.instance_id), status=inv.status,
                          status_details=inv.status_details, exit_code=inv.exit_code, stdout=inv.stdout,
                          stderr=inv.stderr, complete=not (inv.stdout_cut or inv.stderr_cut),
                          output_url=inv.output_url)
            for inv in invocations]


def exec_command(cluster: Cluster | str, command: str | Sequence[str], *, region: str | None = None,
                 profile: str | None = None, timeout_s: int = EXEC_TIMEOUT_S) -> list[CommandOutput]:
    """Run ``command`` as root on every instance of ``cluster``: a string is shell text (pipes and
    all), a list is one command whose words are quoted. Returns each instance's whole stdout,
    stderr and exit code; a non-zero exit does not raise (exported as ``dfbench.exec``)."""
    text = command if isinstance(command, str) else shlex.join(command)
    if not text.strip():
        raise ConfigError("The command to run on the instances is empty.")
    found = _resolve(cluster, region, profile)
    return collect_output(found, _targets(found), script=text + "\n", comment=f"dfbench exec: {text}",
                          timeout_s=timeout_s, profile=profile)


def logs(cluster: Cluster | str, *, lines: int = 200, since: str | None = None, region: str | None = None,
         profile: str | None = None) -> list[CommandOutput]:
    """The last ``lines`` lines of ``worker.service``'s journal on every instance, from ``since``
    on when given (any time journalctl accepts: "-1h", "2026-01-31 12:00", "today")."""
    if not 1 <= lines <= _MAX_LOG_LINES:
        raise ConfigError(f"lines must be between 1 and {_MAX_LOG_LINES}, not {lines}.")
    if since is not None and not _SINCE.match(since):
        raise ConfigError(f"Not a time journalctl --since accepts: {since!r} (e.g. -1h, \"2026-01-31 12:00\", "
                          "today; letters, digits, spaces and : + . @ - only).")
    words = ["journalctl", "-u", "worker.service", "--no-pager", "-n", str(lines)]
    found = _resolve(cluster, region, profile)
    script = shlex.join(words + (["--since", since] if since else [])) + "\n"
    return collect_output(found, _targets(found), script=script, comment="dfbench logs: worker.service",
                          timeout_s=EXEC_TIMEOUT_S, profile=profile)
