"""What the verify-aws instance runs: its user data (the time-to-live, then the first S3 read at
first boot, timed) and the one SSM command that probes the rest from inside the VPC, printing
``dfbench-verify <name> <value>`` lines that ``parse_output`` reads back.

Every value a script embeds is quoted with shlex or checked by shape here; nothing dfbench reads
from AWS reaches them unchecked."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping

from dfbench.errors import ConfigError
from dfbench.worker.scripts import POD_IP_SCRIPT, SECRETS_SCRIPT, ttl_script

FIRST_READ_FILE = "/var/lib/dfbench-verify/first-read"
_RUN_ID = re.compile(r"^[a-z0-9]{4,16}\Z")
_FIELD = re.compile(r"^[A-Za-z0-9-]+\Z")
_LINE = re.compile(r"^dfbench-verify ([a-z0-9-]+) ?(.*)$")

# First boot: the instance role's credentials and policy may reach a brand-new instance late (the
# boot script's S3 reads are retried for that). Timed here from the kernel's uptime, one try a
# second for at most two minutes.
_FIRST_READ = r"""
dfbench_first_read() {
    local started tries=0 outcome=failed
    started=$(cut -d' ' -f1 /proc/uptime)
    mkdir -p -- "${dfbench_verify_file%/*}"
    while ((tries < 120)); do
        if aws s3 cp --region "$dfbench_verify_region" --only-show-errors "$dfbench_verify_object" - >/dev/null; then
            outcome=ok
            break
        fi
        tries=$((tries + 1))
        sleep 1
    done
    printf '%s %s %s %s\n' "$outcome" "$started" "$(cut -d' ' -f1 /proc/uptime)" "$tries" >"$dfbench_verify_file"
}
dfbench_first_read
"""


def user_data(*, ttl_hours: float, region: str, object_url: str) -> str:
    """The time-to-live first (it holds whatever happens next), then the timed first S3 read."""
    return ("#!/bin/bash\nset -euo pipefail\n" + ttl_script(ttl_hours)
            + f"dfbench_verify_region={shlex.quote(region)}\n"
            + f"dfbench_verify_object={shlex.quote(object_url)}\n"
            + f"dfbench_verify_file={FIRST_READ_FILE}\n" + _FIRST_READ)


_COMMAND = r"""
say() { printf 'dfbench-verify %s %s\n' "$1" "$(printf '%s' "$2" | tr '\n' ' ' | cut -c1-400)"; }
work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT

# The private zone, from inside the VPC: the first answer, then the changed record's.
deadline=$((SECONDS + dns_bound))
answer=""
first=""
while ((SECONDS < deadline)); do
    answer=$(getent ahostsv4 "$dns_name" 2>/dev/null | awk '{print $1}' | sort -u | paste -sd, -) || answer=""
    if [[ -n $answer && -z $first ]]; then
        first=$answer
        say dns-first "$(date +%s.%N) $answer"
    fi
    if [[ ",$answer," == *",$dns_wanted,"* ]]; then
        say dns-changed "$(date +%s.%N)"
        break
    fi
    sleep 0.5
done
say dns-last "${answer:-none}"

say ssm-instance-id "${AWS_SSM_INSTANCE_ID:-unset}"
say cli-version "$(aws --version 2>&1 | head -n 1)"
if [[ -r $first_read_file ]]; then say first-read "$(cat -- "$first_read_file")"; else say first-read none; fi

# The AWS CLI reading a SecureString with the instance role: inside the role's prefix, and outside it.
if value=$(AWS_PAGER="" aws ssm get-parameter --region "$region" --name "$inside" --with-decryption \
        --query Parameter.Value --output text 2>"$work/inside-error"); then
    say inside-read "$(printf '%s' "$value" | sha256sum | cut -d' ' -f1)"
else
    say inside-read "refused: $(cat -- "$work/inside-error")"
fi
if AWS_PAGER="" aws ssm get-parameter --region "$region" --name "$outside" --with-decryption \
        --query Parameter.Value --output text >/dev/null 2>"$work/outside-error"; then
    say outside-read allowed
else
    say outside-read "refused: $(cat -- "$work/outside-error")"
fi

# A presigned POST to S3 from the instance.
printf '%s' "$post_body" >"$work/body"
if code=$(curl -sS -o "$work/post-answer" -w '%{http_code}' "${post_fields[@]}" --form "file=@$work/body" \
        "$post_url" 2>"$work/post-error"); then
    say post "$code $(head -c 300 -- "$work/post-answer")"
else
    say post "curl failed: $(cat -- "$work/post-error")"
fi

# systemd's order: the unit's ExecStartPre helpers write the files its EnvironmentFile= lines
# name, which systemd must read after them; the secret's escaped value must come back whole.
if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null && [[ -w /run/systemd/system ]]; then
    helpers=/run/dfbench-verify
    mkdir -p -- "$helpers"
    printf '%s' "$pod_ip_script" >"$helpers/pod-ip"
    printf '%s' "$secrets_script" >"$helpers/secrets"
    # The report's text, written as is: its $ expand when systemd runs it, not here.
    # shellcheck disable=SC2016
    printf '%s\n' '#!/bin/bash' \
        'printf "%s" "${POD_IP:-unset}" >/run/dfbench-verify/pod-ip.out' \
        'printf "%s" "${VERIFY_SECRET-unset}" | sha256sum | cut -d" " -f1 >/run/dfbench-verify/secret.out' \
        >"$helpers/report"
    chmod 0755 "$helpers/pod-ip" "$helpers/secrets" "$helpers/report"
    printf '%s\n' '[Service]' 'Type=oneshot' "Environment=AWS_REGION=$region" \
        "ExecStartPre=$helpers/pod-ip" 'EnvironmentFile=-/run/dfbench/worker.env' \
        "ExecStartPre=$helpers/secrets VERIFY_SECRET=$inside" 'EnvironmentFile=-/run/dfbench/secrets.env' \
        "ExecStart=$helpers/report" >"/run/systemd/system/$unit.service"
    systemctl daemon-reload
    if systemctl start "$unit.service" 2>"$work/systemd-error"; then
        say systemd-pod-ip "$(cat -- "$helpers/pod-ip.out")"
        say systemd-secret "$(cat -- "$helpers/secret.out")"
    else
        say systemd "failed: $(cat -- "$work/systemd-error")"
    fi
    rm -f -- "/run/systemd/system/$unit.service" /run/dfbench/secrets.env /run/dfbench/worker.env
    rm -rf -- "$helpers"
    systemctl daemon-reload
else
    say systemd "unavailable: no systemd this script may add a unit to"
fi
say end ok
"""


def command_script(*, run_id: str, region: str, dns_name: str, dns_wanted: str, dns_bound_s: int, inside: str,
                   outside: str, post_url: str, post_fields: Mapping[str, str], post_body: str) -> str:
    if not _RUN_ID.match(run_id):
        raise ConfigError(f"Not a verify-aws run id: {run_id!r}.")
    fields = []
    for name, value in post_fields.items():
        if not _FIELD.match(name):
            raise ConfigError(f"Unexpected presigned POST field name {name!r}.")
        fields.append("--form-string " + shlex.quote(f"{name}={value}"))
    values = {"region": region, "dns_name": dns_name, "dns_wanted": dns_wanted, "inside": inside,
              "outside": outside, "post_url": post_url, "post_body": post_body,
              "first_read_file": FIRST_READ_FILE, "unit": f"dfbench-verify-{run_id}",
              "pod_ip_script": POD_IP_SCRIPT, "secrets_script": SECRETS_SCRIPT}
    # Values are data, quoted whole: a $ or \ in them (the helpers' texts, a form value) is not this script's.
    data = "# shellcheck disable=SC2016,SC1003\n"
    head = "".join(f"{data}{name}={shlex.quote(value)}\n" for name, value in values.items())
    return ("#!/bin/bash\n# Generated by dfbench verify-aws: probes from inside the VPC.\nset -uo pipefail\n"
            + head + f"dns_bound={int(dns_bound_s)}\n{data}post_fields=({' '.join(fields)})\n" + _COMMAND)


def parse_output(stdout: str) -> dict[str, str]:
    """The ``dfbench-verify`` lines of the command's output, by name (the last of a name wins)."""
    found: dict[str, str] = {}
    for line in stdout.splitlines():
        match = _LINE.match(line.strip())
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found
