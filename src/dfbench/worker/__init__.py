"""Everything about the worker program: talking to it over HTTP and running dfbench's local one."""
