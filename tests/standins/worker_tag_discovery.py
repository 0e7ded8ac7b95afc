#!/usr/bin/env python3
"""Stand-in for upstream's tag-discovery benchmark worker (benchmarks/cdk/bin/worker.rs, #227 up to
#621), true to it where dfbench depends on it:

- flags ``--bucket`` and ``--broadcast-joins`` only (an unknown flag is refused, as structopt does);
- no ``POD_IP``: it needs nothing from its environment to start;
- ``/info`` lists ``http://IP:9001/`` for the private address of every instance tagged
  ``BenchmarkCluster=datafusion`` and running, in DescribeInstances order, the filter the real one
  sends every second; when the call fails it keeps the last list.

Test-only seam: ``DFBENCH_STANDIN_INSTANCES`` names a JSON file holding a DescribeInstances answer
(``{"Reservations": [{"Instances": [...]}]}``, e.g. moto's), read again at each request and
filtered here as EC2 would filter the real call. See standin_http for the port and commit seams.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import standin_http

DISCOVERY_TAG = {"Key": "BenchmarkCluster", "Value": "datafusion"}


def described_addresses() -> list[str]:
    """The private addresses DescribeInstances would return for the real worker's filters."""
    with open(os.environ["DFBENCH_STANDIN_INSTANCES"]) as handle:
        answer = json.load(handle)
    return [
        instance["PrivateIpAddress"]
        for reservation in answer.get("Reservations", [])
        for instance in reservation.get("Instances", [])
        if DISCOVERY_TAG in instance.get("Tags", []) and instance.get("State", {}).get("Name") == "running"
        and instance.get("PrivateIpAddress")
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description="worker spawn command")
    parser.add_argument("--bucket", default="datafusion-distributed-benchmarks")
    parser.add_argument("--broadcast-joins", action="store_true")
    parser.add_argument("--port", help="test seam: the port of the HTTP listener (default 9000)")
    args = parser.parse_args()

    server = standin_http.bind(standin_http.port_option(args.port))
    last: list[str] = []

    def peers() -> list[str]:
        nonlocal last
        try:
            last = [standin_http.peer_url(address) for address in described_addresses()]
        except (OSError, KeyError, ValueError) as error:
            print(f"Error discovering workers: {error}", file=sys.stderr)
        return last

    standin_http.serve(server, peers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
