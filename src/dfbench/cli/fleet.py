"""The account-wide commands: clusters (every dfbench cluster, what it costs) and sweep (what no
live cluster owns, deleted only with --yes)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta

from rich.markup import escape
from rich.table import Table

from dfbench.cli.output import out
from dfbench.fleet import list_clusters
from dfbench.janitor import DEFAULT_OLDER_THAN, sweep
from dfbench.models import ClusterSummary, SweepReport, usd_text


def _age_text(hours: float | None) -> str:
    if hours is None:
        return "unknown"
    return f"{hours / 24:.1f} d" if hours >= 48 else f"{hours:.1f} h" if hours >= 1 else f"{hours * 60:.0f} min"


def _render_clusters(summaries: list[ClusterSummary]) -> None:
    if not summaries:
        out.print("no dfbench cluster")
        return
    table = Table(show_header=True, header_style="bold")
    for column in ("cluster", "region", "age", "instances", "time-to-live deadline", "per hour", "so far"):
        table.add_column(column)
    now = datetime.now(UTC)
    for s in summaries:
        states = ", ".join(f"{count} {state}" for state, count in s.instances.items()) or "none"
        if not s.live:
            states += " [yellow](no live instance: sweep takes what is left)[/]"
        deadline = "none"
        if s.ttl_deadline is not None:
            left = (s.ttl_deadline - now).total_seconds() / 3600
            deadline = f"{s.ttl_deadline:%Y-%m-%d %H:%M} UTC ({f'in {_age_text(left)}' if left > 0 else 'past'})"
        table.add_row(escape(s.name), s.region, _age_text(s.age_hours), states, deadline,
                      usd_text(s.cost.per_hour), usd_text(s.cost.usd))
    out.print(table)
    sources = {p.source for s in summaries for p in s.cost.prices}
    for source in sorted(sources):
        out.print(f"prices: {escape(source)}")


def run_clusters(args: argparse.Namespace) -> int:
    summaries = list_clusters(region=args.region, all_regions=args.all_regions, profile=args.profile)
    if args.json:
        print(json.dumps([s.model_dump(mode="json") for s in summaries], indent=2))
    else:
        _render_clusters(summaries)
    return 0


def _render_sweep(report: SweepReport) -> None:
    where = ", ".join(report.regions) if len(report.regions) <= 3 else f"{len(report.regions)} regions"
    if not report.orphans:
        out.print(f"no orphan in {where}")
    elif not report.applied:
        out.print(f"{len(report.orphans)} orphan(s) in {where}, in the order --yes deletes them:")
        for orphan in report.orphans:
            out.print(f"  {escape(str(orphan))} ({orphan.region}; {escape(orphan.owner)}; age "
                      f"{_age_text(orphan.age_hours)})")
        out.print("[yellow]dry run: nothing deleted[/]; run again with --yes to delete them")
    for orphan in report.deleted:
        out.print(f"  [red]- deleted[/] {escape(str(orphan))} ({orphan.region}; {escape(orphan.owner)})")
    for orphan in report.left:
        out.print(f"  [yellow]! left[/] {escape(str(orphan))} ({orphan.region}; {escape(orphan.owner)})")
    for line in report.skipped:
        out.print(f"  [cyan]kept[/] {escape(line)}")
    if report.applied and not report.clean:
        out.print(f"[red]{len(report.left)} orphan(s) left; run sweep again, or delete them by hand[/]")


def run_sweep(args: argparse.Namespace) -> int:
    older_than = DEFAULT_OLDER_THAN if args.older_than is None else timedelta(seconds=args.older_than)
    report = sweep(region=args.region, all_regions=args.all_regions, older_than=older_than, apply=args.yes,
                   include_buckets=args.buckets, profile=args.profile)
    if args.json:
        print(json.dumps({**report.model_dump(mode="json"), "clean": report.clean}, indent=2))
    else:
        _render_sweep(report)
    return 0 if report.clean else 1
