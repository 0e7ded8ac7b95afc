"""Generate a dataset on the cluster's instances, straight into its bucket (``generate_on_cluster``).

The local generator binary (the one ``data generate`` runs, from the installed wheel) is stored
once by sha256 in the bucket beside the worker's artifacts; ONE SSM command goes to every
instance, each generating its share of the parts on its own disk and uploading it to
``s3://<bucket>/<dataset>/<table>/<k>.parquet`` (the script: :mod:`dfbench.data.oncluster`).
dfbench then checks every file an instance reports against the bucket (size, and the ETag S3
computed against the md5 the instance computed), reads each file's row count from its parquet
footer, and records every verified part under ``.dfbench/generate/<dataset>/`` in the bucket. An
instance that fails is named with the end of its output and its parts go, in a next command, to
the instances that succeeded. The manifest (the format local generation writes, with the ETags a
sync records) is written last, only once every part is verified: a second run regenerates only
the parts without a valid record, and an interrupted run never leaves a manifest.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn

from dfbench.aws import ssm
from dfbench.aws.objects import StoredObject, list_objects
from dfbench.aws.session import connect
from dfbench.data.footers import footer_rows, read_footer
from dfbench.data.generate import binary_version, find_binary, validate_request
from dfbench.data.manifest import (
    MANIFEST,
    DatasetFile,
    Generator,
    Manifest,
    read_remote_manifest,
    tables_from,
    write_remote_manifest,
)
from dfbench.data.oncluster import (
    Report,
    assign,
    generate_script,
    parse_report,
    part_of,
    settings_of,
)
from dfbench.data.scale import dataset_name, format_decimal
from dfbench.data.sync import PARQUET_CONTENT_TYPE, delete_keys
from dfbench.data.tpcds import TPCDS
from dfbench.data.tpch import TPCH
from dfbench.errors import CommandFailed, ConfigError, aws_errors
from dfbench.models import Cluster, Record
from dfbench.waiting import time_scale
from dfbench.worker.artifacts import upload_artifact
from dfbench.worker.build import check_binary
from dfbench.worker_deploy import find_cluster

log = logging.getLogger("dfbench")

SPECS = {"tpch": TPCH, "tpcds": TPCDS}
# <STATE_PREFIX>/<dataset>/part-<k>.json: the files of part k, verified, and the settings they
# were made with. Outside the dataset's prefix, so the bucket's copy of the dataset holds only
# what a local generation holds.
STATE_PREFIX = ".dfbench/generate"
GENERATE_TIMEOUT_S = 4 * 3600
# A POST upload takes at most 5 GB (https://docs.aws.amazon.com/AmazonS3/latest/API/RESTObjectPOST.html);
# more partitions make smaller files.
_POST_MAX_BYTES = 5 * 1000**3
# Presigned URLs outlive the command they serve by this much (SigV4 allows up to 7 days; with
# temporary credentials they end with the session anyway).
_URL_MARGIN_S = 600
_PROGRESS_EVERY_S = 2.0
_DATA_FILE = re.compile(r"^[a-z_][a-z0-9_]*/[0-9]+\.parquet$")


class InstanceShare(Record):
    """What one instance was given and did in one command."""

    instance_id: str
    name: str | None
    parts: list[int]
    done: list[int]  # the parts verified from its upload
    status: str
    exit_code: int | None
    output_tail: str
    output_url: str | None

    @property
    def ok(self) -> bool:
        return self.status == "Success" and sorted(self.done) == sorted(self.parts)

    @property
    def label(self) -> str:
        return f"{self.instance_id} ({self.name})" if self.name else self.instance_id


class OnClusterReport(Record):
    """What ``generate_on_cluster`` did: the parts found verified already (``reused``), those made
    now, each command's shares, and whether the manifest was written by this run."""

    dataset: str
    bucket: str
    cluster: str
    partitions: int
    generator_sha256: str
    generator_uploaded: bool
    reused: list[int]
    generated: list[int]
    rounds: list[list[InstanceShare]]
    files: int
    bytes: int
    manifest_written: bool

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.dataset}/"


def _spec(benchmark: str) -> Any:
    try:
        return SPECS[benchmark]
    except KeyError:
        raise ConfigError(f"Unknown benchmark {benchmark!r}: on-cluster generation makes "
                          f"{' or '.join(SPECS)}.") from None


def _generator(spec: Any, generator: str | Path | None) -> tuple[Path, str]:
    """The generator to ship and its sha256: it runs on the instances, so it must be a Linux
    x86-64 executable (the wheel installed on a Mac or an ARM machine is not)."""
    path = Path(generator) if generator is not None else Path(find_binary(spec))
    try:
        return path, check_binary(path)
    except ConfigError as error:
        raise ConfigError(f"{path} cannot run on the instances: {str(error).split('. ', 1)[0]}. Run dfbench from a "
                          f"Linux x86-64 machine, or pass generator= / --generator the Linux x86-64 {spec.binary} "
                          f"(from `pip download {spec.binary} --only-binary=:all: --platform "
                          "manylinux2014_x86_64`).") from None


def generate_on_cluster(
    cluster: Cluster | str, *, benchmark: str = "tpch", scale_factor: Any, partitions: int = 16,
    compression: str = "SNAPPY", force: bool = False, generator: str | Path | None = None,
    region: str | None = None, profile: str | None = None, timeout_s: int = GENERATE_TIMEOUT_S,
    progress: bool = True,
) -> OnClusterReport:
    """Generate ``benchmark`` at ``scale_factor`` in ``partitions`` parts on the instances of
    ``cluster``, into ``s3://<bucket>/<benchmark>_sf<SF>/`` (see the module's docstring).

    Idempotent: a complete dataset with the same settings is left alone (a different one is
    refused unless ``force``, which also regenerates every part); parts verified by an earlier,
    interrupted run are kept. Raises CommandFailed naming the instances that failed, with their
    output's end, when parts are still missing after the others took them over."""
    spec = _spec(benchmark)
    sf = validate_request(spec, scale_factor, partitions)
    name = dataset_name(spec.benchmark, sf)
    binary, sha = _generator(spec, generator)
    found, instances = find_cluster(cluster, region, profile)
    if len(instances) > ssm.INSTANCE_IDS_MAX:
        raise ConfigError(f"On-cluster generation sends one command to at most {ssm.INSTANCE_IDS_MAX} instances; "
                          f"{found.name} has {len(instances)}.")
    settings = settings_of(spec, format_decimal(sf), partitions, compression, sha)
    aws = connect(region=found.region, profile=profile)
    bucket, prefix = found.bucket, f"{name}/"
    with aws_errors(profile):
        s3 = aws.client("s3")
        existing = read_remote_manifest(s3, bucket, prefix + MANIFEST)
        listing = list_objects(s3, bucket, prefix)
        if existing is not None and not force and _complete(existing, listing, prefix):
            if existing.partitions != partitions or (existing.compression or "").upper() != compression.upper():
                raise ConfigError(f"s3://{bucket}/{prefix} already holds {spec.label} SF {format_decimal(sf)} with "
                                  f"{existing.partitions} partitions ({existing.compression}); asked for {partitions} "
                                  f"({compression}). Pass --force (force=True) to replace it.")
            log.info("s3://%s/%s is complete: nothing to do", bucket, prefix)
            return OnClusterReport(dataset=name, bucket=bucket, cluster=found.name, partitions=partitions,
                                   generator_sha256=sha, generator_uploaded=False,
                                   reused=list(range(1, partitions + 1)), generated=[], rounds=[],
                                   files=len(existing.files), bytes=existing.total_bytes, manifest_written=False)
        if existing is not None or prefix + MANIFEST in listing:
            s3.delete_object(Bucket=bucket, Key=prefix + MANIFEST)  # no longer true once anything changes
        done = {} if force else _verified_parts(s3, bucket, name, settings, listing)
    key, uploaded = upload_artifact(binary, sha, name=spec.binary, bucket=bucket, region=found.region,
                                    profile=profile, progress=progress)
    reused = sorted(done)
    with aws_errors(profile):
        job = _Job(aws=aws, cluster=found, spec=spec, dataset=name, scale_factor=format_decimal(sf),
                   partitions=partitions, compression=compression, settings=settings, artifact_key=key,
                   generator_sha256=sha, timeout_s=timeout_s, progress=progress)
        rounds = job.make_missing(done, [i.instance_id for i in instances])
        files = [f for part in sorted(done) for f, _ in done[part]]
        etags = {f.path: etag for part in done.values() for f, etag in part}
        listing = list_objects(s3, bucket, prefix)
        # Files of an earlier generation with more partitions: not part of this dataset.
        stale = sorted(k for k in listing if _DATA_FILE.match(k[len(prefix):]) and k[len(prefix):] not in etags)
        delete_keys(s3, bucket, stale)
        manifest = Manifest(dataset=name, benchmark=spec.benchmark, scale_factor=float(sf), partitions=partitions,
                            compression=compression, generator=Generator(name=spec.binary,
                                                                         version=binary_version(str(binary))),
                            created_at=datetime.now(UTC).isoformat(timespec="seconds"), tables=tables_from(files),
                            etags=dict(sorted(etags.items())))
        write_remote_manifest(s3, bucket, prefix + MANIFEST, manifest)
    log.info("generated s3://%s/%s on %s: %d files, %d bytes", bucket, prefix, found.name, len(files),
             manifest.total_bytes)
    return OnClusterReport(dataset=name, bucket=bucket, cluster=found.name, partitions=partitions,
                           generator_sha256=sha, generator_uploaded=uploaded, reused=reused,
                           generated=sorted(k for k in done if k not in reused), rounds=rounds, files=len(files),
                           bytes=manifest.total_bytes, manifest_written=True)


class _Job:
    """The commands of one generation: each deals the missing parts over the instances still
    healthy, then verifies and records what they uploaded."""

    def __init__(self, *, aws: Any, cluster: Cluster, spec: Any, dataset: str, scale_factor: str, partitions: int,
                 compression: str, settings: dict[str, Any], artifact_key: str, generator_sha256: str,
                 timeout_s: int, progress: bool) -> None:
        self.aws, self.cluster, self.spec = aws, cluster, spec
        self.scale_factor, self.partitions, self.compression = scale_factor, partitions, compression
        self.settings, self.artifact_key, self.generator_sha256 = settings, artifact_key, generator_sha256
        self.timeout_s, self.progress = timeout_s, progress
        self.dataset = dataset
        self.prefix = f"{self.dataset}/"
        self.names = {i.instance_id: i.name for i in cluster.instances}

    def make_missing(self, done: dict[int, list[tuple[DatasetFile, str]]],
                     healthy: list[str]) -> list[list[InstanceShare]]:
        """Commands until every part is in ``done`` (filled in place) or no instance is left;
        CommandFailed, naming the instances that failed, when parts are still missing."""
        s3 = self.aws.client("s3")
        rounds: list[list[InstanceShare]] = []
        pending = [k for k in range(1, self.partitions + 1) if k not in done]
        while pending and healthy:
            shares = assign(pending, healthy)
            results = _run(self.aws, self.cluster, shares, self._script(shares), self.timeout_s, self.names,
                           self.dataset, self.progress)
            listing = list_objects(s3, self.cluster.bucket, self.prefix)
            round_shares = []
            for instance_id, (invocation, report) in results.items():
                verified = _verify(s3, self.cluster.bucket, self.prefix, report, shares[instance_id], listing)
                for part, files in verified.items():
                    _write_record(s3, self.cluster.bucket, self.dataset, part, self.settings, files)
                    done[part] = files
                round_shares.append(InstanceShare(
                    instance_id=instance_id, name=self.names.get(instance_id), parts=shares[instance_id],
                    done=sorted(verified), status=invocation.status, exit_code=invocation.exit_code,
                    output_tail=invocation.output_tail, output_url=invocation.output_url))
            rounds.append(round_shares)
            failed = [s for s in round_shares if not s.ok]
            for share in failed:
                log.warning("%s failed (%s); its parts go to the other instances:\n%s", share.label, share.status,
                            share.output_tail)
            healthy = [i for i in healthy if i not in {s.instance_id for s in failed}]
            # Every instance of a command either made its parts or is left out from now on: the
            # loop ends, with the parts made or no instance left.
            pending = [k for k in range(1, self.partitions + 1) if k not in done]
        if pending:
            _raise_failed(rounds, pending)
        return rounds

    def _script(self, shares: dict[str, list[int]]) -> str:
        """The script for ``shares``, with URLs signed now for the command's whole life."""
        presigner = self.aws.presigner()
        expires = ssm.DELIVERY_TIMEOUT_S + self.timeout_s + _URL_MARGIN_S
        # A key ending in ${filename} makes boto3 sign ["starts-with", "$key", prefix]: any key
        # under the dataset's prefix, and nowhere else.
        post = presigner.generate_presigned_post(
            self.cluster.bucket, self.prefix + "${filename}", Fields={"Content-Type": PARQUET_CONTENT_TYPE},
            Conditions=[{"Content-Type": PARQUET_CONTENT_TYPE}, ["starts-with", "$x-amz-meta-sha256", ""],
                        ["content-length-range", 1, _POST_MAX_BYTES]],
            ExpiresIn=expires)
        generator_url = presigner.generate_presigned_url(
            "get_object", Params={"Bucket": self.cluster.bucket, "Key": self.artifact_key}, ExpiresIn=expires)
        return generate_script(spec=self.spec, scale_factor=self.scale_factor, partitions=self.partitions,
                               compression=self.compression, prefix=self.prefix, generator_url=generator_url,
                               generator_sha256=self.generator_sha256, post_url=post["url"],
                               post_fields={k: v for k, v in post["fields"].items() if k != "key"}, shares=shares)


def _complete(manifest: Manifest, listing: dict[str, StoredObject], prefix: str) -> bool:
    """Every file the manifest lists is in the bucket with its size (and its ETag, when recorded)."""
    for item in manifest.files:
        stored = listing.get(prefix + item.path)
        if stored is None or stored.size != item.size:
            return False
        if item.path in manifest.etags and manifest.etags[item.path] != stored.etag:
            return False
    return True


def _record_key(dataset: str, part: int) -> str:
    return f"{STATE_PREFIX}/{dataset}/part-{part}.json"


def _verified_parts(s3: Any, bucket: str, dataset: str, settings: dict[str, Any],
                    listing: dict[str, StoredObject]) -> dict[int, list[tuple[DatasetFile, str]]]:
    """The parts an earlier run verified whose files are still in the bucket, unchanged (same
    size and ETag), made with the same settings and generator."""
    done = {}
    for key in sorted(list_objects(s3, bucket, f"{STATE_PREFIX}/{dataset}/")):
        try:
            record = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            files = [(DatasetFile.model_validate(f["file"]), str(f["etag"])) for f in record["files"]]
            part = int(record["part"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring unreadable s3://%s/%s", bucket, key)
            continue
        if record.get("settings") != settings:
            continue
        if all((stored := listing.get(f"{dataset}/{f.path}")) is not None and stored.size == f.size
               and stored.etag == etag and part_of(f.path) == part for f, etag in files):
            done[part] = files
    return done


def _write_record(s3: Any, bucket: str, dataset: str, part: int, settings: dict[str, Any],
                  files: list[tuple[DatasetFile, str]]) -> None:
    body = {"part": part, "settings": settings,
            "files": [{"file": f.model_dump(mode="json"), "etag": etag} for f, etag in files]}
    s3.put_object(Bucket=bucket, Key=_record_key(dataset, part), Body=json.dumps(body, sort_keys=True).encode(),
                  ContentType="application/json")


def _verify(s3: Any, bucket: str, prefix: str, report: Report, share: Sequence[int],
            listing: dict[str, StoredObject]) -> dict[int, list[tuple[DatasetFile, str]]]:
    """The parts of ``share`` the instance finished whose every file is in the bucket as it
    reported it: the size, and S3's ETag equal to the md5 the instance computed (S3 computes it
    from the bytes it stored, for a single-request upload to an SSE-S3 or unencrypted bucket:
    https://docs.aws.amazon.com/AmazonS3/latest/API/API_Object.html). Row counts come from each
    file's parquet footer, read from the bucket."""
    verified = {}
    for part in sorted(set(report.parts) & set(share)):
        files = []
        for item in (f for f in report.files if f.part == part):
            stored = listing.get(prefix + item.path)
            if stored is None or stored.size != item.size or stored.etag.strip('"') != item.md5 \
                    or part_of(item.path) != part:
                log.warning("part %d: %s%s is not in the bucket as reported (size %d, md5 %s); it will be made again",
                            part, prefix, item.path, item.size, item.md5)
                break
            try:
                rows = footer_rows(read_footer(s3, bucket, prefix + item.path, item.size))
            except (ValueError, OSError) as error:  # no PAR1 at the end; a footer pyarrow cannot parse
                log.warning("part %d: %s%s is not a readable parquet file (%s); it will be made again", part, prefix,
                            item.path, error)
                break
            files.append((DatasetFile(path=item.path, size=item.size, sha256=item.sha256, rows=rows), stored.etag))
        else:
            verified[part] = files  # possibly none: a part may have no rows in any table, as locally
    return verified


def _run(aws: Any, cluster: Cluster, shares: dict[str, list[int]], script: str, timeout_s: int,
         names: Mapping[str, str | None], dataset: str, progress: bool) -> dict[str, tuple[ssm.Invocation, Report]]:
    """One command to every instance with a share; each one's outcome and report (its whole
    stdout, read from S3 where SSM cut it)."""
    client, s3 = aws.client("ssm"), aws.client("s3")
    ids = list(shares)
    ssm.wait_online(client, ids)
    command_id = ssm.send_to_instances(client, instance_ids=ids, script=script,
                                       comment=f"dfbench: generate {dataset} on {len(ids)} instance(s)",
                                       execution_timeout_s=timeout_s, output_bucket=cluster.bucket,
                                       output_prefix=ssm.OUTPUT_PREFIX)
    with _UploadProgress(s3, cluster.bucket, f"{dataset}/", shares, names, progress):
        invocations = ssm.wait_command(client, command_id, ids,
                                       deadline_s=ssm.DELIVERY_TIMEOUT_S + timeout_s + 120,
                                       output_bucket=cluster.bucket, output_prefix=ssm.OUTPUT_PREFIX)
    invocations = ssm.read_output(s3, [inv for inv in invocations if inv.instance_id in shares])
    return {inv.instance_id: (inv, parse_report(inv.stdout)) for inv in invocations}


class _UploadProgress:
    """Per instance, the files of its parts that reached the bucket since its command was sent,
    from one listing every few seconds (in a thread, stopped when the command ends)."""

    def __init__(self, s3: Any, bucket: str, prefix: str, shares: dict[str, list[int]],
                 names: Mapping[str, str | None], enabled: bool) -> None:
        self.s3, self.bucket, self.prefix, self.shares = s3, bucket, prefix, shares
        self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), console=Console(stderr=True),
                            disable=not enabled)
        self.tasks = {i: self.bar.add_task(self._text(i, names.get(i), 0, 0), name=names.get(i)) for i in shares}
        self.before = {k: o.etag for k, o in list_objects(s3, bucket, prefix).items()} if enabled else {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="dfbench-generate-progress", daemon=True)

    def _text(self, instance_id: str, name: str | None, files: int, size: int) -> str:
        parts = ",".join(str(p) for p in self.shares[instance_id])
        label = f"{instance_id} ({name})" if name else instance_id
        return f"{label}: parts {parts}: {files} file(s), {size / 1e6:.1f} MB uploaded"

    def _loop(self) -> None:
        # Never more often than 4 times a second, however short the emulator makes every wait.
        while not self.stop.wait(max(0.25, _PROGRESS_EVERY_S * time_scale())):
            self._refresh()

    def _refresh(self) -> None:
        try:
            listing = list_objects(self.s3, self.bucket, self.prefix)
        except Exception as error:
            log.debug("progress listing failed: %s", error)
            return
        new = [(k[len(self.prefix):], o) for k, o in listing.items()
               if self.before.get(k) != o.etag and _DATA_FILE.match(k[len(self.prefix):])]
        for instance_id, task in self.tasks.items():
            mine = [o for rel, o in new if part_of(rel) in self.shares[instance_id]]
            name = self.bar.tasks[task].fields.get("name")
            self.bar.update(task, description=self._text(instance_id, name, len(mine), sum(o.size for o in mine)))

    def __enter__(self) -> _UploadProgress:
        if not self.bar.disable:  # nothing to show: no listings
            self.bar.start()
            self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()
            self._refresh()  # the final counts, whenever the last listing was
        self.bar.stop()


def _raise_failed(rounds: list[list[InstanceShare]], pending: list[int]) -> None:
    """CommandFailed naming every instance that failed, with its output's end (parts are left
    only once every instance failed, so there is at least one)."""
    failed = [share for shares in rounds for share in shares if not share.ok]
    lines = []
    for share in failed:
        code = "no exit code" if share.exit_code is None else f"exit code {share.exit_code}"
        hint = ("it finished, but its files are not in the bucket as it reported them (see the warnings above)"
                if share.status == "Success" else ssm.failure_hint(share.status, ""))
        lines.append(f"  {share.label}: parts {','.join(map(str, share.parts))}: {share.status} ({code})"
                     + (f": {hint}" if hint else ""))
        lines += [f"    | {line}" for line in share.output_tail.splitlines()]
        if share.output_url:
            lines.append(f"    full output: {share.output_url}")
    lines.append(f"  part(s) {','.join(map(str, pending))} still missing, no manifest written; run the same command "
                 "again: verified parts are kept")
    first = failed[0]
    raise CommandFailed(first.instance_id, first.exit_code, first.output_tail, status=first.status,
                        failed=tuple(s.instance_id for s in failed), details="\n".join(lines))
