"""The statistics of a comparison, on log timings, with the standard library only (the t
distribution comes from the regularized incomplete beta function below).

Run time noise is multiplicative, so a ratio is the natural effect and log timings are close to
normal.

* Per query: a t-test on the log timings of the successful iterations of both sides. With 3 to 5
  iterations per side a query's own variance estimate has 4 to 8 degrees of freedom, which makes a
  plain t-test weak. The variance is therefore "moderated" (the empirical-Bayes idea of limma's
  moderated t, Smyth 2004): the query's pooled variance is averaged with the variance pooled over
  the *other* queries of the comparison, weighted as if that prior were worth ``PRIOR_DF`` degrees
  of freedom, and the t statistic gets ``PRIOR_DF + own df`` degrees of freedom. A query whose
  own iterations are noisy (one slow outlier) keeps most of its own large variance and is not
  flagged by that outlier. Verdict ``slower``/``faster`` when p < ``QUERY_ALPHA`` *and* the ratio
  differs from 1 by more than ``QUERY_MIN_EFFECT``; otherwise ``unchanged``.
* Suite: per-query log ratio = mean(log new) - mean(log base) (the mean of logs is the efficient
  estimate under lognormal noise; the median, used by the CDK tooling's p50, wastes about 30% of the
  information with five iterations). Geometric-mean ratio = exp(mean of those). Its confidence
  interval is a Student t-interval over the queries (k - 1 degrees of freedom). Why a t-interval
  and not a bootstrap: with ~22 queries a percentile bootstrap under-covers (its intervals are
  too narrow by about sqrt((k-1)/k) and have no small-sample correction), it needs random numbers
  (determinism then hangs on a seed) and thousands of resamples; the t-interval is exact when the
  log ratios are normal, which they are under lognormal noise. Why across queries and not from
  the iterations' noise: the spread of the per-query ratios also absorbs query-specific
  run-to-run effects (one query hit a cold cache in one run) that iteration noise cannot see.
  Verdict ``slower``/``faster`` when the interval excludes 1 *and* the geometric mean differs from
  1 by more than ``SUITE_MIN_EFFECT``.

  The interval's variance is moderated as the per-query test's is: the spread across queries,
  averaged with the mean squared standard error of the queries' log ratios (their iteration
  noise) weighted as ``SUITE_PRIOR_DF`` degrees of freedom. With two or three queries the spread
  alone has one or two degrees of freedom and is now and then tiny by luck (two noisy queries that
  moved alike became "slower"); the iteration noise keeps such a suite honest.

Tuning (``benchmarks/compare_simulation.py``, results in BENCHMARKS.md; 22 queries, 5 iterations):
a 95% interval alone gives 5% false alarms by construction, right at the goal of at most 5% for
an unchanged build; a 96% interval plus a 2.5% minimum effect keeps false alarms near 3.5-4% at 10%
noise while catching a uniform 5% regression in about 93% of suites (the moderation's extra
degrees of freedom took it from about 91%). ``QUERY_ALPHA`` 0.005 (rather than 0.01) halves the
share of unchanged suites in which some query is flagged (about 5% instead of 12% over 22 queries)
and still catches a 20% regression of one query at 5% noise in 99%.

Two runs cannot tell an offset their queries share (the machine was busier, the cluster slower
today) from a change: on real local workers, bench + restart + bench called 11 of 20 A/A pairs
different. So there are two designs (``benchmarks/aa_real.py`` measures both on real workers):

* **Two runs** (``compare``, ``bench``): the tests above, each widened by a run-to-run offset
  they cannot estimate, taken from evidence (:class:`RunToRun`: the calibrated floor of the kind
  of target, ``RUN_TO_RUN``, or the user's own A/A runs, ``--run-to-run``): its variance, twice
  (one offset per run), is added to each query's squared standard error, and the suite interval's
  half-width grows by the normal quantile × √2 × the per-run offset (in quadrature). A difference
  the narrower test would have called and the widened one does not is ``inconclusive: within
  run-to-run noise (±X%); use `dfbench ab``: never faster/slower on evidence that cannot
  separate a change from drift.
* **Interleaved rounds** (``dfbench ab``): the round is the unit. Each round runs every query on
  both sides, so base and new are paired within it: per query, the moderated test above on its
  paired per-round log ratios (:func:`assess_paired_queries`); for the suite, the per-round
  geometric-mean ratio (the mean over the queries of the round's log ratios, :func:`round_log_ratios`)
  and a t-interval over the rounds (rounds - 1 degrees of freedom, :func:`assess_rounds`). Real
  noise is shared by the queries of a pass (the queries that run close together see the same
  load), which a spread across queries cannot see and a spread across rounds can; whatever
  lasts the round cancels in the pairs. Same gates: 96% interval, 2.5% minimum effect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist
from typing import Literal

QUERY_ALPHA = 0.005
QUERY_MIN_EFFECT = 0.05
PRIOR_DF = 8
SUITE_CONFIDENCE = 0.96
SUITE_MIN_EFFECT = 0.025
SUITE_PRIOR_DF = 4



@dataclass(frozen=True)
class RunToRun:
    """What two sequential runs of one build differ by, beyond their iterations' noise: the
    standard deviation (a fraction) of the offset a run shares over all its queries (``suite``)
    and of one query's offset between runs, the shared one included (``query``); ``source`` says
    where the numbers come from, and is printed with every comparison that uses them."""

    suite: float
    query: float
    source: str


# Calibrated floors per kind of target (RESULTS_KINDS). Local: fitted to 60 A/A pairs (bench,
# restart the worker, bench) of TPC-H SF0.1 on dfbench's local worker by benchmarks/aa_real.py
# (12.6% per run, 38.5% per query, rounded up; BENCHMARKS.md, "A/A on real local workers"), on a
# 2-core machine loaded by other jobs (load average 9-26): a quiet machine differs less, and then
# these make two-run verdicts conservative, never overconfident. Remote: no cluster has been
# measured; the local numbers stand in. `dfbench compare --run-to-run PCT` takes a user's own.
_LOCAL_SOURCE = "60 A/A pairs on the local worker, benchmarks/aa_real.py"
RUN_TO_RUN = {
    "local": RunToRun(0.13, 0.39, _LOCAL_SOURCE),
    "remote": RunToRun(0.13, 0.39, f"{_LOCAL_SOURCE}; no cluster measured yet"),
}

Verdict = Literal["faster", "slower", "unchanged", "inconclusive", "failed", "fixed", "missing"]


# --------------------------------------------------------------------------- t distribution


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz's method)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom."""
    if math.isinf(t):
        return 0.0
    if math.isnan(t):
        return 1.0
    return min(1.0, betainc(df / 2.0, 0.5, df / (df + t * t)))


@lru_cache(maxsize=4096)
def t_critical(df: float, alpha: float) -> float:
    """The |t| whose two-sided p-value is ``alpha`` (bisection on the CDF; cached)."""
    low, high = 0.0, 1.0
    while t_two_sided_p(high, df) > alpha:
        high *= 2.0
    for _ in range(100):
        middle = (low + high) / 2.0
        if t_two_sided_p(middle, df) > alpha:
            low = middle
        else:
            high = middle
        if high - low < 1e-12:
            break
    return (low + high) / 2.0


# --------------------------------------------------------------------------- statistics


@dataclass
class QueryStat:
    """One query's test; the inputs are the successful timings (ms) of both sides."""

    log_ratio: float
    t: float
    df: int
    verdict: Verdict
    p_value: float | None = None
    se: float = math.nan  # standard error of log_ratio from the (moderated) iteration noise


@dataclass
class SuiteStat:
    verdict: Verdict
    queries: int
    geomean_ratio: float | None
    ci_low: float | None
    ci_high: float | None
    detectable: float | None = None  # smallest uniform change (as a fraction) this suite would call
    rounds: int | None = None  # the paired design's rounds (assess_rounds); None for two runs
    half_width: float | None = None  # the interval's half-width on the log scale


def _log(value: float) -> float:
    return math.log(max(value, 1e-9))


def _log_summary(timings: list[float]) -> tuple[int, float, float]:
    """(n, mean of logs, sum of squared deviations of logs)."""
    return _log_summary_of([_log(value) for value in timings])


def _log_summary_of(logs: list[float]) -> tuple[int, float, float]:
    """(n, mean, sum of squared deviations) of values already on the log scale."""
    n = len(logs)
    mean = sum(logs) / n
    return n, mean, sum((value - mean) ** 2 for value in logs)


def assess_queries(pairs: dict[str, tuple[list[float], list[float]]], *, with_p: bool = True,
                   alpha: float = QUERY_ALPHA, min_effect: float = QUERY_MIN_EFFECT,
                   prior_df: int = PRIOR_DF, run_to_run: float = 0.0) -> dict[str, QueryStat]:
    """Moderated t-test per query on log timings of two runs; ``pairs`` maps id -> (base ms, new
    ms), both non-empty. ``run_to_run`` (a fraction) is the standard deviation of one query's
    offset between two runs: its variance, twice (one offset per run), is added to the squared
    standard error, and a verdict only the iteration noise supports is ``inconclusive``.
    ``with_p=False`` decides from cached critical values only (the simulation)."""
    summaries = {}
    for query_id, (base, new) in pairs.items():
        n1, m1, ss1 = _log_summary(base)
        n2, m2, ss2 = _log_summary(new)
        summaries[query_id] = (m2 - m1, ss1 + ss2, n1 + n2 - 2, 1.0 / n1 + 1.0 / n2)
    return _moderated(summaries, with_p=with_p, alpha=alpha, min_effect=min_effect, prior_df=prior_df,
                      extra_variance=2 * math.log1p(run_to_run) ** 2)


def assess_paired_queries(pairs: dict[str, tuple[list[float], list[float]]], *, with_p: bool = True,
                          alpha: float = QUERY_ALPHA, min_effect: float = QUERY_MIN_EFFECT,
                          prior_df: int = PRIOR_DF) -> dict[str, QueryStat]:
    """Per query, the moderated t-test on its paired per-round differences (log new - log base of
    the same round); ``pairs`` maps id -> (base ms, new ms) with one timing per round, in round
    order, the same number on both sides. Whatever one pass shares (the machine was busier during
    that round) falls on both members of a pair and cancels where it lasts the round, and is
    counted in the differences' spread where it does not."""
    summaries = {}
    for query_id, (base, new) in pairs.items():
        if len(base) != len(new):
            raise ValueError(f"{query_id}: {len(base)} base and {len(new)} new timings cannot be paired by round")
        n, mean, ss = _log_summary_of([_log(b2) - _log(b1) for b1, b2 in zip(base, new, strict=True)])
        summaries[query_id] = (mean, ss, n - 1, 1.0 / n)
    return _moderated(summaries, with_p=with_p, alpha=alpha, min_effect=min_effect, prior_df=prior_df)


def _moderated(summaries: dict[str, tuple[float, float, int, float]], *, with_p: bool, alpha: float,
               min_effect: float, prior_df: int, extra_variance: float = 0.0) -> dict[str, QueryStat]:
    """The tests of :func:`assess_queries` and :func:`assess_paired_queries` from each query's
    (log ratio, sum of squares, its df, the factor from variance to the ratio's squared standard
    error). ``extra_variance`` is added to each squared standard error (run-to-run offsets): a
    test significant on the rest only is ``inconclusive``."""
    total_ss = sum(summary[1] for summary in summaries.values())
    total_df = sum(summary[2] for summary in summaries.values())
    gate = math.log1p(min_effect)
    stats = {}
    for query_id, (diff, ss, own_df, scale) in summaries.items():
        # Prior from the *other* queries only, and never worth more df than they have.
        other_df = total_df - own_df
        weight = min(prior_df, other_df)
        prior_var = (total_ss - ss) / other_df if other_df > 0 else 0.0
        df = weight + own_df
        if df == 0:  # one iteration per side and nothing to borrow: no test possible
            stats[query_id] = QueryStat(diff, math.nan, 0, "unchanged", None, math.nan)
            continue
        own_var = ss / own_df if own_df else 0.0
        variance = (weight * prior_var + own_df * own_var) / df
        within = math.sqrt(variance * scale)
        se = math.sqrt(within ** 2 + extra_variance)
        critical = t_critical(df, alpha)
        t = _t(diff, se)
        verdict: Verdict = "unchanged"
        if abs(diff) > gate and abs(t) > critical:
            verdict = "slower" if diff > 0 else "faster"
        elif abs(diff) > gate and abs(_t(diff, within)) > critical:
            verdict = "inconclusive"
        stats[query_id] = QueryStat(diff, t, df, verdict, t_two_sided_p(t, df) if with_p else None, se)
    return stats


def _t(diff: float, se: float) -> float:
    if se > 0:
        return diff / se
    return 0.0 if diff == 0 else math.copysign(math.inf, diff)


def assess_suite(log_ratios: list[float], *, noise_variances: list[float] | None = None,
                 confidence: float = SUITE_CONFIDENCE, min_effect: float = SUITE_MIN_EFFECT,
                 prior_df: int = SUITE_PRIOR_DF, run_to_run: float = 0.0) -> SuiteStat:
    """Two runs: t-interval on the mean per-query log ratio (see the module docstring for why).

    ``noise_variances`` (each query's squared standard error from its iterations) moderate the
    spread across queries as the per-query test moderates its variance: the variance used is the
    across-query one averaged with their mean, weighted as if that were worth ``prior_df`` degrees
    of freedom. Two or three queries then get an interval from their iteration noise rather than
    from a spread with one or two degrees of freedom (which is by luck sometimes tiny).

    ``run_to_run`` (a fraction): the standard deviation of the offset a run shares over all its
    queries, which two runs cannot estimate; the interval's half-width is widened by its share
    (normal quantile × √2 × it, added in quadrature). A suite the narrower interval would have
    called and the wider one does not is ``inconclusive``.

    ``detectable``: the smallest uniform change the suite would call slower or faster given its
    own noise: the interval's half-width, and never less than ``min_effect``."""
    k = len(log_ratios)
    noise = [value for value in (noise_variances or []) if math.isfinite(value)]
    weight = prior_df if noise else 0
    if k == 0:
        return SuiteStat("unchanged", 0, None, None, None)
    mean = sum(log_ratios) / k
    df = k - 1 + weight
    if df == 0:
        return SuiteStat("unchanged", k, math.exp(mean), None, None)
    spread = sum((value - mean) ** 2 for value in log_ratios)
    variance = (spread + weight * (sum(noise) / len(noise) if noise else 0.0)) / df
    within = t_critical(df, 1.0 - confidence) * math.sqrt(variance / k)
    between = normal_critical(1.0 - confidence) * math.sqrt(2.0) * math.log1p(run_to_run)
    return _suite(mean, math.hypot(within, between), k, min_effect=min_effect, narrower=within)


def assess_two_runs(pairs: dict[str, tuple[list[float], list[float]]], run_to_run: RunToRun, *,
                    with_p: bool = True) -> tuple[dict[str, QueryStat], SuiteStat]:
    """Two runs judged with the run-to-run offsets ``run_to_run``: each query by
    :func:`assess_queries` widened by ``run_to_run.query``; the suite by :func:`assess_suite` on
    their log ratios, moderated by their iteration noise alone (so that its narrower interval is
    the one two runs would give without the allowance) and widened by ``run_to_run.suite``."""
    stats = assess_queries(pairs, with_p=with_p, run_to_run=run_to_run.query)
    within = assess_queries(pairs, with_p=False) if run_to_run.query else stats
    suite = assess_suite([stats[query_id].log_ratio for query_id in pairs],
                         noise_variances=[within[query_id].se ** 2 for query_id in pairs], run_to_run=run_to_run.suite)
    return stats, suite


def assess_rounds(round_log_ratios: list[float], *, queries: int, confidence: float = SUITE_CONFIDENCE,
                  min_effect: float = SUITE_MIN_EFFECT) -> SuiteStat:
    """Interleaved rounds: ``round_log_ratios`` holds, per round, the mean over the queries of log
    new - log base in that round (the log of that round's geometric-mean ratio). The interval is
    the t-interval of their mean, with rounds - 1 degrees of freedom: everything a pass shares
    over its queries (load, frequency, the page cache, the other side's pass in the same round)
    is in their spread, which is what the queries' own spread cannot see. Fewer than two rounds
    give no interval."""
    n = len(round_log_ratios)
    if n == 0 or queries == 0:
        return SuiteStat("unchanged", queries, None, None, None, rounds=n)
    mean = sum(round_log_ratios) / n
    if n < 2:
        return SuiteStat("unchanged", queries, math.exp(mean), None, None, rounds=n)
    spread = sum((value - mean) ** 2 for value in round_log_ratios) / (n - 1)
    half = t_critical(n - 1, 1.0 - confidence) * math.sqrt(spread / n)
    return _suite(mean, half, queries, min_effect=min_effect, rounds=n)


def round_log_ratios(pairs: dict[str, tuple[list[float], list[float]]]) -> list[float]:
    """Per round, the mean over the queries of log new - log base (``pairs`` as
    :func:`assess_paired_queries` takes them: one timing per round on each side)."""
    if not pairs:
        return []
    rounds = {len(timings) for pair in pairs.values() for timings in pair}
    if len(rounds) != 1:
        raise ValueError(f"every query needs the same number of rounds on both sides (got {sorted(rounds)})")
    count = rounds.pop()
    return [sum(_log(new[index]) - _log(base[index]) for base, new in pairs.values()) / len(pairs)
            for index in range(count)]


def _suite(mean: float, half: float, queries: int, *, min_effect: float, narrower: float | None = None,
           rounds: int | None = None) -> SuiteStat:
    """The verdict of an interval mean ± half (log scale): slower or faster when it excludes 0 and
    the mean is beyond the minimum effect; ``inconclusive`` when only the ``narrower`` half-width
    (the interval without run-to-run offsets) would have excluded 0."""
    gate = math.log1p(min_effect)
    verdict: Verdict = "unchanged"
    if abs(mean) > gate and abs(mean) > half:
        verdict = "slower" if mean > 0 else "faster"
    elif narrower is not None and abs(mean) > gate and abs(mean) > narrower:
        verdict = "inconclusive"
    return SuiteStat(verdict, queries, math.exp(mean), math.exp(mean - half), math.exp(mean + half),
                     math.expm1(max(half, gate)), rounds=rounds, half_width=half)


def normal_critical(alpha: float) -> float:
    """The z whose two-sided tail probability is ``alpha``: the t critical value with infinite
    degrees of freedom (the run-to-run component is a calibrated constant, not an estimate)."""
    return NormalDist().inv_cdf(1.0 - alpha / 2.0)
