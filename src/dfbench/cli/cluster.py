"""The cluster commands: plan, provision, status and teardown, and their tables."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from dfbench.cli.output import emit, out
from dfbench.config import ClusterSpec, make_spec
from dfbench.costs import cluster_cost
from dfbench.models import Cluster, Plan, TeardownReport
from dfbench.provision import plan, provision, status, teardown

if TYPE_CHECKING:  # the checks' modules load only for the doctor command
    from dfbench.checkup import DoctorReport


def _spec(args: argparse.Namespace) -> ClusterSpec:
    return make_spec(
        name=args.cluster, region=args.region, instance_count=args.count, instance_type=args.instance_type,
        ami=args.ami, volume_size_gib=args.volume_size, bucket=args.bucket, spot=args.spot or None,
        ttl_hours=args.ttl_hours, ssh_ingress_cidrs=tuple(args.ssh_cidr) or None,
        allow_wide_ssh=args.allow_wide_ssh or None,
        tags=dict(args.tag) or None,
    )


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
    resources.add_row("workers dns name", cluster.workers_dns_name or "[red]missing[/]")
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
    else:
        out.print(f"provision would make {len(result.changes)} change(s) to cluster {result.cluster} "
                  f"({result.region}):")
        colours = {"create": "green", "update": "yellow", "delete": "red", "replace": "magenta", "start": "cyan"}
        for change in result.changes:
            out.print(f"  [{colours[change.action]}]{escape(str(change))}[/]", markup=True)
    if result.cost is not None:
        out.print(f"cost: {escape(result.cost.hourly_text())}", markup=True)


def _render_teardown(report: TeardownReport) -> None:
    for item in report.deleted:
        out.print(f"  [red]- deleted[/] {item}")
    for item in report.left:
        out.print(f"  [yellow]! left[/] {item}")
    if report.cost is not None:
        out.print(escape(f"lifetime cost of the instances terminated: {report.cost.spent_text()}"))
    if report.clean:
        out.print(f"cluster {report.cluster} ({report.region}): nothing left"
                  + ("" if report.deleted else " (there was nothing to delete)"))
    else:
        out.print(f"[red]cluster {report.cluster}: {len(report.left)} resource(s) left; "
                  "run teardown again, or delete them by hand[/]")


_STATUS_STYLES = {"ok": "green", "warn": "yellow", "unknown": "cyan", "fail": "red"}


def _render_doctor(report: DoctorReport) -> None:
    table = Table(title=f"doctor: cluster {report.cluster} ({report.region})", show_header=True, header_style="bold")
    for column in ("check", "status", "detail", "fix"):
        table.add_column(column, overflow="fold")
    for check in report.checks:
        style = _STATUS_STYLES[check.status]
        table.add_row(check.name, f"[{style}]{check.status}[/]", escape(check.detail), escape(check.fix))
    out.print(table)
    blockers = report.blockers
    out.print(f"[red]{len(blockers)} blocker(s): {', '.join(c.name for c in blockers)}[/]" if blockers
              else "[green]no blocker[/]: provision should succeed")


def run_doctor(args: argparse.Namespace) -> int:
    from dfbench.checkup import doctor  # the checks' modules: only for this command

    report = doctor(_spec(args), profile=args.profile, via=args.via)
    emit(args, report, _render_doctor)
    return 1 if report.blockers else 0


def run_cluster_command(args: argparse.Namespace) -> int:
    if args.command == "provision":
        spec = _spec(args)
        emit(args, provision(spec, profile=args.profile), _render_cluster)
        return 0
    if args.command == "plan":
        emit(args, plan(_spec(args), profile=args.profile), _render_plan)
        return 0
    if args.command == "status":
        cluster = status(args.cluster, region=args.region, profile=args.profile)
        if cluster is None:
            emit(args, None, lambda _: out.print(
                f"no cluster named {args.cluster!r} in {args.region or 'the default region'}"))
            return 1
        cost = cluster_cost(cluster, profile=args.profile)
        if args.json:
            print(json.dumps({**cluster.model_dump(mode="json"), "cost": cost.model_dump(mode="json")}, indent=2))
        else:
            _render_cluster(cluster)
            out.print(escape(f"cost so far: {cost.spent_text()}; now {cost.hourly_text()}"))
        return 0
    report = teardown(args.cluster, region=args.region, profile=args.profile, delete_bucket=args.delete_bucket)
    emit(args, report, _render_teardown)
    return 0 if report.clean else 1

