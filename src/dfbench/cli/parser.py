"""The `dfbench` command line's arguments: every command and option, and nothing else.

Building the parser imports nothing but argparse and the transports' names, so that ``dfbench --help``
(and any command's ``--help``) answers at once; each command's module is loaded only to run it
(:mod:`dfbench.cli.main`), and values such as ``compare --format`` are checked there, by the
library, which lists what it accepts."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import NoReturn

from dfbench import __version__
from dfbench.errors import ConfigError
from dfbench.files import folder_problem
from dfbench.transport import VIAS


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not usage plus error: the message already names the argument.
        raise ConfigError(f"{self.prog}: {message} (see `{self.prog} --help`)")


# The one way past the host-key check of a first SSH contact (transport/choice.py console_pins).
_TRUST_FIRST_KEY = ("over ssh, with no host key on the instance's console yet: accept the key it presents, "
                    "unverified (pinned afterwards)")


def _tag(text: str) -> tuple[str, str]:
    from dfbench.config import parse_tag  # pydantic: loaded only when a tag is given

    try:
        return parse_tag(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _variable(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} must look like NAME=VALUE")
    return name, value


def _folder(text: str, *, write: bool) -> str:
    """A data folder that is one, or can become one: refused here, in one line, when it names a
    file or a folder this user cannot read (or, for ``write``, write)."""
    problem = folder_problem(text, write=write)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def _datasets(text: str) -> str:
    """One dataset, or a comma-separated list of them (compare --engines), each in dfbench's
    spelling; the list joined again with commas."""
    return ",".join(_dataset(name) for name in text.split(","))


def _dataset(text: str) -> str:
    """dfbench's name of a dataset given either way (``tpch/sf10`` → ``tpch_sf10``), refused here in
    one line when it is neither spelling."""
    from dfbench.data.scale import checked_dataset  # here: `dfbench --help` loads no data layer
    from dfbench.errors import ConfigError

    try:
        return checked_dataset(text)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _data_dir(text: str) -> str:
    return _folder(text, write=False)


def _writable_data_dir(text: str) -> str:
    return _folder(text, write=True)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (0-65535; 0 picks a free one)")
    return port


def _worker_environment(command: argparse.ArgumentParser) -> None:
    """--arg, --env and --secret-env: how the worker.service a deploy installs runs the worker."""
    command.add_argument("--arg", action="append", default=[], metavar="X",
                         help="a worker argument after --bucket (repeatable; --arg=--flag for one starting with -)")
    command.add_argument("--env", action="append", default=[], type=_variable, metavar="K=V",
                         help="an environment variable of the worker (repeatable). NOT for secrets: the value is "
                         "readable in the SSM command's parameters, in worker.service and in the bucket's "
                         ".dfbench/artifacts/worker/latest")
    command.add_argument("--secret-env", action="append", default=[], type=_variable,
                         metavar="NAME=ssm:/dfbench/CLUSTER/PARAM",
                         help="a secret environment variable of the worker (repeatable), read by each instance "
                         "from that SSM parameter (a SecureString) at every start into a 0600 file; the value is "
                         "never sent by dfbench nor written to S3")


def _worker_build(command: argparse.ArgumentParser) -> None:
    """--package and --features: what a checkout builds."""
    command.add_argument("--package", metavar="NAME",
                         help="with a checkout: the cargo package whose `worker` bin is built (default: the "
                              "workspace's one package with a `worker` bin)")
    command.add_argument("--features", action="append", default=[], metavar="F[,F...]",
                         help="with a checkout: cargo features to build the worker with, e.g. iceberg (repeatable)")


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
                       ("plan", "show what provision would change, changing nothing"),
                       ("doctor", ("check, changing nothing, whether provision would succeed and how to reach the "
                        "cluster: a table of checks, each with its fix; exit 1 on a blocker"))):
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
        if name == "doctor":
            command.add_argument("--via", default="auto", choices=VIAS,
                                 help="how you will reach the workers (default auto): ssm needs the plugin")
    cluster_command("status", "show the cluster as it exists now")
    command = cluster_command("teardown", "delete the cluster (the bucket only with --delete-bucket)")
    command.add_argument("--delete-bucket", action="store_true",
                         help="also delete the bucket dfbench created, with every object in it")

    # Account-wide commands (cli/fleet.py): every cluster, and the sweep of what none owns.
    def older_than(text: str) -> float:
        """A duration such as 30m, 2h or 1d (0 alone: any age), in seconds."""
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        number, unit = text[:-1], text[-1:]
        if text == "0":
            return 0.0
        if unit not in units or not number.isdigit():
            raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 30m, 2h or 1d (0 takes every "
                                             "orphan whatever its age)")
        return float(int(number) * units[unit])

    for name, help in (("clusters", ("every dfbench cluster: age, instances by state, time-to-live deadline, what "
                                     "it costs per hour and so far")),
                       ("sweep", ("find what carries dfbench:managed=true and no live cluster owns (left by an "
                                  "interrupted provision, teardown or verify-aws); delete it only with --yes"))):
        command = commands.add_parser(name, help=help, description=help)
        where = command.add_mutually_exclusive_group()
        where.add_argument("--region", help="AWS region (default: AWS_REGION, else us-east-1)")
        where.add_argument("--all-regions", action="store_true", help="every region enabled for the account")
        command.add_argument("--profile", help="AWS profile (default: AWS_PROFILE / the default chain)")
        command.add_argument("--json", action="store_true", help="print the result as JSON")
    command.add_argument("--older-than", type=older_than, metavar="DURATION",
                         help="only what the owner left at least this long ago, such as 30m, 2h or 1d (default 1h; "
                         "0: whatever its age, and also what carries no date)")
    command.add_argument("--yes", action="store_true", help="delete what was found (without it: list it only)")
    command.add_argument("--buckets", action="store_true",
                         help="also delete the buckets dfbench created that no remaining cluster uses, with every "
                         "object in them")

    command = cluster_command("deploy", "install the worker on every instance, restart it, check /info")
    source = command.add_mutually_exclusive_group(required=True)
    source.add_argument("--binary", metavar="PATH",
                        help="the worker built for Linux x86-64 (target/x86_64-unknown-linux-gnu/release/worker)")
    source.add_argument("--build", metavar="REPO_DIR", help="build the worker in this datafusion-distributed checkout")
    _worker_build(command)
    command.add_argument("--worker-kind", metavar="current|tag-discovery",
                         help="which upstream worker the binary is (default: read from the binary): current finds "
                              "its peers by the cluster's DNS name, tag-discovery by the BenchmarkCluster tag")
    _worker_environment(command)
    command.add_argument("--force-restart", action="store_true", help="reinstall and restart where this build runs")
    command.add_argument("--no-verify", action="store_true", help="skip checking every worker's /info afterwards")
    command = cluster_command("exec", "run a shell command on every instance: dfbench exec -- CMD ...")
    command.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD", help="the command, after --")
    command = cluster_command("tunnel", "open the way to a worker, print its local URL, hold it until Ctrl-C")
    command.add_argument("--instance", help="position (0 = the coordinator, default), instance id or Name")
    command.add_argument("--via", default="auto", choices=VIAS, help="how (default auto: ssm plugin, else ssh "
                         "when the cluster allows it, else relay)")
    command.add_argument("--port", type=_port, default=0,
                         help="local port (default: a free one; 9000 as the CDK tooling's port-forward)")
    command.add_argument("--trust-first-key", action="store_true",
                         help=_TRUST_FIRST_KEY)
    command = cluster_command("health", "reach every worker and check it: answers, knows every peer, same commit")
    command.add_argument("--via", default="auto", choices=VIAS, help="how to reach them (default auto)")
    command.add_argument("--trust-first-key", action="store_true",
                         help=_TRUST_FIRST_KEY)
    command = cluster_command("shell", "a shell on an instance (Session Manager, else SSH): dfbench shell [-- CMD]")
    command.add_argument("--instance", help="position (default 0), instance id or Name")
    command.add_argument("--via", default="auto", choices=("auto", "ssm", "ssh"),
                         help="default auto: Session Manager when its plugin is installed, else ssh")
    command.add_argument("--trust-first-key", action="store_true",
                         help=_TRUST_FIRST_KEY)
    command.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD", help="a command instead of a shell (ssh)")
    # `dfbench engine install|status|remove`: Trino and Spark beside the worker (dfbench.cli.engines).
    engine = commands.add_parser("engine", help="install, check or remove Trino or Spark on a cluster's instances")
    engine_commands = engine.add_subparsers(dest="engine_command", required=True, parser_class=Parser)
    for verb, help in (("install", ("install an engine on every instance (one SSM command per step; run again to "
                                   "finish an install that failed or was interrupted)")),
                       ("status", "what every instance runs of the engines, and what their install recorded"),
                       ("remove", "stop and delete an engine on every instance, and what it wrote in the bucket")):
        command = engine_commands.add_parser(verb, help=help, description=help)
        if verb == "status":
            command.add_argument("engine", nargs="?", choices=("trino", "spark"), help="one engine (default both)")
        else:
            command.add_argument("engine", choices=("trino", "spark"), help="the engine")
        command.add_argument("--cluster", default="dfbench", help="cluster name (default: dfbench)")
        command.add_argument("--region", help="AWS region (default: AWS_REGION, else us-east-1)")
        command.add_argument("--profile", help="AWS profile (default: AWS_PROFILE / the default chain)")
        command.add_argument("--json", action="store_true", help="print the result as JSON")
        if verb == "install":
            command.add_argument("--version", dest="engine_version", metavar="V",
                                 help="the engine's version (default: the one dfbench pins: Trino 476, Spark 4.0.0)")
    command = cluster_command("logs", "worker.service's journal on every instance")
    command.add_argument("--lines", type=int, default=200, help="last N lines (default 200)")
    command.add_argument("--since", help="from this time on, as journalctl takes it (--since=-1h: with '=' "
                         "when it starts with '-'; '2026-01-31 12:00'; today)")

    data = commands.add_parser("data", help="datasets (TPC-H, TPC-DS, ClickBench): generate, sync to the bucket, "
                               "list")
    data_commands = data.add_subparsers(dest="data_command", required=True, parser_class=Parser)
    generate = data_commands.add_parser("generate", help="generate TPC-H (tpchgen-cli) or TPC-DS (tpcgen-cli) "
                                        "parquet data")
    generate.add_argument("--benchmark", choices=("tpch", "tpcds"), default="tpch",
                          help="tpch (default) → tpch_sf<SF>, tpcds → tpcds_sf<SF>")
    generate.add_argument("--sorted", action="store_true",
                          help="TPC-H with each table's sort key recorded in the Parquet files as upstream's "
                               "tpch/sorted_sf<SF> (#646) → tpch_sorted_sf<SF>")
    generate.add_argument("--sf", required=True, help="scale factor, e.g. 1, 0.1, 10")
    generate.add_argument("--partitions", type=int, default=16, help="files per table (default 16)")
    generate.add_argument("--compression", default="SNAPPY", help="parquet compression (default SNAPPY)")
    generate.add_argument("--force", action="store_true", help="regenerate even when complete")
    generate.add_argument("--on-cluster", action="store_true",
                          help="generate on the cluster's instances, straight into its bucket "
                          "(s3://<bucket>/<dataset>/)")
    generate.add_argument("--generator", metavar="PATH",
                          help="with --on-cluster: the Linux x86-64 generator to ship (default: the one "
                          "installed here)")
    download = data_commands.add_parser("clickbench", help="download ClickBench's partitioned hits files")
    download.add_argument("--partitions", default="0-100", metavar="START-END",
                          help="partitions START … END-1 of the 100 → clickbench_<START>-<END> (default 0-100)")
    download.add_argument("--url", default=None, help="folder URL holding hits_<n>.parquet (default: ClickHouse's "
                          "public athena_partitioned set, as upstream's prepare-clickbench uses)")
    download.add_argument("--workers", type=int, default=4, help="parallel downloads (default 4)")
    sync = data_commands.add_parser("sync", help="upload a dataset to the bucket, skipping unchanged files")
    sync.add_argument("dataset", type=_dataset, help="dataset folder name, e.g. tpch_sf10 (or tpch/sf10)")
    sync.add_argument("--delete", action="store_true", help="delete remote files that are gone locally")
    pull = data_commands.add_parser("pull", help="download a complete dataset from the bucket, checked against "
                                    "its manifest")
    pull.add_argument("dataset", type=_dataset, help="dataset name, e.g. tpch_sf100 (or tpch/sf100)")
    listing = data_commands.add_parser("list", help="local datasets, and the bucket's with --bucket/--cluster")
    for command, folder in ((generate, _writable_data_dir), (download, _writable_data_dir), (sync, _data_dir),
                            (pull, _writable_data_dir), (listing, _data_dir)):
        command.add_argument("--data-dir", default="benchmarks/data", type=folder, help="default benchmarks/data")
    for command in (sync, pull, listing):
        command.add_argument("--bucket", help="S3 bucket (default: the cluster's)")
        command.add_argument("--cluster", help="cluster whose bucket to use")
    generate.add_argument("--cluster", help="with --on-cluster: the cluster (default: dfbench)")
    for command in (sync, pull, listing, generate):
        command.add_argument("--region", help="AWS region (default: AWS_REGION, else us-east-1)")
        command.add_argument("--profile", help="AWS profile")
        command.add_argument("--json", action="store_true", help="print the result as JSON")

    description = "compare two runs of a dataset: BASE (e.g. main) vs NEW"
    command = commands.add_parser("compare", help=description, description=description)
    command.add_argument("--dataset", required=True, type=_datasets,
                         help="dataset name, e.g. tpch_sf10 (or tpch/sf10); with --engines, several: a,b")
    command.add_argument("--data-dir", default="benchmarks/data", type=_data_dir,
                         help="data folder (default: benchmarks/data)")
    command.add_argument("--results", default="remote",
                         help="compare cluster (remote) or local-worker (local) runs (default: remote)")
    command.add_argument("--format", default="text", help="text, markdown or json (default: text)")
    command.add_argument("--fail-on-regression", action="store_true",
                         help="exit 1 when the suite is slower, a query newly fails or rows differ")
    command.add_argument("--run-to-run", type=float, metavar="PCT",
                         help="how much two runs of one build differ (standard deviation of a run's offset, in %%, "
                         "from your own A/A runs); default: the calibrated floor of --results, which the output names")
    command.add_argument("--plot", metavar="FILE", help="also draw the ratios into FILE (.png or .svg) and write "
                         "FILE's .html report beside it (needs pip install 'dfbench[plot]')")
    command.add_argument("base", metavar="BASE", nargs="?",
                         help="engine of the baseline run, e.g. datafusion-distributed-main")
    command.add_argument("new", metavar="NEW", nargs="?", help="engine of the run to judge")
    command.add_argument("--engines", metavar="A,B,C", help="instead of BASE NEW: engines side by side, each "
                         "total against A's (--dataset may list several: tpch_sf1,tpch_sf10); --plot draws how "
                         "much slower each is than A, and each query's p50")

    bench = commands.add_parser("bench", help="run a dataset's queries on the local worker (default), a cluster "
                                "(--cluster) or a worker URL, then compare with the previous run")
    bench.add_argument("--sf", default="1", help="scale factor of the local dataset (default 1)")
    bench.add_argument("--partitions", type=int, default=16, help="files per table when generating (default 16)")
    bench.add_argument("--iterations", type=int,
                       help="timed iterations per query (default 3 on dfbench's local worker, 5 on a remote one)")
    bench.add_argument("--queries", help="comma-separated ids, e.g. q1,q3 (default: all of the set)")
    bench.add_argument("--queries-dir", metavar="DIR", help="a folder of qN.sql files to run instead of the set "
                       "the dataset's name selects (tpch_*, tpcds_*, clickbench_*)")
    bench.add_argument("--engine", help="name the results are filed under")
    bench.add_argument("--cluster", help="a provisioned cluster: reached, checked and benchmarked on its bucket's data")
    bench.add_argument("--via", default="auto", choices=VIAS, help="with --cluster: how to reach it (default auto)")
    bench.add_argument("--trust-first-key", action="store_true",
                       help="with --cluster over ssh, with no host key on the console yet: accept the key presented")
    bench.add_argument("--no-check", action="store_true",
                       help="with --cluster: skip checking every worker's /info (peers, one commit) first")
    bench.add_argument("--region", help="with --cluster: AWS region (default: AWS_REGION, else us-east-1)")
    bench.add_argument("--profile", help="with --cluster: AWS profile")
    bench.add_argument("--url", help="a running worker instead of a local one")
    bench.add_argument("--dataset", type=_dataset,
                       help="dataset name, e.g. tpcds_sf1, clickbench_0-10 or upstream's tpch/sf1 (default "
                            "tpch_sf<SF>; locally it must be in --data-dir)")
    bench.add_argument("--location", help="with --url: where the worker reads <dataset>/ from "
                       "(--cluster: s3://<its bucket>)")
    bench.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a setting (repeatable)")
    bench.add_argument("--settings", metavar="PRESET", help="'distributed' for the CDK tooling's 14 defaults")
    bench.add_argument("--min-time", type=float, default=0, help="repeat each query for at least this long (s)")
    bench.add_argument("--no-warmup", action="store_true", help="skip the warm-up run of each query")
    bench.add_argument("--data-dir", default="benchmarks/data", type=_writable_data_dir,
                       help="default benchmarks/data (results are written there)")
    bench.add_argument("--engines", metavar="A,B", help="several engines in turn per query on this machine "
                       "(datafusion, spark, trino; the first is the reference), rows compared, totals printed")
    bench.add_argument("--trino-url", help="with --engines ...,trino: the Trino coordinator, e.g. "
                       "http://127.0.0.1:8080")
    bench.add_argument("--no-row-check", action="store_true",
                       help="with --engines: do not fetch and compare every query's rows across the engines")

    description = ("interleaved A/B of two running workers, or with --cluster of two worker builds deployed "
                   "alternately: rounds in ABBA order, one iteration per query per side per round, both sides filed "
                   "as engines, then compared")
    ab = commands.add_parser("ab", help="interleaved A/B of two workers (URLs, or with --cluster binaries/checkouts)",
                             description=description)
    ab.add_argument("base", metavar="BASE", help="the baseline worker's URL, e.g. http://127.0.0.1:9000 (with "
                    "--cluster: its binary, or a datafusion-distributed checkout to build it in)")
    ab.add_argument("new", metavar="NEW", help="the worker to judge, e.g. http://127.0.0.1:9001 (with --cluster: "
                    "a binary or checkout)")
    ab.add_argument("--dataset", required=True, type=_dataset, help="dataset name, e.g. tpch_sf1 (or tpch/sf1)")
    ab.add_argument("--rounds", type=int, default=6,
                    help="rounds, each side once per query per round, the query order drawn anew each pass (default 6)")
    ab.add_argument("--until", type=float, metavar="PCT",
                    help="then add rounds, two at a time, until the suite interval's half-width is at most PCT %% "
                    "(e.g. 2), or --max-rounds have run")
    ab.add_argument("--max-rounds", type=int, default=30, help="with --until: at most this many rounds (default 30)")
    ab.add_argument("--seed", type=int, help="seed of the passes' query orders (default: a new one, recorded in "
                    "run.json), to repeat an A/B's order")
    ab.add_argument("--queries", help="comma-separated ids, e.g. q1,q3 (default: all)")
    ab.add_argument("--base-name", help="engine the base side is filed under (default: from its /info)")
    ab.add_argument("--new-name", help="engine the new side is filed under (default: from its /info)")
    ab.add_argument("--location", help="where the workers read <dataset>/ from (default: --data-dir; with --cluster: "
                    "s3://<its bucket>)")
    ab.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a setting (repeatable)")
    ab.add_argument("--settings", metavar="PRESET", help="'distributed' for the CDK tooling's 14 defaults")
    ab.add_argument("--no-warmup", action="store_true", help="skip the warm-up run of each query on each side")
    ab.add_argument("--format", default="text", help="the comparison as text, markdown or json (default: text)")
    ab.add_argument("--fail-on-regression", action="store_true",
                    help="exit 1 when the suite is slower, a query newly fails or rows differ")
    ab.add_argument("--cluster", help="a provisioned cluster: BASE and NEW are deployed on it alternately (one SSM "
                    "command each change), published to its bucket once")
    ab.add_argument("--via", default="auto", choices=VIAS, help="with --cluster: how to reach it (default auto)")
    ab.add_argument("--trust-first-key", action="store_true",
                    help="with --cluster over ssh, with no host key on the console yet: accept the key presented")
    ab.add_argument("--region", help="with --cluster: AWS region (default: AWS_REGION, else us-east-1)")
    ab.add_argument("--profile", help="with --cluster: AWS profile")
    ab.add_argument("--queries-dir", metavar="DIR", help="a folder of qN.sql files to run instead of the set the "
                    "dataset's name selects")
    ab.add_argument("--worker-kind", metavar="current|tag-discovery",
                    help="with --cluster: which upstream worker both builds are (default: read from each binary)")
    _worker_environment(ab)
    _worker_build(ab)
    ab.add_argument("--data-dir", default="benchmarks/data", type=_writable_data_dir, help="default benchmarks/data")

    # `dfbench github …`: benchmarks of pull requests from their comments (dfbench.cli.github).
    github = commands.add_parser("github", help="benchmarks on pull requests: the workflow, its command, its AWS role")
    github_commands = github.add_subparsers(dest="github_command", required=True, parser_class=Parser)
    init = github_commands.add_parser("init", help="write .github/workflows/dfbench.yml into a datafusion-distributed "
                                      "checkout")
    init.add_argument("--path", default=".", metavar="CHECKOUT", help="the checkout (default: this folder)")
    init.add_argument("--force", action="store_true", help="replace a workflow file that differs")
    init.add_argument("--dfbench", default=None, metavar="REQUIREMENT",
                      help="what the workflow pip-installs (default: this dfbench version, with its plot extra)")
    run = github_commands.add_parser("run", help="act on a pull request comment (the workflow runs this with "
                                     "--event \"$GITHUB_EVENT_PATH\")")
    run.add_argument("--event", required=True, metavar="FILE", help="the event's JSON file ($GITHUB_EVENT_PATH)")
    run.add_argument("--base-binary", metavar="PATH", help="the base worker the build job made; with --head-binary: "
                     "provision, A/B, comment, teardown (without: check the request, react, write the step outputs)")
    run.add_argument("--head-binary", metavar="PATH", help="the pull request's worker the build job made")
    run.add_argument("--base-sha", metavar="SHA", help="the base commit the build job built (reported as such)")
    run.add_argument("--head-sha", metavar="SHA", help="the head commit the build job built (reported as such)")
    run.add_argument("--failed-step", metavar="STEP", help="comment that this step of the workflow failed (the "
                     "workflow's report job, after a failed build)")
    run.add_argument("--max-nodes", type=int, default=16, help="largest --nodes a comment may ask for (default 16)")
    run.add_argument("--max-scale-factor", default="100", help="largest TPC-H/TPC-DS scale factor (default 100)")
    run.add_argument("--instance-types", default=None, metavar="T1,T2",
                     help="instance types a comment may ask for, the first the default (default: c5n.2xlarge, …)")
    run.add_argument("--max-rounds", type=int, default=20, help="most rounds a comment may ask for (default 20)")
    run.add_argument("--nodes", type=int, default=4, help="nodes when a comment names none (default 4)")
    run.add_argument("--spot", action="store_true", help="spot instances")
    run.add_argument("--via", default="auto", choices=VIAS, help="how to reach the workers (default auto)")
    run.add_argument("--region", help="AWS region (default: AWS_REGION, else us-east-1)")
    run.add_argument("--results", default="dfbench-results", metavar="DIR",
                     help="where the result files and the chart go (default dfbench-results)")
    run.add_argument("--plot", action="store_true", help="also draw the chart into --results (needs dfbench[plot])")
    role = github_commands.add_parser("role", help="create the IAM OIDC provider and the role a repository's "
                                      "workflows assume (idempotent); print its ARN")
    role.add_argument("--repo", required=True, metavar="OWNER/NAME", help="the repository, spelled as GitHub does")
    role.add_argument("--region", help="AWS region the role's clusters run in (default: AWS_REGION, else us-east-1)")
    role.add_argument("--profile", help="AWS profile")
    role.add_argument("--bucket", help="the benchmark bucket, when not the default one")
    role.add_argument("--delete", action="store_true",
                      help="delete the role, and the provider when dfbench created it and no other role uses it")
    role.add_argument("--json", action="store_true", help="print the result as JSON")

    # Everything after `worker` goes to the local worker's own parser (`dfbench worker --help`
    # prints its options), so they are defined once, where they are used.
    # (prefix_chars="+" keeps this parser from taking them for its own options.)
    worker = commands.add_parser("worker", help="run the local DataFusion worker (no AWS); dfbench worker --help",
                                 add_help=False, prefix_chars="+")
    worker.add_argument("arguments", nargs="*")

    # verify-aws: one cheap run settling what README lists as not verified against real AWS.
    verify = commands.add_parser("verify-aws", help="check on a real account, in minutes and cents, every assumption "
                                 "README lists as not verified against real AWS; deletes all it creates")
    verify.add_argument("--region", help="AWS region (default: AWS_REGION, else us-east-1)")
    verify.add_argument("--profile", help="AWS profile (default: AWS_PROFILE / the default chain)")
    verify.add_argument("--yes", action="store_true", help="create without asking (needed without a terminal)")
    verify.add_argument("--report", type=_report_file, metavar="FILE.json",
                        help="the report's JSON (the Markdown goes beside it, FILE.md); default "
                        "dfbench-verify-<run id>.json here")
    return parser


def _report_file(text: str) -> str:
    """A .json file whose folder exists and is writable (so the report cannot be lost at the end)."""
    path = Path(text)
    if path.suffix != ".json":
        raise argparse.ArgumentTypeError(f"{text!r} must end with .json (the Markdown goes beside it, .md)")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise argparse.ArgumentTypeError(f"{text!r}: the folder {folder} does not exist or is not writable")
    return text

