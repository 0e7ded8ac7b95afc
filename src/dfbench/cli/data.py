"""The dataset commands: generate, sync and list."""

from __future__ import annotations

import argparse
import json

from dfbench.cli.output import cluster_of, emit, out, size_text


def run_data(args: argparse.Namespace) -> int:
    from dfbench import data

    if args.data_command == "generate":
        generator = data.generate_tpcds if args.benchmark == "tpcds" else data.generate_tpch
        result = generator(args.sf, partitions=args.partitions, data_dir=args.data_dir,
                           compression=args.compression, force=args.force)
        if result.generated:
            out.print(f"generated {result.path}: {len(result.manifest.files)} files, "
                      f"{size_text(result.manifest.total_bytes)}")
        else:
            out.print(f"{result.path} is complete: nothing to do")
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

