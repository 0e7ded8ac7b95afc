"""How many AWS API calls dfbench makes per command, measured against moto in server mode.

Run with ``make bench-api-calls`` (``.venv/bin/python benchmarks/api_calls.py``). For clusters of
3 and 12 instances it measures a cold provision, a no-op re-provision, a plan and a teardown (and,
on the 3-instance cluster, a scale-up 3 -> 5 and a scale-down 5 -> 2 before the teardown). It
prints a markdown table and writes it into BENCHMARKS.md between the api-calls markers.

Every call dfbench makes is counted once (botocore retries are not counted; each page of a
paginated read is a call). Mutating means anything but Describe*/Get*/List*/Head*. The wall times
are against the local emulator, so they say nothing about how long the same commands take on AWS.

Exits 1 when the no-op re-provision made a mutating call, so the script doubles as a check. It
never asserts on timing.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

# benchmarks/ is on sys.path: scripts run as files
from emulator import emulated_aws
from report import write_section

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
COMMAND = "make bench-api-calls"
START, END = "<!-- api-calls:start -->", "<!-- api-calls:end -->"
SIZES = (3, 12)
SCALE_STEPS = (5, 2)  # on the N=3 cluster, before its teardown
TIME_SCALE = "0.001"
# Variables that would point dfbench at another account, bucket or credential source.


@dataclass
class Row:
    scenario: str
    n: str
    calls: int
    mutating: int
    seconds: float
    operations: Counter[str]  # every call, "service:Operation" -> count
    mutating_operations: Counter[str]


def _quiet() -> None:
    for name in ("werkzeug", "botocore", "boto3", "urllib3", "moto"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    logging.getLogger("dfbench").setLevel(logging.ERROR)


def _measure(recorder, scenario: str, n: str, command: Callable[[], object]) -> Row:  # type: ignore[no-untyped-def]
    recorder.clear()
    started = time.perf_counter()
    command()
    seconds = time.perf_counter() - started
    ops = Counter(f"{c.service}:{c.operation}" for c in recorder.calls)
    mutating_ops = Counter(f"{c.service}:{c.operation}" for c in recorder.mutating)
    return Row(scenario, n, len(recorder.calls), len(recorder.mutating), seconds, ops, mutating_ops)


def measure() -> list[Row]:
    import dfbench
    from dfbench import ClusterSpec
    from dfbench.checkup import doctor
    from dfbench_testing import LaunchTokens, MotoGaps, PolicySimulator, Recorder, ServiceQuotas, hooked

    rows: list[Row] = []
    with emulated_aws(TIME_SCALE) as (server, _):
        # Unmeasured: moto builds each service's backend on first use, which would otherwise
        # land in the first measured command's wall time.
        dfbench.plan(ClusterSpec(name="warmup", instance_count=1))
        for n in SIZES:
            server.reset()
            recorder = Recorder()
            # A fresh MotoGaps per reset: its bucket-policy store must be as empty as the account.
            # moto has neither EC2's quotas nor IAM's policy simulator: the harness answers for them.
            with hooked(MotoGaps(server.url).hook, LaunchTokens().hook, ServiceQuotas().hook, PolicySimulator().hook,
                        recorder.hook):
                spec = ClusterSpec(name=f"bench{n}", instance_count=n)
                label = str(n)
                rows.append(_measure(recorder, "cold provision", label, lambda s=spec: dfbench.provision(s)))
                rows.append(_measure(recorder, "no-op re-provision", label, lambda s=spec: dfbench.provision(s)))
                rows.append(_measure(recorder, "plan (nothing to change)", label, lambda s=spec: dfbench.plan(s)))
                rows.append(_measure(recorder, "doctor (of the running cluster)", label, lambda s=spec: doctor(s)))
                rows.append(_measure(recorder, "clusters (the one running)", label, dfbench.clusters))
                count = n
                if n == SIZES[0]:
                    for target in SCALE_STEPS:
                        scaled = spec.model_copy(update={"instance_count": target})
                        rows.append(_measure(recorder, f"scale {count} → {target}", f"{count}→{target}",
                                             lambda s=scaled: dfbench.provision(s)))
                        count = target
                scenario = "teardown" if count == n else f"teardown (of the {count} left after scaling)"
                rows.append(_measure(recorder, scenario, label, lambda name=spec.name: dfbench.teardown(name)))
                rows.append(_measure(recorder, "sweep (nothing left to take)", label,
                                     lambda: dfbench.sweep(older_than=timedelta(0))))
    return rows


def _row(rows: list[Row], scenario: str, n: int) -> Row:
    return next(r for r in rows if r.scenario == scenario and r.n == str(n))


def _table(headers: list[str], lines: list[list[str]], right: set[int]) -> str:
    rule = ["---:" if i in right else "---" for i in range(len(headers))]
    out = ["| " + " | ".join(headers) + " |", "| " + " | ".join(rule) + " |"]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)


def summary_table(rows: list[Row]) -> str:
    return _table(
        ["Scenario", "N", "API calls", "Mutating calls", "Wall s (emulator, not AWS)"],
        [[r.scenario, r.n, str(r.calls), str(r.mutating), f"{r.seconds:.2f}"] for r in rows],
        right={2, 3, 4},
    )


def _growth_text(growth: dict[str, int], extra_instances: int) -> str:
    parts = []
    for op, delta in sorted(growth.items(), key=lambda kv: (-abs(kv[1]), kv[0])):
        per = delta / extra_instances
        per_text = f"{per:+.0f}" if per == int(per) else f"{per:+.2f}"
        parts.append(f"`{op}` {delta:+d} = {per_text} per extra instance")
    return ", ".join(parts)


def breakdown(rows: list[Row]) -> tuple[str, str, dict[str, int], dict[str, int]]:
    """Tables of the cold provision's calls per operation at the two sizes, and the growth."""
    small, large = (_row(rows, "cold provision", n) for n in SIZES)
    lo, hi = SIZES

    def table(a: Counter[str], b: Counter[str]) -> tuple[str, dict[str, int]]:
        ops = sorted(set(a) | set(b), key=lambda op: (-(b[op] - a[op]), op))
        lines = [[f"`{op}`", str(a[op]), str(b[op]), f"{b[op] - a[op]:+d}"] for op in ops]
        lines.append(["**total**", str(sum(a.values())), str(sum(b.values())),
                      f"{sum(b.values()) - sum(a.values()):+d}"])
        growth = {op: b[op] - a[op] for op in ops if b[op] != a[op]}
        return _table(["Operation", f"N={lo}", f"N={hi}", f"N={hi} − N={lo}"], lines, right={1, 2, 3}), growth

    mutating_table, mutating_growth = table(small.mutating_operations, large.mutating_operations)
    reads = lambda r: r.operations - r.mutating_operations  # noqa: E731
    read_table, read_growth = table(reads(small), reads(large))
    return mutating_table, read_table, mutating_growth, read_growth


def noop_failures(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r.scenario == "no-op re-provision" and r.mutating]


def section(rows: list[Row]) -> str:
    lo, hi = SIZES
    extra = hi - lo
    mutating_table, read_table, mutating_growth, read_growth = breakdown(rows)
    noops = [_row(rows, "no-op re-provision", n) for n in SIZES]
    noop_total = sum(r.mutating for r in noops)
    noop_line = (f"- no-op re-provision: {noop_total} mutating calls (goal: 0) — "
                 + ", ".join(f"N={r.n}: {r.mutating}" for r in noops)
                 + (" — met." if noop_total == 0 else " — **NOT met**: "
                    + "; ".join(f"N={r.n}: " + ", ".join(f"`{op}` ×{c}" for op, c in sorted(r.mutating_operations.items()))
                                for r in noops if r.mutating) + "."))
    if mutating_growth:
        grow_line = (f"- calls grow with N by: {_growth_text(mutating_growth, extra)} "
                     f"(mutating calls of a cold provision, N={lo} → N={hi}).")
        others = sorted(op for op in mutating_growth if op != "ec2:CreateTags")
        if others:
            grow_line += (" Besides the per-instance `CreateTags` for the Name tags, these mutating calls also "
                          f"change with N: {', '.join(f'`{op}`' for op in others)}.")
        else:
            grow_line += " Only the per-instance `CreateTags` (Name tags) grows; every other mutating call is constant."
    else:
        grow_line = f"- calls grow with N by: nothing (no mutating call count differs between N={lo} and N={hi})."
    read_line = (f"- reads that change with N: {_growth_text(read_growth, extra)}."
                 if read_growth else "- reads that change with N: none; every read is made the same number of times.")

    plan_rows = [r for r in rows if r.scenario.startswith("plan")]
    doctor_rows = [r for r in rows if r.scenario.startswith("doctor")]
    doctor_line = ("- doctor changes nothing: its only calls outside `Describe*`/`Get*`/`List*`/`Head*` are "
                   + ", ".join(sorted({f"`{op}`" for r in doctor_rows for op in r.mutating_operations}) or ["none"])
                   + " (a `RunInstances` with `DryRun=True`; `SimulatePrincipalPolicy` when the caller is an IAM "
                   "user or role, which moto's caller is not).")
    plan_line = ("- plan makes read calls only: " + ("yes." if all(r.mutating == 0 for r in plan_rows) else
                 "**no**: " + "; ".join(f"N={r.n}: {', '.join(sorted(r.mutating_operations))}"
                                        for r in plan_rows if r.mutating) + "."))

    today = datetime.now(UTC).date().isoformat()
    return "\n".join([
        START,
        "## AWS API calls per command",
        "",
        f"Produced by `{COMMAND}` (`benchmarks/api_calls.py`) on {today}, all numbers from one run.",
        "",
        ("Every AWS API call dfbench makes, counted once each (botocore retries are not counted; each page of "
        "a paginated read is a call), against moto in server mode on loopback with "
        f"`DFBENCH_TIME_SCALE={TIME_SCALE}`. Mutating = anything but `Describe*`/`Get*`/`List*`/`Head*`. "
        f"Each size starts from an empty account: cold provision, no-op re-provision of the same spec, plan, "
        "doctor, clusters, "
        f"then (N={lo} only) scale {lo} → {' → '.join(str(s) for s in SCALE_STEPS)}, then teardown "
        "(the bucket is kept, as by default), then a dry-run sweep of the region (`--older-than 0`)."),
        "",
        ("**Wall seconds are emulator time, not AWS time**: moto answers at once and every poll interval is "
        "scaled down, so they show dfbench's and the emulator's own overhead only (after one unmeasured warm-up "
        "plan, since moto builds each service on first use). On AWS the instance waits alone take minutes, and "
        "`wait_running`/`wait_terminated` poll `DescribeInstances` (one call for all instances) until done: "
        "more polls there than the single one counted here, but the same number for any N. "
        "The wall seconds vary from run to run with the machine's load; the call counts do not."),
        "",
        summary_table(rows),
        "",
        "Goals (computed from the run above):",
        "",
        noop_line,
        grow_line,
        read_line,
        plan_line,
        doctor_line,
        "",
        f"### Cold provision: mutating calls per operation, N={lo} vs N={hi}",
        "",
        mutating_table,
        "",
        f"### Cold provision: read calls per operation, N={lo} vs N={hi}",
        "",
        read_table,
        END,
    ])


def main() -> int:
    _quiet()
    rows = measure()
    text = section(rows)
    print(text.removeprefix(START + "\n").removesuffix("\n" + END))
    if write_section("api-calls", text.removeprefix(START).removesuffix(END)):
        print(f"\nwrote {BENCHMARKS_MD.relative_to(ROOT)}", file=sys.stderr)
    failed = noop_failures(rows)
    if failed:
        for row in failed:
            print(f"FAIL: no-op re-provision at N={row.n} made {row.mutating} mutating call(s): "
                  f"{dict(row.mutating_operations)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
