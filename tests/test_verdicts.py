"""The statistics of issue 25 on constructed inputs with known answers: an A/B judged round by
round, and two runs judged with a run-to-run allowance."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest

from dfbench.comparison.stats import (
    SUITE_CONFIDENCE,
    RunToRun,
    assess_paired_queries,
    assess_queries,
    assess_rounds,
    assess_suite,
    assess_two_runs,
    round_log_ratios,
    t_critical,
)

# Per-round offsets shared by both sides of a round (the machine was busier in round 3), large
# next to the change of 10% each test looks for.
OFFSETS = (1.0, 1.3, 0.7, 1.6, 0.9, 1.2)


def test_round_ratios_are_the_mean_log_ratio_over_the_queries_of_each_round() -> None:
    pairs = {"q1": ([100, 200], [110, 180]), "q2": ([10, 10], [20, 10])}
    expected = [(math.log(1.1) + math.log(2.0)) / 2, (math.log(0.9) + 0.0) / 2]
    assert round_log_ratios(pairs) == pytest.approx(expected)
    assert round_log_ratios({}) == []
    with pytest.raises(ValueError, match="same number of rounds"):
        round_log_ratios({"q1": ([1, 2], [1, 2]), "q2": ([1], [1])})


def test_rounds_interval_is_the_t_interval_of_the_round_ratios() -> None:
    logs = [0.10, 0.14, 0.06, 0.12, 0.08, 0.10]
    mean = sum(logs) / 6
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / 5)
    half = t_critical(5, 1 - SUITE_CONFIDENCE) * sd / math.sqrt(6)
    suite = assess_rounds(logs, queries=8)
    assert (suite.verdict, suite.rounds, suite.queries) == ("slower", 6, 8)
    assert suite.geomean_ratio == pytest.approx(math.exp(mean))
    assert suite.ci_low == pytest.approx(math.exp(mean - half))
    assert suite.ci_high == pytest.approx(math.exp(mean + half))
    assert suite.half_width == pytest.approx(half)
    assert suite.detectable == pytest.approx(math.expm1(half))
    faster = assess_rounds([-x for x in logs], queries=8)
    assert faster.verdict == "faster" and faster.ci_high == pytest.approx(math.exp(-mean + half))


def test_rounds_that_disagree_are_unchanged_and_one_round_has_no_interval() -> None:
    assert assess_rounds([0.2, -0.15, 0.1, -0.2, 0.25, -0.1], queries=8).verdict == "unchanged"
    one = assess_rounds([0.3], queries=8)
    assert (one.verdict, one.ci_low, one.ci_high, one.rounds) == ("unchanged", None, None, 1)
    assert one.geomean_ratio == pytest.approx(math.exp(0.3))
    assert assess_rounds([], queries=0).geomean_ratio is None


def test_rounds_beyond_the_interval_but_below_the_minimum_effect_are_unchanged() -> None:
    assert assess_rounds([0.02, 0.0201, 0.0199, 0.02], queries=8).verdict == "unchanged"  # 2% < 2.5%
    assert assess_rounds([0.03, 0.0301, 0.0299, 0.03], queries=8).verdict == "slower"


def test_pairing_by_round_cancels_what_a_round_shares() -> None:
    base = [100 * offset for offset in OFFSETS]
    new = [110 * offset for offset in OFFSETS]
    pairs = {"q1": (base, new), "q2": ([50 * o for o in OFFSETS], [55 * o for o in OFFSETS])}
    paired = assess_paired_queries(pairs)
    assert paired["q1"].log_ratio == pytest.approx(math.log(1.1))
    assert paired["q1"].verdict == "slower" and paired["q1"].p_value < 1e-6
    # The same timings as two runs: the round offsets are noise, and 10% is lost in it.
    assert assess_queries(pairs)["q1"].verdict == "unchanged"
    suite = assess_rounds(round_log_ratios(pairs), queries=2)
    assert suite.verdict == "slower" and suite.geomean_ratio == pytest.approx(1.1)


def test_paired_query_test_uses_the_spread_of_its_differences() -> None:
    # q1's per-round ratios: 1.1, 0.9, 1.1, 0.9, 1.1, 0.9: a spread, no change.
    factors = (1.1, 0.9) * 3
    pairs = {"q1": ([100.0] * 6, [100 * f for f in factors])}
    stat = assess_paired_queries(pairs)["q1"]
    diffs = [math.log(f) for f in factors]
    mean = sum(diffs) / 6
    se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 5 / 6)
    assert stat.log_ratio == pytest.approx(mean) and stat.df == 5
    assert stat.se == pytest.approx(se) and stat.verdict == "unchanged"
    with pytest.raises(ValueError, match="cannot be paired"):
        assess_paired_queries({"q1": ([1.0, 2.0], [1.0])})


def test_run_to_run_widens_the_suite_interval_by_its_share() -> None:
    logs = [math.log(1.06) + d for d in (0.001, -0.001, 0.0005, -0.0005, 0.0, 0.0)]
    narrow = assess_suite(logs)
    assert narrow.verdict == "slower"
    wide = assess_suite(logs, run_to_run=0.05)
    between = NormalDist().inv_cdf(1 - (1 - SUITE_CONFIDENCE) / 2) * math.sqrt(2) * math.log1p(0.05)
    assert wide.half_width == pytest.approx(math.hypot(narrow.half_width, between))
    assert wide.geomean_ratio == pytest.approx(narrow.geomean_ratio)
    # 6% apart, more than the iterations allow, less than two runs of one build differ: not a verdict.
    assert wide.verdict == "inconclusive"
    assert assess_suite([math.log(2.0)] * 6, run_to_run=0.05).verdict == "slower"
    # Within the iterations' noise, it stays unchanged (nothing to be inconclusive about).
    assert assess_suite([0.3, -0.3, 0.2, -0.2, 0.0, 0.01], run_to_run=0.05).verdict == "unchanged"


def test_run_to_run_widens_each_query_and_an_iteration_only_difference_is_inconclusive() -> None:
    pairs = {f"q{n}": ([100.0, 101.0, 99.0], [115.0, 116.0, 114.0]) for n in range(1, 5)}
    assert {stat.verdict for stat in assess_queries(pairs).values()} == {"slower"}
    widened = assess_queries(pairs, run_to_run=0.08)
    assert {stat.verdict for stat in widened.values()} == {"inconclusive"}
    narrow = assess_queries(pairs)["q1"]
    assert widened["q1"].se == pytest.approx(math.sqrt(narrow.se ** 2 + 2 * math.log1p(0.08) ** 2))
    big = {"q1": ([100.0, 101.0, 99.0], [300.0, 301.0, 299.0]), "q2": ([10.0, 10.1, 9.9], [10.0, 10.1, 9.9])}
    assert assess_queries(big, run_to_run=0.08)["q1"].verdict == "slower"


def test_two_runs_suite_is_moderated_by_iteration_noise_and_widened_by_the_floor() -> None:
    """The narrower interval of two runs is the one without the allowance (moderated by the
    iterations' noise alone); the floor widens it by its own share only."""
    pairs = {f"q{n}": ([100.0 * n, 101.0 * n, 99.0 * n], [108.0 * n, 109.0 * n, 107.0 * n]) for n in range(1, 7)}
    floor = RunToRun(0.13, 0.39, "test")
    stats, suite = assess_two_runs(pairs, floor)
    bare_stats, bare = assess_two_runs(pairs, RunToRun(0.0, 0.0, "none"))
    assert bare.verdict == "slower" and suite.verdict == "inconclusive"
    between = NormalDist().inv_cdf(1 - (1 - SUITE_CONFIDENCE) / 2) * math.sqrt(2) * math.log1p(0.13)
    assert suite.half_width == pytest.approx(math.hypot(bare.half_width, between))
    assert {stat.verdict for stat in stats.values()} == {"inconclusive"}
    assert {stat.verdict for stat in bare_stats.values()} == {"slower"}
