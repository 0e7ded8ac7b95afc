"""dfbench.comparison: CDK-tooling-compatible text, statistics, formats, command line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from dfbench import cli as dfbench_cli
from dfbench.comparison import Comparison, compare, load_results, render
from dfbench.comparison.stats import t_critical, t_two_sided_p
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
    # Failed iterations are ignored: median of [12344.5, 12345.5] = 12345 -> wider than 4, not cut.
    write(tmp_path, "branch", "q1", [12344.5, 12345.5], errors=1)
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


def test_failure_lines_right_aligned(tmp_path: Path) -> None:
    write(tmp_path, "main", "q1", [100])
    write(tmp_path, "branch", "q1", errors=3)
    write(tmp_path, "main", "q2", errors=3)
    write(tmp_path, "branch", "q2", [100])
    write(tmp_path, "main", "q3", errors=1)
    write(tmp_path, "branch", "q3", errors=2)
    assert lines_of(run(tmp_path))[1:4] == [
        "      q1: Previously succeeded, but now failed ❌",
        "      q2: Previously failed, but now succeeded 🟠",
        "      q3: Previously failed, and now also failed ❌",
    ]


def test_total_sums_queries_in_both_and_names_what_it_leaves_out(tmp_path: Path) -> None:
    write(tmp_path, "main", "q1", [100, 101, 99])
    write(tmp_path, "branch", "q1", [150, 150, 151])
    write(tmp_path, "main", "q2", [300])
    write(tmp_path, "branch", "q2", [200])
    write(tmp_path, "main", "q3", [1000])  # failed now: left out of TOTAL
    write(tmp_path, "branch", "q3", errors=1)
    write(tmp_path, "main", "q4", errors=1)  # fixed: left out of TOTAL
    write(tmp_path, "branch", "q4", [5000])
    write(tmp_path, "main", "q5", [7000])  # missing on the new side
    lines = lines_of(run(tmp_path))
    total = next(line for line in lines if "TOTAL" in line)
    assert total == "   TOTAL: prev=400 ms, new=350 ms, diff=1.14 faster ✔ (2 failed, 1 missing: not in total)"
    assert not any(line.strip().startswith("q5:") for line in lines[: lines.index(total)])


def test_total_without_exclusions_is_the_tooling_line(tmp_path: Path) -> None:
    write(tmp_path, "main", "q1", [1000])
    write(tmp_path, "branch", "q1", [1300])
    write(tmp_path, "main", "q2", [200])
    write(tmp_path, "branch", "q2", [200])
    assert "   TOTAL: prev=1200 ms, new=1500 ms, diff=1.25 slower ❌" in lines_of(run(tmp_path))


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


def test_partially_failed_iterations_count_as_success(tmp_path: Path) -> None:
    write(tmp_path, "main", "q1", [100, 102, 98])
    write(tmp_path, "branch", "q1", [100, 101], errors=1)
    comparison = run(tmp_path)
    assert comparison.queries[0].verdict == "unchanged"
    assert comparison.suite.failed == 0
    assert "new: 1 of 3 iterations failed" in render(comparison, "text")


# --------------------------------------------------------------------------- formats


def test_json_schema_and_values(tmp_path: Path) -> None:
    suite_of(tmp_path, "main", queries=3, noise=NOISE)
    suite_of(tmp_path, "branch", queries=3, factor=2.0, noise=MIXED)
    write(tmp_path, "branch", "q2", errors=2)
    write(tmp_path, "main", "q9", [900])
    data = json.loads(render(run(tmp_path, format="json")))
    assert set(data) == {"dataset", "base", "new", "queries", "suite"}
    assert (data["dataset"], data["base"], data["new"]) == (DATASET, "main", "branch")
    assert [query["id"] for query in data["queries"]] == ["q1", "q2", "q3", "q9"]
    for query in data["queries"]:
        assert set(query) == {"id", "verdict", "base_p50_ms", "new_p50_ms", "ratio", "p_value"}
    q1, q2, q3, q9 = data["queries"]
    assert q1["verdict"] == "slower" and (q1["base_p50_ms"], q1["new_p50_ms"]) == (100, 200)
    assert q1["ratio"] == pytest.approx(2.0, rel=0.02) and q1["p_value"] < 0.001
    assert q2 == {"id": "q2", "verdict": "failed", "base_p50_ms": 200, "new_p50_ms": None,
                  "ratio": None, "p_value": None}
    assert q3["verdict"] == "slower"
    assert q9 == {"id": "q9", "verdict": "missing", "base_p50_ms": 900, "new_p50_ms": None,
                  "ratio": None, "p_value": None}
    suite = data["suite"]
    assert set(suite) == {"verdict", "geomean_ratio", "ci_low", "ci_high", "failed", "missing"}
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
    assert lines[total + 1] == ""
    assert lines[total + 2].startswith("Statistics")
    assert lines[-1].startswith("   SUITE: slower: geomean ratio 2.0")


def test_unknown_format_is_a_config_error(tmp_path: Path) -> None:
    suite_of(tmp_path, "main", queries=1)
    suite_of(tmp_path, "branch", queries=1)
    with pytest.raises(ConfigError, match="format"):
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
    with pytest.raises(ConfigError, match="q1.json"):
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
