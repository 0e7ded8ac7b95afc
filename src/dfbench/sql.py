"""SQL text handling shared by the query files and the local worker."""

from __future__ import annotations

import re

from dfbench.errors import ConfigError


def split_statements(sql: str) -> list[str]:
    """Split on ``;`` outside quotes and comments; comments are dropped, blank statements skipped.

    Understands '...' string literals (with '' escapes), "..." identifiers, ``--`` line comments
    and ``/* */`` block comments. A ``;`` inside any of them does not split.
    """
    statements: list[str] = []
    current: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        char = sql[i]
        if char in ("'", '"'):
            # A doubled quote is an escaped quote: scanning on from the second one reopens it.
            end = sql.find(char, i + 1)
            end = n - 1 if end == -1 else end
            current.append(sql[i : end + 1])
            i = end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end == -1 else end  # the newline itself is kept as whitespace
            current.append(" ")
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end == -1 else end + 2
            current.append(" ")
        elif char == ";":
            statements.append("".join(current))
            current = []
            i += 1
        else:
            current.append(char)
            i += 1
    statements.append("".join(current))
    return [statement.strip() for statement in statements if statement.strip()]


# The names dfbench puts into SQL itself (table names from a manifest, a bucket listing or the
# TPC-H list): lower case so the unquoted names in the queries resolve to them (DataFusion folds
# unquoted identifiers to lower case), and nothing that could close the quotes around them.
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def quoted_identifier(name: str) -> str:
    """``name`` double-quoted for SQL, once checked against :data:`IDENTIFIER`; a ConfigError
    otherwise, so a crafted manifest cannot add statements."""
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        raise ConfigError(f"Invalid table name {name!r}: table names are lower-case letters, digits and _ "
                          "(not starting with a digit); rename the table folder.")
    return f'"{name}"'
