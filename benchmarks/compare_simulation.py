"""Simulation: how often do the CDK tooling's compare rule and dfbench's verdicts cry wolf, and how often
do they catch a real change?

Synthetic suites of 22 queries, 5 iterations per query on each side (base and new). Model: every
iteration's time is the query's true time times exp(N(0, s^2)) with s = sqrt(ln(1 + CV^2)), i.e.
lognormal with the given coefficient of variation, drawn independently for every iteration of
every query of both runs. True times are spread log-uniformly over 100 ms - 10 s. A "change"
multiplies the true time of the new side (all queries, or query q1 only).

Run-level effects (the second and third tables): a per-run offset common to all queries (the
cluster is slower today) and per-run per-query offsets (one query hit a cold cache in one run),
both lognormal with the given standard deviation. Sequential runs (base, then new) draw one
common offset per side and one per query per side, shared by all of that side's iterations.
Interleaved rounds (``dfbench ab``: ABBA, one iteration per query per side per round) draw a
common offset per round, shared by both sides (they run within the round), and a per-query
offset per side per round: there each side's round is its own run of the query.

Rules measured on the same simulated suites:

* the CDK tooling: a query is flagged when its p50 factor (rounded ms medians, as printed) exceeds 1.2
  (a ✅ or ❌ mark); its suite-level signal is the TOTAL line's ❌.
* dfbench: the suite verdict (faster/slower) and the per-query verdicts of ``dfbench.comparison``
  (the very functions the command uses, ``assess_queries`` and ``assess_suite``).

Fixed seeds, so every run prints the same table. The result is written into BENCHMARKS.md between
the ``<!-- compare:start -->`` and ``<!-- compare:end -->`` markers.

    .venv/bin/python benchmarks/compare_simulation.py [--suites 2000] [--no-write]
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
from dfbench.comparison.stats import (
    QUERY_ALPHA,
    QUERY_MIN_EFFECT,
    SUITE_CONFIDENCE,
    SUITE_MIN_EFFECT,
    SUITE_PRIOR_DF,
    assess_queries,
    assess_suite,
)
from report import write_section  # benchmarks/ is on sys.path: scripts run as files

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
START, END = "<!-- compare:start -->", "<!-- compare:end -->"

QUERIES = 22
ITERATIONS = 5
CVS = (0.05, 0.10, 0.20)
RUN_EFFECT = 0.03  # the per-run drift of the second table
ITERATION_COUNTS = (3, 5, 7, 10)


@dataclass(frozen=True)
class Effects:
    """How the runs were made and what varies between them (see the module docstring)."""

    interleaved: bool = False
    run_sd: float = 0.0  # per-run offset common to all queries
    query_run_sd: float = 0.0  # per-run per-query offsets

    @property
    def name(self) -> str:
        design = "interleaved (ABBA rounds)" if self.interleaved else "sequential"
        parts = ([f"per-run offset {self.run_sd:.0%}"] if self.run_sd else []) + (
            [f"per-run per-query {self.query_run_sd:.0%}"] if self.query_run_sd else [])
        return f"{design}, {' + '.join(parts) if parts else 'no run-level effect'}"


NONE = Effects()


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


def draw(rng: random.Random, truths: list[float], factors: list[float], sigma: float, iterations: int,
         effects: Effects) -> dict[str, tuple[list[float], list[float]]]:
    """One suite: query id -> (base timings, new timings) under ``effects``."""
    gauss = rng.gauss
    run_sd, query_sd = math.log1p(effects.run_sd), math.log1p(effects.query_run_sd)
    pairs = {}
    if effects.interleaved:
        drifts = [gauss(0.0, run_sd) for _ in range(iterations)]
        for number, (truth, factor) in enumerate(zip(truths, factors, strict=True), start=1):
            base = [truth * math.exp(d + gauss(0.0, query_sd) + gauss(0.0, sigma)) for d in drifts]
            new = [truth * factor * math.exp(d + gauss(0.0, query_sd) + gauss(0.0, sigma)) for d in drifts]
            pairs[f"q{number}"] = (base, new)
        return pairs
    base_run, new_run = gauss(0.0, run_sd), gauss(0.0, run_sd)
    for number, (truth, factor) in enumerate(zip(truths, factors, strict=True), start=1):
        base_offset, new_offset = base_run + gauss(0.0, query_sd), new_run + gauss(0.0, query_sd)
        base = [truth * math.exp(base_offset + gauss(0.0, sigma)) for _ in range(iterations)]
        new = [truth * factor * math.exp(new_offset + gauss(0.0, sigma)) for _ in range(iterations)]
        pairs[f"q{number}"] = (base, new)
    return pairs


def judge(pairs: dict[str, tuple[list[float], list[float]]]) -> tuple[dict, object]:
    """dfbench's verdicts, by the functions ``dfbench compare`` uses."""
    stats = assess_queries(pairs, with_p=False)
    suite = assess_suite([stat.log_ratio for stat in stats.values()],
                         noise_variances=[stat.se ** 2 for stat in stats.values()])
    return stats, suite


def run_cell(task: tuple) -> dict[str, float]:
    index, scenario, cv, suites, iterations, effects = task
    rng = random.Random(1000 + index)
    sigma = math.sqrt(math.log1p(cv * cv))
    base_times = true_times()
    ids = [f"q{number}" for number in range(1, QUERIES + 1)]
    changed = [scenario.scope == "all" or (scenario.scope == "one" and position == 0) for position in range(QUERIES)]
    factors = [scenario.factor if flag else 1.0 for flag in changed]
    counts = dict.fromkeys(("tooling_any", "tooling_changed", "tooling_total", "dfb_suite_alarm", "dfb_suite_hit",
                            "dfb_changed", "dfb_other_any"), 0)
    detectable = 0.0
    for _ in range(suites):
        pairs = draw(rng, base_times, factors, sigma, iterations, effects)
        tooling_flag = tooling_changed = False
        total_prev = total_new = 0
        for position, query_id in enumerate(ids):
            base, new = pairs[query_id]
            prev_p50, new_p50 = tooling_p50(base), tooling_p50(new)
            total_prev += prev_p50
            total_new += new_p50
            factor = max(prev_p50, new_p50) / min(prev_p50, new_p50)
            if factor > TOOLING_HIGHLIGHT:
                tooling_flag = True
                if changed[position] and new_p50 > prev_p50:
                    tooling_changed = True
        stats, suite = judge(pairs)
        detectable += suite.detectable
        counts["tooling_any"] += tooling_flag
        counts["tooling_changed"] += tooling_changed
        counts["tooling_total"] += total_new > total_prev * TOOLING_HIGHLIGHT
        counts["dfb_suite_alarm"] += suite.verdict != "unchanged"
        counts["dfb_suite_hit"] += suite.verdict == "slower"
        counts["dfb_changed"] += stats["q1"].verdict == "slower"
        others = ids[1:] if scenario.scope == "one" else ([] if scenario.scope == "all" else ids)
        counts["dfb_other_any"] += any(stats[query_id].verdict != "unchanged" for query_id in others)
    return {key: value / suites for key, value in counts.items()} | {"index": index,
                                                                      "detectable": detectable / suites}


def pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", type=int, default=2000, help="simulated suites per cell (default 2000)")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)

    cells = [(scenario, cv, ITERATIONS, NONE) for scenario in SCENARIOS for cv in CVS]
    aa, uniform = SCENARIOS[0], SCENARIOS[1]
    drift = Effects(run_sd=RUN_EFFECT)
    both = Effects(run_sd=RUN_EFFECT, query_run_sd=RUN_EFFECT)
    designs = [NONE, drift, both, Effects(interleaved=True), Effects(interleaved=True, run_sd=RUN_EFFECT),
               Effects(interleaved=True, run_sd=RUN_EFFECT, query_run_sd=RUN_EFFECT)]
    run_level = [(scenario, 0.10, ITERATIONS, effects) for effects in designs for scenario in (aa, uniform)]
    by_iterations = [(scenario, 0.10, count, effects) for effects in (NONE, designs[4])
                     for count in ITERATION_COUNTS for scenario in (aa, uniform)]
    tasks = [(index, scenario, cv, args.suites, count, effects)
             for index, (scenario, cv, count, effects) in enumerate(cells + run_level + by_iterations)]
    started = time.monotonic()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = {row["index"]: row for row in pool.map(run_cell, tasks)}
    seconds = time.monotonic() - started
    found = {(scenario.name, cv, count, effects): results[index]
             for index, scenario, cv, _, count, effects in tasks}

    run_rows = []
    for effects in designs:
        alarm, hit = found[(aa.name, 0.10, ITERATIONS, effects)], found[(uniform.name, 0.10, ITERATIONS, effects)]
        run_rows.append(f"| {effects.name} | **{pct(alarm['dfb_suite_alarm'])}** | **{pct(hit['dfb_suite_hit'])}** | "
                        f"±{pct(alarm['detectable'])} | {pct(alarm['tooling_any'])} |")
    iteration_rows = []
    for effects in (NONE, designs[4]):
        for count in ITERATION_COUNTS:
            alarm, hit = found[(aa.name, 0.10, count, effects)], found[(uniform.name, 0.10, count, effects)]
            iteration_rows.append(f"| {effects.name} | {count} | {pct(alarm['dfb_suite_alarm'])} | "
                                  f"**{pct(hit['dfb_suite_hit'])}** | ±{pct(alarm['detectable'])} |")

    rows = []
    cell: dict[tuple[str, float], dict[str, float]] = {}
    for index, scenario, cv, _, _, _ in tasks[:len(cells)]:
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
        goal(f"no change, CV 10%, per-run drift {RUN_EFFECT:.0%}, interleaved: suite faster/slower",
             found[(aa.name, 0.10, ITERATIONS, designs[4])]["dfb_suite_alarm"], 0.05, True),
        (f"- the same, sequential: {pct(found[(aa.name, 0.10, ITERATIONS, drift)]['dfb_suite_alarm'])} "
        "(no statistic over two runs can tell a common per-run offset from a change)."),
    ]
    tooling_notes = [
        (f"- CDK tooling rule, no change, CV 10%: some query marked ✅/❌ in {pct(cell[('no change', 0.10)]['tooling_any'])} "
        "of suites (expected about 30%)."),
        (f"- CDK tooling rule, q1 +10%, CV 5%: q1 marked ❌ in {pct(cell[('q1 +10%', 0.05)]['tooling_changed'])} "
        "of suites (expected about 1%)."),
    ]
    today = datetime.date.today().isoformat()
    section = "\n".join([
        START,
        "## Compare: false alarms and detection (the CDK tooling's rule vs dfbench verdicts)",
        "",
        (f"Produced by `make bench-compare` (`.venv/bin/python benchmarks/compare_simulation.py`) on {today}, "
        f"all numbers from one run ({args.suites} simulated suites per row, fixed seeds, {seconds:.0f} s)."),
        "",
        (f"Model: {QUERIES} queries, {ITERATIONS} iterations per query on each side; every iteration is the "
        "query's true time × a lognormal factor with the given coefficient of variation (CV), independent "
        "across iterations, queries and the two runs (in this first table the run-to-run variation is this "
        "iteration noise, with no per-run offset; the tables below add them); true times log-uniform in 100 ms–10 s. A change multiplies the new "
        "side's true time of every query or of q1 only. CDK tooling rule: a query is marked ✅/❌ when its rounded "
        "p50 factor exceeds 1.2 (its only suite signal is TOTAL ❌). dfbench: the `dfbench.comparison` verdicts "
        f"(per query: moderated t-test on log timings, p < {QUERY_ALPHA}, |ratio − 1| > "
        f"{percent(QUERY_MIN_EFFECT)}; suite: {percent(SUITE_CONFIDENCE)} t-interval of the geometric-mean "
        f"ratio over queries, its variance moderated by the queries' iteration noise worth {SUITE_PRIOR_DF} "
        f"degrees of freedom, excludes 1 and |geomean − 1| > {percent(SUITE_MIN_EFFECT)}). Percentages are "
        f"of simulated suites; with {args.suites} suites a rate near 5% has a standard error of about "
        f"{100 * math.sqrt(0.05 * 0.95 / args.suites):.1f} points, near 90% about "
        f"{100 * math.sqrt(0.9 * 0.1 / args.suites):.1f} points."),
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
        f"### Run-level effects: sequential runs against interleaved rounds (CV 10%, {ITERATIONS} iterations)",
        "",
        (f"Per-run offsets with a standard deviation of {RUN_EFFECT:.0%} (see the model in "
        "`benchmarks/compare_simulation.py`): sequential runs draw one per side, shared by all its "
        "iterations; interleaved rounds (`dfbench ab`) draw one per round, shared by both sides. "
        "\"Detectable\" is the mean of the smallest uniform change each comparison states it could detect."),
        "",
        ("| Design and effects | no change: suite faster/slower | all +5%: suite slower | detectable | "
        "no change: CDK tooling any ✅/❌ |"),
        "| --- | ---: | ---: | ---: | ---: |",
        *run_rows,
        "",
        "### Detection against iterations (CV 10%, uniform +5%)",
        "",
        ("| Design and effects | iterations (rounds) per side | no change: suite faster/slower | "
        "all +5%: suite slower | detectable |"),
        "| --- | ---: | ---: | ---: | ---: |",
        *iteration_rows,
        "",
        ("A common per-run offset moves every query of a sequential run alike: no statistic over the two "
        "runs can tell it from a real change, and the false alarms above grow with it. Per-run per-query "
        "offsets widen the suite interval (the spread across queries carries them) but not the per-query "
        "tests, which see iteration noise only. Interleaved rounds put both sides under the same drift, "
        "and a query's per-run offsets become iteration noise that both tests see."),
        END,
    ])
    print(section)
    if not args.no_write:
        write_section("compare", section.removeprefix(START).removesuffix(END))
        print(f"\nwrote {BENCHMARKS_MD.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
