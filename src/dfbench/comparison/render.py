"""A comparison as text, markdown or JSON. The text starts with the CDK tooling's lines, byte for byte
(people grep them), then the statistics."""

from __future__ import annotations

import json
import math
import statistics
from decimal import ROUND_HALF_UP, Decimal

from dfbench.comparison.metrics import explanations, metrics_json, tasks_line
from dfbench.comparison.records import FORMATS, Comparison, QueryComparison
from dfbench.comparison.stats import QUERY_ALPHA, QUERY_MIN_EFFECT, SUITE_CONFIDENCE, SUITE_MIN_EFFECT
from dfbench.errors import ConfigError

TOOLING_HIGHLIGHT = 1.2


def js_fixed(value: float, digits: int = 2) -> str:
    """JavaScript's ``Number.prototype.toFixed``: NaN and Infinity spelled as JavaScript does, and
    an exact half rounded up (ECMA-262 picks the larger n; Python's format rounds half to even:
    0.125 -> "0.13" there, "0.12" here)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return str(Decimal(value).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def _divide(numerator: float, denominator: float) -> float:
    """JavaScript's division: x/0 is Infinity, 0/0 NaN."""
    if denominator == 0:
        return math.nan if numerator == 0 else math.copysign(math.inf, numerator)
    return numerator / denominator


def _factor(prev: float, new: float) -> tuple[str, str, str]:
    """The CDK tooling's diff: factor (as toFixed(2) prints it), faster/slower, and its mark; a tie
    is "slower", 0 ms on both sides NaN (@results.ts BenchResult.compare, BenchmarkRun.compare)."""
    if new < prev:
        factor = _divide(prev, new)
        return js_fixed(factor), "faster", "✅" if factor > TOOLING_HIGHLIGHT else "✔"
    factor = _divide(new, prev)
    return js_fixed(factor), "slower", "❌" if factor > TOOLING_HIGHLIGHT else "✖"


def tooling_line(query: QueryComparison) -> str:
    """The CDK tooling's line for a query present on both sides. Failure lines carry the bare id,
    timing lines the id right-aligned to 8, as @results.ts BenchResult.compare prints them."""
    assert query.base is not None and query.new is not None
    if query.base.failed and not query.new.failed:
        return f"{query.id}: Previously failed, but now succeeded 🟠"
    if not query.base.failed and query.new.failed:
        return f"{query.id}: Previously succeeded, but now failed ❌"
    if query.base.failed and query.new.failed:
        return f"{query.id}: Previously failed, and now also failed ❌"
    prev, now = query.base_p50_ms, query.new_p50_ms
    assert prev is not None and now is not None
    factor, tag, mark = _factor(prev, now)
    return f"{query.id.rjust(8)}: prev={prev:4d} ms, new={now:4d} ms, diff={factor} {tag} {mark}"


def _qerror_line(label: str, prev: list[float], now: list[float]) -> str | None:
    """@results.ts printQErrorComparison: nothing when neither side has a value."""
    def show(values: list[float]) -> str:
        return f"{js_fixed(statistics.median(values))}x" if values else "n/a"

    if not prev and not now:
        return None
    return f"{label.rjust(8)}: prev={show(prev)}, new={show(now)}"


def tooling_lines(comparison: Comparison) -> list[str]:
    """What the CDK tooling's BenchmarkRun.compare prints (@results.ts): the header, one line per
    query of the new side that the base side has too (a query on one side only gets no line),
    TOTAL over the queries that failed on neither side (the sum of their p50s), then the QERR
    lines: the median of every statsQErrorP50 (P95) of the queries in TOTAL."""
    lines = [(f"=== Comparing {comparison.dataset} results from engine '{comparison.base}' [prev] "
             f"with '{comparison.new}' [new] ===")]
    total_prev = total_new = 0
    qerr: dict[str, list[float]] = {"p50 prev": [], "p50 new": [], "p95 prev": [], "p95 new": []}
    for query in comparison.queries:
        if not query.in_both:
            continue
        assert query.base is not None and query.new is not None
        if not query.base.failed and not query.new.failed:
            assert query.base_p50_ms is not None and query.new_p50_ms is not None
            total_prev += query.base_p50_ms
            total_new += query.new_p50_ms
            for side, result in (("prev", query.base), ("new", query.new)):
                for iteration in result.iterations:
                    if iteration.stats_q_error_p50 is not None:
                        qerr[f"p50 {side}"].append(iteration.stats_q_error_p50)
                    if iteration.stats_q_error_p95 is not None:
                        qerr[f"p95 {side}"].append(iteration.stats_q_error_p95)
        lines.append(tooling_line(query))
    factor, tag, mark = _factor(total_prev, total_new)
    lines.append(f"{'TOTAL'.rjust(8)}: prev={total_prev} ms, new={total_new} ms, diff={factor} {tag} {mark}")
    for label, key in (("QERR P50", "p50"), ("QERR P95", "p95")):
        line = _qerror_line(label, qerr[f"{key} prev"], qerr[f"{key} new"])
        if line is not None:
            lines.append(line)
    return lines


def _side_of_missing(query: QueryComparison) -> str:
    return f"{query.id} (only on the {'base' if query.new is None else 'new'} side)"


def check_lines(comparison: Comparison) -> list[str]:
    """dfbench's own lines after the tooling's: what TOTAL left out, and the correctness facts
    (rows, SQL, mixed runs) that a timing cannot show."""
    lines = []
    failed = comparison.ids(lambda query: query.verdict in ("failed", "fixed"))
    missing = [_side_of_missing(query) for query in comparison.queries if query.verdict == "missing"]
    if failed or missing:
        parts = [f"{len(failed)} failed" + (f" ({', '.join(failed)})" if failed else ""),
                 f"{len(missing)} missing" + (f" ({', '.join(missing)})" if missing else "")]
        lines.append(f"not in TOTAL: {', '.join(parts)}")
    for query in comparison.queries:
        if query.rows_differ:
            assert query.base is not None and query.new is not None
            lines.append(f"{query.id}: rows differ: base {query.base.rows}, new {query.new.rows}")
        if query.sql_differs:
            assert query.base is not None and query.new is not None
            lines.append(f"{query.id}: SQL differs: base sha256 {query.base.sql_sha256}, "
                         f"new sha256 {query.new.sql_sha256}")
    for side, runs in comparison.mixed_runs.items():
        engine = comparison.base if side == "base" else comparison.new
        described = "; ".join(f"run {run}: {', '.join(ids)}" for run, ids in runs.items())
        lines.append(f"{engine} ({side}): results from {len(runs)} runs mixed: {described}")
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
    over = f"{suite.queries} queries" + ("" if suite.rounds is None else f" and {suite.rounds} rounds")
    if suite.geomean_ratio is None:
        core = "no query succeeded on both sides"
    elif suite.ci_low is None or suite.ci_high is None:
        few = "1 round" if suite.rounds is not None else "1 query"
        core = f"geomean ratio {suite.geomean_ratio:.3f} over {few} (too few for an interval)"
    else:
        core = (f"geomean ratio {suite.geomean_ratio:.3f} "
                f"({percent(SUITE_CONFIDENCE)} CI {suite.ci_low:.3f}–{suite.ci_high:.3f}) over {over}")
    label: str = suite.verdict
    if suite.verdict == "inconclusive":
        # Two runs moved apart by more than their iterations' noise, not by more than runs of one build do.
        label = f"inconclusive: within run-to-run noise (±{_half_percent(comparison)}); use `dfbench ab`"
    return f"{label}: {core}; {suite.failed} failed, {suite.missing} missing"


def _half_percent(comparison: Comparison) -> str:
    """The suite interval's half-width as ±X% (of the geometric-mean ratio)."""
    suite = comparison.suite
    if suite.ci_high is None or suite.geomean_ratio is None:
        return "?"
    return f"{100 * (suite.ci_high / suite.geomean_ratio - 1):.1f}%"


def method_sentence(comparison: Comparison) -> str:
    """How the verdicts below were reached: round by round (an A/B), or from two runs with the
    run-to-run offsets they allowed for and where those come from."""
    suite = comparison.suite
    gates = f"p < {QUERY_ALPHA} and |ratio - 1| > {percent(QUERY_MIN_EFFECT)}"
    suite_gate = f"|geomean - 1| > {percent(SUITE_MIN_EFFECT)}"
    if suite.rounds is not None:
        return (f"Statistics (ratio = new/base geometric mean; {suite.rounds} interleaved rounds, base and new paired "
                f"within each; per query: moderated t-test on its per-round log ratios, {gates}; suite: "
                f"{percent(SUITE_CONFIDENCE)} t-interval over the rounds' geometric-mean ratios, {suite_gate})")
    text = (f"Statistics (ratio = new/base geometric mean; per query: moderated t-test on log timings, {gates}; "
            f"suite: {percent(SUITE_CONFIDENCE)} t-interval over queries, {suite_gate}")
    floor = suite.run_to_run
    if floor is not None:
        text += (f"; two runs: both allow for run-to-run offsets of ±{percent(floor.suite)} per run (suite) and "
                 f"±{percent(floor.query)} per query, from {floor.source}")
    return text + ")"


def detectable_sentence(comparison: Comparison) -> str | None:
    """One line: the smallest uniform change this comparison could have detected, given its noise."""
    detectable = comparison.suite.detectable
    if detectable is None:
        return None
    rounds = comparison.suite.rounds
    return (f"smallest uniform change this comparison could detect: ±{100 * detectable:.1f}% "
            f"(its {percent(SUITE_CONFIDENCE)} interval's half-width, "
            f"at least the {percent(SUITE_MIN_EFFECT)} minimum"
            + ("" if rounds is None else f"; {rounds} rounds: more rounds narrow it, dfbench ab --until PCT") + ")")


def _tasks_lines(comparison: Comparison) -> list[str]:
    line = tasks_line(comparison)
    return [] if line is None else [line]


def render_text(comparison: Comparison) -> str:
    lines = (tooling_lines(comparison) + _tasks_lines(comparison) + check_lines(comparison)
             + explanations(comparison))
    lines += ["", method_sentence(comparison),
              f"{'query':>8}  {'base p50':>10}  {'new p50':>10}  {'ratio':>6}  {'p-value':>8}  verdict"]
    for query in comparison.queries:
        note = ""
        for side, result in (("base", query.base), ("new", query.new)):
            if result is not None and result.failed_iterations:
                note += f" ({side}: {result.failed_iterations} of {len(result.iterations)} iterations failed)"
        if query.verdict == "missing":
            note += " (no result on the " + ("new" if query.new is None else "base") + " side)"
        lines.append(f"{query.id:>8}  {_ms(query.base_p50_ms):>10}  {_ms(query.new_p50_ms):>10}  "
                     f"{_fmt(query.ratio):>6}  {_p(query.p_value):>8}  {query.verdict}{note}")
    lines.append(f"{'SUITE'.rjust(8)}: {suite_sentence(comparison)}")
    detectable = detectable_sentence(comparison)
    if detectable is not None:
        lines.append(f"{'':8}  {detectable}")
    return "\n".join(lines) + "\n"


def render_markdown(comparison: Comparison) -> str:
    lines = [f"### {comparison.dataset}: `{comparison.new}` vs `{comparison.base}`", "",
             "| Query | Base p50 (ms) | New p50 (ms) | Ratio | p-value | Verdict |",
             "| --- | ---: | ---: | ---: | ---: | --- |"]
    for query in comparison.queries:
        base_ms = "-" if query.base_p50_ms is None else str(query.base_p50_ms)
        new_ms = "-" if query.new_p50_ms is None else str(query.new_p50_ms)
        lines.append(f"| {query.id} | {base_ms} | {new_ms} | {_fmt(query.ratio)} | "
                     f"{_p(query.p_value)} | {query.verdict} |")
    checks = _tasks_lines(comparison) + check_lines(comparison) + explanations(comparison)
    if checks:
        lines += [""] + [f"- {line.strip()}" for line in checks]
    lines += ["", f"**Suite: {suite_sentence(comparison)}**", "", method_sentence(comparison)]
    detectable = detectable_sentence(comparison)
    if detectable is not None:
        lines += ["", detectable[0].upper() + detectable[1:] + "."]
    return "\n".join(lines) + "\n"


def render_json(comparison: Comparison) -> str:
    return json.dumps({**comparison.to_dict(), **metrics_json(comparison)}, indent=2,
                      ensure_ascii=False) + "\n"


def render(comparison: Comparison, format: str | None = None) -> str:
    """The comparison in ``format`` (text, markdown or json); by default the format it was made for."""
    format = format or comparison.format
    if format not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    return {"text": render_text, "markdown": render_markdown, "json": render_json}[format](comparison)
