"""Everything about the worker program: its build, its artifacts in S3, the scripts that install
it on the instances, judging its health, talking to it over HTTP and running dfbench's local one."""
