"""`dfbench verify-aws`: the plan and the question before anything is created, progress while it
runs, and the report's table and files after."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from dfbench.cli.output import ProgressHandler, err, out
from dfbench.errors import ConfigError


def run_verify_aws(args: argparse.Namespace) -> int:
    if not args.yes and not sys.stdin.isatty():
        raise ConfigError("verify-aws creates billable resources and asks before it does: run it in a terminal, "
                          "or pass --yes")
    from dfbench.verify import verify_aws

    logger = logging.getLogger("dfbench")
    spinner = err.status("dfbench verify-aws…")
    handler = ProgressHandler(spinner)

    def confirm(plan: str) -> bool:
        out.print(plan, markup=False)
        if not args.yes and input("Proceed? [y/N] ").strip().lower() not in ("y", "yes"):
            return False
        spinner.start()
        logger.addHandler(handler)
        return True

    try:
        report = verify_aws(region=args.region, profile=args.profile, confirm=confirm,
                            report=Path(args.report) if args.report else None)
    finally:
        logger.removeHandler(handler)
        spinner.stop()
    if report is None:
        out.print("nothing created.")
        return 1
    path = Path(args.report) if args.report else Path(f"dfbench-verify-{report.run_id}.json")
    if not args.report:
        report.write(path)
    table = Table(show_header=True, header_style="bold")
    for column in ("probe", "holds", "observed"):
        table.add_column(column)
    marks = {True: "[green]yes[/]", False: "[red]no[/]", None: "[yellow]not observed[/]"}
    for finding in report.findings:
        table.add_row(finding.probe, marks[finding.holds], escape(finding.observed))
    out.print(table)
    counts = report.counts()
    out.print(f"{counts['holds']} hold, {counts['fails']} do not, {counts['unobserved']} not observed. "
              f"Report: {path} and {path.with_suffix('.md')}. Please share it: open an issue on dfbench's GitHub "
              "repository with the JSON attached.", markup=False)
    if report.left:
        err.print("[red]left behind[/] (delete by hand, or `dfbench sweep`): " + escape("; ".join(report.left)))
        return 1
    if report.interrupted:
        err.print("[yellow]interrupted[/]: everything the run created was deleted.")
        return 130
    return 0
