"""The `dfbench` command: argument parsing and rendering over the library, nothing more."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from rich.console import Console
from rich.status import Status
from rich.table import Table

from dfbench import __version__
from dfbench.config import make_spec, parse_tag
from dfbench.errors import ConfigError, DfbenchError
from dfbench.models import Cluster, Plan, TeardownReport
from dfbench.provision import plan, provision, status, teardown

out = Console(highlight=False, soft_wrap=True)
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
        command.add_argument("--discovery-tag", help="KEY=VALUE the workers find peers by "
                             "(default BenchmarkCluster=datafusion)")
        command.add_argument("--tag", action="append", default=[], type=_tag, metavar="KEY=VALUE",
                             help="extra tag on every resource (repeatable)")
    cluster_command("status", "show the cluster as it exists now")
    command = cluster_command("teardown", "delete the cluster (the bucket only with --delete-bucket)")
    command.add_argument("--delete-bucket", action="store_true",
                         help="also delete the bucket dfbench created, with every object in it")
    return parser


def _spec(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    return make_spec(
        name=args.cluster, region=args.region, instance_count=args.count, instance_type=args.instance_type,
        ami=args.ami, volume_size_gib=args.volume_size, bucket=args.bucket, spot=args.spot or None,
        ttl_hours=args.ttl_hours, ssh_ingress_cidrs=tuple(args.ssh_cidr) or None,
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


def _emit(args: argparse.Namespace, result: Any, render: Callable[[Any], None]) -> None:
    if args.json:
        payload = result.model_dump(mode="json") if result is not None else None
        if isinstance(result, Plan | TeardownReport):
            payload["empty" if isinstance(result, Plan) else "clean"] = (
                result.empty if isinstance(result, Plan) else result.clean)
        print(json.dumps(payload, indent=2))
    else:
        render(result)


def _run(args: argparse.Namespace) -> int:
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


def main(argv: Sequence[str] | None = None) -> int:
    logger = logging.getLogger("dfbench")
    try:
        args = _parser().parse_args(argv)
        logger.setLevel(logging.DEBUG if args.verbose else logging.INFO)
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
        err.print(f"[red]error:[/] {error}", markup=True)
        return error.exit_code
    except KeyboardInterrupt:
        err.print("[yellow]interrupted.[/] Every dfbench command converges when run again.")
        return 130


if __name__ == "__main__":
    sys.exit(main())
