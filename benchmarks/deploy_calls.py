"""How many AWS API calls a worker deploy makes, for clusters of 3 and 12 instances, against moto.

Run with ``make bench-deploy`` (``.venv/bin/python benchmarks/deploy_calls.py``). For each size it
provisions a cluster (not measured), then measures a first deploy (the binary is uploaded, every
instance installs it) and a second deploy of the same binary (nothing uploaded, nothing to do
on the instances), both with the /info check. It prints a markdown table and writes it into
BENCHMARKS.md between the deploy markers, leaving the rest of the file as it is.

moto runs no SSM command: ``dfbench_testing.FakeSsm`` answers for the agents, with the same
script for every size (online at once; the install listed as nothing yet, in progress, done;
the check done at once). Exits 1 when a deploy sends more than the two SendCommands or when the
calls differ between the sizes, so the script doubles as a check.
"""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

# benchmarks/ is on sys.path: scripts run as files
from emulator import emulated_aws
from report import write_section

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
COMMAND = "make bench-deploy"
START, END = "<!-- deploy:start -->", "<!-- deploy:end -->"
SIZES = (3, 12)
BINARY_BYTES = 1024 * 1024
SCENARIOS = ("first deploy (upload, install)", "same binary again (nothing to do)")


def measure() -> dict[tuple[str, int], Counter[str]]:
    import dfbench
    from dfbench.aws.ssm import OUTPUT_PREFIX
    from dfbench.worker.build import check_binary
    from dfbench.worker.scripts import INSTALLED_MARKER
    from dfbench.worker_deploy import deploy_worker
    from dfbench_testing import FakeSsm, Faults, LaunchTokens, MotoGaps, Recorder, Run, hooked, worker_binary

    counts: dict[tuple[str, int], Counter[str]] = {}
    with emulated_aws() as (server, workdir):
        binary = worker_binary(workdir / "worker", BINARY_BYTES)
        sha = check_binary(binary)
        for n in SIZES:
            server.reset()
            recorder, faults = Recorder(), Faults()
            with hooked(MotoGaps(server.url).hook, LaunchTokens().hook, recorder.hook, faults.hook):
                cluster = dfbench.provision(dfbench.ClusterSpec(name=f"deploy{n}", instance_count=n))
                ids = [i.instance_id for i in cluster.instances]
                # Every worker knows every instance, on one commit: the check passes.
                info = json.dumps({"worker_urls": [f"http://{i.private_ip}:9001" for i in cluster.instances],
                                   "git_commit_hash": "4f0c2a9e", "build_time_utc": "", "errors": []})
                fake = FakeSsm(faults, bucket=cluster.bucket, prefix=OUTPUT_PREFIX)
                outputs = (f"{INSTALLED_MARKER}{sha}\n", f"dfbench: worker {sha} already installed and active\n")
                for scenario, stdout in zip(SCENARIOS, outputs, strict=True):
                    fake.script(ping=dict.fromkeys(ids, "Online"),
                                polls=[{}, dict.fromkeys(ids, Run("InProgress")),
                                       dict.fromkeys(ids, Run("Success", 0, stdout))],
                                then=[[dict.fromkeys(ids, Run("Success", 0, info))]])
                    recorder.clear()
                    report = deploy_worker(cluster.name, binary=binary, progress=False)
                    if not report.ok:
                        raise SystemExit(f"deploy to {n} instances failed: {report}")
                    counts[scenario, n] = Counter(f"{c.service}:{c.operation}" for c in recorder.calls)
    return counts


def _table(headers: list[str], lines: list[list[str]]) -> str:
    rule = ["---"] + ["---:"] * (len(headers) - 1)
    return "\n".join(["| " + " | ".join(headers) + " |", "| " + " | ".join(rule) + " |"]
                     + ["| " + " | ".join(line) + " |" for line in lines])


def section(counts: dict[tuple[str, int], Counter[str]]) -> str:
    lo, hi = SIZES
    summary = _table(
        ["Scenario", f"API calls, N={lo}", f"API calls, N={hi}", f"SendCommand, N={lo}", f"SendCommand, N={hi}"],
        [[s, *(str(sum(counts[s, n].values())) for n in SIZES), *(str(counts[s, n]["ssm:SendCommand"]) for n in SIZES)]
         for s in SCENARIOS])
    ops = sorted({op for c in counts.values() for op in c})
    per_op = _table(["Operation", *(f"{s.split(' (')[0]}, N={n}" for s in SCENARIOS for n in SIZES)],
                    [[f"`{op}`", *(str(counts[s, n][op]) for s in SCENARIOS for n in SIZES)] for op in ops])
    same = all(counts[s, lo] == counts[s, hi] for s in SCENARIOS)
    today = datetime.now(UTC).date().isoformat()
    return "\n".join([
        START,
        "## AWS API calls per worker deploy",
        "",
        f"Produced by `{COMMAND}` (`benchmarks/deploy_calls.py`) on {today}, all numbers from one run.",
        "",
        ("`dfbench.deploy_worker(cluster_name, binary=...)` (the cluster looked up by name, as `dfbench deploy` does) "
        "with the /info check, against moto in server mode, "
        f"on clusters of {lo} and {hi} instances (provisioning not counted), with a {BINARY_BYTES // 1024} KiB "
        "stand-in binary. Every call dfbench makes is counted once (botocore retries are not; each page of a "
        "paginated read is a call). moto runs no SSM command, so the SSM agents' answers are scripted, the same "
        "for both sizes: online at once, the install listed as nothing yet → in progress → done, the check done "
        "at once. On AWS the number of status polls depends on how long the install takes, not on N; above 50 "
        "instances a poll (and the online check) takes one call per 50 instances. The /info check is a command "
        "of its own, so it checks again that the instances are online (the second `DescribeInstanceInformation`)."),
        "",
        summary,
        "",
        (f"Calls grow with N: {'no, identical per operation for both sizes' if same else '**yes**'}. "
        "The upload is one `PutObject` below 16 MiB and multipart above (parts by binary size, not by N); "
        "the second deploy uploads nothing (`HeadObject` finds the artifact) and only rewrites the 65-byte "
        "`latest` pointer."),
        "",
        per_op,
        END,
    ])


def main() -> int:
    for name in ("werkzeug", "botocore", "boto3", "urllib3", "moto"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    logging.getLogger("dfbench").setLevel(logging.ERROR)
    counts = measure()
    text = section(counts)
    print(text.removeprefix(START + "\n").removesuffix("\n" + END))
    if write_section("deploy", text.removeprefix(START).removesuffix(END)):
        print(f"\nwrote {BENCHMARKS_MD.relative_to(ROOT)}", file=sys.stderr)
    failures = [f"{s}, N={n}: {c['ssm:SendCommand']} SendCommand" for (s, n), c in counts.items()
                if c["ssm:SendCommand"] != 2]
    failures += [f"{s}: calls differ between N={SIZES[0]} and N={SIZES[1]}" for s in SCENARIOS
                 if counts[s, SIZES[0]] != counts[s, SIZES[1]]]
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
