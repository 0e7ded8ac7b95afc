"""The plan-metrics parser on plans in upstream's display format (tests/fixtures/upstream_plans,
written from upstream's display code at a named commit: see each file's header), and its soft
failure on anything else."""

from __future__ import annotations

from pathlib import Path

import pytest

from dfbench.bench.plan_metrics import METRICS, parse_plan_metrics
from dfbench.bench.results import Iteration

FIXTURES = Path(__file__).parent / "fixtures" / "upstream_plans"
KB, MB, GB = 1024, 1024**2, 1024**3


def plan(name: str) -> str:
    """A fixture's plan: the text after its header of ``#`` lines."""
    lines = (FIXTURES / name).read_text().splitlines()
    while lines and (lines[0].startswith("#") or not lines[0].strip()):
        lines.pop(0)
    return "\n".join(lines) + "\n"


# The totals, worked out by hand from each fixture's numbers.
EXPECTED = {
    "per_task_three_stages.txt": {
        # coordinator's boundary 2.4 KB; stage 3's {1228.8 KB, 1240.0 KB}; stage 2's {3.1, 3.1, 3.2 MB}
        "bytesMoved": round(2.4 * KB + (1228.8 + 1240.0) * KB + (3.1 + 3.1 + 3.2) * MB),
        "messages": 8 + (24 + 24) + (48 + 48 + 49),
        "networkRows": 20 + (11_310 + 11_350) + (49_070 + 48_950 + 49_110),
        "spills": 1 + 2, "spilledBytes": (64 + 128) * MB,
        "bytesScanned": 1_370_000 + 1_360_000 + 1_370_000 + 6_020_000 + 6_010_000 + 6_030_000 + 6_000_000,
        "stages": 3, "tasks": 2 + 3 + 4,
    },
    "aggregated_two_stages.txt": {
        "bytesMoved": round((3.9 + 41.3) * KB), "messages": 4 + 48, "networkRows": 4 + 48, "spills": 2,
        # A size's "2.5 GB" is bytes; a count's "1.00 B" (bytes_scanned) is a billion.
        "spilledBytes": round(2.5 * GB), "bytesScanned": 1_000_000_000, "stages": 2, "tasks": 2 + 3,
    },
    "per_task_broadcast.txt": {
        "bytesMoved": 912 + 1126 * 2, "messages": 2 + 2, "networkRows": 7 + 10, "spills": 0, "spilledBytes": 0,
        "bytesScanned": 2_310 + 2_290 + 1_020, "stages": 2, "tasks": 2 + 1,
    },
}


@pytest.mark.parametrize("name", EXPECTED)
def test_totals_of_upstream_plans(name: str) -> None:
    metrics = parse_plan_metrics(plan(name))
    assert metrics == EXPECTED[name]
    assert list(metrics) == list(METRICS)


def test_a_plan_displayed_without_metrics_gives_stages_and_tasks_only() -> None:
    bare = "\n".join(line.split(", metrics=[")[0] for line in plan("per_task_three_stages.txt").splitlines())
    assert parse_plan_metrics(bare) == {"stages": 3, "tasks": 9}


@pytest.mark.parametrize("text", [
    "",
    # dfbench's local worker: DataFusion's own indented plan
    "ProjectionExec: expr=[a@0 as a]\n  DataSourceExec: file_groups={1 group: [[x.parquet]]}, file_type=parquet\n",
    "something else entirely ┌ │ └",
])
def test_another_format_gives_empty_metrics(text: str) -> None:
    assert parse_plan_metrics(text) == {}


def test_an_unreadable_value_gives_empty_metrics_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    broken = plan("aggregated_two_stages.txt").replace("bytes_transferred=41.3 KB", "bytes_transferred=lots")
    assert parse_plan_metrics(broken) == {}
    assert "plan metrics not read" in caplog.text


def test_an_iteration_records_the_metrics_of_its_plan_and_old_files_still_read(tmp_path: Path) -> None:
    text = plan("per_task_broadcast.txt")
    iteration = Iteration.from_response({"elapsed_ms": 12.5, "count": 7, "plan": text, "tasks": 3})
    assert iteration.metrics == EXPECTED["per_task_broadcast.txt"] and iteration.tasks == 3
    record = iteration.to_json()
    assert record["metrics"] == EXPECTED["per_task_broadcast.txt"] and record["tasks"] == 3
    assert Iteration.from_json(record, source=tmp_path / "q1.json", index=0) == iteration
    # A file written before metrics were recorded: read, metrics unknown (None), not empty.
    old = {"elapsed": 10, "rowCount": 7, "plan": text, "tasks": 3}
    assert Iteration.from_json(old, source=tmp_path / "q1.json", index=0).metrics is None
    assert "metrics" not in Iteration.failure("boom").to_json()
    # A worker whose plan is in another format: the query still succeeds, with empty metrics.
    other = Iteration.from_response({"elapsed_ms": 1.0, "count": 1, "plan": "ProjectionExec: expr=[]"})
    assert other.ok and other.metrics == {}
