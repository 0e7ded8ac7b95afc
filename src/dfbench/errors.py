"""One exception root for everything dfbench raises on purpose, and the one place where AWS and
botocore failures are translated into it.

The CLI prints ``str(error)`` for any ``DfbenchError`` and exits with ``error.exit_code``: the
message is the whole user interface of a failure, so every subclass says what to do next.

The tree (exit code 1 unless noted)::

    DfbenchError
    ├── ConfigError (2)          bad spec, argument or environment; before any AWS call
    ├── CredentialsError (3)     missing, expired or rejected AWS credentials
    ├── AwsError                 an AWS call failed in a way dfbench does not handle itself
    │   ├── PermissionDenied     the identity lacks an IAM permission
    │   └── QuotaError           an account quota; only an increase helps
    ├── CapacityError            no zone had capacity for the instance type
    ├── OwnershipError           a resource with dfbench's name that dfbench did not create
    ├── WaitTimeout              a bounded wait ran out (waiting.py)
    ├── ClusterNotFound          no cluster of that name in the region
    ├── BuildFailed              cargo could not build the worker
    ├── InstancesOffline         instances SSM cannot reach
    ├── InstancesGone            a command's targets are none, or shutting down / terminated
    ├── CommandFailed            an SSM command failed on some instances
    ├── WorkersDisagree          workers report different commits or peers after a deploy
    ├── WorkerUnreachable        a worker's HTTP API does not answer
    ├── TransportError           a way in (ssh, ssm plugin, relay) could not be opened
    │   └── HostKeyMismatch      an instance presented another host key than the pinned one
    ├── ClusterUnhealthy         a worker's /info shows a problem; nothing was run
    ├── QueryFailed              a query's statement failed on the worker
    └── GitHubError              a GitHub REST call failed (after its rate-limit waits)

AWS error codes are mapped to these in one place, :func:`translate` (used through
:func:`aws_errors`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


class DfbenchError(Exception):
    """Root of every error dfbench raises deliberately."""

    exit_code = 1


class ConfigError(DfbenchError):
    """Invalid spec, argument or environment; raised before any AWS call."""

    exit_code = 2


class CredentialsError(DfbenchError):
    """AWS credentials are missing, expired or rejected."""

    exit_code = 3


class AwsError(DfbenchError):
    """An AWS API call failed in a way dfbench does not handle itself."""

    def __init__(self, operation: str, code: str, message: str, hint: str = "") -> None:
        self.operation = operation
        self.code = code
        self.aws_message = message
        text = f"AWS {operation} failed: {code}: {message}"
        super().__init__(f"{text}\n  {hint}" if hint else text)


class PermissionDenied(AwsError):
    """The caller's identity lacks an IAM permission."""


class QuotaError(AwsError):
    """An account quota (service limit) stops the operation; only a quota increase helps."""

    def __init__(self, operation: str, code: str, message: str, quota: str) -> None:
        self.quota = quota
        super().__init__(
            operation,
            code,
            message,
            hint=f"Quota reached: {quota}. Request an increase in the Service Quotas console "
            "(or use fewer/smaller instances), then run the same command again.",
        )


class CapacityError(DfbenchError):
    """EC2 has no capacity for the instance type in the zone(s) tried."""

    def __init__(self, zones: list[str], instance_type: str, detail: str = "") -> None:
        self.zones = zones
        self.instance_type = instance_type
        super().__init__(
            f"No capacity for {instance_type} in {', '.join(zones)}"
            + (f" ({detail})" if detail else "")
            + ". Try again later, choose another --instance-type or --region, "
            "or tear the cluster down so it can be recreated in another zone."
        )


class OwnershipError(DfbenchError):
    """A resource with the name dfbench needs exists but is not dfbench's (or not accessible)."""


class WaitTimeout(DfbenchError):
    """Something AWS does asynchronously did not finish within its deadline."""

    def __init__(self, what: str, seconds: float, last_seen: str = "") -> None:
        self.what = what
        self.seconds = seconds
        super().__init__(
            f"Timed out after {seconds:.0f}s waiting for {what}"
            + (f" (last seen: {last_seen})" if last_seen else "")
            + ". Run the same command again to continue from where it stopped."
        )


class ClusterNotFound(DfbenchError):
    def __init__(self, name: str, region: str) -> None:
        self.name = name
        self.region = region
        super().__init__(
            f"No dfbench cluster named {name!r} in {region}. "
            f"Create it with `dfbench provision --cluster {name} --region {region}`."
        )


class BuildFailed(DfbenchError):
    """The worker's build command exited non-zero; ``tail`` holds the last lines it printed."""

    def __init__(self, command: list[str], returncode: int, tail: list[str], repo_dir: str) -> None:
        self.command = command
        self.returncode = returncode  # not ``exit_code``: that one is dfbench's own, for the CLI
        self.tail = tail
        shown = " ".join(command)
        super().__init__(
            f"`{shown}` failed in {repo_dir} (exit code {returncode}). Last lines of its output:\n"
            + "\n".join(f"  {line}" for line in tail)
            + f"\nFix the build (run `{shown}` there to see everything), then try again."
        )


class InstancesOffline(DfbenchError):
    """Instances that never reported PingStatus Online to SSM in time: no command can reach them.
    ``offline`` maps each instance id to what SSM last said ("ConnectionLost", "not registered")."""

    def __init__(self, offline: dict[str, str], seconds: float) -> None:
        self.offline = dict(offline)
        self.seconds = seconds
        listed = ", ".join(f"{instance_id} ({state})" for instance_id, state in self.offline.items())
        super().__init__(
            f"{len(self.offline)} instance(s) not online in SSM after {seconds:.0f}s: {listed}.\n"
            "  Likely causes: the SSM agent is not running on the instance (check its boot log with "
            "`aws ec2 get-console-output --instance-id ID`); the instance has no route to the SSM "
            "endpoints (ssm, ssmmessages, ec2messages over HTTPS: a public IP and an internet gateway, "
            "or VPC endpoints); or its instance profile lacks the AmazonSSMManagedInstanceCore policy.\n"
            "  Fix that (or give new instances a few more minutes), then run the same command again."
        )


class InstancesGone(DfbenchError):
    """A command's targets, as EC2 reports them, are none at all or instances shutting down or
    terminated: SSM could only time out on them (about 27 minutes), so nothing waits. ``gone``
    maps each such instance id to its EC2 state ("not found" once EC2 forgot it); empty when the
    cluster's tag reaches no live instance at all."""

    def __init__(self, cluster: str, region: str, gone: dict[str, str]) -> None:
        self.cluster, self.region, self.gone = cluster, region, dict(gone)
        again = f"`dfbench provision --cluster {cluster} --region {region}`"
        if self.gone:
            listed = ", ".join(f"{instance_id} ({state})" for instance_id, state in self.gone.items())
            text = (f"SSM cannot reach {len(self.gone)} instance(s) of cluster {cluster!r} that EC2 reports gone: "
                    f"{listed}")
        else:
            text = f"The tag dfbench:cluster={cluster} reaches no pending or running instance in {region}"
        super().__init__(f"{text}; nothing was waited for. {again} replaces them, then run the same command again.")


class CommandFailed(DfbenchError):
    """A remote command (SSM Run Command) did not succeed on every instance.

    The attributes describe the first failed instance; the message lists every failed one. The
    remote exit code is ``returncode``: ``exit_code`` is dfbench's own, for the CLI."""

    def __init__(self, instance_id: str, returncode: int | None, output_tail: str, *, status: str = "Failed",
                 failed: tuple[str, ...] = (), details: str = "") -> None:
        self.instance_id = instance_id
        self.returncode = returncode
        self.output_tail = output_tail
        self.status = status
        self.failed = failed or (instance_id,)
        if not details:
            code = "no exit code" if returncode is None else f"exit code {returncode}"
            details = f"  {instance_id}: {status} ({code})\n" + "\n".join(
                f"    | {line}" for line in output_tail.splitlines())
        super().__init__(
            f"Remote command failed on {len(self.failed)} instance(s): {', '.join(self.failed)}.\n{details}\n"
            "Fix the cause shown above (full output at the S3 URLs), then run the same command again."
        )


class WorkersDisagree(DfbenchError):
    """A deploy installed the worker on every instance, but the workers' ``/info`` does not show
    one cluster running one build; ``problems`` says where."""

    def __init__(self, cluster: str, problems: list[str]) -> None:
        self.cluster = cluster
        self.problems = list(problems)
        super().__init__(
            f"The worker is installed on every instance of cluster {cluster!r}, but its /info shows "
            f"{len(self.problems)} problem(s):\n" + "\n".join(f"  {problem}" for problem in self.problems)
            + f"\nRead the workers' logs (`dfbench logs --cluster {cluster}`), fix the cause, then run the same "
            "deploy again: it checks again without reinstalling what is in place."
        )


class WorkerUnreachable(DfbenchError):
    """No benchmark worker answers at the URL (or what answers is not one)."""

    LOCAL_HINT = "start one with `dfbench worker` (or `make worker`), or check the tunnel / URL"

    def __init__(self, url: str, detail: str = "", hint: str = LOCAL_HINT) -> None:
        self.url = url
        self.detail = detail
        super().__init__(f"No worker at {url}" + (f" ({detail})" if detail else "") + f": {hint}.")


class TransportError(DfbenchError):
    """The way to a worker (SSH forward, Session Manager plugin, SSM relay) could not be opened
    or broke; ``kind`` names the transport, the message what to do."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


class HostKeyMismatch(TransportError):
    """An SSH server presented a host key other than the one pinned for it: possibly a different
    machine answering at that address. Never connected through."""

    def __init__(self, host: str, alias: str, expected: str, presented: str, known_hosts: str) -> None:
        self.host, self.alias, self.expected, self.presented = host, alias, expected, presented
        super().__init__(
            "ssh",
            f"Host key of {alias} ({host}) changed: pinned {expected}, presented {presented}. Refusing to "
            f"connect. If the instance was replaced, remove its line from {known_hosts} and retry.",
        )


class ClusterUnhealthy(DfbenchError):
    """Workers of a cluster disagree or miss peers; ``problems`` maps instance id to what is wrong."""

    def __init__(self, cluster: str, problems: dict[str, str], table: str) -> None:
        self.cluster, self.problems = cluster, problems
        super().__init__(
            f"Cluster {cluster} is not ready to benchmark:\n{table}\n"
            f"`dfbench deploy --cluster {cluster} --binary <worker>` installs one build on every instance and "
            f"restarts it (every worker then finds the others); `dfbench logs --cluster {cluster}` shows why a "
            "worker fails. Nothing was run.")


class QueryFailed(DfbenchError):
    """The worker answered a query with an error; ``text`` is the worker's message."""

    def __init__(self, text: str, status: int = 500) -> None:
        self.text = text
        self.status = status
        super().__init__(text)


class GitHubError(DfbenchError):
    """A GitHub REST API call failed; ``status`` is the HTTP status (0 when nothing answered)."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        self.method = method
        self.path = path
        self.status = status
        super().__init__(f"GitHub {method} {path} failed: " + (f"HTTP {status}: " if status else "") + message)


# Error codes by what they mean to the user. Codes vary across services for the same thing
# (STS says InvalidClientTokenId, EC2 says AuthFailure), hence the sets.
_CREDENTIAL_CODES = {
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "AuthFailure",
    "InvalidAccessKeyId",
    "RequestExpired",
}
_PERMISSION_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}
# https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html
_QUOTAS = {
    "VcpuLimitExceeded": "EC2 'Running On-Demand instances' vCPU quota for this instance family",
    "InstanceLimitExceeded": "EC2 running-instances limit for this instance type",
    "MaxSpotInstanceCountExceeded": "EC2 'All Standard Spot Instance Requests' vCPU quota",
    "VpcLimitExceeded": "VPCs per region (default 5)",
    "InternetGatewayLimitExceeded": "internet gateways per region",
    "SecurityGroupLimitExceeded": "security groups per VPC",
    "RulesPerSecurityGroupLimitExceeded": "rules per security group",
    "AddressLimitExceeded": "Elastic IP addresses per region",
    "TooManyBuckets": "S3 buckets per account",
    "LimitExceeded": "IAM entities (roles / instance profiles) per account",
    # https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/DNSLimitations.html
    "TooManyHostedZones": "Route 53 hosted zones per account (default 500)",
}


def error_code(error: BaseException) -> str:
    """The AWS error code of a ClientError, or '' for anything else."""
    from botocore.exceptions import ClientError  # loaded already wherever an AWS call failed

    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


def credentials_error(detail: str, profile: str | None = None) -> CredentialsError:
    """An actionable message naming the auth method in use and how to fix it. An explicit
    ``profile`` (--profile) comes first: botocore then ignores credentials in the environment."""
    explicit = bool(profile)
    profile = profile or os.environ.get("AWS_PROFILE")
    if os.environ.get("AWS_VAULT") and not explicit:
        fix = (
            f"aws-vault session for {os.environ['AWS_VAULT']!r} is not valid: re-run the command "
            "through your wrapper, e.g. `aws-vault exec <profile> -- make provision`."
        )
    elif os.environ.get("AWS_ACCESS_KEY_ID") and not explicit:
        fix = (
            "Environment credentials (AWS_ACCESS_KEY_ID) are set but not accepted: export fresh "
            "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary "
            "credentials), or unset them to use a profile."
        )
    elif profile:
        fix = (
            f"Profile {profile!r}: run `aws sso login --profile {profile}` "
            f"(or fix it in ~/.aws/config), then check with "
            f"`aws sts get-caller-identity --profile {profile}`."
        )
    else:
        fix = (
            "No credentials found. Use one of: an SSO profile (`aws sso login --profile P` and "
            "`--profile P` or AWS_PROFILE=P), a wrapper (`aws-vault exec P -- make provision`), "
            "or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment."
        )
    return CredentialsError(f"AWS credentials problem: {detail}\n  {fix}")


def translate(error: Exception, profile: str | None = None) -> Exception:
    """Map a botocore failure to the DfbenchError a user should see; other errors pass through."""
    # Imported here, not at the top: the exception tree is imported by every command, and
    # botocore costs more than the whole of `dfbench --help`.
    import botocore.exceptions

    if isinstance(error, botocore.exceptions.ClientError):
        code = error_code(error)
        message = str(error.response.get("Error", {}).get("Message", ""))
        operation = error.operation_name
        if code in _CREDENTIAL_CODES:
            return credentials_error(f"{code} from {operation}: {message}", profile)
        if code in _PERMISSION_CODES:
            return PermissionDenied(
                operation,
                code,
                message,
                hint="Your AWS identity lacks this permission; use a role that allows it.",
            )
        if code in _QUOTAS:
            return QuotaError(operation, code, message, _QUOTAS[code])
        return AwsError(operation, code, message)
    if isinstance(
        error,
        botocore.exceptions.NoCredentialsError
        | botocore.exceptions.PartialCredentialsError
        | botocore.exceptions.ProfileNotFound
        | botocore.exceptions.TokenRetrievalError
        | botocore.exceptions.SSOError
        | botocore.exceptions.CredentialRetrievalError,
    ):
        return credentials_error(str(error), profile)
    if isinstance(error, botocore.exceptions.NoRegionError):
        return ConfigError("No AWS region: pass --region or set AWS_REGION.")
    if isinstance(error, botocore.exceptions.EndpointConnectionError | botocore.exceptions.ConnectTimeoutError):
        return DfbenchError(
            f"Cannot reach AWS: {error}. Check your network (and AWS_ENDPOINT_URL if it is set)."
        )
    return error


@contextmanager
def aws_errors(profile: str | None = None) -> Iterator[None]:
    """Translate botocore failures escaping the block into DfbenchError subclasses."""
    try:
        yield
    except DfbenchError:
        raise
    except Exception as error:
        mapped = translate(error, profile)
        if mapped is error:
            raise
        raise mapped from error
