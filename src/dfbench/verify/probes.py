"""The assumptions README lists as not verified against real AWS, as data: one ``Probe`` each, its
README words, and a small judge turning the run's facts (steps.py) into a row of the report.
A judge says holds null only when the run could not observe the thing (not on this account, or
not something a cheap run can see), and says why in the evidence."""

from __future__ import annotations

from collections.abc import Callable

from dfbench.aws.iam import VISIBILITY_TIMEOUT_S
from dfbench.verify.records import Facts, Judgement, Probe, Unobserved

_BOUND = VISIBILITY_TIMEOUT_S  # dfbench's retry bound for NotFound windows (network.py's is the same)


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _override(facts: Facts) -> str | None:
    """The endpoint override the run went to (AWS_ENDPOINT_URL: an emulator), None on AWS."""
    return facts.values.get("endpoint")


def _wording(name: str, code: str, needle: str) -> Callable[[Facts], Judgement]:
    def judge(facts: Facts) -> Judgement:
        answer = facts.need(name, "refusals")
        holds = answer["code"] == code and needle in answer["message"].lower()
        return (f"{answer['code'] or 'no error'}: {_short(answer['message'])}", holds,
                f"a real RunInstances; dfbench's emulator answers {code} with a message naming {needle!r}")
    return judge


def _dry_run_parameters(facts: Facts) -> Judgement:
    arch, io2 = facts.need("dry_run_arch", "account"), facts.need("dry_run_io2", "account")
    holds = arch["code"] != "DryRunOperation" and io2["code"] != "DryRunOperation"
    return (f"arm64 type on an x86_64 AMI: {arch['code']}; io2 without Iops: {io2['code']}", holds,
            "RunInstances with DryRun=True; DryRunOperation means the dry run checked only permissions")


def _no_default_vpc(facts: Facts) -> Judgement:
    defaults = facts.need("default_vpc", "account")
    dry = facts.need("dry_run", "account")
    if defaults:
        return (f"the account has a default VPC ({', '.join(defaults)}); dry run: {dry['code']}", None,
                "only an account without a default VPC shows this")
    return (f"no default VPC; a dry run without a subnet answered {dry['code']}: {_short(dry['message'])}",
            dry["code"] in ("DryRunOperation", "VPCIdNotSpecified", "MissingInput"),
            "doctor reads DryRunOperation as allowed and any other code as that code's problem")


def _quota(facts: Facts) -> Judgement:
    applied = facts.need("quota_applied", "account")
    value = facts.need("quota", "account")
    return (f"GetServiceQuota {applied}; dfbench's vcpu_quota read {value}", value is not None,
            ("quota L-1216C47A (Running On-Demand Standard instances); doctor asks GetAWSDefaultServiceQuota "
            "when GetServiceQuota has no value"))


def _simulator(facts: Facts) -> Judgement:
    simulated = facts.need("simulator", "account")
    caller = facts.need("caller", "account")
    if simulated["principal"] is None:
        return (f"no IAM principal for {caller} (root or federated)", None, "the simulator takes IAM users and roles")
    decisions = ", ".join(f"{a}={d}" for a, d in sorted(simulated["decisions"].items()))
    sso = "AWSReservedSSO_" in caller
    return (f"{simulated['principal']}: {decisions}", bool(simulated["decisions"]) if sso else None,
            "an SSO role's decisions are what this row is about" if sso else
            f"caller {caller} is not an SSO role: the simulator answered, but SSO roles and conditions on tags or "
            "resources stay unobserved")


def _tagged_bucket(facts: Facts) -> Judgement:
    failure = facts.errors.get("bucket_create")
    created = f"refused: {failure}" if failure else facts.need("bucket_create", "bucket")
    simulated = facts.need("simulator", "account")
    tag = simulated["decisions"].get("s3:TagResource")
    if created == "existed":
        return ("the bucket existed: no CreateBucket was sent", None, "only a run that creates the bucket sends one")
    if tag == "allowed" or tag is None:
        return (f"tagged CreateBucket: {created}; s3:TagResource {tag or 'not simulated'}", None,
                "the refusal shows only for a caller without s3:TagResource")
    refused = "AccessDenied" in str(created)
    return (f"tagged CreateBucket: {created}; s3:TagResource {tag}", refused,
            "a caller without s3:TagResource should be refused with AccessDenied")


def _local_zones(facts: Facts) -> Judgement:
    zones = facts.need("zones", "account")
    if not zones["opted_in"]:
        return ("the account has opted in to no Local or Wavelength Zone", None,
                "only an account opted in to one shows this")
    return ((f"opted in: {', '.join(zones['opted_in'])}; listed for LocationType availability-zone: "
            f"{', '.join(zones['offered_other']) or 'none'}"), bool(zones["offered_other"]),
            "DescribeInstanceTypeOfferings for t3.micro; dfbench keeps only ZoneType availability-zone")


def _spent_token(facts: Facts) -> Judgement:
    answer = facts.need("spent_token", "spent token")
    if answer["code"] == "IdempotentParameterMismatch":
        return ("error IdempotentParameterMismatch", None,
                "EC2 saw another request than the launch's under its token: the replay differed, nothing observed")
    if answer["code"]:
        return (f"error {answer['code']}", answer["code"] == "IdempotentInstanceTerminated",
                "dfbench moves to the token's next generation on IdempotentInstanceTerminated")
    states = answer["states"]
    live = {i: s for i, s in states.items() if s not in ("shutting-down", "terminated")}
    return (f"instances {states}", not live,
            "dfbench moves on when every instance returned is gone" + (
                f"; NEW instances were launched ({', '.join(live)}), terminated by the cleanup" if live else ""))


def _window(kind: str, service: str | None = None) -> Callable[[Facts], Judgement]:
    def judge(facts: Facts) -> Judgement:
        windows = [w for w in facts.need("windows", "watch").get(kind, [])
                   if service is None or w.service == service]
        if not windows:
            raise Unobserved(f"not observed: no {kind} was created and named{' in ' + service if service else ''}")
        worst = [w.seconds for w in windows if w.seconds is not None]
        holds = len(worst) == len(windows) and max(worst) < _BOUND
        return ("; ".join(w.text() for w in windows), holds,
                f"dfbench retries NotFound for up to {_BOUND} s; measured on the calls the run made")
    return judge


def _zone_young_vpc(facts: Facts) -> Judgement:
    age = facts.need("zone_vpc_age_s", "zone")
    return (f"CreateHostedZone on a VPC created at most {age:.1f} s before succeeded at the first attempt", True,
            "dfbench does not retry it; a failure would have failed the zone step")


def _ssm_terminated(facts: Facts) -> Judgement:
    seen = facts.need("ssm_terminated", "terminate")
    return ("; ".join(seen["statuses"]) or "nothing listed", seen["ended"],
            (f"followed for {seen['watched_s']:.0f} s after TerminateInstances; dfbench asks EC2 instead of "
            "waiting for SSM (deploy, exec, logs)"))


def _inside(facts: Facts) -> dict[str, str]:
    return dict(facts.need("inside", "command"))


def _first_boot(facts: Facts) -> Judgement:
    record = _inside(facts).get("first-read", "none")
    if record == "none":
        return ("the boot script left no record", None, "the user data did not run or could not write its file")
    outcome, started, done, tries = (record.split() + ["", "", "", ""])[:4]
    try:
        wait = float(done) - float(started)
    except ValueError:
        return (f"unreadable record {record!r}", None, "written by the user data")
    return ((f"first S3 read {outcome} {float(done):.0f} s after boot, {wait:.0f} s after the boot script's first "
            f"try ({tries} failed tries)"), outcome == "ok" and wait < 60,
            "dfbench's boot script retries its reads for about a minute (12 x 5 s)")


def _zone_inside(facts: Facts) -> Judgement:
    seen = _inside(facts)
    first = seen.get("dns-first")
    if first is None:
        return (f"never resolved (last answer {seen.get('dns-last', 'none')})", False,
                "getent ahostsv4 from the instance, through the VPC's resolver")
    return (f"resolved to {first.split()[-1]}", True, "getent ahostsv4 from the instance, through the VPC's resolver")


def _record_change(facts: Facts) -> Judgement:
    seen, insync = _inside(facts), facts.need("insync_s", "command")
    changed_at = facts.need("changed_at", "command")
    if "dns-changed" not in seen:
        return (f"the new address never reached the instance (INSYNC after {insync:.0f} s)", False,
                "UPSERT of the workers record, then getent every 0.5 s")
    reached = float(seen["dns-changed"]) - changed_at
    return (f"INSYNC after {insync:.0f} s; the instance resolved the new address {reached:.0f} s after the change",
            reached < 120, ("UPSERT at the run's clock, resolution at the instance's (both NTP-synchronised); an "
            "upper bound when the command started after the change"))


def _systemd_order(facts: Facts) -> Judgement:
    seen = _inside(facts)
    if "systemd-pod-ip" not in seen:
        return (seen.get("systemd", "no report"), None, "a oneshot unit with worker.service's ExecStartPre helpers")
    expected = facts.need("private_ip", "instance")
    return (f"POD_IP seen by ExecStart: {seen['systemd-pod-ip']}", seen["systemd-pod-ip"] == expected,
            f"written by the POD_IP helper in ExecStartPre; the instance's private address is {expected}")


def _systemd_escapes(facts: Facts) -> Judgement:
    seen = _inside(facts)
    if "systemd-secret" not in seen:
        return (seen.get("systemd", "no report"), None, "a oneshot unit with worker.service's secrets helper")
    expected = facts.need("secret_sha256", "parameters")
    return (f"sha256 of the value ExecStart saw: {seen['systemd-secret']}", seen["systemd-secret"] == expected,
            "a value holding \\ \" ` $ % and spaces, written by the secrets helper into secrets.env")


def _cli_secure_string(facts: Facts) -> Judgement:
    seen, expected = _inside(facts), facts.need("secret_sha256", "parameters")
    read = seen.get("inside-read", "no report")
    return (f"{seen.get('cli-version', 'unknown CLI')}: {_short(read)}", read == expected,
            "aws ssm get-parameter --with-decryption with the instance role, as the secrets helper runs it")


def _secret_policy(facts: Facts) -> Judgement:
    seen = _inside(facts)
    outside = seen.get("outside-read", "no report")
    observed = f"a parameter outside /dfbench/<cluster>/: {_short(outside)}"
    if override := _override(facts):
        return (observed, None, f"IAM's effect shows only on AWS, not at the endpoint override {override}")
    return (observed, outside.startswith("refused") and "AccessDenied" in outside,
            "the role's ssm:GetParameter statement names only its cluster's prefix")


def _ssm_instance_id(facts: Facts) -> Judgement:
    seen, expected = _inside(facts), facts.need("instance_id", "instance")
    value = seen.get("ssm-instance-id", "no report")
    return (f"AWS_SSM_INSTANCE_ID={value}", value == expected, f"the instance is {expected}")


def _presigned_post(facts: Facts) -> Judgement:
    post = _inside(facts).get("post", "no report")
    return (_short(post), post.split(" ")[0] in ("200", "201", "204"), "curl of dfbench's presigned POST form")


def _regional_endpoint(facts: Facts) -> Judgement:
    url = facts.need("post_url", "command")
    post = _inside(facts).get("post", "no report")
    if override := _override(facts):
        return (f"{url}: {_short(post, 120)}", None, f"the URL names the endpoint override {override}, not S3's")
    return (f"{url}: {_short(post, 120)}", post.split(" ")[0] in ("200", "201", "204"),
            "a 307 redirect (global endpoint, young bucket) would fail the POST")


def _etag(facts: Facts) -> Judgement:
    put_etag, put_md5 = facts.need("put_etag", "bucket"), facts.need("put_md5", "bucket")
    posted, posted_md5 = facts.need("posted_etag", "command"), facts.need("post_md5", "command")
    return (f"PutObject ETag {put_etag} (md5 {put_md5}); POSTed object ETag {posted} (md5 {posted_md5})",
            put_etag == put_md5 and posted == posted_md5, "the bucket's default encryption (SSE-S3 unless changed)")


def _not_cheap(what: str) -> Callable[[Facts], Judgement]:
    def judge(_: Facts) -> Judgement:
        return ("not probed", None, what)
    return judge


PROBES: list[Probe] = [
    Probe("arch-wording", "EC2 refuses an instance type of another architecture than the AMI's with "
          "InvalidParameterValue naming the architecture", "wording for an architecture mismatch",
          _wording("arch", "InvalidParameterValue", "architecture")),
    Probe("io2-wording", "EC2 refuses an io2 volume without Iops with InvalidParameterCombination naming iops",
          "io2 without Iops", _wording("io2", "InvalidParameterCombination", "iops")),
    Probe("dry-run-parameters", "a dry run reports parameter problems, not only permissions",
          "dry run reports parameter problems", _dry_run_parameters),
    Probe("dry-run-no-default-vpc", "a dry run in an account without a default VPC answers a code doctor reads",
          "account without a default VPC", _no_default_vpc),
    Probe("service-quota", "dfbench reads the on-demand vCPU quota of an account that never changed it",
          "answering `GetServiceQuota`", _quota),
    Probe("policy-simulator", "the policy simulator decides for the caller (SSO roles included)",
          "policy simulator's decisions", _simulator),
    Probe("tagged-create-bucket", "S3 refuses a tagged CreateBucket with AccessDenied without s3:TagResource",
          "tagged CreateBucket", _tagged_bucket),
    Probe("local-zones", "DescribeInstanceTypeOfferings lists opted-in Local Zones for LocationType "
          "availability-zone", "listing opted-in Local Zones", _local_zones),
    Probe("spent-launch-token", "RunInstances answers a spent token with its terminated instances or "
          "IdempotentInstanceTerminated, never new instances", "answers a spent token", _spent_token),
    *[Probe(f"notfound-{kind}" + (f"-{service}" if service else ""),
            f"a new {kind} is known{' to ' + service if service else ''} within {_BOUND} s of its create",
            "NotFound windows last", _window(kind, service))
      for kind, service in (("vpc", None), ("subnet", None), ("security-group", None), ("internet-gateway", None),
                            ("route-table", None), ("role", None), ("instance-profile", "iam"),
                            ("instance-profile", "ec2"))],
    Probe("zone-on-young-vpc", "Route 53 creates a private zone on a VPC seconds old (not retried)",
          "`CreateHostedZone` naming a VPC seconds old", _zone_young_vpc),
    Probe("ssm-terminated-instance", "SSM ends the invocation of an instance terminated during a command within "
          "3 minutes", "SSM lists invocations", _ssm_terminated),
    Probe("first-boot-credentials", "a new role's credentials serve a first boot's S3 read within a minute",
          "new role's credentials take to reach a first boot", _first_boot),
    Probe("zone-inside-vpc", "the private zone answers inside the VPC", "private zone answering inside the VPC",
          _zone_inside),
    Probe("record-change", "a changed record reaches an instance within 2 minutes (INSYNC, then the 10 s TTL)",
          "changed record reaches the workers", _record_change),
    Probe("systemd-order", "systemd reads an EnvironmentFile written by the ExecStartPre before it",
          "`ExecStartPre`/`EnvironmentFile` order", _systemd_order),
    Probe("current-worker", "the real current worker behaves as its stand-in", "real current worker's behaviour",
          _not_cheap("needs your worker build on a cluster: `dfbench provision --count 2`, `dfbench deploy`, "
                     "`dfbench health`")),
    Probe("cli-secure-string", "Amazon Linux 2023's AWS CLI reads a SecureString with the instance role",
          "reading the parameter with the instance role", _cli_secure_string),
    Probe("systemd-escapes", "systemd reads secrets.env's escaped values back whole", "escaped values of `secrets.env`",
          _systemd_escapes),
    Probe("secret-policy", "the instance role reads no parameter outside /dfbench/<cluster>/",
          "IAM statement's effect", _secret_policy),
    Probe("ssm-instance-id", "the agent gives Run Command scripts AWS_SSM_INSTANCE_ID",
          "`AWS_SSM_INSTANCE_ID` variable", _ssm_instance_id),
    Probe("presigned-post", "an instance uploads with dfbench's presigned POST", "presigned POSTs to real S3",
          _presigned_post),
    Probe("regional-endpoint", "the presigned URL names the bucket's regional endpoint, which answers a POST",
          "regional endpoint those URLs name", _regional_endpoint),
    Probe("etag-md5", "S3's ETag of a single-part object is its MD5 (PutObject and POST)", "ETag is its MD5",
          _etag),
    Probe("generators", "tpchgen-cli and tpcgen-cli run on Amazon Linux 2023", "generators on Amazon Linux 2023",
          _not_cheap("needs the generator shipped and run: `dfbench data generate --on-cluster --sf 0.01` on a "
                     "one-instance cluster")),
    Probe("generation-throughput", "on-cluster generation's throughput", "the throughput",
          _not_cheap("a benchmark, not a check: BENCHMARKS.md")),
    Probe("worker-restart", "a real worker restarts and sees its peers within the health wait (120 s)",
          "real worker takes to restart", _not_cheap("needs your worker build: `dfbench ab --cluster` prints "
                                                     "each switch's time")),
    Probe("zone-query-billing", "queries to a private zone from inside its VPC are billed",
          "queries from inside the VPC to a private zone are billed",
          _not_cheap("billing shows on the bill, a day later; not observable by a run")),
]
