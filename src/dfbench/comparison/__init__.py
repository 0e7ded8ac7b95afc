"""Compare two benchmark runs: the CDK tooling's text plus statistics that say whether a difference is real."""

from dfbench.comparison.records import FORMATS, RESULTS_KINDS, Comparison, QueryComparison, Suite
from dfbench.comparison.render import render
from dfbench.comparison.runs import compare, compare_results, load_previous, load_results

__all__ = ["FORMATS", "RESULTS_KINDS", "Comparison", "QueryComparison", "Suite", "compare", "compare_results",
           "load_previous", "load_results", "render"]
