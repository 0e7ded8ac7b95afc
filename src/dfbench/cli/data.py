"""The dataset commands: generate, sync and list."""

from __future__ import annotations

import argparse
import json
from typing import Any

from dfbench.cli.output import cluster_of, emit, out, size_text
from dfbench.errors import ConfigError


def run_data(args: argparse.Namespace) -> int:
    from dfbench import data

    if args.data_command == "generate" and args.on_cluster:
        if args.sorted:
            raise ConfigError("--sorted is generated here, not --on-cluster: generate it locally and "
                              "`dfbench data sync tpch_sorted_sf<SF>`.")
        return _generate_on_cluster(args)
    if args.data_command == "generate":
        if args.cluster or args.generator:
            raise ConfigError("--cluster and --generator go with --on-cluster (generation on the cluster's "
                              "instances); without it the data is generated here.")
        if args.sorted and args.benchmark != "tpch":
            raise ConfigError("--sorted is TPC-H's sorted variant (upstream's tpch/sorted_sf<SF>): there is no "
                              "sorted TPC-DS.")
        sorted_ = {"sorted": True} if args.sorted else {}
        generator = data.generate_tpcds if args.benchmark == "tpcds" else data.generate_tpch
        result = generator(args.sf, partitions=args.partitions, data_dir=args.data_dir,
                           compression=args.compression, force=args.force, **sorted_)
        emit(args, result, lambda r: out.print(
            f"generated {r.path}: {len(r.manifest.files)} files, {size_text(r.manifest.total_bytes)}"
            if r.generated else f"{r.path} is complete: nothing to do"))
        return 0
    if args.data_command == "clickbench":
        result = data.download_clickbench(args.partitions, args.data_dir, url=args.url or data.CLICKBENCH_URL,
                                          workers=args.workers)
        out.print(f"{'downloaded' if result.generated else 'complete, nothing to do:'} {result.path}: "
                  f"{len(result.manifest.files)} files, {size_text(result.manifest.total_bytes)}")
        return 0
    if args.data_command == "sync":
        report = data.sync_dataset(args.dataset, bucket=args.bucket, cluster=cluster_of(args),
                                   data_dir=args.data_dir, delete=args.delete, region=args.region,
                                   profile=args.profile)
        emit(args, report, lambda r: out.print(
            f"s3://{r.bucket}/{r.dataset}/: uploaded {r.uploaded_files} files ({size_text(r.uploaded_bytes)}), "
            f"skipped {r.skipped_files} unchanged, deleted {r.deleted_files}"))
        return 0
    if args.data_command == "pull":
        result = data.pull_dataset(args.dataset, bucket=args.bucket, cluster=cluster_of(args), data_dir=args.data_dir,
                                   region=args.region, profile=args.profile)
        emit(args, result, lambda r: out.print(
            f"{'pulled' if r.generated else 'complete, nothing to fetch:'} {r.path}: {len(r.manifest.files)} files, "
            f"{size_text(r.manifest.total_bytes)}"))
        return 0
    found = data.list_datasets(args.data_dir, bucket=args.bucket, cluster=cluster_of(args),
                               region=args.region, profile=args.profile)
    if args.json:
        print(json.dumps([d.model_dump(mode="json") for d in found], indent=2))
        return 0
    from rich.table import Table  # here: the other dataset commands draw no table

    table = Table(show_header=True, header_style="bold")
    for column in ("dataset", "location", "complete", "files", "size", "scale factor"):
        table.add_column(column)
    for d in found:
        table.add_row(d.name, d.location, "yes" if d.complete else "[yellow]no[/]", str(d.files), size_text(d.bytes),
                      f"{d.scale_factor:g}" if d.scale_factor is not None else "-")
    out.print(table if found else f"no datasets in {args.data_dir}")
    return 0



def _generate_on_cluster(args: argparse.Namespace) -> int:
    from dfbench.oncluster import generate_on_cluster

    report = generate_on_cluster(args.cluster or "dfbench", benchmark=args.benchmark, scale_factor=args.sf,
                                 partitions=args.partitions, compression=args.compression, force=args.force,
                                 generator=args.generator, region=args.region, profile=args.profile)

    def text(r: Any) -> None:
        for number, shares in enumerate(r.rounds, 1):
            for share in shares:
                state = "ok" if share.ok else f"[red]{share.status}[/] (its parts went to the others)"
                out.print(f"command {number}: {share.label}: parts {','.join(map(str, share.parts))}: {state}")
        if not r.manifest_written:
            out.print(f"{r.url} is complete: nothing to do")
            return
        kept = f", {len(r.reused)} verified earlier" if r.reused else ""
        out.print(f"generated {r.url} on {r.cluster}: {len(r.generated)} part(s) made now{kept}; {r.files} files, "
                  f"{size_text(r.bytes)}; manifest written")

    emit(args, report, text)
    return 0
