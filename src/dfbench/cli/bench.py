"""The benchmark commands: bench, compare and the local worker."""

from __future__ import annotations

import argparse

from rich.markup import escape

from dfbench.cli.output import cluster_of, err, out
from dfbench.comparison import compare, compare_results, load_previous, load_results, render
from dfbench.errors import ConfigError


def run_compare(args: argparse.Namespace) -> int:
    """Print the comparison; the exit code (1 only with --fail-on-regression and a regression)."""
    if args.engines:
        from dfbench.cli.engines import run_compare_engines

        return run_compare_engines(args)
    if not (args.base and args.new):
        raise ConfigError("dfbench compare: give BASE and NEW (two engines' runs), or --engines a,b,c.")
    if "," in args.dataset:
        raise ConfigError(f"dfbench compare: BASE and NEW are compared on one dataset, not {args.dataset}; "
                          "several datasets go with --engines a,b,c.")
    comparison = compare(dataset=args.dataset, base=args.base, new=args.new, data_dir=args.data_dir,
                         results=args.results, format=args.format, fail_on_regression=args.fail_on_regression,
                         run_to_run=None if args.run_to_run is None else args.run_to_run / 100)
    print(render(comparison), end="")
    if args.plot:
        from dfbench.comparison.plot import write_plot

        picture, report = write_plot(comparison, args.plot)
        err.print(f"wrote {escape(str(picture))} and {escape(str(report))}", markup=True)
    return comparison.exit_code


def run_bench(args: argparse.Namespace) -> int:
    from dfbench import runner
    from dfbench.data import tpch_dataset_name

    if args.engines:
        from dfbench.cli.engines import run_bench_engines

        return run_bench_engines(args)
    if args.trino_url or args.no_row_check:
        raise ConfigError("--trino-url and --no-row-check only with --engines.")
    if args.cluster and args.url:
        raise ConfigError("Give --cluster or --url, not both.")
    dataset = args.dataset or tpch_dataset_name(args.sf)
    # Read before running: a new run of the same engine overwrites the previous run's files. Both
    # kinds: whether a --url worker is remote is known once it answers (the runner decides).
    previous_by_kind = {kind: load_previous(args.data_dir, dataset, kind) for kind in ("local", "remote")}
    options = dict(iterations=args.iterations, queries=args.queries, queries_dir=args.queries_dir, engine=args.engine,
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
        run = runner.bench_local(scale_factor=args.sf, partitions=args.partitions, dataset=args.dataset, **options)
    out.print(run.table())
    if run.worker_lost:
        err.print(f"[red]error:[/] worker unreachable: {escape(run.worker_lost)}", markup=True)
    status = 1 if run.worker_lost else 0
    kind = "remote" if run.remote else "local"
    previous = previous_by_kind[kind]
    if previous is None:
        out.print(f"no previous run to compare with ({kind}): the next complete run will be compared with this one")
        return status
    base_engine, base = previous
    new = load_results(args.data_dir, dataset, run.engine, kind)
    # The header names the engines as the CDK tooling's compareWithPrevious does.
    result = compare_results(base, new, dataset=dataset, base_name=base_engine, new_name=run.engine, results=kind)
    # Plain print: rich would wrap the tooling's lines at the terminal's width (and read markup in them).
    print(render(result, "text"), end="")
    return status


def run_ab(args: argparse.Namespace) -> int:
    """Interleaved A/B of two running workers, or of two builds deployed alternately on a cluster;
    prints the comparison (exit 1 only with --fail-on-regression and a regression)."""
    from dfbench.ab import run_ab as interleave
    from dfbench.ab import run_ab_cluster

    common = dict(dataset=args.dataset, rounds=args.rounds, until=None if args.until is None else args.until / 100,
                  max_rounds=args.max_rounds, seed=args.seed, queries=args.queries, queries_dir=args.queries_dir,
                  base_name=args.base_name, new_name=args.new_name, data_dir=args.data_dir, location=args.location,
                  settings=([args.settings] if args.settings else []) + args.set or None, warmup=not args.no_warmup)
    if args.cluster:
        run = run_ab_cluster(cluster=args.cluster, base=args.base, new=args.new, via=args.via, region=args.region,
                             profile=args.profile, args=args.arg, env=dict(args.env) or None,
                             secrets=dict(args.secret_env) or None, worker_kind=args.worker_kind,
                             transport_options={"trust_on_first_use": args.trust_first_key},
                             package=args.package, features=args.features, **common)
    else:
        cluster_only = [option for option, given in (
            ("--via", args.via != "auto"), ("--trust-first-key", args.trust_first_key), ("--region", args.region),
            ("--profile", args.profile), ("--worker-kind", args.worker_kind),
            ("--arg", args.arg), ("--env", args.env), ("--secret-env", args.secret_env),
            ("--package", args.package), ("--features", args.features)) if given]
        if cluster_only:
            raise ConfigError(f"dfbench ab: {', '.join(cluster_only)} only with --cluster (BASE and NEW are then "
                              "worker binaries or checkouts deployed on it).")
        run = interleave(base_url=args.base, new_url=args.new, **common)
    run.comparison.fail_on_regression = args.fail_on_regression
    print(render(run.comparison, args.format), end="")
    return run.comparison.exit_code


def run_worker(args: argparse.Namespace) -> int:
    from dfbench.worker import local

    return local.main(args.arguments, prog="dfbench worker")
