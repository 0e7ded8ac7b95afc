"""Compare two benchmark runs: the seed's text plus statistics that say whether a difference is real."""
