"""Shell scripts that run on the instances: install the worker binary from S3 and run it as
``worker.service``.

One bash function, ``dfbench_install_worker SHA FORCE``, holds every install step. The SSM
deploy script calls it with the sha being deployed; the boot script (EC2 user data) calls it
with the sha named by ``s3://<bucket>/.dfbench/artifacts/worker/latest``, so a new or replaced
instance comes up serving the newest published worker without a redeploy, with the same
``worker.service`` (arguments, environment) as the last deploy: ``latest`` holds the sha256 on
its first line and that unit after it (:func:`latest_record`; a record of the sha alone, as
older versions wrote, gets the default unit).

Exit codes of the install: 3 the download's sha256 is wrong (nothing changed), 4 the worker
did not answer ``/info`` after its restart. On success the last line printed is
``dfbench: installed <sha256>``, or ``dfbench: worker <sha256> already installed and active``
when there was nothing to do. ``DFBENCH_ROOT`` prefixes every path written, and
``DFBENCH_READY_TIMEOUT`` (seconds, default 60) bounds the wait for ``/info``: both exist so
the scripts can run in tests against a temporary folder.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence

from dfbench.errors import ConfigError

# Keys in the bucket: <prefix>/<sha256>/worker is an artifact, <prefix>/latest names the newest
# (and the unit it runs under).
ARTIFACT_PREFIX = ".dfbench/artifacts/worker"
LATEST_KEY = f"{ARTIFACT_PREFIX}/latest"
# The line that ends a successful install's output, followed by the sha256.
INSTALLED_MARKER = "dfbench: installed "
BINARY_PATH = "/usr/local/bin/worker"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ENV_KEY = re.compile(r"^[A-Z_][A-Z0-9_]*$")

# Every step of an install, shared by the deploy and the boot script. Expects dfbench_root,
# dfbench_bucket, dfbench_region, dfbench_artifacts and dfbench_unit to be set. Temporary files
# live next to their target, so the final `mv` is a rename on one filesystem: a reader sees the
# old file or the new one, never half of one, and the running worker keeps its old inode until
# the restart.
_INSTALL_FUNCTION = r"""
# Temporary files are removed however the script ends, a refused download (exit 3) included.
dfbench_tmp=()
trap 'rm -f -- "${dfbench_tmp[@]}"' EXIT

dfbench_install_worker() {
    local sha=$1 force=$2
    local bin="$dfbench_root/usr/local/bin/worker"
    local unit_path="$dfbench_root/etc/systemd/system/worker.service"
    local record="$dfbench_root/var/lib/dfbench/worker.sha256"
    local ready_timeout="${DFBENCH_READY_TIMEOUT:-60}"
    local installed="" unit_same=0 waited=0 got tmp

    if [[ -f $bin ]]; then
        installed=$(sha256sum -- "$bin")
        installed=${installed%% *}
    fi
    # cmp reads the wanted unit from stdin; no process substitution, which sh-mode bash may lack.
    if [[ -f $unit_path ]] && printf '%s' "$dfbench_unit" | cmp -s - "$unit_path"; then
        unit_same=1
    fi
    if [[ $force != 1 && $installed == "$sha" && $unit_same == 1 ]] \
        && systemctl is-active --quiet worker.service; then
        echo "dfbench: worker $sha already installed and active"
        return 0
    fi

    mkdir -p -- "${bin%/*}" "${unit_path%/*}" "${record%/*}"
    if [[ $installed != "$sha" ]]; then
        tmp=$(mktemp -- "$bin.XXXXXX")
        dfbench_tmp+=("$tmp")
        aws s3 cp --region "$dfbench_region" --only-show-errors \
            "s3://$dfbench_bucket/$dfbench_artifacts/$sha/worker" "$tmp"
        got=$(sha256sum -- "$tmp")
        got=${got%% *}
        if [[ $got != "$sha" ]]; then
            echo "dfbench: downloaded worker has sha256 $got, expected $sha; the installed binary is kept" >&2
            exit 3
        fi
        chmod 0755 "$tmp"
        mv -f -- "$tmp" "$bin"
    fi

    tmp=$(mktemp -- "$record.XXXXXX")
    dfbench_tmp+=("$tmp")
    printf '%s\n' "$sha" >"$tmp"
    chmod 0644 "$tmp"
    mv -f -- "$tmp" "$record"

    # A rewritten unit (even with the same content) would make systemd warn that it changed on
    # disk, and daemon-reload re-reads every unit: both only when the content really differs.
    if [[ $unit_same != 1 ]]; then
        tmp=$(mktemp -- "$unit_path.XXXXXX")
        dfbench_tmp+=("$tmp")
        printf '%s' "$dfbench_unit" >"$tmp"
        chmod 0644 "$tmp"
        mv -f -- "$tmp" "$unit_path"
        systemctl daemon-reload
    fi
    systemctl enable worker.service
    systemctl restart worker.service

    # Counted in retries, not by the clock: $SECONDS ticks in whole seconds, which would make a
    # short bound end before its first retry.
    until curl -fsS --max-time 2 http://127.0.0.1:9000/info >/dev/null 2>&1; do
        if ((waited >= ready_timeout)); then
            echo "dfbench: worker $sha did not answer http://127.0.0.1:9000/info" \
                "within ${ready_timeout}s; last journal lines:" >&2
            journalctl -u worker.service --no-pager -n 50 >&2 || true
            exit 4
        fi
        sleep 1
        waited=$((waited + 1))
    done
    echo "dfbench: installed $sha"
}
"""

# User data runs inside cloud-init, so the boot script must not wait for cloud-init (it would
# wait for itself). An absent `latest` means the cluster was provisioned before any deploy;
# any other failure to read it (permissions, network) fails the boot script visibly.
_BOOT = r"""
dfbench_latest_key="s3://$dfbench_bucket/$dfbench_artifacts/latest"
if dfbench_latest=$(aws s3 cp --region "$dfbench_region" --only-show-errors "$dfbench_latest_key" - 2>&1); then
    # The first line is the sha256; what follows, when anything does, is the last deploy's unit.
    dfbench_sha=${dfbench_latest%%$'\n'*}
    dfbench_sha=${dfbench_sha//[[:space:]]/}
    if [[ ! $dfbench_sha =~ ^[0-9a-f]{64}$ ]]; then
        echo "dfbench: $dfbench_latest_key does not hold a sha256: $dfbench_sha" >&2
        exit 1
    fi
    if [[ $dfbench_latest == *$'\n'* && -n ${dfbench_latest#*$'\n'} ]]; then
        # $(...) dropped the unit's final newline: restored, the unit on disk is byte for byte the
        # deploy's, so the next deploy of the same build finds nothing to change.
        dfbench_unit="${dfbench_latest#*$'\n'}"$'\n'
    fi
    dfbench_install_worker "$dfbench_sha" 0
elif [[ $dfbench_latest == *"(404)"* || $dfbench_latest == *NoSuchKey* ]]; then
    echo "dfbench: no worker published yet ($dfbench_latest_key is absent); deploy one with dfbench deploy"
else
    echo "dfbench: cannot read $dfbench_latest_key: $dfbench_latest" >&2
    exit 1
fi
"""

# The deploy waits for cloud-init so it never races the boot script's own install. Any exit
# status is accepted: "degraded" (2) and "error" (1, for instance a boot install that failed)
# both mean cloud-init has finished, and the deploy that fixes a failed boot must still run.
_WAIT_CLOUD_INIT = r"""
if command -v cloud-init >/dev/null 2>&1; then
    cloud-init status --wait >/dev/null || echo "dfbench: cloud-init finished with status $?; installing anyway"
fi
"""


def install_script(
    *,
    bucket: str,
    sha256: str,
    region: str,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    force: bool = False,
) -> str:
    """The script the deploy runs on every instance (as root, with bash) to install the
    artifact ``sha256`` and (re)start ``worker.service`` with ``args`` and ``env``."""
    if not _SHA256.match(sha256):
        raise ConfigError(f"Not a sha256 (64 lowercase hex digits): {sha256!r}.")
    return (
        _preamble(bucket=bucket, region=region, args=args, env=env)
        + _WAIT_CLOUD_INIT
        + f"dfbench_install_worker {sha256} {1 if force else 0}\n"
    )


def boot_script(*, bucket: str, region: str) -> str:
    """The part of EC2 user data that installs the newest published artifact at first boot.
    It starts with its own shebang and ``set -euo pipefail``, so it runs alone or appended to
    other user data (where the shebang is a comment); it ends the script when it fails."""
    return _preamble(bucket=bucket, region=region, args=(), env=None) + _BOOT


def _preamble(*, bucket: str, region: str, args: Sequence[str], env: Mapping[str, str] | None) -> str:
    unit = worker_unit(bucket=bucket, region=region, args=args, env=env)
    return (
        "#!/bin/bash\n"
        "# Generated by dfbench: install and run the DataFusion Distributed benchmark worker.\n"
        "set -euo pipefail\n"
        'dfbench_root="${DFBENCH_ROOT:-}"\n'
        f"dfbench_bucket={shlex.quote(bucket)}\n"
        f"dfbench_region={shlex.quote(region)}\n"
        f"dfbench_artifacts={ARTIFACT_PREFIX}\n"
        f"dfbench_unit={shlex.quote(unit)}\n"
        + _INSTALL_FUNCTION
    )


def latest_record(sha256: str, unit: str) -> str:
    """The text of ``latest``: the sha256, then the unit instances booting later run it under."""
    if not _SHA256.match(sha256):
        raise ConfigError(f"Not a sha256 (64 lowercase hex digits): {sha256!r}.")
    return f"{sha256}\n{unit}"


# The time-to-live, armed at first boot as an absolute deadline that every later boot arms again:
# a transient timer alone (systemd-run) would be lost at a reboot (EC2 maintenance, a stop and
# start), leaving the instance to run, and cost, forever. At each boot the check powers off at once
# when the deadline has passed, else sets a timer for what is left. Poweroff becomes termination
# through InstanceInitiatedShutdownBehavior=terminate. DFBENCH_ROOT prefixes the paths (tests).
_TTL = r"""
dfbench_ttl_root="${DFBENCH_ROOT:-}"
dfbench_ttl_unit="$dfbench_ttl_root/etc/systemd/system/dfbench-ttl.service"
dfbench_ttl_check="$dfbench_ttl_root/usr/local/lib/dfbench/ttl-check"
if [[ ! -e $dfbench_ttl_unit ]]; then
    dfbench_deadline=$(($(date +%s) + dfbench_ttl_seconds))
    mkdir -p -- "${dfbench_ttl_unit%/*}" "${dfbench_ttl_check%/*}"
    cat >"$dfbench_ttl_check" <<'DFBENCH_TTL_CHECK'
#!/bin/bash
# dfbench time-to-live, run at every boot: power off now if the deadline ($1, Unix time) has
# passed, else in the time that is left.
set -euo pipefail
left=$(($1 - $(date +%s)))
if ((left <= 0)); then
    exec systemctl poweroff
fi
exec systemd-run --unit=dfbench-ttl-timer --description="dfbench time-to-live" --on-active="${left}s" \
    /usr/bin/systemctl poweroff
DFBENCH_TTL_CHECK
    chmod 0755 "$dfbench_ttl_check"
    printf '%s\n' '[Unit]' \
        "Description=dfbench time-to-live: power off at $(date -u -d "@$dfbench_deadline" '+%F %T UTC'), then EC2 terminates the instance" \
        '' '[Service]' 'Type=oneshot' "ExecStart=/usr/local/lib/dfbench/ttl-check $dfbench_deadline" \
        '' '[Install]' 'WantedBy=multi-user.target' >"$dfbench_ttl_unit"
    systemctl daemon-reload
    systemctl enable dfbench-ttl.service
    "$dfbench_ttl_check" "$dfbench_deadline"
fi
"""


def ttl_script(ttl_hours: float) -> str:
    """Bash that arms the time-to-live (see ``_TTL``), ``ttl_hours`` from now."""
    if not ttl_hours > 0:
        raise ConfigError(f"The time-to-live must be positive, not {ttl_hours!r} hours.")
    return f"dfbench_ttl_seconds={int(ttl_hours * 3600)}\n" + _TTL


def worker_unit(*, bucket: str, region: str, args: Sequence[str] = (), env: Mapping[str, str] | None = None) -> str:
    """The text of ``worker.service``."""
    for arg in (bucket, region, *args, *(env or {}).values()):
        if "\n" in arg or "\r" in arg or "\0" in arg:
            raise ConfigError(f"Worker arguments and environment values must be single lines: {arg!r}.")
    for key in env or {}:
        if not _ENV_KEY.match(key):
            raise ConfigError(
                f"Invalid environment variable name {key!r}: use upper-case letters, digits and _ "
                "(not starting with a digit)."
            )
    command = " ".join(_systemd_word(word, dollar=True) for word in [BINARY_PATH, "--bucket", bucket, *args])
    environment = [f"Environment={_systemd_word(f'{k}={v}', dollar=False)}"
                   for k, v in {"AWS_REGION": region, **(env or {})}.items()]
    return "\n".join([
        "[Unit]",
        "Description=DataFusion Distributed benchmark worker",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        f"ExecStart={command}",
        *environment,
        "Restart=always",
        "RestartSec=2",
        "User=root",
        "LimitNOFILE=1048576",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ])


def _systemd_word(word: str, *, dollar: bool) -> str:
    """One word quoted for a unit file. systemd unquotes like a shell but only accepts a quote
    around a whole word (shlex's 'it'"'"'s' is not valid there), and it also expands C escapes
    and %-specifiers everywhere and $VARIABLES in ExecStart: those are doubled to stay literal."""
    escaped = word.replace("\\", "\\\\").replace("%", "%%")
    if dollar:
        escaped = escaped.replace("$", "$$")
    return shlex.quote(escaped) if "'" not in word else '"' + escaped.replace('"', '\\"') + '"'
