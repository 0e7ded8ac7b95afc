"""dfbench.comparison: CDK-tooling-compatible text, statistics, formats, command line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from dfbench import cli as dfbench_cli
from dfbench.comparison import Comparison, compare, load_results, render
from dfbench.comparison.render import percent
from dfbench.comparison.stats import RUN_TO_RUN, t_critical, t_two_sided_p
from dfbench.errors import ConfigError

DATASET = "tpch_sf1"
NOISE = (0.97, 0.99, 1.0, 1.01, 1.03)  # deterministic "noise" of five iterations
NOISE_2 = (1.02, 0.98, 1.0, 0.985, 1.015)
NOISE_3 = (0.99, 1.04, 1.01, 0.97, 1.0)
MIXED = (NOISE_2, NOISE_3, NOISE)  # cycled over the queries of a suite


def write(data_dir: Path, engine: str, query: str, timings: list[float] | None = None, *,
          errors: int = 0, results: str = "remote", qerr: tuple[float, float] | None = None) -> Path:
    """One result file; ``timings`` successful iterations plus ``errors`` failed ones."""
    iterations = []
    for elapsed in timings or []:
        iteration = {"elapsed": elapsed, "rowCount": 4, "plan": "plan", "tasks": 3}
        if qerr is not None:
            iteration["statsQErrorP50"], iteration["statsQErrorP95"] = qerr
        iterations.append(iteration)
    iterations += [{"elapsed": 0, "rowCount": 0, "plan": "", "tasks": 0, "error": "Broken pipe"}] * errors
    path = data_dir / DATASET / f".results-{results}" / engine / f"{query}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"id": query, "dataset": DATASET, "engine": engine, "iterations": iterations}))
    return path


def suite_of(data_dir: Path, engine: str, factor: float = 1.0, noise=NOISE, queries: int = 10) -> None:
    """Query qN takes N * 100 ms * factor; ``noise`` is one tuple, or a tuple of them to cycle."""
    patterns = noise if isinstance(noise[0], tuple) else (noise,)
    for number in range(1, queries + 1):
        base_ms = 100.0 * number
        pattern = patterns[(number - 1) % len(patterns)]
        write(data_dir, engine, f"q{number}", [base_ms * factor * n for n in pattern])


def run(data_dir: Path, **kwargs) -> Comparison:
    """The comparison judged on the iterations' noise alone (no run-to-run allowance), which is what
    most tests here are about; the calibrated run-to-run floor has its own tests below."""
    kwargs.setdefault("run_to_run", 0.0)
    return compare(dataset=DATASET, base="main", new="branch", data_dir=data_dir, **kwargs)


def lines_of(comparison: Comparison) -> list[str]:
    return render(comparison, "text").splitlines()


# --------------------------------------------------------------------------- the CDK tooling's text


def test_tooling_line_is_byte_exact(tmp_path: Path) -> None:
    write(tmp_path, "main", "q1", [230, 237, 240])
    write(tmp_path, "branch", "q1", [236, 236, 236])
    text = lines_of(run(tmp_path))
    assert text[0] == "=== Comparing tpch_sf1 results from engine 'main' [prev] with 'branch' [new] ==="
    assert text[1] == "      q1: prev= 237 ms, new= 236 ms, diff=1.00 faster ✔"


def test_p50_is_median_of_successes_rounded_half_up(tmp_path: Path) -> None:
    # median 236.5 -> 237 (JavaScript Math.round); Python's round() would print 236.
    write(tmp_path, "main", "q1", [236, 237])
    # median of [12344.5, 12345.5] = 12345 -> wider than 4, not cut.
    write(tmp_path, "branch", "q1", [12344.5, 12345.5])
    assert lines_of(run(tmp_path))[1] == "      q1: prev= 237 ms, new=12345 ms, diff=52.09 slower ❌"


@pytest.mark.parametrize(("prev", "new", "expected"), [
    (100, 121, "diff=1.21 slower ❌"),
    (121, 100, "diff=1.21 faster ✅"),
    (100, 120, "diff=1.20 slower ✖"),  # the mark needs a factor *above* 1.2
    (120, 100, "diff=1.20 faster ✔"),
    (100, 100, "diff=1.00 slower ✖"),  # the CDK tooling calls a tie "slower"
])
def test_tooling_marks(tmp_path: Path, prev: int, new: int, expected: str) -> None:
    write(tmp_path, "main", "q7", [prev])
    write(tmp_path, "branch", "q7", [new])
    assert lines_of(run(tmp_path))[1] == f"      q7: prev={prev:4d} ms, new={new:4d} ms, {expected}"


def test_queries_in_numeric_order(tmp_path: Path) -> None:
    for query in ("q10", "q2", "q1", "q21", "q3"):
        write(tmp_path, "main", query, [100])
        write(tmp_path, "branch", query, [100])
    ids = [line.split(":")[0].strip() for line in lines_of(run(tmp_path))[1:6]]
    assert ids == ["q1", "q2", "q3", "q10", "q21"]
    assert [query.id for query in run(tmp_path).queries] == ["q1", "q2", "q3", "q10", "q21"]
    assert list(load_results(tmp_path, DATASET, "main")) == ["q1", "q2", "q3", "q10", "q21"]


def write_with(data_dir: Path, engine: str, query: str, iterations: list[dict], **top: str) -> None:
    path = data_dir / DATASET / ".results-remote" / engine / f"{query}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"id": query, "dataset": DATASET, "engine": engine, **top, "iterations": iterations}))


def ok(elapsed: float, rows: int = 4, qerr: tuple[float, float] | None = None) -> dict:
    iteration = {"elapsed": elapsed, "rowCount": rows, "plan": "p", "tasks": 1}
    if qerr is not None:
        iteration["statsQErrorP50"], iteration["statsQErrorP95"] = qerr
    return iteration


FAIL = {"elapsed": 0, "rowCount": 0, "plan": "", "tasks": 0, "error": "Broken pipe"}


def test_tooling_text_for_every_case(tmp_path: Path) -> None:
    """The expected text is derived by hand from the CDK tooling's code, datafusion-contrib/
    datafusion-distributed benchmarks/cdk/bin/@results.ts (the version whose BenchmarkRun.compare
    sums TOTAL; lines 81-132 there): BenchmarkRun.compare prints the header, walks the NEW side's
    queries in numeric order and skips one the base lacks (`if (!prevQuery) continue`), so a query
    on one side only gets no line; BenchResult.compare prints the failure lines with the bare id
    (`${this.id}: Previously ...`, no padStart) when ANY iteration has an error on either side
    (`iterations.find(v => v.error)`), otherwise `id.padStart(8)` with p50 = Math.round(median of
    the successful elapsed); TOTAL sums representativeTime() (undefined when any iteration errored)
    of the queries in both, prints `prev=${total}` unpadded and diff with toFixed(2); QERR lines
    (printQErrorComparison) give the median of statsQErrorP50/P95 over the iterations of the
    queries in TOTAL, `n/a` for a side without any. (Its bin/compare.ts prints the same header and
    per-query lines, by the same BenchResult.compare, for two engines.) dfbench's own line follows
    the tooling's."""
    write_with(tmp_path, "main", "q1", [ok(100, qerr=(1.5, 4.0)), ok(110, qerr=(1.25, 2.0))])
    write_with(tmp_path, "branch", "q1", [ok(90), ok(100)])                      # success: 105 -> 95
    write_with(tmp_path, "main", "q2", [ok(200), ok(200)])
    write_with(tmp_path, "branch", "q2", [ok(200), FAIL])                        # one failed iteration of two
    write_with(tmp_path, "main", "q3", [ok(300), FAIL])
    write_with(tmp_path, "branch", "q3", [ok(300), ok(301)])                     # fixed
    write_with(tmp_path, "main", "q4", [FAIL])
    write_with(tmp_path, "branch", "q4", [FAIL, FAIL])                           # failed on both
    write_with(tmp_path, "main", "q5", [ok(500)])                                # missing on the new side
    write_with(tmp_path, "branch", "q6", [ok(600)])                              # missing on the base side
    write_with(tmp_path, "main", "q10", [ok(1000, qerr=(2.0, 8.0))])
    write_with(tmp_path, "branch", "q10", [ok(1300)])                            # slower above 1.2
    assert lines_of(run(tmp_path))[:11] == [
        "=== Comparing tpch_sf1 results from engine 'main' [prev] with 'branch' [new] ===",
        "      q1: prev= 105 ms, new=  95 ms, diff=1.11 faster ✔",
        "q2: Previously succeeded, but now failed ❌",
        "q3: Previously failed, but now succeeded 🟠",
        "q4: Previously failed, and now also failed ❌",
        "     q10: prev=1000 ms, new=1300 ms, diff=1.30 slower ❌",
        "   TOTAL: prev=1105 ms, new=1395 ms, diff=1.26 slower ❌",
        "QERR P50: prev=1.50x, new=n/a",
        "QERR P95: prev=4.00x, new=n/a",
        # The sum of the per-query average tasks of the queries in TOTAL (q1, q10: one task each).
        "   TASKS: prev=2, new=2",
        "not in TOTAL: 3 failed (q2, q3, q4), 2 missing (q5 (only on the base side), q6 (only on the new side))",
    ]


def test_one_meaning_of_failed(tmp_path: Path) -> None:
    """A query with one failed iteration of two is failed: out of TOTAL, of the statistics, and a
    newly failing query fails --fail-on-regression."""
    write_with(tmp_path, "main", "q1", [ok(100), ok(100)])
    write_with(tmp_path, "branch", "q1", [ok(100), FAIL])
    comparison = run(tmp_path, fail_on_regression=True)
    assert comparison.queries[0].verdict == "failed" and comparison.queries[0].newly_failed
    assert comparison.suite.queries == 0 and comparison.suite.failed == 1
    assert comparison.exit_code == 1


def test_total_of_nothing_is_nan_as_in_javascript(tmp_path: Path) -> None:
    # 0/0 in the tooling's TOTAL is NaN, and NaN > 1.2 is false: "diff=NaN slower ✖".
    write_with(tmp_path, "main", "q1", [FAIL])
    write_with(tmp_path, "branch", "q1", [ok(100)])
    assert "   TOTAL: prev=0 ms, new=0 ms, diff=NaN slower ✖" in lines_of(run(tmp_path))


def test_exact_half_rounds_up_as_to_fixed(tmp_path: Path) -> None:
    # 0.125 is exact in binary: JavaScript's toFixed(2) gives 0.13, Python's format 0.12.
    write(tmp_path, "main", "q1", [100], qerr=(0.125, 1.0))
    write(tmp_path, "branch", "q1", [100], qerr=(0.125, 1.0))
    assert "QERR P50: prev=0.13x, new=0.13x" in lines_of(run(tmp_path))


def test_total_without_exclusions_is_the_tooling_line(tmp_path: Path) -> None:
    write(tmp_path, "main", "q1", [1000])
    write(tmp_path, "branch", "q1", [1300])
    write(tmp_path, "main", "q2", [200])
    write(tmp_path, "branch", "q2", [200])
    lines = lines_of(run(tmp_path))
    assert "   TOTAL: prev=1200 ms, new=1500 ms, diff=1.25 slower ❌" in lines
    assert not any(line.startswith("not in TOTAL") for line in lines)


def test_qerror_lines(tmp_path: Path) -> None:
    write(tmp_path, "main", "q1", [100, 100, 100], qerr=(1.5, 4.0))
    write(tmp_path, "branch", "q1", [100, 100, 100], qerr=(1.25, 3.0))
    write(tmp_path, "main", "q2", [100], qerr=(3.0, 9.0))
    write(tmp_path, "branch", "q2", [100])
    lines = lines_of(run(tmp_path))
    index = next(i for i, line in enumerate(lines) if "TOTAL" in line)
    assert lines[index + 1: index + 3] == ["QERR P50: prev=1.50x, new=1.25x", "QERR P95: prev=4.00x, new=3.00x"]


def test_no_qerror_lines_without_values(tmp_path: Path) -> None:
    write(tmp_path, "main", "q1", [100])
    write(tmp_path, "branch", "q1", [100])
    assert not any("QERR" in line for line in lines_of(run(tmp_path)))


# --------------------------------------------------------------------------- correctness apart from speed


def test_rows_differ_named_for_that_query_only_and_fail_the_check(tmp_path: Path) -> None:
    write_with(tmp_path, "main", "q1", [ok(100, rows=460)])
    write_with(tmp_path, "branch", "q1", [ok(100, rows=100)])
    write_with(tmp_path, "main", "q2", [ok(100, rows=7)])
    write_with(tmp_path, "branch", "q2", [ok(100, rows=7)])
    comparison = run(tmp_path, fail_on_regression=True)
    lines = lines_of(comparison)
    assert "q1: rows differ: base 460, new 100" in lines
    assert not any(line.startswith("q2: rows") for line in lines)
    assert comparison.suite.verdict == "unchanged" and comparison.exit_code == 1
    markdown = render(comparison, "markdown")
    assert "- q1: rows differ: base 460, new 100" in markdown
    assert json.loads(render(comparison, "json"))["rows_differ"] == ["q1"]


def test_sql_differs_named_for_that_query_only(tmp_path: Path) -> None:
    write_with(tmp_path, "main", "q1", [ok(100)], sqlSha256="a" * 64)
    write_with(tmp_path, "branch", "q1", [ok(100)], sqlSha256="b" * 64)
    write_with(tmp_path, "main", "q2", [ok(100)], sqlSha256="c" * 64)
    write_with(tmp_path, "branch", "q2", [ok(100)], sqlSha256="c" * 64)
    write_with(tmp_path, "main", "q3", [ok(100)])  # the tooling's files carry no hash: nothing to say
    write_with(tmp_path, "branch", "q3", [ok(100)], sqlSha256="d" * 64)
    comparison = run(tmp_path)
    lines = lines_of(comparison)
    assert f"q1: SQL differs: base sha256 {'a' * 64}, new sha256 {'b' * 64}" in lines
    assert not any("SQL differs" in line for line in lines if not line.startswith("q1:"))
    assert json.loads(render(comparison, "json"))["sql_differs"] == ["q1"]
    assert "- q1: SQL differs" in render(comparison, "markdown")


def test_mixed_runs_in_one_engine_folder_are_named(tmp_path: Path) -> None:
    write_with(tmp_path, "main", "q1", [ok(100)], runId="r1")
    write_with(tmp_path, "main", "q2", [ok(100)], runId="r1")
    write_with(tmp_path, "branch", "q1", [ok(100)], runId="r2")
    write_with(tmp_path, "branch", "q2", [ok(100)], runId="r3")  # a later `--queries q2` run
    comparison = run(tmp_path)
    assert "branch (new): results from 2 runs mixed: run r2: q1; run r3: q2" in lines_of(comparison)
    assert not any(line.startswith("main (base)") for line in lines_of(comparison))
    assert json.loads(render(comparison, "json"))["mixed_runs"] == {"new": {"r2": ["q1"], "r3": ["q2"]}}


def test_run_and_sql_hash_round_trip_through_the_file(tmp_path: Path) -> None:
    from dfbench.bench.results import Iteration, QueryResult, read_query_result, write_query_result

    result = QueryResult("q1", DATASET, "main", [Iteration(elapsed=5, row_count=2)], run_id="r", sql_sha256="ab")
    path = write_query_result(tmp_path, result)
    assert list(json.loads(path.read_text())) == ["id", "dataset", "engine", "runId", "sqlSha256", "iterations"]
    assert read_query_result(path, dataset=DATASET, engine="main") == result


# --------------------------------------------------------------------------- verdicts


def test_identical_runs_are_unchanged(tmp_path: Path) -> None:
    suite_of(tmp_path, "main")
    suite_of(tmp_path, "branch")
    comparison = run(tmp_path)
    assert {query.verdict for query in comparison.queries} == {"unchanged"}
    assert comparison.suite.verdict == "unchanged"
    assert comparison.suite.geomean_ratio == pytest.approx(1.0)
    assert all(query.p_value == pytest.approx(1.0) for query in comparison.queries)
    assert comparison.exit_code == 0


def test_same_noise_level_different_draws_is_unchanged(tmp_path: Path) -> None:
    suite_of(tmp_path, "main", noise=NOISE)
    suite_of(tmp_path, "branch", noise=MIXED)
    comparison = run(tmp_path)
    assert {query.verdict for query in comparison.queries} == {"unchanged"}
    assert comparison.suite.verdict == "unchanged"
    assert comparison.suite.ci_low < 1 < comparison.suite.ci_high


def test_two_times_slower_everywhere(tmp_path: Path) -> None:
    suite_of(tmp_path, "main", noise=NOISE)
    suite_of(tmp_path, "branch", factor=2.0, noise=MIXED)
    comparison = run(tmp_path, fail_on_regression=True)
    assert {query.verdict for query in comparison.queries} == {"slower"}
    assert all(query.p_value < 1e-6 for query in comparison.queries)
    assert all(query.ratio == pytest.approx(2.0, rel=0.02) for query in comparison.queries)
    assert comparison.suite.verdict == "slower"
    assert comparison.suite.geomean_ratio == pytest.approx(2.0, rel=0.01)
    assert 1.0 < comparison.suite.ci_low < comparison.suite.geomean_ratio < comparison.suite.ci_high
    assert comparison.regressed and comparison.exit_code == 1
    assert run(tmp_path).exit_code == 0  # without fail_on_regression


def test_faster_everywhere(tmp_path: Path) -> None:
    suite_of(tmp_path, "main", noise=NOISE)
    suite_of(tmp_path, "branch", factor=0.8, noise=MIXED)
    comparison = run(tmp_path, fail_on_regression=True)
    assert {query.verdict for query in comparison.queries} == {"faster"}
    assert comparison.suite.verdict == "faster"
    assert comparison.suite.ci_high < 1.0
    assert comparison.exit_code == 0


def test_one_query_regression_is_named_and_others_are_not(tmp_path: Path) -> None:
    suite_of(tmp_path, "main", noise=NOISE)
    suite_of(tmp_path, "branch", noise=MIXED)
    write(tmp_path, "branch", "q4", [400 * 1.3 * n for n in NOISE_2])
    comparison = run(tmp_path)
    verdicts = {query.id: query.verdict for query in comparison.queries}
    assert verdicts.pop("q4") == "slower"
    assert set(verdicts.values()) == {"unchanged"}


def test_small_but_significant_difference_below_min_effect_is_unchanged(tmp_path: Path) -> None:
    # 3% slower with almost no noise: significant, but under the 5% minimum effect.
    suite_of(tmp_path, "main", noise=(1.0, 1.0001, 0.9999, 1.0, 1.0))
    suite_of(tmp_path, "branch", factor=1.03, noise=(1.0, 1.0001, 0.9999, 1.0, 1.0))
    comparison = run(tmp_path)
    assert all(query.p_value < 1e-6 for query in comparison.queries)
    assert {query.verdict for query in comparison.queries} == {"unchanged"}
    assert comparison.suite.verdict == "slower"  # above the 2.5% suite minimum effect


def test_one_noisy_iteration_does_not_flip_a_verdict(tmp_path: Path) -> None:
    suite_of(tmp_path, "main", noise=NOISE)
    suite_of(tmp_path, "branch", noise=MIXED)
    write(tmp_path, "branch", "q5", [500 * n for n in (1.02, 0.98, 1.0, 0.985, 3.0)])  # one 3x stall
    q5 = next(query for query in run(tmp_path).queries if query.id == "q5")
    assert q5.ratio > 1.2  # the stall moves the mean of logs a lot ...
    assert q5.verdict == "unchanged"  # ... and inflates that query's own variance even more


def test_mixed_changes_name_queries_but_suite_interval_includes_one(tmp_path: Path) -> None:
    suite_of(tmp_path, "main", noise=NOISE)
    for number in range(1, 11):
        factor = 1.5 if number % 2 else 0.75
        write(tmp_path, "branch", f"q{number}", [100.0 * number * factor * n for n in MIXED[number % 3]])
    comparison = run(tmp_path)
    assert [query.verdict for query in comparison.queries] == ["slower", "faster"] * 5
    assert comparison.suite.geomean_ratio > 1.05  # beyond the minimum effect ...
    assert comparison.suite.ci_low < 1 < comparison.suite.ci_high  # ... but not significant
    assert comparison.suite.verdict == "unchanged"
    reverse = compare(dataset=DATASET, base="branch", new="main", data_dir=tmp_path)
    assert reverse.suite.geomean_ratio < 1 / 1.05 and reverse.suite.verdict == "unchanged"


def test_lone_query_is_judged_on_its_own_noise(tmp_path: Path) -> None:
    # Nothing to borrow a variance from: a 22% difference within +-20% noise is not significant.
    write(tmp_path, "main", "q1", [100, 120, 80])
    write(tmp_path, "branch", "q1", [125, 145, 105])
    query = run(tmp_path).queries[0]
    assert query.p_value > 0.1 and query.verdict == "unchanged"


def test_newly_failed_query_fails_the_check(tmp_path: Path) -> None:
    suite_of(tmp_path, "main")
    suite_of(tmp_path, "branch")
    write(tmp_path, "branch", "q3", errors=5)
    comparison = run(tmp_path, fail_on_regression=True)
    q3 = next(query for query in comparison.queries if query.id == "q3")
    assert q3.verdict == "failed" and q3.newly_failed
    assert comparison.suite.verdict == "unchanged" and comparison.suite.failed == 1
    assert comparison.exit_code == 1
    assert run(tmp_path).exit_code == 0


def test_fixed_and_still_failing_queries_do_not_fail_the_check(tmp_path: Path) -> None:
    suite_of(tmp_path, "main")
    suite_of(tmp_path, "branch")
    write(tmp_path, "main", "q3", errors=5)  # fixed
    write(tmp_path, "main", "q4", errors=5)  # failed on both sides
    write(tmp_path, "branch", "q4", errors=5)
    comparison = run(tmp_path, fail_on_regression=True)
    verdicts = {query.id: query.verdict for query in comparison.queries}
    assert verdicts["q3"] == "fixed" and verdicts["q4"] == "failed"
    assert comparison.suite.failed == 2
    assert comparison.exit_code == 0


# --------------------------------------------------------------------------- formats


def test_json_schema_and_values(tmp_path: Path) -> None:
    suite_of(tmp_path, "main", queries=3, noise=NOISE)
    suite_of(tmp_path, "branch", queries=3, factor=2.0, noise=MIXED)
    write(tmp_path, "branch", "q2", errors=2)
    write(tmp_path, "main", "q9", [900])
    data = json.loads(render(run(tmp_path, format="json")))
    assert set(data) == {"dataset", "base", "new", "queries", "suite", "left_out_of_total", "rows_differ",
                         "sql_differs", "mixed_runs", "regressed", "tasks", "metrics"}
    assert data["left_out_of_total"] == {"failed": ["q2"], "missing": ["q9"]}
    assert (data["rows_differ"], data["sql_differs"], data["mixed_runs"], data["regressed"]) == ([], [], {}, True)
    assert (data["dataset"], data["base"], data["new"]) == (DATASET, "main", "branch")
    assert [query["id"] for query in data["queries"]] == ["q1", "q2", "q3", "q9"]
    for query in data["queries"]:
        assert set(query) == {"id", "verdict", "base_p50_ms", "new_p50_ms", "ratio", "p_value", "newly_failed",
                              "base_rows", "new_rows", "rows_differ", "sql_differs", "ci_low", "ci_high"}
    q1, q2, q3, q9 = data["queries"]
    assert q1["verdict"] == "slower" and (q1["base_p50_ms"], q1["new_p50_ms"]) == (100, 200)
    assert q1["ratio"] == pytest.approx(2.0, rel=0.02) and q1["p_value"] < 0.001
    assert 1.0 < q1["ci_low"] < q1["ratio"] < q1["ci_high"]
    assert q2 == {"id": "q2", "verdict": "failed", "base_p50_ms": 200, "new_p50_ms": None,
                  "ratio": None, "p_value": None, "newly_failed": True, "base_rows": 4, "new_rows": None,
                  "rows_differ": False, "sql_differs": False, "ci_low": None, "ci_high": None}
    assert q3["verdict"] == "slower"
    assert q9 == {"id": "q9", "verdict": "missing", "base_p50_ms": 900, "new_p50_ms": None,
                  "ratio": None, "p_value": None, "newly_failed": False, "base_rows": 4, "new_rows": None,
                  "rows_differ": False, "sql_differs": False, "ci_low": None, "ci_high": None}
    suite = data["suite"]
    assert set(suite) == {"verdict", "geomean_ratio", "ci_low", "ci_high", "failed", "missing", "detectable_change",
                          "design", "rounds", "run_to_run"}
    assert (suite["design"], suite["rounds"]) == ("two runs", None)
    assert suite["run_to_run"] == {"suite": 0.0, "query": 0.0, "source": "given with --run-to-run"}
    assert (suite["failed"], suite["missing"]) == (1, 1)
    assert suite["geomean_ratio"] == pytest.approx(2.0, rel=0.02)
    assert suite["ci_low"] < suite["geomean_ratio"] < suite["ci_high"]


def test_markdown_table(tmp_path: Path) -> None:
    suite_of(tmp_path, "main", queries=2)
    suite_of(tmp_path, "branch", queries=2)
    write(tmp_path, "main", "q3", [300])
    markdown = render(run(tmp_path, format="markdown"))
    lines = markdown.splitlines()
    header = lines.index("| Query | Base p50 (ms) | New p50 (ms) | Ratio | p-value | Verdict |")
    assert lines[header + 1] == "| --- | ---: | ---: | ---: | ---: | --- |"
    assert lines[header + 2] == "| q1 | 100 | 100 | 1.000 | 1.0000 | unchanged |"
    assert lines[header + 4] == "| q3 | 300 | - | - | - | missing |"
    assert "**Suite: unchanged: geomean ratio 1.000" in markdown and "0 failed, 1 missing**" in markdown


def test_text_has_statistics_after_tooling_lines(tmp_path: Path) -> None:
    suite_of(tmp_path, "main", queries=2)
    suite_of(tmp_path, "branch", queries=2, factor=2.0, noise=MIXED)
    lines = lines_of(run(tmp_path))
    total = next(i for i, line in enumerate(lines) if "TOTAL" in line)
    assert lines[total + 1] == "   TASKS: prev=6, new=6"
    assert lines[total + 2] == ""
    assert lines[total + 3].startswith("Statistics")
    assert lines[-2].startswith("   SUITE: slower: geomean ratio 2.0")
    assert lines[-1].startswith("          smallest uniform change this comparison could detect: ±")


def test_detectable_change_follows_the_noise(tmp_path: Path) -> None:
    """The smallest detectable uniform change is the interval's half-width: larger with more noise,
    never below the suite's minimum effect; JSON carries the same number."""
    suite_of(tmp_path / "quiet", "main")
    suite_of(tmp_path / "quiet", "branch", noise=MIXED)
    loud = [(0.7, 1.3, 1.0, 0.85, 1.15), (1.2, 0.8, 1.0, 0.9, 1.1)]
    suite_of(tmp_path / "loud", "main", noise=tuple(loud))
    suite_of(tmp_path / "loud", "branch", noise=tuple(reversed(loud)))
    quiet, noisy = run(tmp_path / "quiet"), run(tmp_path / "loud")
    assert quiet.suite.detectable == pytest.approx(0.025)
    assert noisy.suite.detectable > 0.05
    assert json.loads(render(noisy, "json"))["suite"]["detectable_change"] == noisy.suite.detectable
    assert f"±{100 * noisy.suite.detectable:.1f}%" in render(noisy, "text")
    assert f"±{100 * noisy.suite.detectable:.1f}%" in render(noisy, "markdown")


def test_two_queries_with_one_lucky_spread_are_judged_on_their_noise(tmp_path: Path) -> None:
    """Two very noisy queries that by chance moved alike: the spread across two queries (one degree
    of freedom) is tiny, their iteration noise is not; the suite stays unchanged."""
    write(tmp_path, "main", "q1", [30, 45, 36, 25, 40])
    write(tmp_path, "branch", "q1", [35, 52, 42, 29, 46])
    write(tmp_path, "main", "q2", [9, 14, 11, 8, 12])
    write(tmp_path, "branch", "q2", [10.5, 16, 12.8, 9.3, 14])
    assert run(tmp_path).suite.verdict == "unchanged"


def test_unknown_format_is_a_config_error(tmp_path: Path) -> None:
    suite_of(tmp_path, "main", queries=1)
    suite_of(tmp_path, "branch", queries=1)
    with pytest.raises(ConfigError, match=r"format"):
        run(tmp_path, format="html")


# --------------------------------------------------------------------------- loading


def test_missing_engine_folder_lists_existing_engines(tmp_path: Path) -> None:
    suite_of(tmp_path, "main", queries=1)
    suite_of(tmp_path, "other", queries=1)
    with pytest.raises(ConfigError) as error:
        load_results(tmp_path, DATASET, "branch")
    message = str(error.value)
    assert "'branch'" in message and "main, other" in message


def test_missing_results_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no remote results for dataset 'tpch_sf1'.*run the benchmark first"):
        run(tmp_path)


def test_local_results_are_separate(tmp_path: Path) -> None:
    write(tmp_path, "main", "q1", [100], results="local")
    write(tmp_path, "branch", "q1", [300], results="local")
    assert "new= 300 ms" in render(run(tmp_path, results="local"), "text")
    with pytest.raises(ConfigError):
        run(tmp_path, results="remote")


def test_run_manifest_is_not_a_query(tmp_path: Path) -> None:
    write(tmp_path, "main", "q1", [100])
    (tmp_path / DATASET / ".results-remote" / "main" / "run.json").write_text(json.dumps({"cpu": "x"}))
    assert list(load_results(tmp_path, DATASET, "main")) == ["q1"]


def test_corrupt_result_file_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "main", "q1", [100])
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"q1.json"):
        load_results(tmp_path, DATASET, "main")


# --------------------------------------------------------------------------- statistics helpers


@pytest.mark.parametrize(("df", "alpha", "expected"), [
    (8, 0.01, 3.3554), (21, 0.05, 2.0796), (4, 0.05, 2.7764), (1, 0.05, 12.7062), (100, 0.05, 1.9840),
])
def test_t_critical_values(df: int, alpha: float, expected: float) -> None:
    assert t_critical(df, alpha) == pytest.approx(expected, abs=1e-4)


def test_t_p_values() -> None:
    assert t_two_sided_p(2.0, 10) == pytest.approx(0.07339, abs=1e-5)
    assert t_two_sided_p(0.0, 5) == pytest.approx(1.0)
    assert t_two_sided_p(math.inf, 5) == 0.0


# --------------------------------------------------------------------------- command line


def cli(argv: list[str]) -> int:
    return dfbench_cli.main(["compare", *argv])


def test_cli_exit_codes_and_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite_of(tmp_path, "main", noise=NOISE)
    suite_of(tmp_path, "branch", factor=1.5, noise=MIXED)
    base = ["--dataset", DATASET, "--data-dir", str(tmp_path)]
    assert cli(base + ["--format", "json", "main", "branch"]) == 0
    assert json.loads(capsys.readouterr().out)["suite"]["verdict"] == "slower"
    assert cli(base + ["--fail-on-regression", "main", "branch"]) == 1
    assert "      q1: prev= 100 ms, new= 150 ms, diff=1.50 slower ❌" in capsys.readouterr().out
    assert cli(base + ["--fail-on-regression", "branch", "main"]) == 0  # the other way round: faster


# --------------------------------------------------------------------------- the picture


@pytest.mark.parametrize("name", ["ratios.png", "ratios.svg"])
def test_plot_file_and_html_report(tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    import xml.etree.ElementTree as ElementTree

    suite_of(tmp_path, "main", queries=4)
    suite_of(tmp_path, "branch", queries=4, factor=1.3, noise=MIXED)
    picture = tmp_path / "out" / name
    # Judged on the iterations alone (--run-to-run 0), so that the picture has a slower suite to show.
    assert dfbench_cli.main(["compare", "--dataset", DATASET, "--data-dir", str(tmp_path), "--plot", str(picture),
                             "--run-to-run", "0", "main", "branch"]) == 0
    assert capsys.readouterr().out.startswith("=== Comparing")  # stdout stays the comparison
    data = picture.read_bytes()
    if name.endswith(".png"):
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and b"IEND" in data[-12:]
    else:
        assert ElementTree.fromstring(data).tag == "{http://www.w3.org/2000/svg}svg"
    report = picture.with_suffix(".html").read_text(encoding="utf-8")
    assert f'<img src="{name}"' in report and "Suite: slower" in report and "<td>q4</td>" in report


def test_plot_needs_png_or_svg(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite_of(tmp_path, "main", queries=2)
    suite_of(tmp_path, "branch", queries=2)
    assert dfbench_cli.main(["compare", "--dataset", DATASET, "--data-dir", str(tmp_path), "--plot",
                             str(tmp_path / "x.jpg"), "main", "branch"]) == 2
    assert "give a file ending in .png or .svg" in capsys.readouterr().err
    assert not (tmp_path / "x.jpg").exists()


def test_plot_without_matplotlib_names_the_extra(tmp_path: Path) -> None:
    """A Python where matplotlib cannot be imported (None in sys.modules makes import fail)."""
    import subprocess
    import sys

    suite_of(tmp_path, "main", queries=2)
    suite_of(tmp_path, "branch", queries=2)
    code = ("import sys; sys.modules['matplotlib'] = None; from dfbench.cli import main; "
            f"sys.exit(main(['compare', '--dataset', {DATASET!r}, '--data-dir', {str(tmp_path)!r}, "
            f"'--plot', {str(tmp_path / 'p.png')!r}, 'main', 'branch']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert "pip install 'dfbench[plot]'" in result.stderr and "Traceback" not in result.stderr


# --------------------------------------------------------------------------- two runs and run-to-run noise


def test_two_runs_apart_by_less_than_runs_of_one_build_are_inconclusive(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every query 8% slower, far beyond the iterations' noise, but within what two runs of one build
    differ by: no faster/slower, the honest answer, and --fail-on-regression follows it. The CDK
    tooling's lines are as they were."""
    quiet = (1.0, 1.001, 0.999, 1.0, 1.0)
    suite_of(tmp_path, "main", noise=quiet)
    suite_of(tmp_path, "branch", factor=1.08, noise=quiet)
    base = ["--dataset", DATASET, "--data-dir", str(tmp_path)]
    assert cli(base + ["--fail-on-regression", "main", "branch"]) == 0
    text = capsys.readouterr().out
    assert "      q1: prev= 100 ms, new= 108 ms, diff=1.08 slower ✖" in text.splitlines()
    floor = RUN_TO_RUN["remote"]
    [suite] = [line for line in text.splitlines() if line.startswith("   SUITE: ")]
    comparison = run(tmp_path, run_to_run=None)
    half = 100 * (comparison.suite.ci_high / comparison.suite.geomean_ratio - 1)
    assert suite.startswith(f"   SUITE: inconclusive: within run-to-run noise (±{half:.1f}%); use `dfbench ab`: "
                            "geomean ratio 1.080")
    assert f"run-to-run offsets of ±{percent(floor.suite)} per run" in text and floor.source in text
    assert {query.verdict for query in comparison.queries} == {"inconclusive"}
    assert comparison.suite.ci_low < 1 < comparison.suite.ci_high and not comparison.regressed
    data = json.loads(render(comparison, "json"))
    assert data["suite"]["verdict"] == "inconclusive" and data["regressed"] is False
    assert data["suite"]["run_to_run"] == {"suite": floor.suite, "query": floor.query, "source": floor.source}
    assert "**Suite: inconclusive: within run-to-run noise" in render(comparison, "markdown")
    # The user's own A/A runs say runs do not drift: the same numbers are then a regression.
    assert cli(base + ["--fail-on-regression", "--run-to-run", "0", "main", "branch"]) == 1
    assert "   SUITE: slower: geomean ratio 1.080" in capsys.readouterr().out


def test_two_runs_apart_by_more_than_run_to_run_noise_are_judged(tmp_path: Path) -> None:
    """Twice as slow everywhere is beyond what two runs of one build differ by as a suite; a single
    query's doubling is not (a query alone moves more between runs), so each query is inconclusive."""
    suite_of(tmp_path, "main", noise=NOISE)
    suite_of(tmp_path, "branch", factor=2.0, noise=MIXED)
    comparison = run(tmp_path, run_to_run=None, fail_on_regression=True)
    assert comparison.suite.run_to_run == RUN_TO_RUN["remote"]
    assert comparison.suite.verdict == "slower" and comparison.exit_code == 1
    assert {query.verdict for query in comparison.queries} == {"inconclusive"}
    suite_of(tmp_path, "branch", factor=8.0, noise=MIXED)
    assert {query.verdict for query in run(tmp_path, run_to_run=None).queries} == {"slower"}
