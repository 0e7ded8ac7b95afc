"""What the SSH transport adds to a request, measured against the same worker reached directly.

Setup: ``python -m dfbench.worker.local`` on 127.0.0.1 (a subprocess, as ``dfbench bench`` runs it)
and Debian's OpenSSH server on another loopback port (``dfbench_testing.Sshd``), with
:class:`dfbench.transport.ssh.SshTransport` forwarding a local port to the worker's through it.
Requests are the runner's own (:class:`dfbench.worker.client.WorkerClient`: one urllib request, so one new
TCP connection and, through the transport, one new SSH channel, per request).

* latency: REPS interleaved pairs (direct, then through SSH, the order alternating) of ``GET /info``
  and of ``SELECT 1``; median and p95 of each, the ratio and the added milliseconds.
* burst: BURST ``/info`` requests from 8 threads, direct and through SSH, alternating twice;
  requests per second of each and the ratio. Every request must succeed.
* open: the time to open the transport (TCP, SSH handshake, host key check, public-key login,
  listener), median of OPENS.

Loopback hides the network: on AWS the round trip to the instance adds to both the SSH path and
the handshake; what is measured here is the transport's own cost. The result is written into
BENCHMARKS.md between ``<!-- transport:start -->`` and ``<!-- transport:end -->``.

    .venv/bin/python benchmarks/transport_overhead.py [--reps 300] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import paramiko

from dfbench.transport.keys import EphemeralKey
from dfbench.transport.ssh import SshTransport
from dfbench.worker.client import WorkerClient
from dfbench.worker.process import LocalWorkerProcess
from dfbench_testing import Sshd
from report import write_section  # benchmarks/ is on sys.path: scripts run as files

COMMAND = "make bench-transport"
BURST = 2000
THREADS = 8
OPENS = 20


def timed(call) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def latency(direct: WorkerClient, tunnelled: WorkerClient, reps: int) -> dict[str, tuple[list[float], list[float]]]:
    requests = {"GET /info": lambda c: c.info(), "SELECT 1": lambda c: c.query("SELECT 1")}
    samples: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in requests}
    for name, request in requests.items():
        for _ in range(20):  # warm-up: imports, the worker's first plan, the first channels
            request(direct), request(tunnelled)
        for rep in range(reps):
            pair = [(0, direct), (1, tunnelled)]
            for side, client in pair if rep % 2 == 0 else reversed(pair):
                samples[name][side].append(timed(lambda r=request, c=client: r(c)))
    return samples


def burst(client: WorkerClient) -> float:
    """Requests per second of BURST /info requests from THREADS threads; all must succeed."""
    start = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(lambda _: client.info(), range(BURST)))
    elapsed = time.perf_counter() - start
    assert len(answers) == BURST and all("git_commit_hash" in a for a in answers)
    return BURST / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=300)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if not shutil.which("/usr/sbin/sshd"):
        print("needs Debian's openssh-server: `make system-tools` as root installs it", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory() as folder, LocalWorkerProcess() as worker, Sshd(Path(folder)) as sshd:
        assert worker.url is not None
        key = EphemeralKey.generate()
        sshd.authorize(key.public_line)
        known_hosts = Path(folder) / "known_hosts"
        # A loopback sshd has no console to read its host key from: trusted on first use, as asked.
        options = dict(host="127.0.0.1", port=sshd.port, user=sshd.user, pkey=key.pkey, known_hosts=known_hosts,
                       remote_port=int(worker.url.rsplit(":", 1)[1]), trust_on_first_use=True)
        opens = []
        for _ in range(OPENS):
            transport = SshTransport(**options)  # type: ignore[arg-type]
            opens.append(timed(transport.__enter__))
            transport.close()
        with SshTransport(**options) as transport:  # type: ignore[arg-type]
            direct, tunnelled = WorkerClient(worker.url), WorkerClient(transport.url)
            samples = latency(direct, tunnelled, args.reps)
            rates: tuple[list[float], list[float]] = ([], [])
            for _ in range(2):
                rates[0].append(burst(direct))
                rates[1].append(burst(tunnelled))
            assert transport.reconnects == 0 and transport.failure is None

    lines = [
        "## SSH transport overhead",
        "",
        (f"Command: `{COMMAND}` (`benchmarks/transport_overhead.py --reps {args.reps}`), "
        f"{datetime.date.today().isoformat()}, Python {platform.python_version()}, paramiko {paramiko.__version__}, "
        f"{os.cpu_count()} CPUs. The local worker reached directly and through `SshTransport` (Debian's sshd on "
        "loopback), in interleaved pairs; one new TCP connection (and SSH channel) per request, as the runner sends "
        "them."),
        "",
        "| request | direct median | SSH median | ratio | added | direct p95 | SSH p95 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, (plain, ssh) in samples.items():
        d, s = statistics.median(plain), statistics.median(ssh)
        lines.append(f"| {name} | {d:.2f} ms | {s:.2f} ms | {s / d:.2f}× | +{s - d:.2f} ms | "
                     f"{p95(plain):.2f} ms | {p95(ssh):.2f} ms |")
    direct_rate, ssh_rate = statistics.median(rates[0]), statistics.median(rates[1])
    lines += [
        "",
        (f"Burst: {BURST:,} `/info` requests from {THREADS} threads, all answered, one SSH session throughout "
        f"(no reconnect): {direct_rate:,.0f} requests/s direct, {ssh_rate:,.0f} requests/s through SSH "
        f"({ssh_rate / direct_rate:.2f}× the direct rate; median of 2 alternating rounds each)."),
        "",
        (f"Opening the transport (TCP, handshake, host-key check, login, listener): median "
        f"{statistics.median(opens):.1f} ms over {OPENS} opens on loopback."),
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("transport", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
