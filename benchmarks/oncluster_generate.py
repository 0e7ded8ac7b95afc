"""Benchmark: a dataset in the bucket by local generation plus sync, against generation on the
cluster, both into the emulator; and the arithmetic for AWS, labelled as an estimate.

Per scale factor: (a) `generate_tpch` on this machine, then `sync_dataset` to a moto bucket;
(b) `generate_on_cluster` on stand-in instances (LocalAgent runs each instance's SSM command on
this machine: the real generator, curl posting each part to moto). The on-cluster bucket must
hold the local generation's files byte for byte (sha256), else the script fails. The estimate
multiplies the per-core generation rate measured in (a) by the instances' cores, against a
stated uplink for the local path. The result is written into BENCHMARKS.md between the
`<!-- oncluster:start -->` and `<!-- oncluster:end -->` markers.

    .venv/bin/python benchmarks/oncluster_generate.py [--sf 0.01,0.1] [--partitions 4] [--instances 2]
        [--uplink-mbit 50] [--no-write]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import time

import boto3

from dfbench.aws.ssm import OUTPUT_PREFIX
from dfbench.data import generate_tpch, sync_dataset
from dfbench.oncluster import generate_on_cluster
from dfbench_testing import Faults, LocalAgent, hooked, launched_cluster
from emulator import emulated_aws
from report import write_section  # benchmarks/ is on sys.path: scripts run as files

# What the README's tpch_sf100 flow runs on: the default cluster.
AWS_INSTANCES, AWS_VCPUS, AWS_TYPE = 12, 8, "c5n.2xlarge"
TARGET_SF = 100


def bucket_sha256(s3: object, bucket: str, prefix: str) -> dict[str, str]:
    found = {}
    for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):  # type: ignore[attr-defined]
        rel = item["Key"][len(prefix):]
        if rel.endswith(".parquet"):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()  # type: ignore[attr-defined]
            found[rel] = hashlib.sha256(body).hexdigest()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sf", default="0.01,0.1", help="scale factors, comma-separated")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--uplink-mbit", type=float, default=50.0, help="the user's uplink for the estimate")
    parser.add_argument("--no-write", action="store_true", help="print the section, leave BENCHMARKS.md alone")
    args = parser.parse_args()
    scale_factors = [s.strip() for s in args.sf.split(",") if s.strip()]
    cores = os.cpu_count() or 1
    rows, rates = [], []
    with emulated_aws() as (_, workdir):
        session = boto3.Session(region_name="us-east-1")
        s3 = session.client("s3")
        session.client("ssm").list_commands()  # moto builds its SSM backend now, not inside a timing
        faults = Faults()
        with hooked(faults.hook):
            for number, sf in enumerate(scale_factors):
                data_dir = workdir / f"data-{number}"
                started = time.perf_counter()
                local = generate_tpch(sf, partitions=args.partitions, data_dir=data_dir, progress=False)
                generated = time.perf_counter() - started
                s3.create_bucket(Bucket=f"local-{number}")
                started = time.perf_counter()
                sync_dataset(local.name, bucket=f"local-{number}", data_dir=data_dir, progress=False)
                synced = time.perf_counter() - started

                cluster = launched_cluster(session, name=f"gen{number}", count=args.instances,
                                           bucket=f"cluster-{number}")
                with LocalAgent(faults, s3=s3, bucket=cluster.bucket, prefix=OUTPUT_PREFIX,
                                online=[i.instance_id for i in cluster.instances]):
                    started = time.perf_counter()
                    report = generate_on_cluster(cluster, scale_factor=sf, partitions=args.partitions,
                                                 progress=False, timeout_s=86_400)
                    on_cluster = time.perf_counter() - started
                expected = {f.path: f.sha256 for f in local.manifest.files}
                got = bucket_sha256(s3, cluster.bucket, f"{local.name}/")
                if got != expected:
                    differ = sorted(set(got.items()) ^ set(expected.items()))[:5]
                    raise SystemExit(f"SF {sf}: the on-cluster dataset differs from the local one: {differ}")
                size = local.manifest.total_bytes
                rates.append(size / generated / cores)
                rows.append(f"| {sf} | {len(expected)} | {size / 1e6:,.1f} | {generated:.1f} | {synced:.1f} "
                            f"| {generated + synced:.1f} | {on_cluster:.1f} | {len(report.rounds)} | identical |")
                print(rows[-1], flush=True)

    # The estimate, from the largest scale factor measured (the most data per fixed start-up cost).
    rate = rates[-1]  # bytes per second per core, this machine
    per_sf = local.manifest.total_bytes / float(scale_factors[-1])
    target = per_sf * TARGET_SF
    uplink = args.uplink_mbit * 1e6 / 8
    local_total = target / (rate * cores) + target / uplink
    cluster_total = target / (rate * AWS_INSTANCES * AWS_VCPUS)
    body = "\n".join([
        "## Datasets on the cluster: local generation + sync against on-cluster generation",
        "",
        (f"`.venv/bin/python benchmarks/oncluster_generate.py --sf {args.sf} --partitions {args.partitions} "
        f"--instances {args.instances}`, {time.strftime('%Y-%m-%d')}, on {cores} cores ({platform.python_version()}; "
        f"load average {os.getloadavg()[0]:.1f} when it ended): TPC-H, {args.partitions} partitions, both into a "
        f"moto server on 127.0.0.1. On-cluster: {args.instances} stand-in instances, each SSM command run here by "
        "LocalAgent (the real generator, curl posting each part to a presigned POST), so the instances share this "
        "machine's cores: the emulator measures dfbench's own overhead (artifact, command, verification of every "
        "file against S3, footers for row counts, manifest), not the speed-up. Every on-cluster dataset was checked "
        "byte for byte (sha256 of every file) against the local generation."),
        "",
        "| SF | files | MB | generate (s) | sync (s) | local + sync (s) | on-cluster (s) | commands | bytes |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        (f"**Estimate for AWS, not a measurement.** Measured here: {rate / 1e6:.1f} MB/s of parquet per core "
        f"(SF {scale_factors[-1]}, all {cores} cores, the whole generate call). TPC-H SF{TARGET_SF} at "
        f"{per_sf / 1e6:,.0f} MB per unit of SF is about {target / 1e9:,.1f} GB. Locally on {cores} cores and a "
        f"{args.uplink_mbit:g} Mbit/s uplink: {target / (rate * cores) / 60:,.0f} min generating + "
        f"{target / uplink / 60:,.0f} min uploading = **{local_total / 60:,.0f} min**. On {AWS_INSTANCES} × "
        f"{AWS_TYPE} ({AWS_VCPUS} vCPUs each) at the same per-core rate, S3 uploads in the region assumed to keep up "
        f"(the instances' network is 25 Gbit/s): **{cluster_total / 60:,.1f} min**. Assumed, not measured: that "
        "a vCPU generates as fast as a core here, and that the rate stays linear up to SF 100."),
    ])
    print(body)
    write_section("oncluster", body)


if __name__ == "__main__":
    main()
