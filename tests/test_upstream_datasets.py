"""Upstream's dataset spellings (tpch/sf10, tpch/sorted_sf10, tpcds/sf1, clickbench/0-100,
testdata/<suite>/<variant>) taken wherever a dataset is named, as one dataset with dfbench's
name; and sorted TPC-H (upstream #646) generated, benchmarked and synced."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dfbench.cli import main
from dfbench.data import canonical_dataset, generate_tpch, sync_dataset
from dfbench.data.sorted import SORT_KEYS, write_sorted
from dfbench.errors import ConfigError
from dfbench.runner import bench_local

SPELLINGS = {
    "tpch/sf10": "tpch_sf10", "tpch/sf0.01": "tpch_sf0.01", "tpch/sf1.0": "tpch_sf1",
    "tpch/sorted_sf10": "tpch_sorted_sf10", "tpcds/sf1": "tpcds_sf1", "clickbench/0-100": "clickbench_0-100",
    "testdata/tpch/sf1": "tpch_sf1", "testdata/clickbench/0-10": "clickbench_0-10",
    # dfbench's own names are already canonical.
    "tpch_sf10": "tpch_sf10", "tpch_sorted_sf1": "tpch_sorted_sf1", "hits": "hits",
}


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_each_spelling_maps_to_one_canonical_name(spelling: str) -> None:
    assert canonical_dataset(spelling) == SPELLINGS[spelling]


@pytest.mark.parametrize("name", ["tpcds/sorted_sf1", "tpch/sf1_iceberg", "imdb/job", "tpch/sf1/extra",
                                  "../tpch/sf1", "/abs/tpch/sf1", "tpch/sfx"])
def test_other_slashed_names_are_refused_naming_both_spellings(name: str) -> None:
    with pytest.raises(ConfigError, match=r"Invalid dataset name .* upstream's names, tpch/sf<SF>.*dfbench's are"):
        canonical_dataset(name)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    generate_tpch(0.01, partitions=2, data_dir=folder, progress=False)
    generate_tpch(0.01, partitions=2, data_dir=folder, progress=False, sorted=True)
    return folder


def test_bench_and_compare_take_upstream_s_spelling_as_the_same_dataset(data: Path, capsys: Any) -> None:
    for engine in ("base", "new"):
        assert main(["bench", "--dataset", "tpch/sf0.01", "--data-dir", str(data), "--queries", "q1,q6",
                     "--iterations", "1", "--engine", engine]) == 0
    engines = data / "tpch_sf0.01" / ".results-local"
    assert sorted(p.name for p in engines.iterdir()) == ["base", "new"]
    assert json.loads((engines / "new" / "q1.json").read_text())["dataset"] == "tpch_sf0.01"
    assert not (data / "tpch").exists()  # nothing filed under the slashed name
    capsys.readouterr()
    # Either spelling compares the same results.
    for spelling in ("tpch/sf0.01", "tpch_sf0.01", "testdata/tpch/sf0.01"):
        assert main(["compare", "--dataset", spelling, "--results", "local", "--data-dir", str(data), "base",
                     "new"]) in (0, 1)
        assert "=== Comparing tpch_sf0.01 results from engine 'base' [prev] with 'new' [new] ===" in \
            capsys.readouterr().out


def test_an_unknown_slashed_dataset_is_one_line_exit_2(data: Path, capsys: Any) -> None:
    assert main(["bench", "--dataset", "tpch/sf1_iceberg", "--data-dir", str(data)]) == 2
    err = capsys.readouterr().err
    assert "Invalid dataset name 'tpch/sf1_iceberg'" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2  # argparse's usage line, then the one error line


def test_sorted_tpch_has_the_unsorted_rows_and_upstream_s_sort_keys_in_every_footer(data: Path) -> None:
    plain, ordered = data / "tpch_sf0.01", data / "tpch_sorted_sf0.01"
    plain_files = sorted(p.relative_to(plain) for p in plain.glob("*/*.parquet"))
    assert sorted(p.relative_to(ordered) for p in ordered.glob("*/*.parquet")) == plain_files
    for rel in plain_files:
        table = rel.parts[0]
        source = pq.ParquetFile(ordered / rel)
        names = source.schema_arrow.names
        for group in range(source.num_row_groups):
            columns = [(names[c.column_index], c.descending, c.nulls_first)
                       for c in source.metadata.row_group(group).sorting_columns]
            assert columns == [(key, False, False) for key in SORT_KEYS[table]], rel
        assert pq.read_table(ordered / rel).equals(pq.read_table(plain / rel)), rel  # same rows, same order
        assert pq.ParquetFile(plain / rel).metadata.row_group(0).sorting_columns == ()
    manifest = json.loads((ordered / "manifest.json").read_text())
    assert (manifest["dataset"], manifest["benchmark"]) == ("tpch_sorted_sf0.01", "tpch")


def test_a_file_out_of_key_order_is_sorted_before_its_footer_claims_the_order(tmp_path: Path) -> None:
    path = tmp_path / "1.parquet"
    pq.write_table(pa.table({"o_orderkey": [3, 1, 2], "o_comment": ["c", "a", "b"]}), path)
    assert write_sorted(path, "orders", "ZSTD(3)") is False
    written = pq.ParquetFile(path)
    assert written.read().column("o_orderkey").to_pylist() == [1, 2, 3]
    assert written.read().column("o_comment").to_pylist() == ["a", "b", "c"]
    assert written.metadata.row_group(0).column(0).compression == "ZSTD"
    assert write_sorted(path, "orders", "SNAPPY") is True  # now in order: rewritten as it is
    with pytest.raises(ConfigError, match="Cannot write sorted TPC-H with compression 'LZO'"):
        write_sorted(path, "orders", "LZO")


def test_the_order_is_checked_on_every_key_and_across_row_groups(tmp_path: Path) -> None:
    # Within a row group: the second key out of order under an equal first key.
    path = tmp_path / "lineitem.parquet"
    pq.write_table(pa.table({"l_orderkey": [1, 1, 2], "l_linenumber": [2, 1, 1]}), path)
    assert write_sorted(path, "lineitem", "SNAPPY") is False
    assert pq.read_table(path).to_pydict() == {"l_orderkey": [1, 1, 2], "l_linenumber": [1, 2, 1]}
    # Each row group in order, the second starting below where the first ended.
    path = tmp_path / "part.parquet"
    pq.write_table(pa.table({"p_partkey": [3, 4, 1, 2]}), path, row_group_size=2)
    assert pq.ParquetFile(path).num_row_groups == 2
    assert write_sorted(path, "part", "SNAPPY") is False
    assert pq.read_table(path).column("p_partkey").to_pylist() == [1, 2, 3, 4]
    # In order across row groups: rewritten group for group, the footer declaring the key.
    pq.write_table(pa.table({"p_partkey": [1, 2, 2, 5]}), path, row_group_size=2)
    assert write_sorted(path, "part", "SNAPPY") is True
    written = pq.ParquetFile(path)
    assert written.num_row_groups == 2 and written.metadata.row_group(1).sorting_columns[0].column_index == 0


def test_sorted_tpch_is_benchmarked_with_tpch_s_queries_and_row_checks(data: Path) -> None:
    run = bench_local(dataset="tpch/sorted_sf0.01", queries="q1,q3,q6", iterations=1, warmup=False,
                      data_dir=data, progress=False)
    assert run.dataset == "tpch_sorted_sf0.01"
    # TPC-H's known answers are checked, as for tpch_sf0.01.
    assert [(q.id, q.status, q.rows, q.expected_rows) for q in run.queries] == [
        ("q1", "ok", 4, 4), ("q3", "ok", 138, 138), ("q6", "ok", 1, 1)]


def test_sorted_tpch_syncs_under_dfbench_s_prefix(aws: Any, inspector: Any, data: Path) -> None:
    inspector.client("s3").create_bucket(Bucket="sorted-data")
    report = sync_dataset("tpch/sorted_sf0.01", bucket="sorted-data", data_dir=data, progress=False)
    keys = {o["Key"] for o in inspector.client("s3").list_objects_v2(Bucket="sorted-data")["Contents"]}
    assert report.dataset == "tpch_sorted_sf0.01"
    assert "tpch_sorted_sf0.01/manifest.json" in keys and "tpch_sorted_sf0.01/lineitem/2.parquet" in keys
    assert all(k.startswith("tpch_sorted_sf0.01/") for k in keys)


def test_sorted_is_refused_for_tpcds_and_on_the_cluster(tmp_path: Path, capsys: Any) -> None:
    assert main(["data", "generate", "--benchmark", "tpcds", "--sorted", "--sf", "1", "--data-dir",
                 str(tmp_path)]) == 2
    assert "no sorted TPC-DS" in capsys.readouterr().err
    assert main(["data", "generate", "--sorted", "--on-cluster", "--sf", "1"]) == 2
    assert "generate it locally" in capsys.readouterr().err
