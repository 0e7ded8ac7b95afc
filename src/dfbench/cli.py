"""The `dfbench` command: argument parsing and rendering over the library, nothing more."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from rich.console import Console
from rich.markup import escape
from rich.status import Status
from rich.table import Table

from dfbench import __version__
from dfbench.comparison import add_compare_arguments, run_compare
from dfbench.config import make_spec, parse_tag
from dfbench.errors import ClusterNotFound, ConfigError, DfbenchError
from dfbench.models import Cluster, Plan, TeardownReport
from dfbench.provision import plan, provision, status, teardown
from dfbench.transport import VIAS
from dfbench.worker_deploy import CommandOutput, DeployReport, deploy_worker, exec_command, logs

# Piped output is read by scripts and logs: never truncate ids to an assumed 80 columns.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not usage plus error: the message already names the argument.
        raise ConfigError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def _tag(text: str) -> tuple[str, str]:
    try:
        return parse_tag(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (0-65535; 0 picks a free one)")
    return port


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dfbench", description="Distributed DataFusion benchmarks on AWS, with boto3 alone.")
    parser.add_argument("--version", action="version", version=f"dfbench {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step, including AWS retries")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def cluster_command(name: str, help: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help, description=help)
        command.add_argument("--cluster", default="dfbench", help="cluster name (default: dfbench)")
        command.add_argument("--region", help="AWS region (default: AWS_REGION, else us-east-1)")
        command.add_argument("--profile", help="AWS profile (default: AWS_PROFILE / the default chain)")
        command.add_argument("--json", action="store_true", help="print the result as JSON")
        return command

    for name, help in (("provision", "create or converge the cluster"),
                       ("plan", "show what provision would change, changing nothing")):
        command = cluster_command(name, help)
        command.add_argument("--count", type=int, help="number of instances (default 12)")
        command.add_argument("--instance-type", help="EC2 instance type (default c5n.2xlarge)")
        command.add_argument("--ami", help="pin an AMI id (default: latest Amazon Linux 2023)")
        command.add_argument("--volume-size", type=int, help="root volume GiB (default 200)")
        command.add_argument("--bucket", help="S3 bucket (default: BENCHMARK_BUCKET, else "
                             "datafusion-distributed-benchmarks-<account>-<region>)")
        command.add_argument("--spot", action="store_true", help="use spot instances")
        command.add_argument("--ttl-hours", type=float, help="instances terminate themselves after this long")
        command.add_argument("--ssh-cidr", action="append", default=[], metavar="CIDR",
                             help="allow SSH from this CIDR (repeatable); nothing is open by default")
        command.add_argument("--allow-wide-ssh", action="store_true",
                             help="accept an --ssh-cidr wider than /8 (such as 0.0.0.0/0: the whole internet)")
        command.add_argument("--discovery-tag", help="KEY=VALUE the workers find peers by "
                             "(default BenchmarkCluster=datafusion)")
        command.add_argument("--tag", action="append", default=[], type=_tag, metavar="KEY=VALUE",
                             help="extra tag on every resource (repeatable)")
    cluster_command("status", "show the cluster as it exists now")
    command = cluster_command("teardown", "delete the cluster (the bucket only with --delete-bucket)")
    command.add_argument("--delete-bucket", action="store_true",
                         help="also delete the bucket dfbench created, with every object in it")

    command = cluster_command("deploy", "install the worker on every instance, restart it, check /info")
    source = command.add_mutually_exclusive_group(required=True)
    source.add_argument("--binary", metavar="PATH",
                        help="the worker built for Linux x86-64 (target/x86_64-unknown-linux-gnu/release/worker)")
    source.add_argument("--build", metavar="REPO_DIR", help="build the worker in this datafusion-distributed checkout")
    command.add_argument("--arg", action="append", default=[], metavar="X",
                         help="a worker argument after --bucket (repeatable; --arg=--flag for one starting with -)")
    command.add_argument("--env", action="append", default=[], type=_tag, metavar="K=V",
                         help="an environment variable of the worker (repeatable)")
    command.add_argument("--force-restart", action="store_true", help="reinstall and restart where this build runs")
    command.add_argument("--no-verify", action="store_true", help="skip checking every worker's /info afterwards")
    command = cluster_command("exec", "run a shell command on every instance: dfbench exec -- CMD ...")
    command.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD", help="the command, after --")
    command = cluster_command("tunnel", "open the way to a worker, print its local URL, hold it until Ctrl-C")
    command.add_argument("--instance", help="position (0 = the coordinator, default), instance id or Name")
    command.add_argument("--via", default="auto", choices=VIAS, help="how (default auto: ssm plugin, else ssh "
                         "when the cluster allows it, else relay)")
    command.add_argument("--port", type=int, default=0, help="local port (default: a free one; 9000 as the seed's "
                         "port-forward)")
    command = cluster_command("health", "reach every worker and check it: answers, knows every peer, same commit")
    command.add_argument("--via", default="auto", choices=VIAS, help="how to reach them (default auto)")
    command = cluster_command("shell", "a shell on an instance (Session Manager, else SSH): dfbench shell [-- CMD]")
    command.add_argument("--instance", help="position (default 0), instance id or Name")
    command.add_argument("--via", default="auto", choices=("auto", "ssm", "ssh"),
                         help="default auto: Session Manager when its plugin is installed, else ssh")
    command.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD", help="a command instead of a shell (ssh)")
    command = cluster_command("logs", "worker.service's journal on every instance")
    command.add_argument("--lines", type=int, default=200, help="last N lines (default 200)")
    command.add_argument("--since", help="from this time on, as journalctl takes it (-1h, '2026-01-31 12:00', today)")

    data = commands.add_parser("data", help="TPC-H datasets: generate, sync to the bucket, list")
    data_commands = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    generate = data_commands.add_parser("generate", help="generate TPC-H parquet data with tpchgen-cli")
    generate.add_argument("--sf", required=True, help="scale factor, e.g. 1, 0.1, 10")
    generate.add_argument("--partitions", type=int, default=16, help="files per table (default 16)")
    generate.add_argument("--compression", default="SNAPPY", help="parquet compression (default SNAPPY)")
    generate.add_argument("--force", action="store_true", help="regenerate even when complete")
    sync = data_commands.add_parser("sync", help="upload a dataset to the bucket, skipping unchanged files")
    sync.add_argument("dataset", help="dataset folder name, e.g. tpch_sf10")
    sync.add_argument("--delete", action="store_true", help="delete remote files that are gone locally")
    listing = data_commands.add_parser("list", help="local datasets, and the bucket's with --bucket/--cluster")
    for command in (generate, sync, listing):
        command.add_argument("--data-dir", default="benchmarks/data", help="default benchmarks/data")
    for command in (sync, listing):
        command.add_argument("--bucket", help="S3 bucket (default: the cluster's)")
        command.add_argument("--cluster", help="cluster whose bucket to use")
        command.add_argument("--region", help="AWS region (default: AWS_REGION, else us-east-1)")
        command.add_argument("--profile", help="AWS profile")
        command.add_argument("--json", action="store_true", help="print the result as JSON")

    description = "compare two runs of a dataset: BASE (e.g. main) vs NEW"
    add_compare_arguments(commands.add_parser("compare", help=description, description=description))

    bench = commands.add_parser("bench", help="run TPC-H on the local worker (default), a cluster (--cluster) "
                                "or a worker URL, then compare with the previous run")
    bench.add_argument("--sf", default="1", help="scale factor of the local dataset (default 1)")
    bench.add_argument("--partitions", type=int, default=16, help="files per table when generating (default 16)")
    bench.add_argument("--iterations", type=int, default=3, help="timed iterations per query (default 3)")
    bench.add_argument("--queries", help="comma-separated ids, e.g. q1,q3 (default: all 22)")
    bench.add_argument("--engine", help="name the results are filed under")
    bench.add_argument("--cluster", help="a provisioned cluster: reached, checked and benchmarked on its bucket's data")
    bench.add_argument("--via", default="auto", choices=VIAS, help="with --cluster: how to reach it (default auto)")
    bench.add_argument("--no-check", action="store_true",
                       help="with --cluster: skip checking every worker's /info (peers, one commit) first")
    bench.add_argument("--region", help="with --cluster: AWS region (default: AWS_REGION, else us-east-1)")
    bench.add_argument("--profile", help="with --cluster: AWS profile")
    bench.add_argument("--url", help="a running worker instead of a local one")
    bench.add_argument("--dataset", help="dataset name with --url or --cluster (default tpch_sf<SF>)")
    bench.add_argument("--location", help="with --url: where the worker reads <dataset>/ from "
                       "(--cluster: s3://<its bucket>)")
    bench.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a setting (repeatable)")
    bench.add_argument("--settings", metavar="PRESET", help="'distributed' for the seed's 14 defaults")
    bench.add_argument("--min-time", type=float, default=0, help="repeat each query for at least this long (s)")
    bench.add_argument("--no-warmup", action="store_true", help="skip the warm-up run of each query")
    bench.add_argument("--data-dir", default="benchmarks/data", help="default benchmarks/data")

    worker = commands.add_parser("worker", help="run the local DataFusion worker (no AWS)")
    worker.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; anything but "
                        "loopback needs --allow-remote)")
    worker.add_argument("--port", type=_port, default=9000, help="port (default 9000; 0 picks a free one)")
    worker.add_argument("--data-dir", help="the folder LOCATION paths may name (relative ones resolve against it); "
                        "without it no local file is read")
    worker.add_argument("--s3-bucket", action="append", default=[], metavar="NAME",
                        help="a bucket LOCATION s3:// paths may name (repeatable)")
    worker.add_argument("--allow-remote", action="store_true",
                        help="let --host be an address other machines reach (prints a warning)")
    worker.add_argument("--quiet", action="store_true", help="do not log each request")
    return parser


def _spec(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    return make_spec(
        name=args.cluster, region=args.region, instance_count=args.count, instance_type=args.instance_type,
        ami=args.ami, volume_size_gib=args.volume_size, bucket=args.bucket, spot=args.spot or None,
        ttl_hours=args.ttl_hours, ssh_ingress_cidrs=tuple(args.ssh_cidr) or None,
        allow_wide_ssh=args.allow_wide_ssh or None,
        discovery_tag=args.discovery_tag, tags=dict(args.tag) or None,
    )


class _ProgressHandler(logging.Handler):
    """Library log records as progress lines; waits update the spinner instead of scrolling."""

    def __init__(self, spinner: Status) -> None:
        super().__init__(logging.INFO)
        self.spinner = spinner

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if getattr(record, "wait", False):
            self.spinner.update(message)
        elif record.levelno >= logging.WARNING:
            err.print(f"[yellow]warning:[/] {message}")
        else:
            err.print(message)


def _render_cluster(cluster: Cluster) -> None:
    resources = Table(title=f"cluster {cluster.name} ({cluster.region}, account {cluster.account})",
                      show_header=True, header_style="bold")
    resources.add_column("resource")
    resources.add_column("id")
    for label, value in (("bucket", cluster.bucket), ("vpc", cluster.vpc_id), ("subnet", cluster.subnet_id),
                         ("internet gateway", cluster.internet_gateway_id),
                         ("route table", cluster.route_table_id), ("security group", cluster.security_group_id),
                         ("role / instance profile", cluster.role_name), ("ami", cluster.ami_id)):
        resources.add_row(label, value or "[red]missing[/]")
    resources.add_row("ssh allowed from", ", ".join(cluster.ssh_ingress_cidrs) or "nowhere (--via ssm or relay)")
    out.print(resources)
    table = Table(show_header=True, header_style="bold")
    for column in ("name", "instance", "type", "zone", "state", "private ip", "public ip"):
        table.add_column(column)
    for i in cluster.instances:
        table.add_row(i.name, i.instance_id, i.instance_type + (" (spot)" if i.spot else ""), i.availability_zone,
                      i.state, i.private_ip or "-", i.public_ip or "-")
    out.print(table if cluster.instances else "no instances")


def _render_plan(result: Plan) -> None:
    if result.empty:
        out.print(f"cluster {result.cluster} ({result.region}) matches the spec: no changes")
        return
    out.print(f"provision would make {len(result.changes)} change(s) to cluster {result.cluster} ({result.region}):")
    colours = {"create": "green", "update": "yellow", "delete": "red", "replace": "magenta", "start": "cyan"}
    for change in result.changes:
        out.print(f"  [{colours[change.action]}]{change}[/]", markup=True)


def _render_teardown(report: TeardownReport) -> None:
    for item in report.deleted:
        out.print(f"  [red]- deleted[/] {item}")
    for item in report.left:
        out.print(f"  [yellow]! left[/] {item}")
    if report.clean:
        out.print(f"cluster {report.cluster} ({report.region}): nothing left"
                  + ("" if report.deleted else " (there was nothing to delete)"))
    else:
        out.print(f"[red]cluster {report.cluster}: {len(report.left)} resource(s) left; "
                  "run teardown again, or delete them by hand[/]")


def _render_deploy(report: DeployReport) -> None:
    table = Table(show_header=True, header_style="bold")
    for column in ("instance", "name", "status", "exit code", "worker", "commit", "last output line"):
        table.add_column(column)
    colours = {"installed": "green", "already": "cyan", "failed": "red"}
    for r in report.results:
        last = r.output_tail.strip().rpartition("\n")[2]
        table.add_row(r.instance_id, r.name or "-", r.status, "-" if r.exit_code is None else str(r.exit_code),
                      f"[{colours[r.installed]}]{r.installed}[/]", r.commit or "-", escape(last))
    out.print(table)
    where = "uploaded to" if report.uploaded else "already in"
    out.print(f"worker {report.sha256[:12]} {where} {escape(report.artifact_url)}; command {report.command_id}")
    if report.verified is not None:
        out.print("[green]/info: one commit, every peer known[/]" if report.verified
                  else "[red]/info check found problems[/]")


def _render_outputs(outputs: Sequence[CommandOutput]) -> None:
    for o in outputs:
        code = "no exit code" if o.exit_code is None else f"exit {o.exit_code}"
        colour = "green" if o.ok else "red"
        out.print(f"[bold]── {escape(o.label)}[/]: [{colour}]{o.status}[/] ({code})")
        if o.stdout:
            out.print(o.stdout, markup=False, end="" if o.stdout.endswith("\n") else "\n")
        if o.stderr:
            err.print(o.stderr, markup=False, end="" if o.stderr.endswith("\n") else "\n")
        if not o.complete:
            out.print(f"[yellow](output cut by SSM; full output: {escape(o.output_url or '-')})[/]")


def _run_deploy(args: argparse.Namespace) -> int:
    # progress=False: the upload bar and the spinner would be two live displays.
    report = deploy_worker(args.cluster, binary=args.binary, build_dir=args.build, args=args.arg,
                           env=dict(args.env) or None, force_restart=args.force_restart,
                           verify=not args.no_verify, region=args.region, profile=args.profile, progress=False)
    if args.json:
        print(json.dumps({**report.model_dump(mode="json"), "ok": report.ok}, indent=2))
    else:
        _render_deploy(report)
    report.raise_for_failures()  # main() prints the failed instances with their output tails
    return 0


def _run_remote_command(args: argparse.Namespace) -> int:
    if args.command == "exec":
        argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv  # REMAINDER keeps the "--"
        if not argv:
            raise ConfigError("dfbench exec: give the command after --, e.g. dfbench exec -- uname -a")
        outputs = exec_command(args.cluster, argv, region=args.region, profile=args.profile)
    else:
        outputs = logs(args.cluster, lines=args.lines, since=args.since, region=args.region, profile=args.profile)
    if args.json:
        print(json.dumps([o.model_dump(mode="json") for o in outputs], indent=2))
    else:
        _render_outputs(outputs)
    if args.command == "exec":
        return max(1 if o.exit_code is None else o.exit_code for o in outputs)
    return int(any(not o.ok for o in outputs))


def _emit(args: argparse.Namespace, result: Any, render: Callable[[Any], None]) -> None:
    if args.json:
        payload = result.model_dump(mode="json") if result is not None else None
        if isinstance(result, Plan | TeardownReport):
            payload["empty" if isinstance(result, Plan) else "clean"] = (
                result.empty if isinstance(result, Plan) else result.clean)
        print(json.dumps(payload, indent=2))
    else:
        render(result)


def _cluster_of(args: argparse.Namespace) -> Cluster | None:
    if not args.cluster:
        return None
    cluster = status(args.cluster, region=args.region, profile=args.profile)
    if cluster is None:
        raise ClusterNotFound(args.cluster, args.region or "the default region")
    return cluster


def _run_data(args: argparse.Namespace) -> int:
    from dfbench import datasets

    if args.data_command == "generate":
        result = datasets.generate_tpch(args.sf, partitions=args.partitions, data_dir=args.data_dir,
                                        compression=args.compression, force=args.force)
        if result.generated:
            out.print(f"generated {result.path}: {len(result.manifest.files)} files, "
                      f"{_size(result.manifest.total_bytes)}")
        else:
            out.print(f"{result.path} is complete: nothing to do")
        return 0
    if args.data_command == "sync":
        report = datasets.sync_dataset(args.dataset, bucket=args.bucket, cluster=_cluster_of(args),
                                       data_dir=args.data_dir, delete=args.delete, region=args.region,
                                       profile=args.profile)
        _emit(args, report, lambda r: out.print(
            f"s3://{r.bucket}/{r.dataset}/: uploaded {r.uploaded_files} files ({_size(r.uploaded_bytes)}), "
            f"skipped {r.skipped_files} unchanged, deleted {r.deleted_files}"))
        return 0
    found = datasets.list_datasets(args.data_dir, bucket=args.bucket, cluster=_cluster_of(args),
                                   region=args.region, profile=args.profile)
    if args.json:
        print(json.dumps([d.model_dump(mode="json") for d in found], indent=2))
        return 0
    table = Table(show_header=True, header_style="bold")
    for column in ("dataset", "location", "complete", "files", "size", "scale factor"):
        table.add_column(column)
    for d in found:
        table.add_row(d.name, d.location, "yes" if d.complete else "[yellow]no[/]", str(d.files), _size(d.bytes),
                      f"{d.scale_factor:g}" if d.scale_factor is not None else "-")
    out.print(table if found else f"no datasets in {args.data_dir}")
    return 0


def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


def _run_bench(args: argparse.Namespace) -> int:
    from dfbench import comparison, runner
    from dfbench.datasets import tpch_dataset_name

    if args.cluster and args.url:
        raise ConfigError("Give --cluster or --url, not both.")
    dataset = args.dataset or tpch_dataset_name(args.sf)
    kind = "remote" if args.url or args.cluster else "local"
    # Read before running: a new run of the same engine overwrites the previous run's files.
    previous = comparison.load_previous(args.data_dir, dataset, kind)
    options = dict(iterations=args.iterations, queries=args.queries, engine=args.engine,
                   settings=([args.settings] if args.settings else []) + args.set or None,
                   warmup=not args.no_warmup, min_time_s=args.min_time, data_dir=args.data_dir)
    if args.cluster:
        run = runner.run_benchmark(dataset=dataset, cluster=_cluster_of(args), via=args.via, profile=args.profile,
                                   location=args.location, transport_options={"check": not args.no_check}, **options)
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
    new = comparison.load_results(args.data_dir, dataset, run.engine, "remote" if run.remote else "local")
    result = comparison.compare_results(base, new, dataset=dataset, base_name=f"{base_engine} (previous run)",
                                        new_name=run.engine)
    out.print(result.text)
    return status


def _run(args: argparse.Namespace) -> int:
    if args.command == "deploy":
        return _run_deploy(args)
    if args.command in ("exec", "logs"):
        return _run_remote_command(args)
    if args.command == "provision":
        spec = _spec(args)
        _emit(args, provision(spec, profile=args.profile), _render_cluster)
        return 0
    if args.command == "plan":
        _emit(args, plan(_spec(args), profile=args.profile), _render_plan)
        return 0
    if args.command == "status":
        cluster = status(args.cluster, region=args.region, profile=args.profile)
        _emit(args, cluster, lambda c: _render_cluster(c) if c else out.print(
            f"no cluster named {args.cluster!r} in {args.region or 'the default region'}"))
        return 0 if cluster else 1
    report = teardown(args.cluster, region=args.region, profile=args.profile, delete_bucket=args.delete_bucket)
    _emit(args, report, _render_teardown)
    return 0 if report.clean else 1


def _run_tunnel(args: argparse.Namespace) -> int:
    import threading
    from contextlib import ExitStack

    from dfbench.transport import ClusterConnection

    cluster = _cluster_of(args)
    assert cluster is not None
    with ExitStack() as stack:
        with err.status(f"opening the way to {cluster.name} ({args.via})…"):
            connection = stack.enter_context(ClusterConnection(cluster, via=args.via, instance=args.instance,
                                                               check=False, profile=args.profile,
                                                               local_port=args.port))
        info = connection.info
        if args.json:
            print(json.dumps({"url": connection.url, "instance_id": connection.instance.instance_id,
                              "transport": connection.kind, "info": info}), flush=True)
        else:
            out.print(f"[bold]{connection.url}[/]  →  {connection.instance.instance_id} ({connection.instance.name}) "
                      f"via {escape(connection.description)}", markup=True)
            out.print(f"worker {escape(str(info.get('git_commit_hash')))}, {len(info.get('worker_urls') or [])} peer(s); "
                      f"try: curl -sS {connection.url}/info", markup=True)
            out.print("holding the connection open: Ctrl-C closes it")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:  # the way a tunnel is meant to end
            err.print(f"closed the way to {connection.instance.instance_id}")
    return 0


def _run_health(args: argparse.Namespace) -> int:
    from dfbench.health import health_table
    from dfbench.transport import ClusterConnection

    cluster = _cluster_of(args)
    assert cluster is not None
    with err.status(f"reaching the {len(cluster.instances)} worker(s) of {cluster.name} ({args.via})…"):
        with ClusterConnection(cluster, via=args.via, profile=args.profile) as connection:
            healths = connection.health
    if args.json:
        print(json.dumps([h.model_dump(mode="json") for h in healths], indent=2))
    else:
        out.print(health_table(healths))
        out.print(f"{cluster.name}: {len(healths)} worker(s) reached through {connection.kind}, every peer known, "
                  "one commit")
    return 0


def _run_shell(args: argparse.Namespace) -> int:
    from dfbench.transport.shell import shell

    cluster = _cluster_of(args)
    assert cluster is not None
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    return shell(cluster, instance=args.instance, via=args.via, command=argv, profile=args.profile)


def _run_worker(args: argparse.Namespace) -> int:
    from dfbench import localworker

    return localworker.main(
        ["--host", args.host, "--port", str(args.port)]
        + (["--data-dir", args.data_dir] if args.data_dir else []) + (["--quiet"] if args.quiet else [])
        + [f"--s3-bucket={bucket}" for bucket in args.s3_bucket] + (["--allow-remote"] if args.allow_remote else [])
    )


# Commands that draw their own output (a server, progress bars, a report) run as they are; the
# cluster commands get a spinner fed by the library's log records. Rich allows one live display
# at a time, so the two never mix.
_SELF_DISPLAYED: dict[str, Callable[[argparse.Namespace], int]] = {
    "worker": _run_worker, "compare": run_compare, "bench": _run_bench, "data": _run_data,
    "tunnel": _run_tunnel, "shell": _run_shell, "health": _run_health,
}


def main(argv: Sequence[str] | None = None) -> int:
    logger = logging.getLogger("dfbench")
    try:
        args = _parser().parse_args(argv)
        logger.setLevel(logging.DEBUG if args.verbose else logging.INFO)
        if args.command in _SELF_DISPLAYED:
            return _SELF_DISPLAYED[args.command](args)
        if args.verbose:
            logging.getLogger("botocore.retryhandler").setLevel(logging.DEBUG)
        with err.status(f"dfbench {args.command}…") as spinner:
            handler = _ProgressHandler(spinner)
            logger.addHandler(handler)
            try:
                return _run(args)
            finally:
                logger.removeHandler(handler)
    except DfbenchError as error:
        # The message carries user input (a region, a tag): text, never markup.
        err.print(f"[red]error:[/] {escape(str(error))}", markup=True)
        return error.exit_code
    except KeyboardInterrupt:
        err.print("[yellow]interrupted.[/] Every dfbench command converges when run again.")
        return 130


if __name__ == "__main__":
    sys.exit(main())
