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
and still catches a 20% regression of one query at 5% noise in 99%. None of this separates a
per-run offset common to all queries from a change (sequential runs under a 3% drift alarm in
about half the unchanged suites); interleaved rounds (``dfbench ab``) do, at the same power.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

QUERY_ALPHA = 0.005
QUERY_MIN_EFFECT = 0.05
PRIOR_DF = 8
SUITE_CONFIDENCE = 0.96
SUITE_MIN_EFFECT = 0.025
SUITE_PRIOR_DF = 4

Verdict = Literal["faster", "slower", "unchanged", "failed", "fixed", "missing"]


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


def _log_summary(timings: list[float]) -> tuple[int, float, float]:
    """(n, mean of logs, sum of squared deviations of logs)."""
    logs = [math.log(max(value, 1e-9)) for value in timings]
    n = len(logs)
    mean = sum(logs) / n
    return n, mean, sum((value - mean) ** 2 for value in logs)


def assess_queries(pairs: dict[str, tuple[list[float], list[float]]], *, with_p: bool = True,
                   alpha: float = QUERY_ALPHA, min_effect: float = QUERY_MIN_EFFECT,
                   prior_df: int = PRIOR_DF) -> dict[str, QueryStat]:
    """Moderated t-test per query on log timings; ``pairs`` maps id -> (base ms, new ms), both
    non-empty. ``with_p=False`` decides from cached critical values only (the simulation)."""
    summaries = {}
    for query_id, (base, new) in pairs.items():
        n1, m1, ss1 = _log_summary(base)
        n2, m2, ss2 = _log_summary(new)
        summaries[query_id] = (n1, n2, m2 - m1, ss1 + ss2, n1 + n2 - 2)
    total_ss = sum(summary[3] for summary in summaries.values())
    total_df = sum(summary[4] for summary in summaries.values())
    gate = math.log1p(min_effect)
    stats = {}
    for query_id, (n1, n2, diff, ss, own_df) in summaries.items():
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
        se = math.sqrt(variance * (1.0 / n1 + 1.0 / n2))
        if se > 0:
            t = diff / se
        else:
            t = 0.0 if diff == 0 else math.copysign(math.inf, diff)
        significant = abs(t) > t_critical(df, alpha)
        verdict: Verdict = "unchanged"
        if significant and abs(diff) > gate:
            verdict = "slower" if diff > 0 else "faster"
        stats[query_id] = QueryStat(diff, t, df, verdict, t_two_sided_p(t, df) if with_p else None, se)
    return stats


def assess_suite(log_ratios: list[float], *, noise_variances: list[float] | None = None,
                 confidence: float = SUITE_CONFIDENCE, min_effect: float = SUITE_MIN_EFFECT,
                 prior_df: int = SUITE_PRIOR_DF) -> SuiteStat:
    """t-interval on the mean per-query log ratio (see the module docstring for why).

    ``noise_variances`` (each query's squared standard error from its iterations) moderate the
    spread across queries as the per-query test moderates its variance: the variance used is the
    across-query one averaged with their mean, weighted as if that were worth ``prior_df`` degrees
    of freedom. Two or three queries then get an interval from their iteration noise rather than
    from a spread with one or two degrees of freedom (which is by luck sometimes tiny).

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
    half = t_critical(df, 1.0 - confidence) * math.sqrt(variance / k)
    low, high = mean - half, mean + half
    gate = math.log1p(min_effect)
    verdict: Verdict = "unchanged"
    if low > 0 and mean > gate:
        verdict = "slower"
    elif high < 0 and mean < -gate:
        verdict = "faster"
    return SuiteStat(verdict, k, math.exp(mean), math.exp(low), math.exp(high), math.expm1(max(half, gate)))
