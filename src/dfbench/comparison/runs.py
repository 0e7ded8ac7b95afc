"""Compare two benchmark runs (ARCHITECTURE.md §6): load their result files and judge every query
and the suite, into the records of :mod:`dfbench.comparison.records`.

Result files: ``<data_dir>/<dataset>/.results-<remote|local>/<engine>/<query>.json``
(:mod:`dfbench.bench.results`).

What is added to the CDK tooling's output, and why:

* The CDK tooling's per-query lines flag any p50 ratio above 1.2. With five iterations and 10% noise
  that flags a query of an unchanged build in about a third of the runs, and misses most 10%
  regressions. dfbench keeps those lines byte for byte (people grep them), and adds a verdict
  per query from a significance test gated by a minimum effect, and a suite verdict on the
  geometric mean of the per-query ratios with a confidence interval (:mod:`dfbench.comparison.stats`
  says how and why).
* The CDK tooling's TOTAL silently leaves out failed and missing queries; dfbench's own line after
  the tooling's says which it left out.
* Correctness apart from speed: a query whose row counts differ between the sides, or whose
  recorded SQL hashes (``sqlSha256``) differ, is named; so is a side whose query files come from
  several runs (``runId``: a partial run keeps the engine folder's older files).

Two designs (:mod:`dfbench.comparison.stats` says how each is judged): two runs (``compare``,
``bench``), whose verdicts allow for the run-to-run offset two runs cannot estimate and say
``inconclusive`` within it; and the rounds of one interleaved A/B (``dfbench ab``, ``paired=True``),
judged round by round.

Verdicts per query: ``faster``, ``slower``, ``unchanged``, ``inconclusive`` (both sides succeeded), ``failed`` (some
iteration failed on the new side; ``newly_failed`` tells whether the base succeeded), ``fixed``
(failed on base, succeeds now), ``missing`` (result file on one side only). "Failed" has one
meaning, the tooling's: :attr:`QueryResult.failed`, any iteration failed. Such a query gets the
tooling's failure line and stays out of TOTAL and of the statistics.
"""

from __future__ import annotations

import math
from pathlib import Path

from dfbench.bench.results import QueryResult, engines_dir, read_previous, read_query_results, safe_engine_name
from dfbench.comparison.records import (
    FORMATS,
    RESULTS_KINDS,
    Comparison,
    QueryComparison,
    Suite,
    query_sort_key,
    runs_of,
)
from dfbench.comparison.stats import (
    RUN_TO_RUN,
    RunToRun,
    assess_paired_queries,
    assess_rounds,
    assess_two_runs,
    round_log_ratios,
    t_critical,
)
from dfbench.data.scale import checked_dataset
from dfbench.errors import ConfigError

QUERY_INTERVAL_ALPHA = 0.05  # the per-query interval shown (JSON, plot): 95%


def _is_remote(results: str) -> bool:
    if results not in RESULTS_KINDS:
        raise ConfigError(f"results must be one of {', '.join(RESULTS_KINDS)}, not {results!r}")
    return results == "remote"


def _by_id(results: list[QueryResult]) -> dict[str, QueryResult]:
    return {result.id: result for result in sorted(results, key=lambda result: query_sort_key(result.id))}


def load_results(data_dir: str | Path, dataset: str, engine: str,
                 results: str = "remote") -> dict[str, QueryResult]:
    """Every ``<query>.json`` of one engine's run, keyed by query id, in numeric query order."""
    # An engine is a folder dfbench named (safe_engine_name): any other name, ``../x`` say,
    # would read result files from outside the results folder.
    if safe_engine_name(engine) != engine:
        raise ConfigError(f"Invalid engine name {engine!r}: engines are folders of the results folder, named with "
                          "letters, digits, '.', '_', '+' and '-' (e.g. datafusion-distributed-main).")
    dataset = checked_dataset(dataset)
    parent = engines_dir(data_dir, dataset, remote=_is_remote(results))
    folder = parent / engine
    if not folder.is_dir():
        engines = sorted(entry.name for entry in parent.iterdir() if entry.is_dir()) if parent.is_dir() else []
        if engines:
            found = f"Engines with {results} results there: {', '.join(engines)}."
        elif parent.is_dir():
            found = f"{parent} holds no engine folders yet."
        else:
            other = "local" if results == "remote" else "remote"
            found = (f"There are no {results} results for dataset {dataset!r} ({parent} does not "
                     f"exist): run the benchmark first, or check --data-dir, --dataset and "
                     f"--results (maybe {other}).")
        raise ConfigError(f"No {results} results for engine {engine!r} ({folder} does not exist). {found}")
    loaded = read_query_results(folder, dataset=dataset, engine=engine)
    if not loaded:
        raise ConfigError(f"{folder} holds no result files (<query>.json)")
    return _by_id(loaded)


def load_previous(data_dir: str | Path, dataset: str,
                  results: str = "remote") -> tuple[str, dict[str, QueryResult]] | None:
    """The last complete run recorded in ``previous-<results>.json`` (engine, results), or None.

    It holds every query document of that run, so it survives the engine folder being
    overwritten by a new run of the same engine."""
    found = read_previous(data_dir, checked_dataset(dataset), remote=_is_remote(results))
    if found is None:
        return None
    engine, loaded = found
    return engine, _by_id(loaded)


def compare_results(base: dict[str, QueryResult], new: dict[str, QueryResult], *, dataset: str,
                    base_name: str, new_name: str, paired: bool = False, results: str = "local",
                    run_to_run: RunToRun | None = None) -> Comparison:
    """The comparison of two loaded runs (no file access).

    ``paired``: the iterations of both sides are rounds of one interleaved A/B (``dfbench ab``:
    iteration i of each side ran in round i), judged round by round (:func:`assess_rounds`,
    :func:`assess_paired_queries`). Otherwise they are two runs, judged with the run-to-run
    offsets ``run_to_run`` (by default the calibrated floor of the ``results`` kind), which two
    runs cannot estimate."""
    ids = sorted(set(base) | set(new), key=query_sort_key)
    pairs = {query_id: (base[query_id].timings, new[query_id].timings) for query_id in ids
             if query_id in base and query_id in new and not base[query_id].failed and not new[query_id].failed}
    floor = None if paired else run_to_run or RUN_TO_RUN["remote" if _is_remote(results) else "local"]
    if paired:
        stats = assess_paired_queries(pairs)
        suite_stat = assess_rounds(round_log_ratios(pairs), queries=len(pairs))
    else:
        assert floor is not None
        stats, suite_stat = assess_two_runs(pairs, floor)
    queries = []
    for query_id in ids:
        old, now = base.get(query_id), new.get(query_id)
        if old is None or now is None:
            queries.append(QueryComparison(query_id, "missing", old, now))
        elif now.failed:
            queries.append(QueryComparison(query_id, "failed", old, now))
        elif old.failed:
            queries.append(QueryComparison(query_id, "fixed", old, now))
        else:
            stat = stats[query_id]
            half = t_critical(stat.df, QUERY_INTERVAL_ALPHA) * stat.se if stat.df and math.isfinite(stat.se) else None
            queries.append(QueryComparison(query_id, stat.verdict, old, now, math.exp(stat.log_ratio), stat.p_value,
                                           None if half is None else math.exp(stat.log_ratio - half),
                                           None if half is None else math.exp(stat.log_ratio + half)))
    suite = Suite(
        verdict=suite_stat.verdict,
        geomean_ratio=suite_stat.geomean_ratio,
        ci_low=suite_stat.ci_low,
        ci_high=suite_stat.ci_high,
        failed=sum(1 for query in queries if query.verdict in ("failed", "fixed")),
        missing=sum(1 for query in queries if query.verdict == "missing"),
        queries=suite_stat.queries,
        detectable=suite_stat.detectable,
        rounds=suite_stat.rounds,
        run_to_run=floor,
    )
    mixed = {side: runs for side, runs in (("base", runs_of(list(base.values()))),
                                           ("new", runs_of(list(new.values())))) if len(runs) > 1}
    return Comparison(dataset, base_name, new_name, queries, suite, mixed_runs=mixed)


def user_run_to_run(fraction: float | None) -> RunToRun | None:
    """A run-to-run standard deviation the user measured (``--run-to-run``), for the suite and,
    as it is the only number given, for each query; None leaves the calibrated floor."""
    if fraction is None:
        return None
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        shown = f"{100 * fraction:g}" if isinstance(fraction, (int, float)) else repr(fraction)
        raise ConfigError(f"--run-to-run must be a percentage from 0 to 100 (the standard deviation of a run's "
                          f"offset, from your A/A runs), not {shown}")
    return RunToRun(fraction, fraction, "given with --run-to-run")


def compare(*, dataset: str, base: str, new: str, data_dir: str | Path = "benchmarks/data",
            results: str = "remote", format: str = "text", fail_on_regression: bool = False,
            run_to_run: float | None = None) -> Comparison:
    """Compare engine ``new`` against engine ``base`` on ``dataset``; see the module docstring.
    ``run_to_run``: the standard deviation (a fraction) of a run's offset, from the user's own
    A/A runs, instead of the calibrated floor of the ``results`` kind."""
    if format not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    dataset = checked_dataset(dataset)  # tpch/sf10 and tpch_sf10 are one dataset
    floor = user_run_to_run(run_to_run)
    comparison = compare_results(load_results(data_dir, dataset, base, results),
                                 load_results(data_dir, dataset, new, results),
                                 dataset=dataset, base_name=base, new_name=new, results=results, run_to_run=floor)
    comparison.format = format
    comparison.fail_on_regression = fail_on_regression
    return comparison
