"""compare's TASKS line and, for each query whose time changed, what changed in what it did, from
the plans recorded in the result files (in upstream's display format: tests/fixtures/upstream_plans),
in text, markdown and JSON; files written before metrics were recorded explain themselves from
their plans."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dfbench.bench.plan_metrics import parse_plan_metrics
from dfbench.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "upstream_plans"
DATASET = "tpch_sf1"
NOISE = (0.98, 1.0, 1.01, 0.99, 1.02)


def plan(name: str) -> str:
    lines = (FIXTURES / name).read_text().splitlines()
    while lines and (lines[0].startswith("#") or not lines[0].strip()):
        lines.pop(0)
    return "\n".join(lines) + "\n"


THREE_STAGES = plan("per_task_three_stages.txt")
# The same query after a change that doubled what stage 1 sends and its tasks (4 → 8).
WIDER = (THREE_STAGES.replace("bytes_transferred={0:3.1 MB, 1:3.1 MB, 2:3.2 MB}",
                              "bytes_transferred={0:6.2 MB, 1:6.2 MB, 2:6.4 MB}")
         .replace("Stage 1 ── tasks=4, partitions=16", "Stage 1 ── tasks=8, partitions=32"))
TWO_STAGES = plan("aggregated_two_stages.txt")


def write(data_dir: Path, engine: str, query: str, ms: float, text: str, tasks: int, *, record: bool) -> None:
    """Five iterations around ``ms`` with ``text`` as their plan; with ``record`` the metrics are in
    the file (as dfbench writes them now), without it the file is one from before."""
    iterations = []
    for factor in NOISE:
        iteration: dict[str, Any] = {"elapsed": ms * factor, "rowCount": 10, "plan": text, "tasks": tasks}
        if record:
            iteration["metrics"] = parse_plan_metrics(text)
        iterations.append(iteration)
    path = data_dir / DATASET / ".results-remote" / engine / f"{query}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"id": query, "dataset": DATASET, "engine": engine, "iterations": iterations}))


def results(tmp_path: Path) -> Path:
    write(tmp_path, "main", "q1", 400, TWO_STAGES, 5, record=True)
    write(tmp_path, "branch", "q1", 400, TWO_STAGES, 5, record=False)  # unchanged
    write(tmp_path, "main", "q3", 100, THREE_STAGES, 9, record=True)
    write(tmp_path, "branch", "q3", 200, WIDER, 13, record=False)  # 2× slower: an older file, plans only
    return tmp_path


def compare(data_dir: Path, capsys: Any, *extra: str) -> str:
    # The metrics explain a change the comparison calls; two runs of five iterations with the
    # default run-to-run floor (±39% per query) leave q3's 2x inconclusive, so the floor is the
    # user's own here: none.
    assert main(["compare", "--dataset", DATASET, "--data-dir", str(data_dir), "main", "branch",
                 "--run-to-run", "0", *extra]) == 0
    return capsys.readouterr().out


# bytes moved: 2.4 KB + (1228.8 + 1240.0) KB + stage 1's 9.4 MB, then 18.8 MB: 1.80×.
EXPLANATION = "q3 2.00× slower: bytes moved 1.80×, tasks 9 → 13"


def test_text_prints_tasks_after_the_tooling_lines_and_explains_the_slower_query(tmp_path, capsys) -> None:
    lines = compare(results(tmp_path), capsys).splitlines()
    total = next(i for i, line in enumerate(lines) if line.startswith("   TOTAL"))
    # The sum of the per-query average tasks: q1 5 + q3 9, then 5 + 13.
    assert lines[total + 1] == "   TASKS: prev=14, new=18"
    assert EXPLANATION in lines
    assert not any(line.startswith("q1 ") for line in lines)  # its time did not change


def test_markdown_and_json_carry_the_same_facts(tmp_path, capsys) -> None:
    data_dir = results(tmp_path)
    markdown = compare(data_dir, capsys, "--format", "markdown")
    assert "- TASKS: prev=14, new=18" in markdown and f"- {EXPLANATION}" in markdown
    data = json.loads(compare(data_dir, capsys, "--format", "json"))
    assert data["tasks"] == {"prev": 14, "new": 18}
    q3 = data["metrics"]["q3"]
    assert q3["explanation"] == EXPLANATION and q3["changes"] == ["bytes moved 1.80×", "tasks 9 → 13"]
    assert q3["base"] == parse_plan_metrics(THREE_STAGES) and q3["new"] == parse_plan_metrics(WIDER)
    assert data["metrics"]["q1"]["changes"] == [] and data["metrics"]["q1"]["explanation"] is None


def test_runs_without_tasks_or_readable_plans_print_neither(tmp_path, capsys) -> None:
    for engine, ms in (("main", 100), ("branch", 300)):
        write(tmp_path, engine, "q1", ms, "ProjectionExec: expr=[a@0 as a]", 0, record=False)
        write(tmp_path, engine, "q2", ms, "ProjectionExec: expr=[b@0 as b]", 0, record=False)
    text = compare(tmp_path, capsys)
    assert "TASKS" not in text and "q1 3.00× slower" not in text and "slower" in text
