"""Spark on a cluster's instances: the plan dfbench.engine_setup carries out (ARCHITECTURE.md
§5a, §5b; the shared parts are dfbench.engines.setup).

A Spark standalone cluster: the first instance runs the master (``dfbench-spark-master``, RPC on
``MASTER_PORT``, web UI on ``MASTER_UI_PORT``) and dfbench's Spark service
(``dfbench-spark-service``: ``python -m dfbench.engines.spark_service`` as the cluster's driver,
HTTP on 127.0.0.1:``SPARK_SERVICE_PORT``), every instance a worker (``dfbench-spark-worker``)
offering all its vCPUs and a quarter of its memory to one executor. All three are systemd units
running in the foreground (``Type=simple``).

The steps, each one SSM command run by every instance:

- ``packages``: Amazon Corretto 17 (Spark 4 runs on Java 17 or 21) and ``python3.11`` (dfbench
  needs Python 3.11 or later; Amazon Linux 2023's own python3 is 3.9).
- ``download``: Spark's release from archive.apache.org, checked against the ``.sha512`` Apache
  publishes beside it, unpacked once to ``/opt/dfbench/spark/<version>`` (a temporary folder,
  then a rename, so a half-unpacked release is never taken for one); the S3A file system's two
  jars from Maven Central, checked against their ``.sha1``, into its ``jars/``: ``hadoop-aws`` of
  the Hadoop that Spark's release bundles, and the AWS SDK bundle that hadoop-aws was built
  against. On the first instance, dfbench's own code (:func:`service_code`, uploaded by the
  caller to :func:`service_code_key`) with ``aws s3 cp``, checked against its sha256.
- ``configure``: ``conf/spark-defaults.conf`` (memory, S3A with the instance's role) and the
  units; each service is restarted only when something it reads changed or it is not active; on
  the first instance, until the service's ``/info`` answers.
- ``verify``: on the first instance, the master's ``/json/`` lists every instance's worker as
  ALIVE, and the service answers.

The service runs from the release's ``python/lib/pyspark.zip`` and ``py4j-*-src.zip`` and the zip of
dfbench's sources, with no pip on the instance: that is why importing it must load nothing but
the standard library (tests/test_engine_spark_setup.py checks it).
"""

from __future__ import annotations

import hashlib
import io
import re
import shlex
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dfbench.config import validate_bucket_name, validate_region
from dfbench.engines.setup import (
    INSTALL_ROOT,
    STATE_DIR,
    EnginePlan,
    Machine,
    Node,
    Step,
    status_line_prefix,
    step_script,
)
from dfbench.errors import ConfigError

ENGINE = "spark"
SPARK_VERSION = "4.0.0"
SPARK_SERVICE_PORT = 9003  # the CDK tooling's
MASTER_PORT = 7077  # Spark's default
MASTER_UI_PORT = 8082  # the CDK tooling's (8080, Spark's default, is often taken)
SPARK_ROOT = f"{INSTALL_ROOT}/spark"
CODE_DIR = f"{SPARK_ROOT}/code"
JAVA_PACKAGE = "java-17-amazon-corretto-headless"
JAVA_HOME = "/usr/lib/jvm/java-17-amazon-corretto"
PYTHON_PACKAGE = "python3.11"
PYTHON = "/usr/bin/python3.11"
MASTER_UNIT = "dfbench-spark-master.service"
WORKER_UNIT = "dfbench-spark-worker.service"
SERVICE_UNIT = "dfbench-spark-service.service"
UNITS = (MASTER_UNIT, WORKER_UNIT, SERVICE_UNIT)
# In the cluster's bucket: dfbench's code for the service, named by its sha256.
CODE_PREFIX = ".dfbench/artifacts/engines"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can say: the same bytes whenever it is made
_MAVEN = "https://repo1.maven.org/maven2"


@dataclass(frozen=True)
class SparkRelease:
    """A Spark release dfbench installs, with the S3A jars that match the Hadoop it bundles."""

    version: str
    hadoop_aws: str  # Maven Central path of hadoop-aws, the bundled Hadoop's version
    aws_sdk: str  # Maven Central path of the AWS SDK bundle that hadoop-aws was built against
    # The instance role's credentials as that Hadoop's S3A names their provider.
    credentials_provider: str = "org.apache.hadoop.fs.s3a.auth.IAMInstanceCredentialsProvider"

    @property
    def url(self) -> str:
        return (f"https://archive.apache.org/dist/spark/spark-{self.version}/"
                f"spark-{self.version}-bin-hadoop3.tgz")

    @property
    def jars(self) -> tuple[str, str]:
        return f"{_MAVEN}/{self.hadoop_aws}", f"{_MAVEN}/{self.aws_sdk}"


# Spark 4.0.0 bundles Hadoop 3.4.1's client; hadoop-aws 3.4.1 was built against SDK v2 2.24.6.
# Spark 3.5 is left out: the service removes functions by Spark 4's three-part names, which 3.5's
# registry does not know, so it would refuse to start there.
RELEASES = {
    "4.0.0": SparkRelease("4.0.0", "org/apache/hadoop/hadoop-aws/3.4.1/hadoop-aws-3.4.1.jar",
                          "software/amazon/awssdk/bundle/2.24.6/bundle-2.24.6.jar"),
}


@dataclass(frozen=True)
class ServiceCode:
    """dfbench's code for the service, in the cluster's bucket at ``key``."""

    key: str
    sha256: str

    def __post_init__(self) -> None:
        if not _SHA256.match(self.sha256) or self.key != service_code_key(self.sha256):
            raise ConfigError(f"Not dfbench's service code: {self.key!r} with sha256 {self.sha256!r}; "
                              "make it with service_code() and service_code_key().")


def service_code_key(sha256: str) -> str:
    return f"{CODE_PREFIX}/dfbench-{sha256}.zip"


def service_code() -> tuple[bytes, str]:
    """A zip of the installed dfbench package's sources (``dfbench/...py``, sorted, with fixed
    times and modes, so the same sources give the same bytes) and its sha256."""
    package = Path(__file__).resolve().parents[1]
    names = sorted(path.relative_to(package.parent).as_posix() for path in package.rglob("*.py")
                   if "__pycache__" not in path.parts)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, (package.parent / name).read_bytes(), compresslevel=9)
    data = buffer.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def _release(version: str | None) -> SparkRelease:
    version = version or SPARK_VERSION
    if version not in RELEASES:
        raise ConfigError(f"Spark {version!r} is not one dfbench installs: choose {', '.join(RELEASES)}.")
    return RELEASES[version]


def memory_settings(machine: Machine) -> tuple[int, int]:
    """(executor, driver) memory in GiB. The executor gets a quarter of the instance, at least
    1 GiB: Trino and the DataFusion worker stay resident beside Spark on the same instances, and
    the CDK tooling's 4g of c5n.2xlarge's 21 GiB was about that. The driver (first instance only)
    2 GiB as the CDK tooling's, an eighth of a smaller instance, at least 1."""
    if machine.memory_mib < 1024 or machine.vcpus < 1:
        raise ConfigError(f"Instance type {machine.instance_type}: {machine.memory_mib} MiB and {machine.vcpus} "
                          "vCPUs is too small for Spark; choose one with 1 GiB and 1 vCPU at least.")
    gib = machine.memory_mib // 1024
    return max(1, gib // 4), min(2, max(1, gib // 8))


def _unit(description: str, command: Sequence[str], environment: dict[str, str], after: str = "") -> str:
    # Restart=on-failure: on an instance, a service that dies comes back as the worker's does.
    lines = ["[Unit]", f"Description=dfbench: {description}", "Wants=network-online.target",
             f"After=network-online.target{' ' + after if after else ''}", "", "[Service]", "Type=simple"]
    lines += [f"Environment={name}={value}" for name, value in environment.items()]
    lines += [f"ExecStart={shlex.join(command)}", "Restart=on-failure", "RestartSec=5", "",
              "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


# The node's own address and the py4j zip's name are filled in on the instance (the worker unit
# names its instance; the release decides py4j's version): bash replaces these.
_HOST = "@HOST@"
_PY4J = "@PY4J_ZIP@"


def spark_plan(*, nodes: Sequence[Node], machine: Machine, bucket: str, region: str, code: ServiceCode,
               version: str | None = None) -> EnginePlan:
    """The install of Spark ``version`` (default ``SPARK_VERSION``) on ``nodes`` (the first is
    the master and runs the service), reading datasets from ``bucket`` in ``region``."""
    release = _release(version)
    try:
        validate_bucket_name(bucket)
        validate_region(region)
    except ValueError as error:
        raise ConfigError(f"{error}.") from None
    if not nodes:
        raise ConfigError("No instances to install Spark on.")
    if len({node.instance_id for node in nodes}) != len(nodes):
        raise ConfigError("An instance is named twice among those to install Spark on.")
    executor_gib, driver_gib = memory_settings(machine)
    nodes = list(nodes)
    first_ip = nodes[0].private_ip
    home = f"{SPARK_ROOT}/{release.version}"
    master_url = f"spark://{first_ip}:{MASTER_PORT}"
    # Twice the cluster's cores, as the local service's default is twice the machine's.
    shuffle_partitions = 2 * machine.vcpus * len(nodes)
    java = {"JAVA_HOME": JAVA_HOME, "SPARK_HOME": home}
    code_zip = f"{CODE_DIR}/dfbench-{code.sha256}.zip"
    master_unit = _unit("Spark standalone master", [
        f"{home}/bin/spark-class", "org.apache.spark.deploy.master.Master", "--host", first_ip,
        "--port", str(MASTER_PORT), "--webui-port", str(MASTER_UI_PORT)], java)
    worker_unit = _unit("Spark standalone worker", [
        f"{home}/bin/spark-class", "org.apache.spark.deploy.worker.Worker", master_url, "--host", _HOST,
        "--cores", str(machine.vcpus), "--memory", f"{executor_gib}g"], java)
    service_unit = _unit("dfbench's Spark service (the cluster's driver)", [
        PYTHON, "-m", "dfbench.engines.spark_service", "--port", str(SPARK_SERVICE_PORT), "--master", master_url,
        "--driver-host", first_ip, "--data-url", f"s3a://{bucket}/", "--driver-memory", f"{driver_gib}g",
        "--shuffle-partitions", str(shuffle_partitions), "--quiet"], {
        **java, "PYSPARK_PYTHON": PYTHON,
        "PYTHONPATH": f"{home}/python/lib/pyspark.zip:{_PY4J}:{code_zip}"}, after=MASTER_UNIT)
    # Read by the service's driver (spark-submit reads conf/); the executors get it from the driver.
    defaults = "".join(f"{key} {value}\n" for key, value in (
        ("spark.executor.memory", f"{executor_gib}g"),
        ("spark.driver.memory", f"{driver_gib}g"),
        ("spark.hadoop.fs.s3a.impl", "org.apache.hadoop.fs.s3a.S3AFileSystem"),
        ("spark.hadoop.fs.s3a.aws.credentials.provider", release.credentials_provider),
        ("spark.hadoop.fs.s3a.endpoint.region", region),
    ))
    hadoop_aws_jar, sdk_jar = release.jars
    variables = {
        "version": release.version, "spark_url": release.url, "spark_home": home, "spark_root": SPARK_ROOT,
        "hadoop_aws_jar": hadoop_aws_jar, "sdk_jar": sdk_jar, "code_url": f"s3://{bucket}/{code.key}",
        "code_sha": code.sha256, "code_zip": code_zip, "code_dir": CODE_DIR, "region": region,
        "master_unit": master_unit, "worker_unit": worker_unit, "service_unit": service_unit,
        "spark_defaults": defaults, "python": PYTHON, "state_file": f"{STATE_DIR}/{ENGINE}.version",
    }

    def script(step: str, body: str) -> str:
        # The ports as literal text: a test's agent maps 127.0.0.1:<port> per stand-in instance.
        body = body.replace("@UI_PORT@", str(MASTER_UI_PORT)).replace("@SERVICE_PORT@", str(SPARK_SERVICE_PORT))
        return step_script(ENGINE, step, nodes, body, variables=variables)

    return EnginePlan(
        engine=ENGINE, version=release.version, port=SPARK_SERVICE_PORT,
        settings={"executor_memory": f"{executor_gib}g", "driver_memory": f"{driver_gib}g",
                  "worker_cores": machine.vcpus, "shuffle_partitions": shuffle_partitions,
                  "hadoop_aws": release.hadoop_aws.split("/")[-2], "aws_sdk": release.aws_sdk.split("/")[-2],
                  "java_package": JAVA_PACKAGE, "python_package": PYTHON_PACKAGE,
                  "master_instance_id": nodes[0].instance_id, "master_url": master_url,
                  "instance_type": machine.instance_type, "code_sha256": code.sha256},
        steps=[
            Step("packages", "Java 17 (Corretto) and Python 3.11", script("packages", _PACKAGES)),
            Step("download", f"Spark {release.version} and the S3A jars", script("download", _DOWNLOAD),
                 timeout_s=1800),
            Step("configure", "Spark's configuration and services", script("configure", _CONFIGURE)),
            Step("verify", "every worker registered with the master", script("verify", _VERIFY)),
        ],
        status_script=script("status", _STATUS.replace("@PREFIX@", status_line_prefix(ENGINE))),
        remove_script=script("remove", _REMOVE),
        bucket_prefixes=(f"{CODE_PREFIX}/dfbench-",),
    )


_PACKAGES = f"""
dfbench_packages {JAVA_PACKAGE} {PYTHON_PACKAGE} tar gzip
"""

# The release is unpacked once: a folder at $spark_home is a whole release (it got there by a
# rename). The tarball is deleted after, since it is as large as what it unpacks to.
_DOWNLOAD = r"""
home="$dfbench_root$spark_home"
if [[ ! -d $home ]]; then
    tarball="$dfbench_root$spark_root/downloads/${spark_url##*/}"
    dfbench_fetch "$spark_url" "$spark_url.sha512" sha512 "$tarball"
    mkdir -p -- "$dfbench_root$spark_root"
    unpacked=$(mktemp -d -- "$dfbench_root$spark_root/.unpack.XXXXXX")
    dfbench_tmp+=("$unpacked")
    tar -xzf "$tarball" -C "$unpacked" --strip-components=1 --no-same-owner
    mv -T -- "$unpacked" "$home"
    rm -f -- "$tarball"
fi
dfbench_fetch "$hadoop_aws_jar" "$hadoop_aws_jar.sha1" sha1 "$home/jars/${hadoop_aws_jar##*/}"
dfbench_fetch "$sdk_jar" "$sdk_jar.sha1" sha1 "$home/jars/${sdk_jar##*/}"
if ((dfbench_index == 0)) && [[ ! -f $dfbench_root$code_zip ]]; then
    mkdir -p -- "$dfbench_root$code_dir"
    code_tmp=$(mktemp -- "$dfbench_root$code_zip.XXXXXX")
    dfbench_tmp+=("$code_tmp")
    aws s3 cp --region "$region" --only-show-errors "$code_url" "$code_tmp"
    dfbench_check_sha256 "$code_tmp" "$code_sha" "$code_url" "upload dfbench's code again"
    chmod 0644 "$code_tmp"
    mv -f -- "$code_tmp" "$dfbench_root$code_zip"
fi
"""

# spark-defaults.conf is read by the service's driver only (the master and workers take their
# command lines), so a change restarts the service alone. A restarted master forgets the running
# application, so the service is restarted with it.
_CONFIGURE = r"""
home="$dfbench_root$spark_home"
units="$dfbench_root/etc/systemd/system"
defaults_changed=0 master_changed=0 worker_changed=0 service_changed=0
dfbench_put 0644 "$home/conf/spark-defaults.conf" "$spark_defaults" && defaults_changed=1
dfbench_put 0644 "$units/dfbench-spark-worker.service" "${worker_unit//@HOST@/$dfbench_ip}" && worker_changed=1
if ((dfbench_index == 0)); then
    dfbench_put 0644 "$units/dfbench-spark-master.service" "$master_unit" && master_changed=1
    py4j=("$home"/python/lib/py4j-*-src.zip)
    if [[ ${#py4j[@]} != 1 || ! -f ${py4j[0]} || ! -f $home/python/lib/pyspark.zip ]]; then
        echo "dfbench: Spark $version at $spark_home has no python/lib/pyspark.zip and one py4j zip" >&2
        exit 4
    fi
    dfbench_put 0644 "$units/dfbench-spark-service.service" \
        "${service_unit//@PY4J_ZIP@/${py4j[0]#"$dfbench_root"}}" && service_changed=1
fi
if ((defaults_changed || master_changed || worker_changed || service_changed)); then
    systemctl daemon-reload
fi

dfbench_started() {
    local name=$1
    if ! systemctl is-active --quiet "$name"; then
        echo "dfbench: $name did not stay up; last journal lines:" >&2
        journalctl -u "$name" --no-pager -n 50 >&2 || true
        exit 4
    fi
}

if ((dfbench_index == 0)); then
    systemctl is-active --quiet dfbench-spark-master.service || master_changed=1
    dfbench_service dfbench-spark-master.service "$master_changed"
    if ! dfbench_wait_http "http://127.0.0.1:@UI_PORT@/json/"; then
        dfbench_started dfbench-spark-master.service
        echo "dfbench: the Spark master's web UI did not answer on port @UI_PORT@ in ${dfbench_ready_timeout}s" >&2
        exit 4
    fi
fi
dfbench_service dfbench-spark-worker.service "$worker_changed"
dfbench_started dfbench-spark-worker.service
if ((dfbench_index == 0)); then
    dfbench_service dfbench-spark-service.service "$((defaults_changed || master_changed || service_changed))"
    if ! dfbench_wait_http "http://127.0.0.1:@SERVICE_PORT@/info"; then
        dfbench_started dfbench-spark-service.service
        echo "dfbench: the Spark service did not answer http://127.0.0.1:@SERVICE_PORT@/info" \
            "in ${dfbench_ready_timeout}s; last journal lines:" >&2
        journalctl -u dfbench-spark-service.service --no-pager -n 50 >&2 || true
        exit 4
    fi
    # Earlier code zips: only once the service runs the new one (a running Python reads its zip lazily).
    for old in "$dfbench_root$code_dir"/dfbench-*.zip; do
        [[ -f $old && $old != "$dfbench_root$code_zip" ]] && rm -f -- "$old"
    done
fi
"""

# Workers register with the master on their own schedule after a start: waited for, bounded.
_VERIFY = r"""
names=(dfbench-spark-worker.service)
if ((dfbench_index == 0)); then
    names+=(dfbench-spark-master.service dfbench-spark-service.service)
fi
for name in "${names[@]}"; do
    if ! systemctl is-active --quiet "$name"; then
        echo "dfbench: $name is not active; last journal lines:" >&2
        journalctl -u "$name" --no-pager -n 50 >&2 || true
        exit 4
    fi
done
if ((dfbench_index == 0)); then
    count_alive='import json, sys; print(sum(w.get("state") == "ALIVE" for w in json.load(sys.stdin)["workers"]))'
    alive=0 waited=0
    while true; do
        master_json=$(curl -fsS --max-time 5 "http://127.0.0.1:@UI_PORT@/json/" 2>/dev/null) || master_json=""
        if [[ -n $master_json ]]; then
            alive=$(printf '%s' "$master_json" | "$dfbench_root$python" -c "$count_alive")
        fi
        ((alive == dfbench_nodes)) && break
        if ((waited >= dfbench_ready_timeout)); then
            echo "dfbench: the Spark master lists $alive ALIVE workers, not $dfbench_nodes (one per instance)" \
                "after ${dfbench_ready_timeout}s; see journalctl -u dfbench-spark-worker on the others" >&2
            exit 4
        fi
        sleep 1
        waited=$((waited + 1))
    done
    if ! curl -fsS --max-time 10 -o /dev/null "http://127.0.0.1:@SERVICE_PORT@/info"; then
        echo "dfbench: the Spark service does not answer http://127.0.0.1:@SERVICE_PORT@/info" >&2
        exit 4
    fi
    echo "dfbench: Spark $version master lists $alive ALIVE workers"
fi
dfbench_put 0644 "$dfbench_root$state_file" "$version"$'\n' || true
"""

_STATUS = r"""
state="$dfbench_root$state_file"
installed=no
[[ -f $state && -d $dfbench_root$spark_home ]] && installed=$(<"$state")
role=worker
names=(worker)
if ((dfbench_index == 0)); then
    role=master
    names=(master worker service)
fi
echo "@PREFIX@ installed=$installed"
echo "@PREFIX@ role=$role"
all=yes
for name in "${names[@]}"; do
    if systemctl is-active --quiet "dfbench-spark-$name.service"; then
        echo "@PREFIX@ active.$name=yes"
    else
        echo "@PREFIX@ active.$name=no"
        all=no
    fi
done
echo "@PREFIX@ active=$all"
"""

_REMOVE = r"""
units="$dfbench_root/etc/systemd/system"
removed=0
for name in dfbench-spark-service.service dfbench-spark-worker.service dfbench-spark-master.service; do
    if [[ -f $units/$name ]]; then
        systemctl disable --now --quiet "$name"
        rm -f -- "${units:?}/$name"
        removed=1
    fi
done
if ((removed)); then
    systemctl daemon-reload
fi
rm -rf -- "$dfbench_root$spark_root"
rm -f -- "$dfbench_root$state_file"
"""
