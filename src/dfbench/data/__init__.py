"""Datasets: generation (generate, with tpch and tpcds; the on-cluster script in oncluster),
ClickBench's download (clickbench), manifests (manifest), the bucket sync (sync) and its reverse
(pull), finding datasets locally and in the bucket (catalog), scale factors and dataset names
(scale)."""

from dfbench.data.catalog import (
                                  DEFAULT_DATA_DIR,
                                  DatasetInfo,
                                  LocalDataset,
                                  RemoteTable,
                                  list_datasets,
                                  local_dataset,
                                  remote_tables,
)
from dfbench.data.clickbench import CLICKBENCH_URL, download_clickbench
from dfbench.data.manifest import CHECKSUM_CACHE, MANIFEST, DatasetFile, Manifest, TableInfo, is_complete, read_manifest
from dfbench.data.pull import pull_dataset
from dfbench.data.scale import (
                                  benchmark_of,
                                  canonical_dataset,
                                  checked_dataset,
                                  dataset_name,
                                  format_scale_factor,
                                  is_sorted,
                                  make_command,
                                  scale_factor_of,
                                  tpch_dataset_name,
)
from dfbench.data.sync import SyncReport, sync_dataset
from dfbench.data.tpcds import TPCDS_TABLES, generate_tpcds
from dfbench.data.tpch import TPCH_FIXED_ROWS, TPCH_ROWS_PER_SF, TPCH_TABLES, generate_tpch

__all__ = [
    "CHECKSUM_CACHE",
    "CLICKBENCH_URL",
    "DEFAULT_DATA_DIR",
    "MANIFEST",
    "TPCDS_TABLES",
    "TPCH_FIXED_ROWS",
    "TPCH_ROWS_PER_SF",
    "TPCH_TABLES",
    "DatasetFile",
    "DatasetInfo",
    "LocalDataset",
    "Manifest",
    "RemoteTable",
    "SyncReport",
    "TableInfo",
    "benchmark_of",
    "canonical_dataset",
    "checked_dataset",
    "dataset_name",
    "download_clickbench",
    "format_scale_factor",
    "generate_tpcds",
    "generate_tpch",
    "is_complete",
    "is_sorted",
    "list_datasets",
    "local_dataset",
    "make_command",
    "pull_dataset",
    "read_manifest",
    "remote_tables",
    "scale_factor_of",
    "sync_dataset",
    "tpch_dataset_name",
]
