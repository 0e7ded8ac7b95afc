"""How many AWS API calls opening the way to a cluster costs, per transport, for 3 and 12 instances.

Run with ``make bench-connect`` (``.venv/bin/python benchmarks/connect_calls.py``). For each size it
provisions a cluster on moto (not measured) and opens :class:`dfbench.ClusterConnection` (one
transport per instance, every worker's ``/info`` judged, the coordinator's transport kept), then
closes it. Scenarios:

* ssh, first contact: host keys read from each instance's console (GetConsoleOutput), a key
  pushed to each (SendSSHPublicKey); a real sshd on loopback stands in for the instances
  (``dfbench_testing.Sshd``, ``InstanceSide``), dfbench's local worker for their workers.
* ssh, host keys pinned: the same cluster again (no console reads).
* relay: every /info is an SSM command run here by ``dfbench_testing.LocalAgent``.

Counts only; moto's wall time says nothing about AWS's. Each GetCommandInvocation poll is one
call, so the relay's count depends on how long the command takes: measured with the real poll
intervals (``DFBENCH_TIME_SCALE=1``) against commands that run here in milliseconds, so a floor
for AWS, where a command takes a second or more. Shown, not checked.
Exits 1 when the ssh calls are not exactly the per-instance ones stated above. The table is
written into BENCHMARKS.md between the connect markers.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from datetime import UTC, datetime

# benchmarks/ is on sys.path: scripts run as files
from emulator import emulated_aws
from report import write_section

COMMAND = "make bench-connect"
SIZES = (3, 12)
SCENARIOS = ("ssh, first contact", "ssh, host keys pinned", "relay")


def measure() -> dict[tuple[str, int], Counter[str]]:
    import boto3

    import dfbench
    from dfbench.aws.ssm import OUTPUT_PREFIX
    from dfbench.worker.process import LocalWorkerProcess
    from dfbench_testing import Faults, InstanceSide, LaunchTokens, LocalAgent, MotoGaps, Recorder, Sshd, hooked

    counts: dict[tuple[str, int], Counter[str]] = {}
    with emulated_aws() as (server, workdir), Sshd(workdir / "sshd") as sshd:
        for n in SIZES:
            server.reset()
            recorder, faults = Recorder(), Faults()
            with hooked(MotoGaps(server.url).hook, LaunchTokens().hook, recorder.hook, faults.hook,
                        InstanceSide(sshd).hook):
                cluster = dfbench.provision(dfbench.ClusterSpec(name=f"connect{n}", instance_count=n,
                                                                ssh_ingress_cidrs=("127.0.0.1/32",)))
                # The instances' public addresses are this machine's, where sshd listens.
                cluster = cluster.model_copy(update={"instances": [
                    i.model_copy(update={"public_ip": "127.0.0.1"}) for i in cluster.instances]})
                peers = ",".join(f"http://{i.private_ip}:9001" for i in cluster.instances)
                with LocalWorkerProcess(args=["--worker-urls", peers]) as worker:
                    assert worker.url is not None
                    port = int(worker.url.rsplit(":", 1)[1])
                    ssh = dict(via="ssh", ssh_port=sshd.port, ssh_user=sshd.user, worker_port=port,
                               known_hosts=workdir / f"known_hosts{n}")
                    for scenario in SCENARIOS[:2]:
                        recorder.clear()
                        with dfbench.ClusterConnection(cluster, **ssh):  # type: ignore[arg-type]
                            pass
                        counts[(scenario, n)] = Counter(f"{c.service}:{c.operation}" for c in recorder.calls)
                    # moto builds its SSM backend at the first SSM call: not inside a relayed /info.
                    boto3.client("ssm").list_commands()
                    with LocalAgent(faults, s3=boto3.client("s3"), bucket=cluster.bucket, prefix=OUTPUT_PREFIX,
                                    port_map={9000: port}):
                        recorder.clear()
                        # The relay's polls at their real intervals (the command here takes what
                        # bash and curl take, far less than on AWS).
                        os.environ["DFBENCH_TIME_SCALE"] = "1"
                        with dfbench.ClusterConnection(cluster, via="relay"):
                            pass
                        os.environ["DFBENCH_TIME_SCALE"] = "0.001"
                        counts[("relay", n)] = Counter(f"{c.service}:{c.operation}" for c in recorder.calls)
    return counts


def problems(counts: dict[tuple[str, int], Counter[str]]) -> list[str]:
    found = []
    for n in SIZES:
        first, pinned = counts[(SCENARIOS[0], n)], counts[(SCENARIOS[1], n)]
        if first != Counter({"ec2:GetConsoleOutput": n, "ec2-instance-connect:SendSSHPublicKey": n}):
            found.append(f"ssh first contact, N={n}: {dict(first)}")
        if pinned != Counter({"ec2-instance-connect:SendSSHPublicKey": n}):
            found.append(f"ssh pinned, N={n}: {dict(pinned)}")
        if counts[("relay", n)]["ssm:SendCommand"] != n:
            found.append(f"relay, N={n}: {counts[('relay', n)]['ssm:SendCommand']} SendCommands for {n} instances")
    return found


def render(counts: dict[tuple[str, int], Counter[str]]) -> str:
    lines = [
        "## AWS API calls to open the way to a cluster",
        "",
        (f"Command: `{COMMAND}` (`benchmarks/connect_calls.py`), {datetime.now(UTC).date().isoformat()}, against moto "
        "on loopback; one `ClusterConnection` per row: a transport to every instance, each worker's `/info` judged, "
        "the coordinator's transport kept. Everything else a run sends goes to the worker, not to AWS (except the "
        "relay's commands)."),
        "",
        "| transport | N | calls | per operation |",
        "|---|---:|---:|---|",
    ]
    for scenario in SCENARIOS:
        for n in SIZES:
            calls = counts[(scenario, n)]
            detail = ", ".join(f"`{op}` {count}" for op, count in sorted(calls.items()))
            lines.append(f"| {scenario} | {n} | {sum(calls.values())} | {detail} |")
    lines += [
        "",
        ("One call per instance and transport, by design: each instance's own way in is opened and used, so the "
        "check also proves that every worker can be reached. The relay adds one GetCommandInvocation per poll, "
        "polled at its real intervals (first after 0.2 s, then growing to 1 s) against commands that finish here "
        "in milliseconds: a floor, since on AWS a command takes a second or more, so more polls."),
    ]
    return "\n".join(lines)


def main() -> int:
    counts = measure()
    body = render(counts)
    print(body)
    found = problems(counts)
    write_section("connect", body)
    for problem in found:
        print(f"unexpected: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
