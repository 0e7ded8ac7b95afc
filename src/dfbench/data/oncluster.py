"""On-cluster generation, the parts that need no AWS: which instance makes which part, the bash
script every instance runs, and reading what each one reports.

A dataset of N partitions is N *parts*: part k is what ``<generator> --parts N --part k`` writes,
``<table>/<table>.<k>.parquet`` for every table with rows in that part (tables written whole come
with part 1). Generating the parts one by one gives files byte-identical to generating them
together, so each part is uploaded as ``<dataset>/<table>/<k>.parquet``: the layout, and the
bytes, of a local generation with the same partitions (:mod:`dfbench.data.generate`).

The script (bash, run as root by SSM's AWS-RunShellScript) finds its own parts by the instance id
the SSM agent gives every process it runs (``AWS_SSM_INSTANCE_ID``, with ``AWS_SSM_REGION_NAME``:
amazon-ssm-agent, agent/executers/executers.go, prepareEnvironment), downloads the generator
through a presigned GET URL and checks its sha256, then for each part: generates it in a
temporary folder, uploads each file with a presigned POST (the instance role stays read-only on
the bucket), prints one ``dfbench-file`` line per file and ``dfbench-part <k>`` when the part is
complete, and deletes the files (the disk holds one part at a time).

Exit codes: 3 the generator's sha256 is wrong, 5 no parts for this instance id, 6 the generator
wrote a file of an unexpected name, 7 an upload was refused (S3's answer follows on stderr).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dfbench.data.generate import GeneratorSpec
from dfbench.data.manifest import DataRecord
from dfbench.errors import ConfigError

FILE_LINE = "dfbench-file"
PART_LINE = "dfbench-part"
# The output folder and thread count as the script's own variables (expanded on the instance).
_OUT = "/dfbench-out"
_INSTANCE_ID = re.compile(r"^(i|mi)-[0-9a-f]{8,17}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FILE = re.compile(rf"^{FILE_LINE} (?P<part>[0-9]+) (?P<path>[a-z_][a-z0-9_]*/[0-9]+\.parquet) (?P<size>[0-9]+) "
                   r"(?P<sha256>[0-9a-f]{64}) (?P<md5>[0-9a-f]{32})$")
_PART = re.compile(rf"^{PART_LINE} (?P<part>[0-9]+)$")
# The form fields of a presigned POST are letters, digits and - (their values are quoted).
_FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")


class ReportedFile(DataRecord):
    """One uploaded file as the instance that made it reports it."""

    part: int
    path: str  # <table>/<k>.parquet, relative to the dataset
    size: int
    sha256: str
    md5: str  # what S3's ETag is for a single-request upload to an SSE-S3 or unencrypted bucket


class Report(DataRecord):
    """What an instance's output says it did: its files, and the parts it finished."""

    files: list[ReportedFile]
    parts: list[int]


def assign(parts: Sequence[int], instance_ids: Sequence[str]) -> dict[str, list[int]]:
    """The parts dealt round-robin over the instances in order, so their counts differ by one at
    most; an instance with no part is left out."""
    shares: dict[str, list[int]] = {i: [] for i in instance_ids}
    for index, part in enumerate(sorted(parts)):
        shares[instance_ids[index % len(instance_ids)]].append(part)
    return {i: share for i, share in shares.items() if share}


def generator_words(spec: GeneratorSpec, scale_factor: str, partitions: int, compression: str) -> str:
    """The generator's arguments for one part, as bash words: ``$out``, ``$threads`` and
    ``$part`` are the script's variables."""
    words = spec.command(scale_factor, partitions, Path(_OUT), compression, 1)
    quoted = []
    for index, word in enumerate(words):
        if word == _OUT:
            quoted.append('"$out"')
        elif index and words[index - 1] == "--num-threads":
            quoted.append('"$threads"')
        else:
            quoted.append(shlex.quote(word))
    return " ".join([*quoted, "--part", '"$part"'])


_SCRIPT = r"""
dfbench_parts=()
case ${AWS_SSM_INSTANCE_ID:-} in
@CASES@
esac
if ((${#dfbench_parts[@]} == 0)); then
    echo "dfbench: no parts for instance '${AWS_SSM_INSTANCE_ID:-}' (the SSM agent's AWS_SSM_INSTANCE_ID)" >&2
    exit 5
fi
dfbench_work=$(mktemp -d -- "${TMPDIR:-/var/tmp}/dfbench-generate.XXXXXX")
trap 'rm -rf -- "$dfbench_work"' EXIT
dfbench_bin="$dfbench_work/generator"
curl -fsS --retry 3 -o "$dfbench_bin" "$dfbench_generator_url"
got=$(sha256sum -- "$dfbench_bin")
got=${got%% *}
if [[ $got != "$dfbench_generator_sha" ]]; then
    echo "dfbench: downloaded generator has sha256 $got, expected $dfbench_generator_sha" >&2
    exit 3
fi
chmod 0755 "$dfbench_bin"
threads=$(nproc)
for part in "${dfbench_parts[@]}"; do
    out="$dfbench_work/part-$part"
    mkdir -p -- "$out"
    # The generator logs on stderr; stdout carries only the lines dfbench reads.
    RUST_LOG=info "$dfbench_bin" @WORDS@ >&2
    # A list file, not process substitution: the agent may run the script with sh (bash in POSIX mode).
    find "$out" -type f -name '*.parquet' -print0 | sort -z >"$dfbench_work/files"
    while IFS= read -r -d '' file; do
        rel=${file#"$out"/}
        if [[ $rel =~ ^([a-z_][a-z0-9_]*)/([a-z_][a-z0-9_]*)\.([0-9]+)\.parquet$ ]] \
            && [[ ${BASH_REMATCH[1]} == "${BASH_REMATCH[2]}" ]]; then
            key="${BASH_REMATCH[1]}/${BASH_REMATCH[3]}.parquet"
        elif [[ $rel =~ ^([a-z_][a-z0-9_]*)\.parquet$ ]]; then
            key="${BASH_REMATCH[1]}/1.parquet"  # a table written whole, without parts
        else
            echo "dfbench: unexpected file from the generator: $rel" >&2
            exit 6
        fi
        size=$(stat -c %s -- "$file")
        sha=$(sha256sum -- "$file")
        sha=${sha%% *}
        md5=$(md5sum -- "$file")
        md5=${md5%% *}
        # --form-string: values are sent as they are (curl -F would read a leading @ or < as a file).
        if ! curl -sS --fail-with-body --retry 3 -o "$dfbench_work/answer" "${dfbench_post_fields[@]}" \
            --form-string "key=$dfbench_prefix$key" --form-string "x-amz-meta-sha256=$sha" \
            -F "file=@$file" "$dfbench_post_url"; then
            echo "dfbench: the upload of $key was refused:" >&2
            cat -- "$dfbench_work/answer" >&2 || true
            exit 7
        fi
        echo "dfbench-file $part $key $size $sha $md5"
        rm -f -- "$file"
    done <"$dfbench_work/files"
    echo "dfbench-part $part"
done
echo "dfbench: generated part(s) ${dfbench_parts[*]}"
"""


def generate_script(*, spec: GeneratorSpec, scale_factor: str, partitions: int, compression: str, prefix: str,
                    generator_url: str, generator_sha256: str, post_url: str, post_fields: Mapping[str, str],
                    shares: Mapping[str, Sequence[int]]) -> str:
    """The script every instance runs (see the module's docstring). Every value is checked or
    quoted: instance ids and parts by their shape, URLs and form values with shlex."""
    if not _SHA256.match(generator_sha256):
        raise ConfigError(f"Not a sha256 (64 lowercase hex digits): {generator_sha256!r}.")
    cases = []
    for instance_id, parts in shares.items():
        if not _INSTANCE_ID.match(instance_id):
            raise ConfigError(f"Not an instance id: {instance_id!r}.")
        if not parts or any(not 1 <= p <= partitions for p in parts):
            raise ConfigError(f"Parts of {instance_id} must be within 1..{partitions}: {list(parts)}.")
        cases.append(f"    {instance_id}) dfbench_parts=({' '.join(str(p) for p in parts)}) ;;")
    fields = []
    for name, value in post_fields.items():
        if not _FIELD.match(name):
            raise ConfigError(f"Unexpected presigned POST field name {name!r}.")
        fields.append(shlex.quote(f"{name}={value}"))
    head = ("#!/bin/bash\n"
            "# Generated by dfbench: generate this instance's parts of a dataset and upload them to the bucket.\n"
            "set -euo pipefail\n"
            f"dfbench_generator_url={shlex.quote(generator_url)}\n"
            f"dfbench_generator_sha={generator_sha256}\n"
            f"dfbench_post_url={shlex.quote(post_url)}\n"
            f"dfbench_post_fields=({' '.join('--form-string ' + f for f in fields)})\n"
            f"dfbench_prefix={shlex.quote(prefix)}\n")
    body = _SCRIPT.replace("@CASES@", "\n".join(cases)).replace(
        "@WORDS@", generator_words(spec, scale_factor, partitions, compression))
    return head + body


def parse_report(stdout: str) -> Report:
    """The ``dfbench-file`` and ``dfbench-part`` lines of an instance's output (anything else,
    including a line cut short, is skipped: a part counts only with its closing line)."""
    files, parts = [], []
    for line in stdout.splitlines():
        if match := _FILE.match(line):
            files.append(ReportedFile(part=int(match["part"]), path=match["path"], size=int(match["size"]),
                                      sha256=match["sha256"], md5=match["md5"]))
        elif match := _PART.match(line):
            parts.append(int(match["part"]))
    return Report(files=files, parts=parts)


def part_of(path: str) -> int:
    """The part a file belongs to: its number (``lineitem/3.parquet`` is part 3's)."""
    return int(path.rsplit("/", 1)[-1].split(".", 1)[0])


def settings_of(spec: GeneratorSpec, scale_factor: str, partitions: int, compression: str,
                generator_sha256: str) -> dict[str, Any]:
    """What a part's record must match to be reused: the same data from the same generator."""
    return {"benchmark": spec.benchmark, "scale_factor": scale_factor, "partitions": partitions,
            "compression": compression.upper(), "generator_sha256": generator_sha256}
