"""A comparison as text, markdown or JSON. The text starts with the CDK tooling's lines, byte for byte
(people grep them), then the statistics."""

from __future__ import annotations

import json
import math
import statistics

from dfbench.comparison.records import FORMATS, Comparison, QueryComparison
from dfbench.comparison.stats import QUERY_ALPHA, QUERY_MIN_EFFECT, SUITE_CONFIDENCE, SUITE_MIN_EFFECT
from dfbench.errors import ConfigError

TOOLING_HIGHLIGHT = 1.2


def _factor(prev: float, new: float) -> tuple[float, str, str]:
    """The CDK tooling's diff: factor >= 1, faster/slower, and its mark."""
    if new < prev:
        factor = prev / new if new else math.inf
        return factor, "faster", "✅" if factor > TOOLING_HIGHLIGHT else "✔"
    factor = new / prev if prev else (1.0 if new == prev else math.inf)
    return factor, "slower", "❌" if factor > TOOLING_HIGHLIGHT else "✖"


def tooling_line(query: QueryComparison) -> str:
    """The CDK tooling's line for a query present on both sides (failure lines right-aligned too)."""
    assert query.base is not None and query.new is not None
    label = query.id.rjust(8)
    if query.base.every_iteration_failed and not query.new.every_iteration_failed:
        return f"{label}: Previously failed, but now succeeded 🟠"
    if query.new.every_iteration_failed:
        if query.base.every_iteration_failed:
            return f"{label}: Previously failed, and now also failed ❌"
        return f"{label}: Previously succeeded, but now failed ❌"
    prev, now = query.base_p50_ms, query.new_p50_ms
    assert prev is not None and now is not None
    factor, tag, mark = _factor(prev, now)
    return f"{label}: prev={prev:4d} ms, new={now:4d} ms, diff={factor:.2f} {tag} {mark}"


def _qerror_line(label: str, prev: list[float], now: list[float]) -> str | None:
    def show(values: list[float]) -> str:
        return f"{statistics.median(values):.2f}x" if values else "n/a"

    if not prev and not now:
        return None
    return f"{label.rjust(8)}: prev={show(prev)}, new={show(now)}"


def tooling_lines(comparison: Comparison) -> list[str]:
    """Header, per-query lines, TOTAL (with dfbench's note of what it leaves out), QERR lines.

    QERR lines: the median over every successful iteration's statsQErrorP50 (P95) of the queries
    that are in TOTAL, as the CDK tooling computes it, labelled right-aligned to 8 like TOTAL; printed only
    when some iteration carries the value, ``n/a`` for a side without any."""
    lines = [f"=== Comparing {comparison.dataset} results from engine '{comparison.base}' [prev] "
             f"with '{comparison.new}' [new] ==="]
    total_prev = total_new = 0
    qerr: dict[str, list[float]] = {"p50 prev": [], "p50 new": [], "p95 prev": [], "p95 new": []}
    for query in comparison.queries:
        if not query.in_both:
            continue
        lines.append(tooling_line(query))
        if query.verdict in ("faster", "slower", "unchanged"):
            assert query.base is not None and query.new is not None
            assert query.base_p50_ms is not None and query.new_p50_ms is not None
            total_prev += query.base_p50_ms
            total_new += query.new_p50_ms
            for side, result in (("prev", query.base), ("new", query.new)):
                for iteration in result.successes:
                    if iteration.stats_q_error_p50 is not None:
                        qerr[f"p50 {side}"].append(iteration.stats_q_error_p50)
                    if iteration.stats_q_error_p95 is not None:
                        qerr[f"p95 {side}"].append(iteration.stats_q_error_p95)
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


def render_text(comparison: Comparison) -> str:
    lines = tooling_lines(comparison)
    lines += ["", f"Statistics (ratio = new/base geometric mean; per query: moderated t-test on log "
                  f"timings, p < {QUERY_ALPHA} and |ratio - 1| > {percent(QUERY_MIN_EFFECT)}; suite: "
                  f"{percent(SUITE_CONFIDENCE)} t-interval over queries, |geomean - 1| > {percent(SUITE_MIN_EFFECT)})",
              f"{'query':>8}  {'base p50':>10}  {'new p50':>10}  {'ratio':>6}  {'p-value':>8}  verdict"]
    for query in comparison.queries:
        note = ""
        for side, result in (("base", query.base), ("new", query.new)):
            if result is not None and not result.every_iteration_failed and result.failed_iterations:
                note += f" ({side}: {result.failed_iterations} of {len(result.iterations)} iterations failed)"
        if query.verdict == "missing":
            note += " (no result on the " + ("new" if query.new is None else "base") + " side)"
        lines.append(f"{query.id:>8}  {_ms(query.base_p50_ms):>10}  {_ms(query.new_p50_ms):>10}  "
                     f"{_fmt(query.ratio):>6}  {_p(query.p_value):>8}  {query.verdict}{note}")
    lines.append(f"{'SUITE'.rjust(8)}: {suite_sentence(comparison)}")
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
    lines += ["", f"**Suite: {suite_sentence(comparison)}**"]
    return "\n".join(lines) + "\n"


def render_json(comparison: Comparison) -> str:
    return json.dumps(comparison.to_dict(), indent=2, ensure_ascii=False) + "\n"


def render(comparison: Comparison, format: str | None = None) -> str:
    """The comparison in ``format`` (text, markdown or json); by default the format it was made for."""
    format = format or comparison.format
    if format not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    return {"text": render_text, "markdown": render_markdown, "json": render_json}[format](comparison)
