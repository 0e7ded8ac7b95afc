"""`dfbench github init | run | role`: benchmarks of pull requests from their comments."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING

from dfbench.errors import ConfigError

if TYPE_CHECKING:
    from dfbench.github.api import GitHub
    from dfbench.github.command import Limits
    from dfbench.github.event import Event

_SHA = re.compile(r"^[0-9a-f]{40}\Z")


def run_github(args: argparse.Namespace) -> int:
    handler = logging.StreamHandler(sys.stderr)  # progress lines into the job's log
    handler.setLevel(logging.INFO)
    logging.getLogger("dfbench").addHandler(handler)
    try:
        return {"init": _init, "run": _run, "role": _role}[args.github_command](args)
    finally:
        logging.getLogger("dfbench").removeHandler(handler)


def _init(args: argparse.Namespace) -> int:
    from dfbench.github.workflow import write_workflow

    path, changed = write_workflow(Path(args.path), requirement=args.dfbench, force=args.force)
    print(f"{'wrote' if changed else 'unchanged:'} {path}")
    print("Next: `dfbench github role --repo OWNER/NAME`, then set the repository variable DFBENCH_ROLE_ARN "
          "to the ARN it prints (docs/github.md).")
    return 0


def _limits(args: argparse.Namespace) -> Limits:
    from dfbench.github.command import Limits

    try:
        max_sf = Decimal(args.max_scale_factor)
    except InvalidOperation:
        raise ConfigError(f"--max-scale-factor {args.max_scale_factor!r} is not a number") from None
    types = tuple(t.strip() for t in (args.instance_types or "").split(",") if t.strip())
    return Limits(max_nodes=args.max_nodes, max_scale_factor=max_sf, max_rounds=args.max_rounds,
                  nodes=args.nodes, instance_types=types or Limits.instance_types)


def _run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from dfbench.github.api import GitHub
    from dfbench.github.event import decide, read_event, write_outputs
    from dfbench.github.pipeline import BenchSettings, run_benchmark
    from dfbench.github.report import RunLinks

    limits = _limits(args)
    binaries = (args.base_binary, args.head_binary)
    if (binaries[0] is None) != (binaries[1] is None):
        raise ConfigError("give both --base-binary and --head-binary (the benchmark job), or neither (the check)")
    for name in ("base_sha", "head_sha"):
        if getattr(args, name) is not None and not _SHA.match(getattr(args, name)):
            raise ConfigError(f"--{name.replace('_', '-')} must be a commit's 40-hex sha")
    event = read_event(args.event)
    if event is None:
        print("not a request: nothing to do")
        write_outputs(None, os.environ.get("GITHUB_OUTPUT"))
        return 0
    github = GitHub.from_environment()
    if args.failed_step:
        return _report_failure(args.failed_step, event, github, limits)
    if binaries[0] is None:
        accepted = decide(event, github, limits, answer=True)
        outputs = write_outputs(accepted, os.environ.get("GITHUB_OUTPUT"))
        print(json.dumps(outputs))
        return 0
    for path in binaries:
        if not Path(path).is_file():
            raise ConfigError(f"no worker binary at {path}: the build job's artifact was not downloaded there")
    accepted = decide(event, github, limits, answer=False)
    if accepted is None:
        raise ConfigError("this event is no request dfbench may run: nothing was started")
    if args.head_sha:
        accepted = replace(accepted, pull=replace(accepted.pull, head_sha=args.head_sha))
    if args.base_sha:
        accepted = replace(accepted, base_sha=args.base_sha)
    settings = BenchSettings(region=args.region, spot=args.spot, via=args.via, data_dir=Path(args.results),
                             plot=Path(args.results) / "comparison.png" if args.plot else None)
    return run_benchmark(event, accepted, github, base_binary=Path(binaries[0]), head_binary=Path(binaries[1]),
                         settings=settings, links=RunLinks.from_environment())


def _report_failure(step: str, event: Event, github: GitHub, limits: Limits) -> int:
    from dfbench.github.event import decide
    from dfbench.github.report import RunLinks, failure_comment

    if not re.fullmatch(r"[a-z][a-z0-9 -]{0,40}", step):
        raise ConfigError(f"--failed-step {step!r}: a step's name, such as build")
    accepted = decide(event, github, limits, answer=False)
    if accepted is None:
        raise ConfigError("this event is no request dfbench may run: nothing to report")
    links = RunLinks.from_environment()
    github.comment(event.number, failure_comment(
        step, [f"The {step} job failed: its log in the workflow run holds its output."], accepted.request,
        author=event.author, links=links, cleaned_up=None))
    return 0


def _role(args: argparse.Namespace) -> int:
    from dfbench.github.role import delete_github_role, ensure_github_role

    if args.delete:
        report = delete_github_role(args.repo, region=args.region, profile=args.profile)
    else:
        report = ensure_github_role(args.repo, region=args.region, profile=args.profile, bucket=args.bucket)
    if args.json:
        print(report.model_dump_json(indent=2))
        return 0
    for change in report.changes:
        print(change)
    if not report.changes:
        print("no change")
    if not args.delete:
        print(f"role: {report.role_arn}")
        print("Set it as the repository variable DFBENCH_ROLE_ARN (Settings → Secrets and variables → Actions → "
              "Variables); it is no secret.")
    return 0
