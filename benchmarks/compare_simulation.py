"""Simulation: how often do the CDK tooling's compare rule and dfbench's verdicts cry wolf, and how often
do they catch a real change?

Synthetic suites of 22 queries, 5 iterations per query on each side (base and new). Model: every
iteration's time is the query's true time times exp(N(0, s^2)) with s = sqrt(ln(1 + CV^2)), i.e.
lognormal with the given coefficient of variation, drawn independently for every iteration of
every query of both runs (so run-to-run variation is exactly this iteration noise; no extra
per-run offset). True times are spread log-uniformly over 100 ms - 10 s. A "change" multiplies
the true time of the new side (all queries, or query q1 only).

Rules measured on the same simulated suites:

* the CDK tooling: a query is flagged when its p50 factor (rounded ms medians, as printed) exceeds 1.2
  (a ✅ or ❌ mark); its suite-level signal is the TOTAL line's ❌.
* dfbench: the suite verdict (faster/slower) and the per-query verdicts of ``dfbench.comparison``
  (the very functions the command uses, ``assess_queries`` and ``assess_suite``).

Fixed seeds, so every run prints the same table. The result is written into BENCHMARKS.md between
the ``<!-- compare:start -->`` and ``<!-- compare:end -->`` markers.

    .venv/bin/python benchmarks/compare_simulation.py [--suites 4000] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime
import math
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from dfbench.comparison.records import round_half_up
from dfbench.comparison.render import TOOLING_HIGHLIGHT, percent
from dfbench.comparison.stats import (QUERY_ALPHA, QUERY_MIN_EFFECT, SUITE_CONFIDENCE, SUITE_MIN_EFFECT, assess_queries,
                                   assess_suite)

from report import write_section  # benchmarks/ is on sys.path: scripts run as files

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
START, END = "<!-- compare:start -->", "<!-- compare:end -->"

QUERIES = 22
ITERATIONS = 5
CVS = (0.05, 0.10, 0.20)


@dataclass(frozen=True)
class Scenario:
    name: str
    factor: float  # true new/base time ratio of the changed queries
    scope: str  # "none", "all" or "one" (q1 only)


SCENARIOS = (
    Scenario("no change", 1.0, "none"),
    Scenario("all queries +5%", 1.05, "all"),
    Scenario("all queries +10%", 1.10, "all"),
    Scenario("q1 +10%", 1.10, "one"),
    Scenario("q1 +20%", 1.20, "one"),
)


def true_times() -> list[float]:
    rng = random.Random(22)
    return [math.exp(rng.uniform(math.log(100), math.log(10_000))) for _ in range(QUERIES)]


def tooling_p50(timings: list[float]) -> int:
    return round_half_up(sorted(timings)[len(timings) // 2])


def run_cell(task: tuple[int, Scenario, float, int]) -> dict[str, float]:
    index, scenario, cv, suites = task
    rng = random.Random(1000 + index)
    sigma = math.sqrt(math.log1p(cv * cv))
    base_times = true_times()
    ids = [f"q{number}" for number in range(1, QUERIES + 1)]
    counts = dict.fromkeys(("tooling_any", "tooling_changed", "tooling_total", "dfb_suite_alarm", "dfb_suite_hit",
                            "dfb_changed", "dfb_other_any"), 0)
    gauss = rng.gauss
    for _ in range(suites):
        pairs = {}
        tooling_flag = tooling_changed = False
        total_prev = total_new = 0
        for position, (query_id, truth) in enumerate(zip(ids, base_times)):
            changed = scenario.scope == "all" or (scenario.scope == "one" and position == 0)
            new_truth = truth * (scenario.factor if changed else 1.0)
            base = [truth * math.exp(gauss(0.0, sigma)) for _ in range(ITERATIONS)]
            new = [new_truth * math.exp(gauss(0.0, sigma)) for _ in range(ITERATIONS)]
            pairs[query_id] = (base, new)
            prev_p50, new_p50 = tooling_p50(base), tooling_p50(new)
            total_prev += prev_p50
            total_new += new_p50
            factor = max(prev_p50, new_p50) / min(prev_p50, new_p50)
            if factor > TOOLING_HIGHLIGHT:
                tooling_flag = True
                if changed and new_p50 > prev_p50:
                    tooling_changed = True
        stats = assess_queries(pairs, with_p=False)
        suite = assess_suite([stat.log_ratio for stat in stats.values()])
        counts["tooling_any"] += tooling_flag
        counts["tooling_changed"] += tooling_changed
        counts["tooling_total"] += total_new > total_prev * TOOLING_HIGHLIGHT
        counts["dfb_suite_alarm"] += suite.verdict != "unchanged"
        counts["dfb_suite_hit"] += suite.verdict == "slower"
        counts["dfb_changed"] += stats["q1"].verdict == "slower"
        others = ids[1:] if scenario.scope == "one" else ([] if scenario.scope == "all" else ids)
        counts["dfb_other_any"] += any(stats[query_id].verdict != "unchanged" for query_id in others)
    return {key: value / suites for key, value in counts.items()} | {"index": index}


def pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", type=int, default=4000, help="simulated suites per cell (default 4000)")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)

    tasks = [(index, scenario, cv, args.suites)
             for index, (scenario, cv) in enumerate((s, c) for s in SCENARIOS for c in CVS)]
    started = time.monotonic()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = {row["index"]: row for row in pool.map(run_cell, tasks)}
    seconds = time.monotonic() - started

    rows = []
    cell: dict[tuple[str, float], dict[str, float]] = {}
    for index, scenario, cv, _ in tasks:
        row = results[index]
        cell[(scenario.name, cv)] = row
        if scenario.scope == "none":
            tooling = f"any ✅/❌: **{pct(row['tooling_any'])}**"
            dfb_suite = f"faster/slower: **{pct(row['dfb_suite_alarm'])}**"
            dfb_query = f"any query faster/slower: {pct(row['dfb_other_any'])}"
        elif scenario.scope == "all":
            tooling = f"TOTAL ❌: {pct(row['tooling_total'])}; any ✅/❌: {pct(row['tooling_any'])}"
            dfb_suite = f"slower: **{pct(row['dfb_suite_hit'])}**"
            dfb_query = f"q1 slower: {pct(row['dfb_changed'])}"
        else:
            tooling = f"q1 ❌: **{pct(row['tooling_changed'])}**; any ✅/❌: {pct(row['tooling_any'])}"
            dfb_suite = f"slower: {pct(row['dfb_suite_hit'])}"
            dfb_query = (f"q1 slower: **{pct(row['dfb_changed'])}**; "
                         f"other query faster/slower: {pct(row['dfb_other_any'])}")
        rows.append(f"| {scenario.name} | {cv:.0%} | {tooling} | {dfb_suite} | {dfb_query} |")

    def goal(text: str, value: float, target: float, at_most: bool) -> str:
        met = value <= target if at_most else value >= target
        return f"- {text}: {pct(value)} (goal {'≤' if at_most else '≥'} {pct(target)}) — {'met' if met else 'NOT met'}."

    goals = [
        goal("no change, CV 10%: dfbench suite verdict faster/slower",
             cell[("no change", 0.10)]["dfb_suite_alarm"], 0.05, True),
        goal("all queries +5%, CV 10%: dfbench suite verdict slower",
             cell[("all queries +5%", 0.10)]["dfb_suite_hit"], 0.90, False),
        goal("q1 +20%, CV 5%: dfbench verdict of q1 slower",
             cell[("q1 +20%", 0.05)]["dfb_changed"], 0.90, False),
    ]
    tooling_notes = [
        f"- CDK tooling rule, no change, CV 10%: some query marked ✅/❌ in {pct(cell[('no change', 0.10)]['tooling_any'])} "
        "of suites (expected about 30%).",
        f"- CDK tooling rule, q1 +10%, CV 5%: q1 marked ❌ in {pct(cell[('q1 +10%', 0.05)]['tooling_changed'])} "
        "of suites (expected about 1%).",
    ]
    today = datetime.date.today().isoformat()
    section = "\n".join([
        START,
        "## Compare: false alarms and detection (the CDK tooling's rule vs dfbench verdicts)",
        "",
        f"Produced by `make bench-compare` (`.venv/bin/python benchmarks/compare_simulation.py`) on {today}, "
        f"all numbers from one run ({args.suites} simulated suites per row, fixed seeds, {seconds:.0f} s).",
        "",
        f"Model: {QUERIES} queries, {ITERATIONS} iterations per query on each side; every iteration is the "
        "query's true time × a lognormal factor with the given coefficient of variation (CV), independent "
        "across iterations, queries and the two runs (so the run-to-run variation is this iteration noise, "
        "with no extra per-run offset); true times log-uniform in 100 ms–10 s. A change multiplies the new "
        "side's true time of every query or of q1 only. CDK tooling rule: a query is marked ✅/❌ when its rounded "
        "p50 factor exceeds 1.2 (its only suite signal is TOTAL ❌). dfbench: the `dfbench.comparison` verdicts "
        f"(per query: moderated t-test on log timings, p < {QUERY_ALPHA}, |ratio − 1| > "
        f"{percent(QUERY_MIN_EFFECT)}; suite: {percent(SUITE_CONFIDENCE)} t-interval of the geometric-mean "
        f"ratio over queries excludes 1 and |geomean − 1| > {percent(SUITE_MIN_EFFECT)}). Percentages are "
        f"of simulated suites; with {args.suites} suites a rate near 5% has a standard error of about "
        f"{100 * math.sqrt(0.05 * 0.95 / args.suites):.1f} points, near 90% about "
        f"{100 * math.sqrt(0.9 * 0.1 / args.suites):.1f} points.",
        "",
        "| Scenario | CV | CDK tooling rule | dfbench suite verdict | dfbench per-query verdicts |",
        "| --- | ---: | --- | --- | --- |",
        *rows,
        "",
        "Goals (computed from the run above):",
        "",
        *goals,
        "",
        "CDK tooling rule on the same suites:",
        "",
        *tooling_notes,
        "",
        "Caveat: the model has no run-level effects (a slower cluster on one day, a query that hit a cold "
        "cache in one run). A common per-run offset moves every query alike and no statistic over the two "
        "runs can tell it from a real change; query-specific per-run offsets widen the suite interval "
        "(it is computed from the spread across queries, so it stays honest) but make per-query tests, "
        "which only see iteration noise, flag more often than here. Re-running both sides is the remedy.",
        END,
    ])
    print(section)
    if not args.no_write:
        write_section("compare", section.removeprefix(START).removesuffix(END))
        print(f"\nwrote {BENCHMARKS_MD.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
