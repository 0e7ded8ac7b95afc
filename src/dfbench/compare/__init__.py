"""Compare two benchmark runs: the seed's text plus statistics that say whether a difference is real."""

from dfbench.compare.comparison import (FORMATS, RESULTS_KINDS, Comparison, QueryComparison, Suite, compare,
                                        compare_results, load_previous, load_results)

__all__ = ["FORMATS", "RESULTS_KINDS", "Comparison", "QueryComparison", "Suite", "compare", "compare_results",
           "load_previous", "load_results"]
