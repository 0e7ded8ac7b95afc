#!/usr/bin/env python3
"""Stand-in for upstream's current benchmark worker (benchmarks/src/bin/worker.rs, #630 and later),
true to it where dfbench depends on it:

- flags ``--bucket``, ``--worker-dns-name``, ``--broadcast-joins``, with upstream's defaults;
- without ``POD_IP`` it exits with status 1, printing what Rust prints for main's
  ``io::Error::new(NotFound, "POD_IP is not set")`` (with ``POD_IP`` empty, the URL error);
- ``/info`` lists ``http://IP:9001/`` for every address the DNS name resolves to, resolved again at
  every request (the real one resolves every second), sorted and without duplicates; when the
  name does not resolve it keeps the last list, as the real one keeps its last set.

Test-only seam: since a test cannot change DNS, ``DFBENCH_STANDIN_RESOLVE`` names a file in
/etc/hosts format (``IP name...`` per line, ``#`` comments) that then stands for all of DNS: a
name resolves to every address listed for it, read again at each request, and to nothing when it
is not listed. Without it, names go to the system resolver. See standin_http for the port and
commit seams.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

import standin_http


def resolve(name: str) -> list[str]:
    """Every IPv4 address of ``name``; OSError when it has none."""
    hosts = os.environ.get("DFBENCH_STANDIN_RESOLVE")
    if hosts:
        with open(hosts) as handle:
            lines = [line.split("#", 1)[0].split() for line in handle]
        mapped = [fields[0] for fields in lines if len(fields) > 1 and name in fields[1:]]
        if not mapped:
            raise OSError(f"failed to lookup address information: {name} is not in {hosts}")
        return mapped
    return [info[4][0] for info in socket.getaddrinfo(name, standin_http.PEER_PORT, socket.AF_INET,
                                                      socket.SOCK_STREAM)]


def main() -> int:
    parser = argparse.ArgumentParser(description="worker spawn command")
    parser.add_argument("--bucket", default="datafusion-distributed-benchmarks")
    parser.add_argument("--worker-dns-name", default="datafusion-workers.benchmark-datafusion.svc.cluster.local")
    parser.add_argument("--broadcast-joins", action="store_true")
    parser.add_argument("--port", help="test seam: the port of the HTTP listener (default 9000)")
    args = parser.parse_args()

    server = standin_http.bind(standin_http.port_option(args.port))
    if "POD_IP" not in os.environ:
        print('Error: Custom { kind: NotFound, error: "POD_IP is not set" }', file=sys.stderr)
        return 1
    if not os.environ["POD_IP"]:
        # Set but empty: upstream's Url::parse("http://:9001") fails instead.
        print("Error: EmptyHost", file=sys.stderr)
        return 1
    last: list[str] = []

    def peers() -> list[str]:
        nonlocal last
        try:
            last = sorted({standin_http.peer_url(address) for address in resolve(args.worker_dns_name)})
        except OSError as error:
            print(f"Error resolving benchmark workers: {error}", file=sys.stderr)
        return last

    standin_http.serve(server, peers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
