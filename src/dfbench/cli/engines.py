"""Engines side by side: ``bench --engines`` and ``compare --engines`` (ARCHITECTURE.md §5a)."""

from __future__ import annotations

import argparse

from rich.markup import escape

from dfbench.cli.output import err, out
from dfbench.errors import ConfigError


def run_bench_engines(args: argparse.Namespace) -> int:
    """Run every engine per query, print each engine's table, then the totals; exit 1 when a
    query failed or returned rows that differ from the first engine's."""
    from dfbench.comparison.engines import render_totals
    from dfbench.engine_bench import bench_engines

    given = [option for option, value in (("--cluster", args.cluster), ("--url", args.url),
                                          ("--location", args.location), ("--queries-dir", args.queries_dir),
                                          ("--settings", args.settings), ("--set", args.set),
                                          ("--min-time", args.min_time)) if value]
    if given:
        raise ConfigError(f"dfbench bench --engines runs on this machine: {', '.join(given)} not with --engines.")
    run = bench_engines(engines=args.engines, dataset=args.dataset, scale_factor=args.sf,
                        partitions=args.partitions, iterations=args.iterations, queries=args.queries,
                        data_dir=args.data_dir, trino_url=args.trino_url, warmup=not args.no_warmup,
                        check_rows=not args.no_row_check, datafusion_name=args.engine)
    failed = []
    for side in run.sides:
        for outcome in side.outcomes.values():
            if outcome.status != "ok":
                failed.append(f"{side.name} {outcome.id}: {outcome.status}")
    checked = [query for query, engines in run.rows_checked.items() if engines and all(
        difference is None for difference in engines.values())]
    print(render_totals([run.totals], "text"), end="")
    if run.rows_checked:
        out.print(f"rows: {len(checked)} of {len(run.rows_checked)} queries returned the same rows on every engine")
    for line in failed:
        err.print(f"[red]{escape(line)}[/]", markup=True)
    return 1 if failed else 0


def run_compare_engines(args: argparse.Namespace) -> int:
    """The totals of filed results, per dataset (``--dataset a,b``), and the chart with --plot."""
    from dfbench.bench.results import safe_engine_name
    from dfbench.comparison import load_results
    from dfbench.comparison.engines import engine_totals, render_totals
    from dfbench.engines.dialect import parse_names

    if args.base or args.new:
        raise ConfigError("dfbench compare: give BASE NEW or --engines, not both.")
    engines = parse_names(args.engines)
    datasets = parse_names(args.dataset)
    for engine in engines:  # every name checked before any file is read
        if safe_engine_name(engine) != engine:
            raise ConfigError(f"Invalid engine name {engine!r}: engines are folders of the results folder, named "
                              "with letters, digits, '.', '_', '+' and '-'.")
    totals = [engine_totals(dataset, {engine: load_results(args.data_dir, dataset, engine, args.results)
                                      for engine in engines}) for dataset in datasets]
    print(render_totals(totals, args.format), end="")
    if args.plot:
        from dfbench.comparison.engines_plot import write_engines_plot

        picture = write_engines_plot(totals, args.plot)
        err.print(f"wrote {escape(str(picture))}", markup=True)
    return 0
