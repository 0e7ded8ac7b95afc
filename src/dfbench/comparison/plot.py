"""A picture of a comparison: each query's ratio new/base with its 95% interval, and the suite's
geometric mean with its interval, as PNG or SVG, plus an HTML report beside it (the picture and
the same facts as the markdown). People read a chart of 22 or 99 ratios faster than a table.

matplotlib is an optional extra (``pip install 'dfbench[plot]'``), imported only here and only
when a plot is asked for, so ``dfbench --help`` and every other command stay without it.
"""

from __future__ import annotations

import html
from pathlib import Path

from dfbench.comparison.records import Comparison
from dfbench.comparison.render import check_lines, detectable_sentence, suite_sentence
from dfbench.errors import ConfigError
from dfbench.files import write_atomically

PLOT_FORMATS = (".png", ".svg")


def _matplotlib():
    """pyplot and ticker, or a ConfigError naming the extra."""
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'dfbench[plot]'") from None
    matplotlib.use("Agg")  # files only: no display, whatever the environment says
    import matplotlib.pyplot as pyplot
    import matplotlib.ticker as ticker

    return pyplot, ticker


def write_plot(comparison: Comparison, path: str | Path) -> tuple[Path, Path]:
    """Draw ``comparison`` into ``path`` (.png or .svg) and write ``<path without suffix>.html``;
    returns both paths. A ConfigError for another suffix, before anything is drawn."""
    path = Path(path)
    if path.suffix.lower() not in PLOT_FORMATS:
        raise ConfigError(f"--plot {path}: give a file ending in .png or .svg")
    pyplot, ticker = _matplotlib()
    judged = [query for query in comparison.queries if query.ratio is not None]
    labels = [query.id for query in judged] + ["geomean"]
    suite = comparison.suite
    ratios = [query.ratio for query in judged] + [suite.geomean_ratio if suite.geomean_ratio is not None else 1.0]
    lows = [query.ci_low if query.ci_low is not None else query.ratio for query in judged]
    highs = [query.ci_high if query.ci_high is not None else query.ratio for query in judged]
    lows.append(suite.ci_low if suite.ci_low is not None else ratios[-1])
    highs.append(suite.ci_high if suite.ci_high is not None else ratios[-1])
    colors = {"slower": "tab:red", "faster": "tab:green"}
    point_colors = [colors.get(query.verdict, "tab:gray") for query in judged] + [colors.get(suite.verdict, "black")]
    figure, axes = pyplot.subplots(figsize=(7, 1.2 + 0.28 * len(labels)))
    try:
        rows = list(range(len(labels)))[::-1]  # first query on top, the suite at the bottom
        for row, ratio, low, high, color in zip(rows, ratios, lows, highs, point_colors, strict=True):
            axes.plot([low, high], [row, row], color=color, linewidth=1.5)
            axes.plot([ratio], [row], marker="o", color=color)
        axes.axvline(1.0, color="black", linewidth=0.8, linestyle="--")
        axes.set_yticks(rows, labels)
        axes.set_xscale("log")
        plain = ticker.FuncFormatter(lambda value, _: f"{value:.3g}")  # 1.05, not 1.05×10⁰
        axes.xaxis.set_major_formatter(plain)
        axes.xaxis.set_minor_formatter(plain)
        axes.tick_params(axis="x", which="minor", labelsize=7)
        axes.set_xlabel("ratio new / base (geometric mean, 95% interval; suite: its interval)")
        axes.set_title(f"{comparison.dataset}: {comparison.new} vs {comparison.base}", fontsize=10)
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format=path.suffix.lower().lstrip("."))
    finally:
        pyplot.close(figure)
    report = path.with_suffix(".html")
    write_atomically(report, _html(comparison, path.name))
    return path, report


def _html(comparison: Comparison, image: str) -> str:
    def cell(value: object) -> str:
        return f"<td>{html.escape('-' if value is None else str(value))}</td>"

    def number(value: float | None, digits: int = 3) -> str | None:
        return None if value is None else f"{value:.{digits}f}"

    rows = "\n".join(
        "<tr>" + "".join(cell(value) for value in (
            query.id, query.base_p50_ms, query.new_p50_ms, number(query.ratio),
            None if query.ci_low is None else f"{query.ci_low:.3f}–{query.ci_high:.3f}", query.verdict,
            None if query.base is None else query.base.rows, None if query.new is None else query.new.rows)) + "</tr>"
        for query in comparison.queries)
    notes = "".join(f"<li>{html.escape(line)}</li>" for line in check_lines(comparison))
    detectable = detectable_sentence(comparison)
    title = html.escape(f"{comparison.dataset}: {comparison.new} vs {comparison.base}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body>
<h1>{title}</h1>
<p><strong>Suite: {html.escape(suite_sentence(comparison))}</strong></p>
{'' if detectable is None else f'<p>{html.escape(detectable)}</p>'}
<img src="{html.escape(image)}" alt="ratio new/base per query">
{'' if not notes else f'<ul>{notes}</ul>'}
<table>
<tr><th>Query</th><th>Base p50 (ms)</th><th>New p50 (ms)</th><th>Ratio</th><th>95% interval</th><th>Verdict</th>
<th>Base rows</th><th>New rows</th></tr>
{rows}
</table>
</body></html>
"""
