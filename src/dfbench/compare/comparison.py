"""Compare two benchmark runs (DESIGN section 7): the seed's text, plus statistics that say
whether a difference is real.

Result files: ``<data_dir>/<dataset>/.results-<remote|local>/<engine>/<query>.json``.

What is added to the seed's output, and why:

* The seed's per-query lines flag any p50 ratio above 1.2. With five iterations and 10% noise
  that flags a query of an unchanged build in about a third of the runs, and misses most 10%
  regressions. dfbench keeps those lines byte for byte (people grep them), and adds a verdict
  per query from a significance test gated by a minimum effect, and a suite verdict on the
  geometric mean of the per-query ratios with a confidence interval.
* The seed's TOTAL silently leaves out failed queries; dfbench's TOTAL says how many it left out.

Statistics, all on log timings (run time noise is multiplicative, so a ratio is the natural
effect and log timings are close to normal):

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
  estimate under lognormal noise; the median, used by the seed's p50, wastes about 30% of the
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

Tuning (``benchmarks/compare_simulation.py``, results in BENCHMARKS.md; 22 queries, 5 iterations):
a 95% interval alone gives 5% false alarms by construction, right at the goal of at most 5% for
an unchanged build; a 96% interval plus a 2.5% minimum effect keeps false alarms near 3.5% at 10%
noise while still catching a uniform 5% regression in about 91% of suites. ``QUERY_ALPHA`` 0.005
(rather than 0.01) halves the share of unchanged suites in which some query is flagged (about 5%
instead of 12% over 22 queries) and still catches a 20% regression of one query at 5% noise in 99%.

Verdicts per query: ``faster``, ``slower``, ``unchanged`` (both sides succeeded), ``failed`` (no
successful iteration on the new side; ``newly_failed`` tells whether the base succeeded),
``fixed`` (failed on base, succeeds now), ``missing`` (result file on one side only). A query
with some failed iterations but at least one success counts as succeeded, on its successes.

Only the standard library is used: the t distribution comes from the regularized incomplete
beta function below.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from dfbench.errors import ConfigError, DfbenchError
from dfbench.bench.results import RUN_MANIFEST, engines_dir, previous_path

QUERY_ALPHA = 0.005
QUERY_MIN_EFFECT = 0.05
PRIOR_DF = 8
SUITE_CONFIDENCE = 0.96
SUITE_MIN_EFFECT = 0.025
SEED_HIGHLIGHT = 1.2

RESULTS_KINDS = ("remote", "local")
FORMATS = ("text", "markdown", "json")

Verdict = Literal["faster", "slower", "unchanged", "failed", "fixed", "missing"]


# --------------------------------------------------------------------------- result files


@dataclass(frozen=True)
class Iteration:
    elapsed: float
    row_count: int = 0
    plan: str = ""
    tasks: int = 0
    qerror_p50: float | None = None
    qerror_p95: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class QueryResult:
    id: str
    dataset: str
    engine: str
    iterations: tuple[Iteration, ...]

    @property
    def timings(self) -> list[float]:
        """Elapsed ms of the successful iterations."""
        return [iteration.elapsed for iteration in self.iterations if iteration.ok]

    @property
    def failed(self) -> bool:
        """No successful iteration at all."""
        return not self.timings

    @property
    def failed_iterations(self) -> int:
        return sum(1 for iteration in self.iterations if not iteration.ok)

    @property
    def p50(self) -> int:
        """The seed's p50: median of the successful iterations, rounded half up to whole ms."""
        return round_half_up(_median(self.timings)) if self.timings else 0

    @property
    def first_error(self) -> str | None:
        return next((iteration.error for iteration in self.iterations if iteration.error is not None), None)


def round_half_up(value: float) -> int:
    # The seed is JavaScript (Math.round: halves go up); Python's round() goes to even.
    return math.floor(value + 0.5)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _number(value: Any, what: str, path: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{path}: {what} must be a number, got {value!r}")
    return float(value)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"Cannot read result file {path}: {error}") from error


def _parse_result(path: Path, dataset: str, engine: str, data: Any = None) -> QueryResult:
    """One query document; ``data`` when it was read already (an entry of previous-*.json)."""
    data = _read_json(path) if data is None else data
    if not isinstance(data, dict) or not isinstance(data.get("iterations"), list):
        raise ConfigError(f"{path} is not a benchmark result (no \"iterations\" list)")
    iterations = []
    for index, raw in enumerate(data["iterations"]):
        if not isinstance(raw, dict) or "elapsed" not in raw:
            raise ConfigError(f"{path}: iteration {index} has no \"elapsed\"")
        error = raw.get("error")
        optional = {key: _number(raw[key], key, path) if raw.get(key) is not None else None
                    for key in ("statsQErrorP50", "statsQErrorP95")}
        iterations.append(Iteration(
            elapsed=_number(raw["elapsed"], "elapsed", path),
            row_count=int(raw.get("rowCount") or 0),
            plan=str(raw.get("plan") or ""),
            tasks=int(raw.get("tasks") or 0),
            qerror_p50=optional["statsQErrorP50"],
            qerror_p95=optional["statsQErrorP95"],
            error=None if error is None else str(error),
        ))
    return QueryResult(id=str(data.get("id") or path.stem), dataset=str(data.get("dataset", dataset)),
                       engine=str(data.get("engine", engine)), iterations=tuple(iterations))


def query_sort_key(query_id: str) -> tuple[int, int, str]:
    """q1, q2, …, q10 (by the first number in the id), ids without a number last."""
    match = re.search(r"\d+", query_id)
    return (0, int(match.group()), query_id) if match else (1, 0, query_id)


def _is_remote(results: str) -> bool:
    if results not in RESULTS_KINDS:
        raise ConfigError(f"results must be one of {', '.join(RESULTS_KINDS)}, not {results!r}")
    return results == "remote"


def load_results(data_dir: str | Path, dataset: str, engine: str,
                 results: str = "remote") -> dict[str, QueryResult]:
    """Every ``<query>.json`` of one engine's run, keyed by query id, in numeric query order."""
    parent = engines_dir(data_dir, dataset, remote=_is_remote(results))
    folder = parent / engine
    if not folder.is_dir():
        engines = sorted(entry.name for entry in parent.iterdir() if entry.is_dir()) if parent.is_dir() else []
        if engines:
            found = f"Engines with {results} results there: {', '.join(engines)}."
        elif parent.is_dir():
            found = f"{parent} holds no engine folders yet."
        else:
            other = "local" if results == "remote" else "remote"
            found = (f"There are no {results} results for dataset {dataset!r} ({parent} does not "
                     f"exist): run the benchmark first, or check --data-dir, --dataset and "
                     f"--results (maybe {other}).")
        raise ConfigError(f"No {results} results for engine {engine!r} ({folder} does not exist). {found}")
    # run.json describes the run (hardware, settings), it is not a query.
    loaded = [_parse_result(path, dataset, engine) for path in folder.glob("*.json")
              if path.name != RUN_MANIFEST and not path.name.startswith(".")]
    if not loaded:
        raise ConfigError(f"{folder} holds no result files (<query>.json)")
    by_id: dict[str, QueryResult] = {}
    for result in sorted(loaded, key=lambda result: query_sort_key(result.id)):
        by_id[result.id] = result
    return by_id


def load_previous(data_dir: str | Path, dataset: str,
                  results: str = "remote") -> tuple[str, dict[str, QueryResult]] | None:
    """The last complete run recorded in ``previous-<results>.json`` (engine, results), or None.

    It holds every query document of that run, so it survives the engine folder being
    overwritten by a new run of the same engine."""
    path = previous_path(data_dir, dataset, remote=_is_remote(results))
    if not path.is_file():
        return None
    data = _read_json(path)
    engine = str(data.get("engine", "previous")) if isinstance(data, dict) else "previous"
    documents = data.get("results") if isinstance(data, dict) else None
    if not isinstance(documents, list) or not documents:
        return None
    loaded = [_parse_result(path, dataset, engine, document) for document in documents]
    return engine, {result.id: result for result in sorted(loaded, key=lambda r: query_sort_key(r.id))}


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


@dataclass
class SuiteStat:
    verdict: Verdict
    queries: int
    geomean_ratio: float | None
    ci_low: float | None
    ci_high: float | None


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
            stats[query_id] = QueryStat(diff, math.nan, 0, "unchanged", None)
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
        stats[query_id] = QueryStat(diff, t, df, verdict, t_two_sided_p(t, df) if with_p else None)
    return stats


def assess_suite(log_ratios: list[float], *, confidence: float = SUITE_CONFIDENCE,
               min_effect: float = SUITE_MIN_EFFECT) -> SuiteStat:
    """t-interval on the mean per-query log ratio (see the module docstring for why)."""
    k = len(log_ratios)
    if k == 0:
        return SuiteStat("unchanged", 0, None, None, None)
    mean = sum(log_ratios) / k
    if k == 1:
        return SuiteStat("unchanged", 1, math.exp(mean), None, None)
    sd = math.sqrt(sum((value - mean) ** 2 for value in log_ratios) / (k - 1))
    half = t_critical(k - 1, 1.0 - confidence) * sd / math.sqrt(k)
    low, high = mean - half, mean + half
    gate = math.log1p(min_effect)
    verdict: Verdict = "unchanged"
    if low > 0 and mean > gate:
        verdict = "slower"
    elif high < 0 and mean < -gate:
        verdict = "faster"
    return SuiteStat(verdict, k, math.exp(mean), math.exp(low), math.exp(high))


# --------------------------------------------------------------------------- comparison


@dataclass
class QueryComparison:
    id: str
    verdict: Verdict
    base: QueryResult | None
    new: QueryResult | None
    ratio: float | None = None  # geometric-mean ratio new/base of the successful iterations
    p_value: float | None = None

    @property
    def base_p50_ms(self) -> int | None:
        return self.base.p50 if self.base is not None and not self.base.failed else None

    @property
    def new_p50_ms(self) -> int | None:
        return self.new.p50 if self.new is not None and not self.new.failed else None

    @property
    def newly_failed(self) -> bool:
        return self.verdict == "failed" and self.base is not None and not self.base.failed

    @property
    def in_both(self) -> bool:
        return self.base is not None and self.new is not None


@dataclass
class Suite:
    verdict: Verdict
    geomean_ratio: float | None
    ci_low: float | None
    ci_high: float | None
    failed: int  # queries that failed on at least one side (left out of TOTAL and of the stats)
    missing: int  # queries with a result file on one side only
    queries: int  # queries in the statistics (succeeded on both sides)


@dataclass
class Comparison:
    dataset: str
    base: str
    new: str
    queries: list[QueryComparison]
    suite: Suite
    format: str = "text"
    fail_on_regression: bool = False
    _cache: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def regressed(self) -> bool:
        """Suite slower, or a query that succeeded on base fails now."""
        return self.suite.verdict == "slower" or any(query.newly_failed for query in self.queries)

    @property
    def exit_code(self) -> int:
        return 1 if self.fail_on_regression and self.regressed else 0

    @property
    def text(self) -> str:
        return self.render("text")

    @property
    def output(self) -> str:
        return self.render(self.format)

    def render(self, format: str = "text") -> str:
        if format not in FORMATS:
            raise ConfigError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
        if format not in self._cache:
            self._cache[format] = {"text": _render_text, "markdown": _render_markdown,
                                   "json": _render_json}[format](self)
        return self._cache[format]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "base": self.base,
            "new": self.new,
            "queries": [{"id": query.id, "verdict": query.verdict, "base_p50_ms": query.base_p50_ms,
                         "new_p50_ms": query.new_p50_ms, "ratio": query.ratio, "p_value": query.p_value}
                        for query in self.queries],
            "suite": {"verdict": self.suite.verdict, "geomean_ratio": self.suite.geomean_ratio,
                      "ci_low": self.suite.ci_low, "ci_high": self.suite.ci_high,
                      "failed": self.suite.failed, "missing": self.suite.missing},
        }


def compare_results(base: dict[str, QueryResult], new: dict[str, QueryResult], *, dataset: str,
                    base_name: str, new_name: str) -> Comparison:
    """The comparison of two loaded runs (no file access)."""
    ids = sorted(set(base) | set(new), key=query_sort_key)
    pairs = {query_id: (base[query_id].timings, new[query_id].timings) for query_id in ids
             if query_id in base and query_id in new and not base[query_id].failed
             and not new[query_id].failed}
    stats = assess_queries(pairs)
    queries = []
    for query_id in ids:
        old, now = base.get(query_id), new.get(query_id)
        if old is None or now is None:
            queries.append(QueryComparison(query_id, "missing", old, now))
        elif now.failed:
            queries.append(QueryComparison(query_id, "failed", old, now))
        elif old.failed:
            queries.append(QueryComparison(query_id, "fixed", old, now))
        else:
            stat = stats[query_id]
            queries.append(QueryComparison(query_id, stat.verdict, old, now, math.exp(stat.log_ratio),
                                           stat.p_value))
    suite_stat = assess_suite([stats[query_id].log_ratio for query_id in pairs])
    suite = Suite(
        verdict=suite_stat.verdict,
        geomean_ratio=suite_stat.geomean_ratio,
        ci_low=suite_stat.ci_low,
        ci_high=suite_stat.ci_high,
        failed=sum(1 for query in queries if query.verdict in ("failed", "fixed")),
        missing=sum(1 for query in queries if query.verdict == "missing"),
        queries=suite_stat.queries,
    )
    return Comparison(dataset, base_name, new_name, queries, suite)


def compare(*, dataset: str, base: str, new: str, data_dir: str | Path = "benchmarks/data",
            results: str = "remote", format: str = "text", fail_on_regression: bool = False) -> Comparison:
    """Compare engine ``new`` against engine ``base`` on ``dataset``; see the module docstring."""
    if format not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    comparison = compare_results(load_results(data_dir, dataset, base, results),
                                 load_results(data_dir, dataset, new, results),
                                 dataset=dataset, base_name=base, new_name=new)
    comparison.format = format
    comparison.fail_on_regression = fail_on_regression
    return comparison


# --------------------------------------------------------------------------- rendering


def _factor(prev: float, new: float) -> tuple[float, str, str]:
    """The seed's diff: factor >= 1, faster/slower, and its mark."""
    if new < prev:
        factor = prev / new if new else math.inf
        return factor, "faster", "✅" if factor > SEED_HIGHLIGHT else "✔"
    factor = new / prev if prev else (1.0 if new == prev else math.inf)
    return factor, "slower", "❌" if factor > SEED_HIGHLIGHT else "✖"


def seed_line(query: QueryComparison) -> str:
    """The seed's line for a query present on both sides (failure lines right-aligned too)."""
    assert query.base is not None and query.new is not None
    label = query.id.rjust(8)
    if query.base.failed and not query.new.failed:
        return f"{label}: Previously failed, but now succeeded 🟠"
    if query.new.failed:
        if query.base.failed:
            return f"{label}: Previously failed, and now also failed ❌"
        return f"{label}: Previously succeeded, but now failed ❌"
    prev, now = query.base.p50, query.new.p50
    factor, tag, mark = _factor(prev, now)
    return f"{label}: prev={prev:4d} ms, new={now:4d} ms, diff={factor:.2f} {tag} {mark}"


def _qerror_line(label: str, prev: list[float], now: list[float]) -> str | None:
    def show(values: list[float]) -> str:
        return f"{_median(values):.2f}x" if values else "n/a"

    if not prev and not now:
        return None
    return f"{label.rjust(8)}: prev={show(prev)}, new={show(now)}"


def seed_lines(comparison: Comparison) -> list[str]:
    """Header, per-query lines, TOTAL (with dfbench's note of what it leaves out), QERR lines.

    QERR lines: the median over every successful iteration's statsQErrorP50 (P95) of the queries
    that are in TOTAL, as the seed computes it, labelled right-aligned to 8 like TOTAL; printed only
    when some iteration carries the value, ``n/a`` for a side without any."""
    lines = [f"=== Comparing {comparison.dataset} results from engine '{comparison.base}' [prev] "
             f"with '{comparison.new}' [new] ==="]
    total_prev = total_new = 0
    qerr: dict[str, list[float]] = {"p50 prev": [], "p50 new": [], "p95 prev": [], "p95 new": []}
    for query in comparison.queries:
        if not query.in_both:
            continue
        lines.append(seed_line(query))
        if query.verdict in ("faster", "slower", "unchanged"):
            assert query.base is not None and query.new is not None
            total_prev += query.base.p50
            total_new += query.new.p50
            for side, result in (("prev", query.base), ("new", query.new)):
                for iteration in result.iterations:
                    if iteration.ok and iteration.qerror_p50 is not None:
                        qerr[f"p50 {side}"].append(iteration.qerror_p50)
                    if iteration.ok and iteration.qerror_p95 is not None:
                        qerr[f"p95 {side}"].append(iteration.qerror_p95)
    factor, tag, mark = _factor(total_prev, total_new)
    total = f"{'TOTAL'.rjust(8)}: prev={total_prev} ms, new={total_new} ms, diff={factor:.2f} {tag} {mark}"
    failed, missing = comparison.suite.failed, comparison.suite.missing
    if failed or missing:
        total += f" ({failed} failed, {missing} missing: not in total)"
    lines.append(total)
    for label, key in (("QERR P50", "p50"), ("QERR P95", "p95")):
        line = _qerror_line(label, qerr[f"{key} prev"], qerr[f"{key} new"])
        if line is not None:
            lines.append(line)
    return lines


def percent(value: float) -> str:
    """0.05 -> '5%', 0.025 -> '2.5%'."""
    return f"{100 * value:.1f}".rstrip("0").rstrip(".") + "%"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def _ms(value: int | None) -> str:
    return "-" if value is None else f"{value} ms"


def suite_sentence(comparison: Comparison) -> str:
    suite = comparison.suite
    if suite.geomean_ratio is None:
        core = "no query succeeded on both sides"
    elif suite.ci_low is None or suite.ci_high is None:
        core = f"geomean ratio {suite.geomean_ratio:.3f} over 1 query (too few for an interval)"
    else:
        core = (f"geomean ratio {suite.geomean_ratio:.3f} "
                f"({percent(SUITE_CONFIDENCE)} CI {suite.ci_low:.3f}–{suite.ci_high:.3f}) over {suite.queries} queries")
    return f"{suite.verdict}: {core}; {suite.failed} failed, {suite.missing} missing"


def _render_text(comparison: Comparison) -> str:
    lines = seed_lines(comparison)
    lines += ["", f"Statistics (ratio = new/base geometric mean; per query: moderated t-test on log "
                  f"timings, p < {QUERY_ALPHA} and |ratio - 1| > {percent(QUERY_MIN_EFFECT)}; suite: "
                  f"{percent(SUITE_CONFIDENCE)} t-interval over queries, |geomean - 1| > {percent(SUITE_MIN_EFFECT)})",
              f"{'query':>8}  {'base p50':>10}  {'new p50':>10}  {'ratio':>6}  {'p-value':>8}  verdict"]
    for query in comparison.queries:
        note = ""
        for side, result in (("base", query.base), ("new", query.new)):
            if result is not None and not result.failed and result.failed_iterations:
                note += f" ({side}: {result.failed_iterations} of {len(result.iterations)} iterations failed)"
        if query.verdict == "missing":
            note += " (no result on the " + ("new" if query.new is None else "base") + " side)"
        lines.append(f"{query.id:>8}  {_ms(query.base_p50_ms):>10}  {_ms(query.new_p50_ms):>10}  "
                     f"{_fmt(query.ratio):>6}  {_p(query.p_value):>8}  {query.verdict}{note}")
    lines.append(f"{'SUITE'.rjust(8)}: {suite_sentence(comparison)}")
    return "\n".join(lines) + "\n"


def _render_markdown(comparison: Comparison) -> str:
    lines = [f"### {comparison.dataset}: `{comparison.new}` vs `{comparison.base}`", "",
             "| Query | Base p50 (ms) | New p50 (ms) | Ratio | p-value | Verdict |",
             "| --- | ---: | ---: | ---: | ---: | --- |"]
    for query in comparison.queries:
        base_ms = "-" if query.base_p50_ms is None else str(query.base_p50_ms)
        new_ms = "-" if query.new_p50_ms is None else str(query.new_p50_ms)
        lines.append(f"| {query.id} | {base_ms} | {new_ms} | {_fmt(query.ratio)} | "
                     f"{_p(query.p_value)} | {query.verdict} |")
    lines += ["", f"**Suite: {suite_sentence(comparison)}**"]
    return "\n".join(lines) + "\n"


def _render_json(comparison: Comparison) -> str:
    return json.dumps(comparison.to_dict(), indent=2, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------- command line


def add_compare_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of ``dfbench compare``."""
    parser.add_argument("--dataset", required=True, help="dataset name, e.g. tpch_sf10")
    parser.add_argument("--data-dir", default="benchmarks/data", help="data folder (default: benchmarks/data)")
    parser.add_argument("--results", choices=RESULTS_KINDS, default="remote",
                        help="compare cluster (remote) or local-worker (local) runs (default: remote)")
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    parser.add_argument("--fail-on-regression", action="store_true",
                        help="exit 1 when the suite is slower or a query newly fails")
    parser.add_argument("base", metavar="BASE", help="engine of the baseline run, e.g. datafusion-distributed-main")
    parser.add_argument("new", metavar="NEW", help="engine of the run to judge")
    return parser


def run_compare(args: argparse.Namespace) -> int:
    """Print the comparison; the exit code (1 only with --fail-on-regression and a regression)."""
    comparison = compare(dataset=args.dataset, base=args.base, new=args.new, data_dir=args.data_dir,
                         results=args.results, format=args.format,
                         fail_on_regression=args.fail_on_regression)
    print(comparison.output, end="")
    return comparison.exit_code


def main(argv: list[str] | None = None) -> int:
    """``python -m dfbench.compare.comparison …`` (same arguments as ``dfbench compare``)."""
    parser = add_compare_arguments(argparse.ArgumentParser(prog="dfbench compare"))
    try:
        return run_compare(parser.parse_args(argv))
    except DfbenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
