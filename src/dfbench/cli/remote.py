"""The commands that act on a running cluster's instances: deploy, exec, logs, tunnel, health
and shell."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from rich.markup import escape
from rich.table import Table

from dfbench.cli.output import cluster_of, err, out
from dfbench.errors import ConfigError
from dfbench.worker_deploy import CommandOutput, DeployReport, deploy_worker, exec_command, logs


def _render_deploy(report: DeployReport) -> None:
    table = Table(show_header=True, header_style="bold")
    for column in ("instance", "name", "status", "exit code", "worker", "kind", "commit", "last output line"):
        table.add_column(column)
    colours = {"installed": "green", "already": "cyan", "failed": "red"}
    for r in report.results:
        last = r.output_tail.strip().rpartition("\n")[2]
        table.add_row(r.instance_id, r.name or "-", r.status, "-" if r.exit_code is None else str(r.exit_code),
                      f"[{colours[r.installed]}]{r.installed}[/]", report.kind, r.commit or "-", escape(last))
    out.print(table)
    where = "uploaded to" if report.uploaded else "already in"
    out.print(f"worker {report.sha256[:12]} {where} {escape(report.artifact_url)}; command {report.command_id}")
    if report.build is not None and report.build.package is not None:
        features = f" --features {','.join(report.build.features)}" if report.build.features else ""
        out.print(f"built from package {escape(report.build.package)}{escape(features)}")
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


def run_deploy(args: argparse.Namespace) -> int:
    # progress=False: the upload bar and the spinner would be two live displays.
    report = deploy_worker(args.cluster, binary=args.binary, build_dir=args.build, args=args.arg,
                           env=dict(args.env) or None, secrets=dict(args.secret_env) or None,
                           force_restart=args.force_restart,
                           verify=not args.no_verify, region=args.region, profile=args.profile, progress=False,
                           worker_kind=args.worker_kind, package=args.package, features=args.features)
    if args.json:
        print(json.dumps({**report.model_dump(mode="json"), "ok": report.ok}, indent=2))
    else:
        _render_deploy(report)
    report.raise_for_failures()  # main() prints the failed instances with their output tails
    return 0


def run_remote_command(args: argparse.Namespace) -> int:
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


def run_tunnel(args: argparse.Namespace) -> int:
    import threading
    from contextlib import ExitStack

    from dfbench.transport.connection import ClusterConnection

    cluster = cluster_of(args)
    assert cluster is not None
    with ExitStack() as stack:
        with err.status(f"opening the way to {cluster.name} ({args.via})…"):
            connection = stack.enter_context(ClusterConnection(cluster, via=args.via, instance=args.instance,
                                                               check=False, profile=args.profile,
                                                               local_port=args.port,
                                                               trust_on_first_use=args.trust_first_key))
        info = connection.info
        if args.json:
            print(json.dumps({"url": connection.url, "instance_id": connection.instance.instance_id,
                              "transport": connection.kind, "info": info}), flush=True)
        else:
            out.print(f"[bold]{connection.url}[/]  →  {connection.instance.instance_id} ({connection.instance.name}) "
                      f"via {escape(connection.description)}", markup=True)
            peers = len(info.get("worker_urls") or [])
            out.print(f"worker {escape(str(info.get('git_commit_hash')))}, {peers} peer(s); "
                      f"try: curl -sS {connection.url}/info", markup=True)
            out.print("holding the connection open: Ctrl-C closes it")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:  # the way a tunnel is meant to end
            err.print(f"closed the way to {connection.instance.instance_id}")
    return 0


def run_health(args: argparse.Namespace) -> int:
    from dfbench.transport.connection import ClusterConnection
    from dfbench.worker.health import health_table

    cluster = cluster_of(args)
    assert cluster is not None
    with err.status(f"reaching the {len(cluster.instances)} worker(s) of {cluster.name} ({args.via})…"):
        with ClusterConnection(cluster, via=args.via, profile=args.profile,
                               trust_on_first_use=args.trust_first_key) as connection:
            healths = connection.health
    if args.json:
        print(json.dumps([h.model_dump(mode="json") for h in healths], indent=2))
    else:
        out.print(health_table(healths))
        out.print(f"{cluster.name}: {len(healths)} worker(s) reached through {connection.kind}, every peer known, "
                  "one commit")
    return 0


def run_shell(args: argparse.Namespace) -> int:
    from dfbench.transport.shell import shell

    cluster = cluster_of(args)
    assert cluster is not None
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    return shell(cluster, instance=args.instance, via=args.via, command=argv, profile=args.profile,
                 trust_on_first_use=args.trust_first_key)

