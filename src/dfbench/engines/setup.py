"""Installing an engine on a cluster's instances, the parts every engine shares (ARCHITECTURE.md
§5b): the plan an engine module writes (:class:`EnginePlan`: its version, its settings, its steps),
and the bash every step script is built from (:func:`step_script`).

An engine's install is a few steps (packages, downloads, configuration and start, verification),
each ONE SSM command sent to every instance of the cluster (``dfbench.engine_setup`` sends them).
One script serves every instance: it finds its own instance id (``AWS_SSM_INSTANCE_ID``, which the
SSM agent sets for Run Command scripts) among the plan's nodes, and so its role (the first node is
the coordinator, Trino's, or the master, Spark's) and the first node's private address. Each step
is idempotent: a file is rewritten only when its content differs, a download is kept once its
checksum matched, a service is restarted only when something it reads changed or it is not
running. A step that got to its end prints :func:`success_line` last; anything else is a failure,
which names the instance with the end of its output.

Test seams (the scripts run in tests against a temporary folder and loopback servers):
``DFBENCH_ROOT`` prefixes every path written or read, ``DFBENCH_DOWNLOAD_BASE`` replaces
``https:/`` in front of every download URL (``https://repo1.maven.org/...`` becomes
``$DFBENCH_DOWNLOAD_BASE/repo1.maven.org/...``), ``DFBENCH_READY_TIMEOUT`` (seconds) bounds each
wait for a service to answer.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dfbench.errors import ConfigError
from dfbench.worker.scripts import SHA256_CHECK

# What every engine install keeps on an instance: its files under /opt/dfbench/<engine>, its state
# (the record of what is installed) under /var/lib/dfbench/engines.
INSTALL_ROOT = "/opt/dfbench"
STATE_DIR = "/var/lib/dfbench/engines"
# In the cluster's bucket: each installed engine's record (dfbench.engine_setup writes it).
RECORD_PREFIX = ".dfbench/engines"

_INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")
_IPV4 = re.compile(r"^(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)$")
_STEP = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


@dataclass(frozen=True)
class Node:
    """An instance as an engine install sees it; the first of a plan's nodes leads (Trino's
    coordinator, Spark's master)."""

    instance_id: str
    private_ip: str

    def __post_init__(self) -> None:
        # Both reach scripts and configuration files: checked here, whatever AWS answered.
        if not _INSTANCE_ID.match(self.instance_id):
            raise ConfigError(f"Not an EC2 instance id: {self.instance_id!r}.")
        if not _IPV4.match(self.private_ip):
            raise ConfigError(f"Instance {self.instance_id} has no private IPv4 address ({self.private_ip!r}).")


@dataclass(frozen=True)
class Machine:
    """What one instance type offers, which the engines' memory settings are derived from."""

    instance_type: str
    memory_mib: int
    vcpus: int


@dataclass(frozen=True)
class Step:
    """One SSM command: ``script`` runs as root, with bash, on every instance."""

    name: str
    description: str  # what the progress line says, e.g. "Java and Trino 476"
    script: str
    timeout_s: int = 900

    def __post_init__(self) -> None:
        if not _STEP.match(self.name):
            raise ValueError(f"not a step name: {self.name!r}")


@dataclass(frozen=True)
class EnginePlan:
    """An engine's install on one cluster, as its module plans it. ``settings`` is what the install
    chose (memory sizes, Java) and is recorded with ``version``; ``port`` is where its client
    connects on the first instance (Trino's coordinator, Spark's service), on loopback."""

    engine: str
    version: str
    settings: dict[str, Any]
    port: int
    steps: list[Step]
    status_script: str  # prints status_line()s only, never fails for a stopped service
    remove_script: str  # stops, disables and deletes everything the steps wrote; ends with success_line
    bucket_prefixes: tuple[str, ...] = field(default=())  # what the engine writes in the bucket, removed with it


def success_line(engine: str, step: str) -> str:
    """The last line a step prints when it got to its end."""
    return f"dfbench-engine: {engine} {step} ok"


def status_line_prefix(engine: str) -> str:
    """A status script prints ``<prefix> <key>=<value>`` lines (``active=yes``, ``version=476``)."""
    return f"dfbench-engine-status: {engine}"


def parse_status(engine: str, stdout: str) -> dict[str, str]:
    """The ``key=value`` pairs of a status script's lines."""
    prefix = status_line_prefix(engine) + " "
    found: dict[str, str] = {}
    for line in stdout.splitlines():
        if line.startswith(prefix):
            key, _, value = line[len(prefix):].partition("=")
            found[key.strip()] = value.strip()
    return found


# The bash every step script starts with. Functions:
#   dfbench_put MODE PATH TEXT   PATH holds TEXT (written through a temporary sibling and a rename
#                                only when it differs); returns 0 when it wrote, 1 when unchanged.
#   dfbench_fetch URL CHECKSUM_URL ALGORITHM DEST
#                                DEST is URL's file, checked against the checksum published beside
#                                it (sha1, sha256 or sha512); a DEST already there is kept.
#   dfbench_packages PKG...      dnf installs the packages that rpm does not know yet.
#   dfbench_wait_http URL        until URL answers 2xx, at most DFBENCH_READY_TIMEOUT seconds
#                                (default 180); returns 1 after that.
#   dfbench_service NAME CHANGED
#                                NAME enabled; restarted when CHANGED is 1 or it is not active.
# and the worker's install's dfbench_check_sha256 FILE SHA WHAT HINT (dfbench.worker.scripts).
_LIBRARY = r"""
dfbench_root="${DFBENCH_ROOT:-}"
dfbench_download_base="${DFBENCH_DOWNLOAD_BASE:-https:/}"
dfbench_ready_timeout="${DFBENCH_READY_TIMEOUT:-180}"
dfbench_tmp=()
trap 'rm -rf -- "${dfbench_tmp[@]}"' EXIT

dfbench_put() {
    local mode=$1 path=$2 text=$3 tmp want have
    if [[ -f $path ]]; then
        want=$(printf '%s' "$text" | sha256sum)
        have=$(sha256sum <"$path")
        [[ $want == "$have" ]] && return 1
    fi
    # Called as a condition (`dfbench_put ... && changed=1`), where bash suspends set -e: a
    # failure here must end the step rather than read as "unchanged".
    mkdir -p -- "${path%/*}" || exit 1
    tmp=$(mktemp -- "$path.XXXXXX") || exit 1
    dfbench_tmp+=("$tmp")
    printf '%s' "$text" >"$tmp" || exit 1
    chmod "$mode" "$tmp" || exit 1
    mv -f -- "$tmp" "$path" || exit 1
    return 0
}

dfbench_fetch() {
    local url=$1 checksum_url=$2 algorithm=$3 dest=$4 tmp want have
    [[ -f $dest ]] && return 0
    url="$dfbench_download_base/${url#https://}"
    checksum_url="$dfbench_download_base/${checksum_url#https://}"
    mkdir -p -- "${dest%/*}"
    tmp=$(mktemp -- "$dest.XXXXXX")
    dfbench_tmp+=("$tmp")
    curl -fsSL --retry 5 --retry-connrefused --max-time 1800 -o "$tmp" "$url"
    # A checksum file holds the digest first, sometimes followed by the file name.
    want=$(curl -fsSL --retry 5 --retry-connrefused --max-time 60 "$checksum_url")
    want=${want%%[[:space:]]*}
    want=${want,,}
    have=$("${algorithm}sum" -- "$tmp")
    have=${have%% *}
    if [[ $want != "$have" ]]; then
        echo "dfbench: $url has $algorithm $have, but $checksum_url says $want" >&2
        exit 3
    fi
    mv -f -- "$tmp" "$dest"
}

dfbench_packages() {
    local missing=() package
    for package in "$@"; do
        rpm -q --quiet "$package" || missing+=("$package")
    done
    if ((${#missing[@]})); then
        dnf install -y -q "${missing[@]}"
    fi
}

dfbench_wait_http() {
    local url=$1 waited=0
    until curl -fsS --max-time 2 -o /dev/null "$url" 2>/dev/null; do
        if ((waited >= dfbench_ready_timeout)); then
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
}

dfbench_service() {
    local name=$1 changed=$2
    systemctl enable --quiet "$name"
    if [[ $changed == 1 ]] || ! systemctl is-active --quiet "$name"; then
        systemctl restart "$name"
    fi
}
"""


def _node_case(nodes: Sequence[Node]) -> str:
    """Bash that sets ``dfbench_index`` (0 = the first node), ``dfbench_ip`` (this node's private
    address) and ``dfbench_first_ip`` from ``AWS_SSM_INSTANCE_ID``; an instance not in the plan
    (launched after it) exits 5 saying so."""
    arms = "\n".join(f"    {node.instance_id}) dfbench_index={index}; dfbench_ip={node.private_ip} ;;"
                     for index, node in enumerate(nodes))
    return (f"dfbench_first_ip={nodes[0].private_ip}\n"
            f"dfbench_nodes={len(nodes)}\n"
            'case "${AWS_SSM_INSTANCE_ID:-}" in\n'
            f"{arms}\n"
            '    *) echo "dfbench: instance ${AWS_SSM_INSTANCE_ID:-?} is not among the instances this install '
            'was planned for; run the install again" >&2; exit 5 ;;\n'
            "esac\n")


def step_script(engine: str, step: str, nodes: Sequence[Node], body: str, *,
                variables: dict[str, str] | None = None) -> str:
    """A whole step script: the library, the node's role, ``variables`` (bash names → values,
    quoted here), ``body``, then the success line. ``body`` runs under ``set -euo pipefail``: any
    command that fails ends the step as a failure."""
    if not nodes:
        raise ConfigError("No instances to install on.")
    assigned = "".join(f"{name}={shlex.quote(value)}\n" for name, value in (variables or {}).items())
    return ("#!/bin/bash\n"
            f"# Generated by dfbench: {engine}, step {step}.\n"
            "# shellcheck disable=SC2034 # the node's variables, which a step need not all use\n"
            "set -euo pipefail\n"
            + _LIBRARY + SHA256_CHECK + _node_case(nodes) + assigned + body.rstrip("\n") + "\n"
            + f"echo {shlex.quote(success_line(engine, step))}\n")
