"""Trino on a cluster's instances: the plan ``dfbench engine install trino`` carries out
(ARCHITECTURE.md §5b; the shared parts are :mod:`dfbench.engines.setup`).

The first node is the coordinator and also runs work (``node-scheduler.include-coordinator``), the
others are workers; all find the coordinator at ``discovery.uri``, the first node's private address.
Trino comes as Maven Central's ``trino-server`` tarball (checked against its ``.sha1``) and runs on
Amazon Linux 2023's Corretto package, as a systemd unit running the launcher in the foreground.
Its ``hive`` catalog (dfbench.engines.dialect.TRINO_CATALOG) keeps its metastore as files in the
cluster's bucket, under :data:`METASTORE_PREFIX`, rather than in Glue: no account-wide names to
collide or leak, deleted with the bucket, and the instance role writes only under that prefix.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from dfbench.aws.iam import TRINO_METASTORE_PREFIX as METASTORE_PREFIX
from dfbench.config import validate_bucket_name, validate_region
from dfbench.engines.dialect import TRINO, TRINO_CATALOG
from dfbench.engines.setup import INSTALL_ROOT, EnginePlan, Machine, Node, Step, status_line_prefix, step_script
from dfbench.errors import ConfigError

TRINO_VERSION = "476"
TRINO_PORT = 8080
# Trino 476 runs on Java 24, which Amazon Linux 2023 offers as Corretto 24; older releases need
# an older Java, which this install does not bring.
OLDEST_VERSION = 476
JAVA_PACKAGE = "java-24-amazon-corretto-headless"
JAVA_HOME = "/usr/lib/jvm/java-24-amazon-corretto"
SERVICE = "dfbench-trino.service"
HOME = f"{INSTALL_ROOT}/trino"  # one folder per version, the downloaded tarball beside them
DATA_DIR = "/var/lib/dfbench/trino"
UNIT_PATH = f"/etc/systemd/system/{SERVICE}"
ENVIRONMENT = "dfbench"  # node.environment: every node of a cluster must name the same one
_URL = "https://repo1.maven.org/maven2/io/trino/trino-server/{v}/trino-server-{v}.tar.gz"
_VERSION = re.compile(r"^[1-9]\d{0,4}$")  # no leading zero: it names a folder and a URL
# The open files Trino's deployment guide asks for.
_OPEN_FILES = 131072
_MIB_PER_GIB = 1024

# What every step starts from: the paths, all under the test seam's root (setup's DFBENCH_ROOT).
_PATHS = f"""
trino_home=$dfbench_root{HOME}
install=$trino_home/$trino_version
data_dir=$dfbench_root{DATA_DIR}
unit_path=$dfbench_root{UNIT_PATH}
java_home=$dfbench_root{JAVA_HOME}
"""

_PACKAGES = """
dfbench_packages "$java_package"
if [[ ! -x $java_home/bin/java ]]; then
    echo "dfbench: $java_package brought no $java_home/bin/java" >&2
    exit 1
fi
"""

# Extracted into a temporary sibling and renamed: a tree at $install is always whole, so an
# extraction cut short is redone rather than taken as done. The tarball goes once extracted (it
# is most of a gigabyte); what a killed run left behind goes before the next try.
_DOWNLOAD = """
tarball=$trino_home/trino-server-$trino_version.tar.gz
if [[ ! -d $install ]]; then
    shopt -s nullglob
    leftovers=("$trino_home"/.extract.* "$tarball".??????)
    shopt -u nullglob
    if ((${#leftovers[@]})); then
        rm -rf -- "${leftovers[@]}"
    fi
    dfbench_fetch "$url" "$url.sha1" sha1 "$tarball"
    extract=$(mktemp -d -- "$trino_home/.extract.XXXXXX")
    dfbench_tmp+=("$extract")
    tar -xzf "$tarball" -C "$extract" --strip-components=1 --no-same-owner
    if [[ ! -x $extract/bin/launcher ]]; then
        echo "dfbench: $url holds no bin/launcher" >&2
        exit 1
    fi
    mv -T -- "$extract" "$install"
    rm -f -- "$tarball"
fi
"""

# A restart owed by an earlier run that wrote the files but ended before restarting (killed, or
# the restart failed) is remembered in a file, so the next run does not find everything
# unchanged and leave the old configuration running.
_CONFIGURE = f"""
if [[ ! -x $install/bin/launcher ]]; then
    echo "dfbench: Trino $trino_version is not downloaded on this instance; run the download step first" >&2
    exit 1
fi
if ((dfbench_index == 0)); then config=$coordinator_config; else config=$worker_config; fi
node_properties="node.environment=$trino_environment
node.id=$AWS_SSM_INSTANCE_ID
node.data-dir=$data_dir
"
unit="[Unit]
Description=Trino $trino_version (dfbench)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
Environment=\\"JAVA_HOME=$java_home\\" \\"PATH=$java_home/bin:/usr/local/bin:/usr/bin:/bin\\"
ExecStart=\\"$install/bin/launcher\\" run \\"--etc-dir=$install/etc\\"
LimitNOFILE={_OPEN_FILES}
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
"
pending=$data_dir/dfbench-restart-pending
mkdir -p -- "$data_dir"
changed=0
[[ -f $pending ]] && changed=1
dfbench_put 0644 "$install/etc/node.properties" "$node_properties" && changed=1
dfbench_put 0644 "$install/etc/jvm.config" "$jvm_config" && changed=1
dfbench_put 0644 "$install/etc/config.properties" "$config" && changed=1
dfbench_put 0644 "$install/etc/catalog/{TRINO_CATALOG}.properties" "$catalog" && changed=1
if dfbench_put 0644 "$unit_path" "$unit"; then
    changed=1
    systemctl daemon-reload
fi
if ((changed)); then
    touch -- "$pending"
fi
dfbench_service {SERVICE} "$changed"
rm -f -- "$pending"
if ! dfbench_wait_http http://127.0.0.1:{TRINO_PORT}/v1/info; then
    echo "dfbench: Trino did not answer on port {TRINO_PORT} within ${{dfbench_ready_timeout}}s; its journal ends:" >&2
    journalctl -u {SERVICE} --no-pager -n 40 >&2 || true
    exit 1
fi
"""

# Every node: its own /v1/info says it finished starting and runs the planned version. The
# coordinator also counts the active nodes through the statement API (Trino's client protocol:
# POST the SQL, follow nextUri until there is none), with python3's standard library, which
# Amazon Linux 2023 has. Workers announce themselves within seconds of starting: both checks wait.
_VERIFY = f"""
python3 - http://127.0.0.1:{TRINO_PORT} "$trino_version" "$dfbench_index" "$dfbench_nodes" \\
    "$dfbench_ready_timeout" <<'PYTHON'
import json
import sys
import time
import urllib.request

base, version, index, nodes, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
deadline = time.monotonic() + timeout


def call(url, sql=None):
    request = urllib.request.Request(url, data=None if sql is None else sql.encode(),
                                     headers={{"X-Trino-User": "dfbench"}})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


def rows(sql):
    document, found = call(base + "/v1/statement", sql), []
    while True:
        if "error" in document:
            raise RuntimeError(document["error"].get("message", "failed"))
        found += document.get("data", [])
        if "nextUri" not in document:
            return found
        document = call(document["nextUri"])


while True:
    try:
        info, problem = call(base + "/v1/info"), "is still starting"
    except OSError as error:
        info, problem = {{}}, f"does not answer ({{error}})"
    if not info.get("starting", True):
        break
    if time.monotonic() > deadline:
        sys.exit(f"dfbench: Trino on this instance {{problem}} after {{timeout:.0f}}s")
    time.sleep(1)
running = info.get("nodeVersion", {{}}).get("version")
if running != version:
    sys.exit(f"dfbench: Trino {{running}} answers on this instance, not {{version}}")
if index == 0:
    while True:
        try:
            active = rows("SELECT count(*) FROM system.runtime.nodes WHERE state = 'active'")[0][0]
            problem = f"counts {{active}} active nodes, not {{nodes}}"
        except (OSError, RuntimeError, LookupError) as error:
            active, problem = None, f"cannot count its nodes ({{error}})"
        if active == nodes:
            break
        if time.monotonic() > deadline:
            sys.exit(f"dfbench: Trino's coordinator {{problem}} after {{timeout:.0f}}s; "
                     "the journals of the instances missing tell why")
        time.sleep(1)
    print(f"dfbench: Trino {{version}}: {{active}} active nodes")
PYTHON
"""

_STATUS = f"""
installed=none
if [[ -f $unit_path ]]; then
    # The version is the folder the unit runs: /opt/dfbench/trino/<version>/bin/launcher.
    launcher=$(sed -n 's|^ExecStart="\\(.*\\)/bin/launcher".*|\\1|p' "$unit_path")
    if [[ -n $launcher && -x $launcher/bin/launcher ]]; then
        installed=${{launcher##*/}}
    fi
fi
active=no
if systemctl is-active --quiet {SERVICE}; then active=yes; fi
role=worker
if ((dfbench_index == 0)); then role=coordinator; fi
echo "$status_prefix installed=$installed"
echo "$status_prefix active=$active"
echo "$status_prefix role=$role"
"""

_REMOVE = f"""
if [[ -f $unit_path ]]; then
    systemctl disable --now --quiet {SERVICE}
    rm -f -- "$unit_path"
fi
systemctl daemon-reload
rm -rf -- "$trino_home" "$data_dir"
"""


def trino_plan(*, nodes: Sequence[Node], machine: Machine, bucket: str, region: str,
               version: str | None = None) -> EnginePlan:
    """Trino ``version`` (default :data:`TRINO_VERSION`) on ``nodes`` (the first coordinates), its
    memory sized for ``machine``, its Hive catalog's metastore in ``bucket`` (in ``region``)."""
    version = TRINO_VERSION if version is None else version
    if not _VERSION.match(version):
        raise ConfigError(f"Not a Trino version: {version!r}; Trino numbers its releases, e.g. {TRINO_VERSION}.")
    if int(version) < OLDEST_VERSION:
        raise ConfigError(f"Trino {version} needs an older Java than {JAVA_PACKAGE}; "
                          f"choose Trino {OLDEST_VERSION} or later.")
    for check, value in ((validate_bucket_name, bucket), (validate_region, region)):
        try:
            check(value)
        except ValueError as error:
            raise ConfigError(f"Trino's metastore: {error}.") from None
    if not nodes:
        raise ConfigError("No instances to install Trino on.")
    heap_gib = _heap_gib(machine)
    memory = _memory(heap_gib, len(nodes))
    variables = {
        "trino_version": version,
        "java_package": JAVA_PACKAGE,
        "trino_environment": ENVIRONMENT,
    }
    def step(name: str, description: str, body: str, timeout_s: int = 900, **extra: str) -> Step:
        script = step_script(TRINO, name, nodes, _PATHS + body, variables={**variables, **extra})
        return Step(name=name, description=description, script=script, timeout_s=timeout_s)

    discovery = f"http://{nodes[0].private_ip}:{TRINO_PORT}"
    shared = (f"http-server.http.port={TRINO_PORT}\n"
              f"discovery.uri={discovery}\n"
              f"query.max-memory-per-node={memory['query.max-memory-per-node']}\n"
              f"memory.heap-headroom-per-node={memory['memory.heap-headroom-per-node']}\n")
    coordinator_config = ("coordinator=true\n"
                          "node-scheduler.include-coordinator=true\n"
                          + shared
                          + f"query.max-memory={memory['query.max-memory']}\n"
                          + f"query.max-total-memory={memory['query.max-memory']}\n")
    worker_config = "coordinator=false\n" + shared
    catalog = ("connector.name=hive\n"
               "hive.metastore=file\n"
               f"hive.metastore.catalog.dir=s3://{bucket}/{METASTORE_PREFIX}\n"
               "fs.native-s3.enabled=true\n"
               f"s3.region={region}\n")
    steps = [
        step("packages", f"Java for Trino {version} ({JAVA_PACKAGE})", _PACKAGES),
        step("download", f"Trino {version}", _DOWNLOAD, timeout_s=1800, url=_URL.format(v=version)),
        step("configure", f"Trino {version}'s configuration and service", _CONFIGURE,
             jvm_config=_jvm_config(heap_gib), coordinator_config=coordinator_config,
             worker_config=worker_config, catalog=catalog),
        step("verify", f"Trino {version} on {len(nodes)} nodes", _VERIFY),
    ]
    return EnginePlan(
        engine=TRINO, version=version,
        settings={"heap_gib": heap_gib, **memory, "java": JAVA_PACKAGE, "coordinator": nodes[0].instance_id},
        port=TRINO_PORT, steps=steps,
        status_script=step_script(TRINO, "status", nodes, _PATHS + _STATUS,
                                  variables={**variables, "status_prefix": status_line_prefix(TRINO)}),
        remove_script=step_script(TRINO, "remove", nodes, _PATHS + _REMOVE, variables=variables),
        bucket_prefixes=(METASTORE_PREFIX + "/",),
    )


def _heap_gib(machine: Machine) -> int:
    """Half the instance's memory, in whole GiB: the DataFusion worker and Spark stay resident on
    the same instances (the engines run in turn, not at once), so Trino gets half rather than all.
    The CDK tooling's 10 GiB on a c5n.2xlarge (21 GiB) is that half."""
    if machine.memory_mib <= 0:
        raise ConfigError(f"Instance type {machine.instance_type} reports no memory ({machine.memory_mib} MiB).")
    return max(1, machine.memory_mib // _MIB_PER_GIB // 2)


def _memory(heap_gib: int, nodes: int) -> dict[str, str]:
    """Queries may take 80 % of the heap per node and 15 % is kept as headroom: Trino refuses to
    start unless the two together leave part of the heap free, which 95 % (rounded down to whole
    MiB) does. A query may take the per-node share on every node."""
    per_node_mib = heap_gib * _MIB_PER_GIB * 80 // 100
    return {
        "query.max-memory-per-node": f"{per_node_mib}MB",
        "memory.heap-headroom-per-node": f"{heap_gib * _MIB_PER_GIB * 15 // 100}MB",
        "query.max-memory": f"{per_node_mib * nodes}MB",
    }


def _jvm_config(heap_gib: int) -> str:
    # The CDK tooling's JVM options (Trino's recommended ones), with the heap derived above.
    return "\n".join(["-server", f"-Xmx{heap_gib}G", "-XX:+UseG1GC", "-XX:G1HeapRegionSize=32M",
                      "-XX:+ExplicitGCInvokesConcurrent", "-XX:+HeapDumpOnOutOfMemoryError",
                      "-XX:+ExitOnOutOfMemoryError", "-Djdk.attach.allowAttachSelf=true"]) + "\n"

