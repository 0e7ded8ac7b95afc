"""One module per AWS resource kind, each with find_/ensure_/delete_ functions over typed records."""
