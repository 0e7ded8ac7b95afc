"""Engines side by side: ``bench --engines`` and ``compare --engines`` (ARCHITECTURE.md §5a), and
Trino and Spark on a cluster: ``engine install|status|remove`` (§5b)."""

from __future__ import annotations

import argparse
import json

from rich.markup import escape
from rich.table import Table

from dfbench.cli.output import cluster_of, err, out
from dfbench.errors import ConfigError


def run_bench_engines(args: argparse.Namespace) -> int:
    """Run every engine per query, print each engine's table, then the totals; exit 1 when a
    query failed or returned rows that differ from the first engine's."""
    from dfbench.comparison.engines import render_totals
    from dfbench.engine_bench import bench_engines

    given = [option for option, value in (("--url", args.url), ("--queries-dir", args.queries_dir),
                                          ("--settings", args.settings), ("--set", args.set),
                                          ("--min-time", args.min_time)) if value]
    if given:
        raise ConfigError(f"dfbench bench --engines: {', '.join(given)} not with --engines.")
    if args.location and not args.cluster:
        raise ConfigError("dfbench bench --engines: --location only with --cluster (on this machine the engines "
                          "read --data-dir).")
    cluster = dict(cluster=cluster_of(args), via=args.via, profile=args.profile, location=args.location,
                   transport_options={"check": not args.no_check, "trust_on_first_use": args.trust_first_key}
                   ) if args.cluster else {}
    run = bench_engines(engines=args.engines, dataset=args.dataset, scale_factor=args.sf,
                        partitions=args.partitions, iterations=args.iterations, queries=args.queries,
                        data_dir=args.data_dir, trino_url=args.trino_url, warmup=not args.no_warmup,
                        check_rows=not args.no_row_check, datafusion_name=args.engine, **cluster)
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


def run_engine(args: argparse.Namespace) -> int:
    """``engine install|status|remove``: a table of what was done or found; exit 1 when status
    finds an engine recorded but not running everywhere."""
    from dfbench import engine_setup

    if args.engine_command == "install":
        report = engine_setup.install_engine(args.engine, args.cluster, version=args.engine_version,
                                             region=args.region, profile=args.profile)
        if args.json:
            print(report.model_dump_json(indent=2))
            return 0
        table = Table(show_header=True, header_style="bold")
        for column in ("step", "what", "instances", "seconds"):
            table.add_column(column)
        for step in report.steps:
            table.add_row(step.name, escape(step.description), str(len(step.instances)), f"{step.seconds:.0f}")
        out.print(table)
        settings = ", ".join(f"{key}={value}" for key, value in report.record.settings.items())
        out.print(f"{report.engine} {report.record.version} installed on {report.cluster} "
                  f"({len(report.record.instance_ids)} instances): {escape(settings)}")
        return 0
    if args.engine_command == "remove":
        removal = engine_setup.remove_engine(args.engine, args.cluster, region=args.region, profile=args.profile)
        if args.json:
            print(removal.model_dump_json(indent=2))
        else:
            out.print(f"{removal.engine} removed from {len(removal.instances)} instance(s) of {removal.cluster}"
                      + (f"; {removal.deleted_keys} object(s) it wrote in the bucket deleted"
                         if removal.deleted_keys else ""))
        return 0
    engines = (args.engine,) if args.engine else engine_setup.CLUSTER_ENGINES
    statuses = engine_setup.engine_status(args.cluster, engines, region=args.region, profile=args.profile)
    if args.json:
        print(json.dumps([{**s.model_dump(mode="json"), "ready": s.ready} for s in statuses], indent=2))
    for status in statuses:
        if args.json:
            break
        recorded = (f"{status.record.version}, installed {status.record.installed_at:%Y-%m-%d %H:%M} UTC"
                    if status.record else "not recorded as installed")
        colour = "green" if status.ready else "yellow" if status.record else "dim"
        out.print(f"[bold]{status.engine}[/]: [{colour}]{escape(recorded)}[/]")
        table = Table(show_header=True, header_style="bold")
        keys = sorted({key for i in status.instances for key in i.values})
        for column in ("instance", "name", *keys):
            table.add_column(column)
        for i in status.instances:
            table.add_row(i.instance_id, i.name or "-", *(escape(i.values.get(key, "-")) for key in keys))
        out.print(table)
    return int(any(not s.ready for s in statuses if s.record is not None))
