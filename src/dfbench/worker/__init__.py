"""Everything about the worker program: its build, its artifacts in S3, the scripts that install
it on the instances, and judging its health."""
