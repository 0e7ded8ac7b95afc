"""The benchmark commands: bench, compare and the local worker."""

from __future__ import annotations

import argparse

from rich.markup import escape

from dfbench.cli.output import cluster_of, err, out
from dfbench.comparison import compare, compare_results, load_previous, load_results, render
from dfbench.errors import ConfigError


def run_compare(args: argparse.Namespace) -> int:
    """Print the comparison; the exit code (1 only with --fail-on-regression and a regression)."""
    comparison = compare(dataset=args.dataset, base=args.base, new=args.new, data_dir=args.data_dir,
                         results=args.results, format=args.format, fail_on_regression=args.fail_on_regression)
    print(render(comparison), end="")
    return comparison.exit_code


def run_bench(args: argparse.Namespace) -> int:
    from dfbench import runner
    from dfbench.data import tpch_dataset_name

    if args.cluster and args.url:
        raise ConfigError("Give --cluster or --url, not both.")
    dataset = args.dataset or tpch_dataset_name(args.sf)
    kind = "remote" if args.url or args.cluster else "local"
    # Read before running: a new run of the same engine overwrites the previous run's files.
    previous = load_previous(args.data_dir, dataset, kind)
    options = dict(iterations=args.iterations, queries=args.queries, engine=args.engine,
                   settings=([args.settings] if args.settings else []) + args.set or None,
                   warmup=not args.no_warmup, min_time_s=args.min_time, data_dir=args.data_dir)
    if args.cluster:
        run = runner.run_benchmark(dataset=dataset, cluster=cluster_of(args), via=args.via, profile=args.profile,
                                   location=args.location, transport_options={"check": not args.no_check,
                                                                     "trust_on_first_use": args.trust_first_key},
                                   **options)
    elif args.url:
        run = runner.run_benchmark(dataset=dataset, url=args.url, location=args.location, **options)
    else:
        run = runner.bench_local(scale_factor=args.sf, partitions=args.partitions, **options)
    out.print(run.table())
    if run.worker_lost:
        err.print(f"[red]error:[/] worker unreachable: {escape(run.worker_lost)}", markup=True)
    status = 1 if run.worker_lost else 0
    if previous is None:
        out.print("no previous run to compare with: the next run will be compared with this one")
        return status
    base_engine, base = previous
    new = load_results(args.data_dir, dataset, run.engine, "remote" if run.remote else "local")
    result = compare_results(base, new, dataset=dataset, base_name=f"{base_engine} (previous run)",
                             new_name=run.engine)
    out.print(render(result, "text"))
    return status


def run_worker(args: argparse.Namespace) -> int:
    from dfbench.worker import local

    return local.main(
        ["--host", args.host, "--port", str(args.port)]
        + (["--data-dir", args.data_dir] if args.data_dir else []) + (["--quiet"] if args.quiet else [])
        + [f"--s3-bucket={bucket}" for bucket in args.s3_bucket] + (["--allow-remote"] if args.allow_remote else [])
    )

