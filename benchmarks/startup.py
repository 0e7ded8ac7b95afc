"""Benchmark: how long the `dfbench` command takes to answer before it does any work.

`dfbench --help` against `aws --version` (the AWS CLI, which loads botocore before answering), as
typed in a shell: each a fresh process, run in interleaved pairs so that both see the same
machine, the median of every run reported. `python -c pass` is shown as the floor no Python
command goes below. The result is written into BENCHMARKS.md between the
`<!-- startup:start -->` and `<!-- startup:end -->` markers.

    .venv/bin/python benchmarks/startup.py [--repeat 15] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from dfbench import __version__
from report import write_section  # benchmarks/ is on sys.path: scripts run as files

GOAL = 0.3  # dfbench --help at most this fraction of aws --version


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--no-write", action="store_true", help="print the section, leave BENCHMARKS.md alone")
    args = parser.parse_args()
    aws = shutil.which("aws")
    if aws is None:
        raise SystemExit("the AWS CLI (`aws`) is not on PATH")
    dfbench = str(Path(sys.executable).with_name("dfbench"))
    commands = {"dfbench --help": [dfbench, "--help"], "aws --version": [aws, "--version"],
                "python -c pass": [sys.executable, "-c", "pass"]}
    for command in commands.values():  # once each first: the file cache warm for both
        timed(command)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for run in range(args.repeat):
        order = list(commands) if run % 2 == 0 else list(reversed(commands))
        for name in order:
            times[name].append(timed(commands[name]))
    median = {name: statistics.median(values) for name, values in times.items()}
    ratio = median["dfbench --help"] / median["aws --version"]
    aws_version = subprocess.run([aws, "--version"], capture_output=True, text=True, check=True).stdout.strip().split()[0]
    rows = "\n".join(f"| `{name}` | {median[name] * 1000:.0f} ms | {median[name] / median['aws --version']:.2f}x |"
                     for name in commands)
    text = f"""## Start-up: `dfbench --help` vs `aws --version`

`make bench-startup` (`.venv/bin/python benchmarks/startup.py --repeat {args.repeat}`), {time.strftime('%Y-%m-%d')}:
each command a fresh process as typed in a shell, run in interleaved order, median of {args.repeat} runs.
{os.cpu_count()} CPUs, Python {platform.python_version()}, dfbench {__version__}, {aws_version}.

| command | median | / aws --version |
|---|---:|---:|
{rows}

Goal: `dfbench --help` ≤ {GOAL}x `aws --version`: {"met" if ratio <= GOAL else "NOT met"} ({ratio:.2f}x).
The command line imports only its parser to answer `--help`, and only the module of the command it
runs otherwise; `tests/test_architecture.py` checks that `--help` loads neither boto3, pydantic,
rich nor DataFusion. All runs (ms): {', '.join(f"{name}=[{', '.join(f'{t * 1000:.0f}' for t in values)}]"
                                   for name, values in times.items())}."""
    print(text)
    if not args.no_write:
        write_section("startup", text)


if __name__ == "__main__":
    main()
