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
  (the very functions the commands use): for two runs ``assess_two_runs``, on
  the iterations' noise alone (the first table, and the rows so named: ``--run-to-run 0``) or with
  the local worker's calibrated run-to-run floor (``compare``'s default; ``inconclusive`` is then
  counted apart, not as a call); for interleaved rounds ``assess_paired_queries`` and
  ``assess_rounds`` (``dfbench ab``: paired within each round, the interval from the rounds).

Fitted to real runs (``Components``, ``fit_components``, ``simulate_aa``): the same verdicts under the
noise model fitted to ``benchmarks/aa_real.py``'s A/A trials on real local workers; that script
reports the simulated rates beside the measured ones.

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
    RUN_TO_RUN,
    SUITE_CONFIDENCE,
    SUITE_MIN_EFFECT,
    SUITE_PRIOR_DF,
    RunToRun,
    assess_paired_queries,
    assess_rounds,
    assess_two_runs,
    round_log_ratios,
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
CALLED = ("faster", "slower")  # a verdict that calls a difference (inconclusive does not)


@dataclass(frozen=True)
class Effects:
    """How the runs were made and what varies between them (see the module docstring)."""

    interleaved: bool = False
    run_sd: float = 0.0  # per-run offset common to all queries
    query_run_sd: float = 0.0  # per-run per-query offsets
    allowance: bool = False  # sequential, judged with the local run-to-run floor (dfbench's default)

    @property
    def name(self) -> str:
        design = ("interleaved (ABBA rounds, judged round by round)" if self.interleaved else
                  "sequential, with the run-to-run allowance" if self.allowance else
                  "sequential, on iteration noise alone")
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


def judge(pairs: dict[str, tuple[list[float], list[float]]], effects: Effects = NONE) -> tuple[dict, object]:
    """dfbench's verdicts, by the functions ``dfbench compare`` and ``dfbench ab`` use: round by
    round for interleaved rounds; for two runs on the iterations' noise alone (``--run-to-run 0``),
    or with the local worker's run-to-run floor (``effects.allowance``, the default)."""
    if effects.interleaved:
        stats = assess_paired_queries(pairs, with_p=False)
        return stats, assess_rounds(round_log_ratios(pairs), queries=len(pairs))
    floor = RUN_TO_RUN["local"] if effects.allowance else RunToRun(0.0, 0.0, "none")
    return assess_two_runs(pairs, floor, with_p=False)


def run_cell(task: tuple) -> dict[str, float]:
    index, scenario, cv, suites, iterations, effects = task
    rng = random.Random(1000 + index)
    sigma = math.sqrt(math.log1p(cv * cv))
    base_times = true_times()
    ids = [f"q{number}" for number in range(1, QUERIES + 1)]
    changed = [scenario.scope == "all" or (scenario.scope == "one" and position == 0) for position in range(QUERIES)]
    factors = [scenario.factor if flag else 1.0 for flag in changed]
    counts = dict.fromkeys(("tooling_any", "tooling_changed", "tooling_total", "dfb_suite_alarm", "dfb_suite_hit",
                            "dfb_changed", "dfb_other_any", "dfb_inconclusive"), 0)
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
        stats, suite = judge(pairs, effects)
        detectable += suite.detectable
        counts["tooling_any"] += tooling_flag
        counts["tooling_changed"] += tooling_changed
        counts["tooling_total"] += total_new > total_prev * TOOLING_HIGHLIGHT
        counts["dfb_suite_alarm"] += suite.verdict in CALLED
        counts["dfb_suite_hit"] += suite.verdict == "slower"
        counts["dfb_inconclusive"] += suite.verdict == "inconclusive"
        counts["dfb_changed"] += stats["q1"].verdict == "slower"
        others = ids[1:] if scenario.scope == "one" else ([] if scenario.scope == "all" else ids)
        counts["dfb_other_any"] += any(stats[query_id].verdict in CALLED for query_id in others)
    return {key: value / suites for key, value in counts.items()} | {"index": index,
                                                                      "detectable": detectable / suites}


# --------------------------------------------------------------------------- fitted to real runs


@dataclass(frozen=True)
class Components:
    """The noise model fitted to real A/A trials (``benchmarks/aa_real.py``), standard deviations of
    log time. Interleaved A/B (pairs): a query's per-round log ratio new/base is ``ab_run`` (the
    trial's offset between the two worker processes, the same in every round) + ``ab_pass`` (shared
    by all queries of one round: what the pairs do not cancel of a pass's load) + ``ab_query``
    (that query in that round). Sequential: each run's queries share ``seq_run``; each query has
    ``seq_query`` of its own in each run; its iterations, consecutive, scatter by
    ``seq_iteration`` around that."""

    ab_run: float
    ab_pass: float
    ab_query: float
    seq_run: float
    seq_query: float
    seq_iteration: float
    queries: int
    rounds: int
    iterations: int

    def describe(self) -> list[str]:
        return [
            (f"`dfbench ab` (pairs, {self.rounds} rounds): per-run offset between the two workers "
            f"{self.ab_run:.3f}, per pass (round) {self.ab_pass:.3f}, per query and round {self.ab_query:.3f} "
            "(of a query's per-round log ratio)"),
            (f"sequential runs ({self.iterations} iterations): per-run offset {self.seq_run:.3f}, per query and "
            f"run {self.seq_query:.3f}, per iteration {self.seq_iteration:.3f} (of each side's log time)"),
        ]


def _var(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return sum((value - mean) ** 2 for value in values) / (len(values) - 1)


def _complete(trial: dict) -> list[str]:
    return [query for query, base in trial["base"].items() if base and trial["new"].get(query)]


def fit_components(trials: list[dict]) -> Components:
    """Method of moments on the A/A trials (their ``base``/``new`` raw timings per query):

    * A/B: with D[q][r] the log ratio of query q in round r, the within-round spread of D (round
      and query means removed) estimates ``ab_query``²; the spread of the round means across the
      rounds of a trial, less ``ab_query``²/k, estimates ``ab_pass``²; the spread of the trials'
      means across trials, less what rounds explain, estimates ``ab_run``².
    * Sequential: the spread of a query's iterations within its run estimates ``seq_iteration``²;
      the spread across queries of their log ratios within a pair estimates 2·``seq_query``² +
      2·``seq_iteration``²/i; the spread of the pairs' mean log ratios across pairs estimates
      2·``seq_run``² + that over k.
    Negative estimates (sampling noise) are taken as 0."""
    ab = [t for t in trials if t["experiment"] == "ab-aa"]
    seq = [t for t in trials if t["experiment"] == "seq-aa"]
    within, rounds_var, means, ks, ns = [], [], [], [], []
    for trial in ab:
        queries = _complete(trial)
        k, n = len(queries), len(trial["base"][queries[0]])
        d = [[math.log(trial["new"][q][r] / trial["base"][q][r]) for r in range(n)] for q in queries]
        round_means = [sum(d[i][r] for i in range(k)) / k for r in range(n)]
        query_means = [sum(row) / n for row in d]
        grand = sum(round_means) / n
        residual = sum((d[i][r] - round_means[r] - query_means[i] + grand) ** 2 for i in range(k) for r in range(n))
        within.append(residual / ((k - 1) * (n - 1)))
        rounds_var.append(_var(round_means))
        means.append(grand)
        ks.append(k)
        ns.append(n)
    k, n = (round(sum(ks) / len(ks)), round(sum(ns) / len(ns))) if ab else (8, 6)
    query_var = sum(within) / len(within) if ab else 0.0
    pass_var = max(0.0, sum(rounds_var) / len(rounds_var) - query_var / k) if ab else 0.0
    run_var = max(0.0, (_var(means) - (pass_var + query_var / k) / n) / 2) if len(ab) > 1 else 0.0

    iteration, spread, pair_means, iterations = [], [], [], []
    for trial in seq:
        queries = _complete(trial)
        logs = {side: {q: [math.log(x) for x in trial[side][q]] for q in queries} for side in ("base", "new")}
        iteration += [_var(values) for side in logs.values() for values in side.values() if len(values) > 1]
        ratios = [sum(logs["new"][q]) / len(logs["new"][q]) - sum(logs["base"][q]) / len(logs["base"][q])
                  for q in queries]
        spread.append(_var(ratios))
        pair_means.append(sum(ratios) / len(ratios))
        iterations.append(len(trial["base"][queries[0]]))
    i = round(sum(iterations) / len(iterations)) if seq else 3
    iteration_var = sum(iteration) / len(iteration) if iteration else 0.0
    seq_query_var = max(0.0, (sum(spread) / len(spread) - 2 * iteration_var / i) / 2) if seq else 0.0
    seq_k = len(_complete(seq[0])) if seq else k
    seq_run_var = (max(0.0, (_var(pair_means) - (2 * seq_query_var + 2 * iteration_var / i) / seq_k) / 2)
                   if len(seq) > 1 else 0.0)
    return Components(math.sqrt(run_var * 2), math.sqrt(pass_var), math.sqrt(query_var), math.sqrt(seq_run_var),
                      math.sqrt(seq_query_var), math.sqrt(iteration_var), k, n, i)


def simulate_aa(components: Components, suites: int = 4000, seed: int = 25,
                run_to_run: RunToRun | None = None) -> dict[str, float]:
    """The A/A suite false-alarm rate of each design under ``components``, judged by the functions
    dfbench uses (paired rounds for ``ab``; two runs with the local run-to-run floor for ``seq``,
    or the floor given). Verdicts see only ratios, so the queries' true times do not matter."""
    floor = run_to_run or RUN_TO_RUN["local"]
    rng = random.Random(seed)
    gauss = rng.gauss
    c = components
    k, n, i = c.queries, c.rounds, c.iterations
    called = {"ab": 0, "seq": 0}
    for _ in range(suites):
        called["ab"] += _ab_suite(rng, c, n).verdict in CALLED
        runs = [gauss(0.0, c.seq_run) for _ in range(2)]
        two = {}
        for q in range(k):
            sides = [[math.exp(runs[s] + block + gauss(0.0, c.seq_iteration)) for _ in range(i)]
                     for s, block in enumerate((gauss(0.0, c.seq_query), gauss(0.0, c.seq_query)))]
            two[f"q{q}"] = (sides[0], sides[1])
        called["seq"] += assess_two_runs(two, floor, with_p=False)[1].verdict in CALLED
    return {design: count / suites for design, count in called.items()}


def simulate_ab_slower(components: Components, factor: float, rounds: int, suites: int = 4000,
                       seed: int = 26) -> float:
    """How often ``dfbench ab`` with ``rounds`` rounds says slower when the new side is ``factor``
    times slower, under ``components`` (the detection the trials with --slowdown measure)."""
    rng = random.Random(seed)
    effect = math.log(factor)
    return sum(_ab_suite(rng, components, rounds, effect).verdict == "slower" for _ in range(suites)) / suites


def simulate_ab_called(components: Components, rounds: int, suites: int = 4000, seed: int = 27) -> float:
    """How often an A/A ``dfbench ab`` with ``rounds`` rounds calls a difference under ``components``."""
    rng = random.Random(seed)
    return sum(_ab_suite(rng, components, rounds).verdict in CALLED for _ in range(suites)) / suites


def _ab_suite(rng: random.Random, c: Components, rounds: int, effect: float = 0.0) -> object:
    """One simulated A/B's suite verdict: per query and round, the log ratio is the effect, the
    trial's offset, the round's and the query's own noise (the model of :class:`Components`)."""
    offset = effect + rng.gauss(0.0, c.ab_run)
    passes = [rng.gauss(0.0, c.ab_pass) for _ in range(rounds)]
    pairs = {f"q{q}": ([1.0] * rounds, [math.exp(offset + passes[r] + rng.gauss(0.0, c.ab_query))
                                        for r in range(rounds)]) for q in range(c.queries)}
    return assess_rounds(round_log_ratios(pairs), queries=c.queries)


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
               Effects(interleaved=True, run_sd=RUN_EFFECT, query_run_sd=RUN_EFFECT),
               Effects(run_sd=RUN_EFFECT, allowance=True),
               Effects(run_sd=RUN_EFFECT, query_run_sd=RUN_EFFECT, allowance=True)]
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
        run_rows.append(f"| {effects.name} | **{pct(alarm['dfb_suite_alarm'])}** | {pct(alarm['dfb_inconclusive'])} | "
                        f"**{pct(hit['dfb_suite_hit'])}** | ±{pct(alarm['detectable'])} | "
                        f"{pct(alarm['tooling_any'])} |")
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
        goal(f"the same, sequential, with dfbench's run-to-run allowance (the default; "
             f"{pct(found[(aa.name, 0.10, ITERATIONS, designs[6])]['dfb_inconclusive'])} inconclusive)",
             found[(aa.name, 0.10, ITERATIONS, designs[6])]["dfb_suite_alarm"], 0.05, True),
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
        "iteration noise, with no per-run offset, and the verdicts are those of two runs judged on it alone, "
        "`--run-to-run 0`; the tables below add run-level effects and dfbench's defaults); true times "
        "log-uniform in 100 ms–10 s. A change multiplies the new "
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
        f"The allowance rows use the local worker's floor (±{RUN_TO_RUN['local'].suite:.0%} per run, "
        f"±{RUN_TO_RUN['local'].query:.0%} per query, from {RUN_TO_RUN['local'].source}). "
        "\"Detectable\" is the mean of the smallest uniform change each comparison states it could detect."),
        "",
        ("| Design and effects | no change: suite faster/slower | no change: inconclusive | all +5%: suite slower | "
        "detectable | no change: CDK tooling any ✅/❌ |"),
        "| --- | ---: | ---: | ---: | ---: | ---: |",
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
        "runs can tell it from a real change, and the false alarms of the iteration-noise-only rows grow with "
        "it. With the run-to-run allowance (dfbench's default for two runs) the same suites are mostly "
        "`inconclusive` instead, and a 5% change is no longer called either: two runs cannot show it. "
        "Interleaved rounds put both sides of a round under the same drift and judge the suite on the rounds' "
        "spread, whatever the run-level effects."),
        END,
    ])
    print(section)
    if not args.no_write:
        write_section("compare", section.removeprefix(START).removesuffix(END))
        print(f"\nwrote {BENCHMARKS_MD.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
