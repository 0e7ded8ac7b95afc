"""Engines side by side as a picture (PNG or SVG), as datafusion-distributed's README draws them:
first "how much slower than <first engine>?" (each engine's total against the first's, one group
of bars per dataset), then per dataset each query's p50 on every engine as grouped bars.

matplotlib comes with the ``plot`` extra and is imported only when a picture is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dfbench.comparison.engines import DatasetTotals
from dfbench.comparison.plot import PLOT_FORMATS, _matplotlib
from dfbench.errors import ConfigError

_WIDTH = 0.8  # of one group of bars
_WIDEST_BAR = 0.25  # one dataset's bars stay bars, not blocks


def write_engines_plot(datasets: Sequence[DatasetTotals], path: str | Path) -> Path:
    """Draw ``datasets`` into ``path`` (.png or .svg); a ConfigError for another suffix or for
    nothing to draw, before anything is drawn."""
    path = Path(path)
    if path.suffix.lower() not in PLOT_FORMATS:
        raise ConfigError(f"--plot {path}: give a file ending in .png or .svg")
    if not datasets or not any(totals.compared for totals in datasets):
        raise ConfigError("--plot: no query was completed by every engine, so there is nothing to draw.")
    pyplot, _ = _matplotlib()
    engines = datasets[0].engines
    colors = {engine: pyplot.get_cmap("tab10")(index % 10) for index, engine in enumerate(engines)}
    widest = max(len(totals.queries) for totals in datasets)
    figure, axes = pyplot.subplots(1 + len(datasets), 1, squeeze=False,
                                   figsize=(max(7.0, 0.45 * widest * len(engines) ** 0.5), 3.2 + 3.0 * len(datasets)))
    try:
        _relative(axes[0][0], datasets, engines, colors)
        for row, totals in enumerate(datasets, start=1):
            _per_query(axes[row][0], totals, colors)
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format=path.suffix.lower().lstrip("."), dpi=110)
    finally:
        pyplot.close(figure)
    return path


def _relative(axes: Any, datasets: Sequence[DatasetTotals], engines: list[str], colors: dict[str, Any]) -> None:
    bar = min(_WIDTH / len(engines), _WIDEST_BAR)
    for index, engine in enumerate(engines):
        positions, ratios = [], []
        for group, totals in enumerate(datasets):
            ratio = next(total.ratio for total in totals.totals if total.engine == engine)
            if ratio is not None:
                positions.append(group - bar * len(engines) / 2 + bar * (index + 0.5))
                ratios.append(ratio)
        bars = axes.bar(positions, ratios, bar, label=engine, color=colors[engine])
        axes.bar_label(bars, labels=[f"{ratio:.2f}x" for ratio in ratios], fontsize=8)
    axes.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    axes.set_xticks(range(len(datasets)), [f"{totals.dataset}\n({len(totals.compared)} of "
                                           f"{len(totals.queries)} queries)" for totals in datasets])
    axes.set_ylabel(f"× {engines[0]}'s total")
    axes.set_title(f"How much slower than {engines[0]}? (lower is better)", fontsize=11)
    axes.set_xlim(-0.6, len(datasets) - 0.4)
    axes.margins(y=0.15)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _per_query(axes: Any, totals: DatasetTotals, colors: dict[str, Any]) -> None:
    engines = totals.engines
    bar = _WIDTH / len(engines)
    for index, engine in enumerate(engines):
        positions = [number - _WIDTH / 2 + bar * (index + 0.5) for number in range(len(totals.queries))]
        drawn = [(position, value / 1000) for position, query in zip(positions, totals.queries, strict=True)
                 if (value := totals.p50_ms[query][engine]) is not None]
        axes.bar([p for p, _ in drawn], [v for _, v in drawn], bar, label=engine, color=colors[engine])
    axes.set_xticks(range(len(totals.queries)), totals.queries, fontsize=8)
    # Log scale: engines many times apart stay readable on the same axes.
    axes.set_yscale("log")
    axes.set_ylabel("p50 (s, log scale)")
    axes.set_title(f"{totals.dataset}: p50 per query (no bar: not completed)", fontsize=10)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
