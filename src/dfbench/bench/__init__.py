"""What a benchmark run is made of: its queries, options, settings, result files and machine record."""
