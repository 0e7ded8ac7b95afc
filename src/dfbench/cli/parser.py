"""The `dfbench` command line's arguments: every command and option, and nothing else.

Building the parser imports no more than the option choices, so that ``dfbench --help`` (and any
command's ``--help``) answers at once; each command's module is loaded only to run it
(:mod:`dfbench.cli.main`)."""

from __future__ import annotations

import argparse
from typing import NoReturn

from dfbench import __version__
from dfbench.comparison.records import FORMATS, RESULTS_KINDS
from dfbench.errors import ConfigError
from dfbench.transport import VIAS


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not usage plus error: the message already names the argument.
        raise ConfigError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def _tag(text: str) -> tuple[str, str]:
    from dfbench.config import parse_tag  # pydantic: loaded only when a tag is given

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


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="dfbench", description="Distributed DataFusion benchmarks on AWS, with boto3 alone.")
    parser.add_argument("--version", action="version", version=f"dfbench {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step, including AWS retries")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

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
    command.add_argument("--worker-kind", metavar="current|tag-discovery",
                         help="which upstream worker the binary is (default: read from the binary): current finds "
                              "its peers by the cluster's DNS name, tag-discovery by the BenchmarkCluster tag")
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
    command.add_argument("--port", type=int, default=0, help="local port (default: a free one; 9000 as the CDK tooling's "
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
    data_commands = data.add_subparsers(dest="data_command", required=True, parser_class=Parser)
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
    command = commands.add_parser("compare", help=description, description=description)
    command.add_argument("--dataset", required=True, help="dataset name, e.g. tpch_sf10")
    command.add_argument("--data-dir", default="benchmarks/data", help="data folder (default: benchmarks/data)")
    command.add_argument("--results", choices=RESULTS_KINDS, default="remote",
                         help="compare cluster (remote) or local-worker (local) runs (default: remote)")
    command.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    command.add_argument("--fail-on-regression", action="store_true",
                         help="exit 1 when the suite is slower or a query newly fails")
    command.add_argument("base", metavar="BASE", help="engine of the baseline run, e.g. datafusion-distributed-main")
    command.add_argument("new", metavar="NEW", help="engine of the run to judge")

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
    bench.add_argument("--settings", metavar="PRESET", help="'distributed' for the CDK tooling's 14 defaults")
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

