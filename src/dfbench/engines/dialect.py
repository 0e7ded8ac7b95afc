"""Each engine's SQL, in one place: the query text adapted per engine, and the statements that
create a dataset's tables over its parquet files (ARCHITECTURE.md §5a).

The bundled queries are written for DataFusion. The CDK tooling adapted them per engine inside each
engine's script; dfbench does it here, and the tests run every adapted TPC-H query on its engine
and compare the rows with DataFusion's.

- Spark SQL and Trino: a date literal written as a bare string (``'1994-01-01'``, as some TPC-H
  texts compare dates) gets the ``DATE`` keyword; ``to_timestamp_seconds(`` (ClickBench) becomes
  Spark's ``timestamp_seconds(`` and Trino's ``from_unixtime(``, each that engine's function from
  epoch seconds to a timestamp.
- Spark SQL: the views a query creates (TPC-H q15's ``revenue0``) are temporary views, since
  the tables are temporary views too and Spark refuses a permanent view over a temporary one.
- Trino: ``CREATE VIEW v (c1, c2) AS SELECT e1, e2 ...`` (a column list, which Trino's grammar
  lacks) becomes ``CREATE VIEW v AS SELECT e1 AS c1, e2 AS c2 ...``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from dfbench.bench.queries import Query
from dfbench.bench.settings import table_sql
from dfbench.errors import ConfigError
from dfbench.sql import quoted_identifier

DATAFUSION, SPARK, TRINO = "datafusion", "spark", "trino"
# Every engine dfbench benchmarks, by the name its results are filed under (the CDK tooling's:
# datafusion-bench filed under a name of the user's choosing, spark-bench as spark, trino-bench as trino).
ENGINES = (DATAFUSION, SPARK, TRINO)
# The catalog the Hive connector is mounted as on dfbench's Trino (the CDK tooling's name).
TRINO_CATALOG = "hive"

# A quoted yyyy-mm-dd, with the keyword before it if any (DATE or TIMESTAMP: then left as it is).
_DATE_LITERAL = re.compile(r"(?P<keyword>\b(?:date|timestamp)\s+)?(?P<literal>'\d{4}-\d{2}-\d{2}')", re.IGNORECASE)
_TO_TIMESTAMP_SECONDS = re.compile(r"\bto_timestamp_seconds\s*\(", re.IGNORECASE)
_CREATE_VIEW = re.compile(r"^\s*create\s+(?:or\s+replace\s+)?view\s+", re.IGNORECASE)
_VIEW_COLUMNS = re.compile(
    r"^\s*create\s+(?P<replace>or\s+replace\s+)?view\s+(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*"
    r"\((?P<columns>[^()]*)\)\s*as\s+select\s+(?P<rest>.*)$", re.IGNORECASE | re.DOTALL)
_FROM = re.compile(r"\bfrom\b", re.IGNORECASE)


def check_engine(name: str) -> str:
    """``name`` when dfbench knows the engine, else a ConfigError listing those it knows."""
    if name not in ENGINES:
        raise ConfigError(f"Unknown engine {name!r}: choose among {', '.join(ENGINES)}.")
    return name


def parse_names(text: str | Sequence[str]) -> list[str]:
    """``a,b`` → ``["a", "b"]``: none empty, none twice (engines, or datasets, compared)."""
    names = [part.strip() for part in (text.split(",") if isinstance(text, str) else text)]
    names = [name for name in names if name]
    if not names:
        raise ConfigError(f"No name given: give them separated by commas, e.g. {DATAFUSION},{SPARK}.")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"{', '.join(repeated)} given more than once.")
    return names


def parse_engines(text: str | Sequence[str]) -> list[str]:
    """``datafusion,spark`` → ``["datafusion", "spark"]``, each known and none twice; the first is
    the one the others are compared with."""
    names = [name.lower() for name in parse_names(text)]
    for name in names:
        check_engine(name)
    return parse_names(names)


def adapt_statement(engine: str, statement: str) -> str:
    """One statement as ``engine`` runs it (the module docstring lists the rewrites)."""
    check_engine(engine)
    if engine == DATAFUSION:
        return statement
    text = _DATE_LITERAL.sub(lambda m: m[0] if m["keyword"] else f"DATE {m['literal']}", statement)
    if engine == SPARK:
        text = _TO_TIMESTAMP_SECONDS.sub("timestamp_seconds(", text)
        return _CREATE_VIEW.sub("CREATE OR REPLACE TEMPORARY VIEW ", text, count=1)
    text = _TO_TIMESTAMP_SECONDS.sub("from_unixtime(", text)
    return _view_without_column_list(text)


def adapt_query(engine: str, query: Query) -> Query:
    """``query`` with every statement adapted for ``engine``."""
    return Query(id=query.id, setup=tuple(adapt_statement(engine, s) for s in query.setup),
                 statement=adapt_statement(engine, query.statement),
                 teardown=tuple(adapt_statement(engine, s) for s in query.teardown))


def _top_level_split(text: str) -> list[str]:
    """``text`` split on the commas outside parentheses and quotes."""
    parts, depth, start, quote = [], 0, 0, ""
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [part.strip() for part in parts]


def _view_without_column_list(statement: str) -> str:
    match = _VIEW_COLUMNS.match(statement)
    if match is None:
        return statement
    columns = [c.strip() for c in match["columns"].split(",")]
    rest = match["rest"]
    # The select list ends at the first FROM outside parentheses.
    end = next((m.start() for m in _FROM.finditer(rest) if rest[:m.start()].count("(") == rest[:m.start()].count(")")),
               None)
    if end is None:
        return statement
    expressions = _top_level_split(rest[:end])
    if len(expressions) != len(columns):
        return statement  # not the shape this rewrite knows: Trino will say what it refuses
    selected = ", ".join(f"{expression} AS {column}" for expression, column in zip(expressions, columns, strict=True))
    replace = "OR REPLACE " if match["replace"] else ""
    return f"CREATE {replace}VIEW {match['name']} AS SELECT {selected} {rest[end:]}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def table_statements(engine: str, dataset: str, table: str, location: str,
                     columns: Sequence[tuple[str, str]] = ()) -> list[str]:
    """The statements that (re)create ``table`` over the parquet files at ``location`` (a folder,
    ``<base>/<dataset>/<table>/``) on ``engine``, each sent on its own. ``columns`` (name, Trino
    type) is what Trino's Hive connector needs, which reads no schema from the files; see
    :func:`trino_columns`."""
    check_engine(engine)
    name = quoted_identifier(table)
    location = location.rstrip("/") + "/"
    if engine == DATAFUSION:
        return [table_sql(table, location)]
    if engine == SPARK:
        # s3a is the Hadoop file system Spark reads S3 through (the CDK tooling's rewrite too).
        path = "s3a://" + location[len("s3://"):] if location.startswith("s3://") else location
        return [f"CREATE OR REPLACE TEMPORARY VIEW {name} USING parquet OPTIONS (path {_literal(path)})"]
    if not columns:
        raise ConfigError(f"Trino needs the columns of table {table}: none were given.")
    schema = f'{TRINO_CATALOG}."{trino_schema(dataset)}"'
    body = ",\n  ".join(f"{quoted_identifier(column)} {kind}" for column, kind in columns)
    return [f"CREATE SCHEMA IF NOT EXISTS {schema}",
            f"DROP TABLE IF EXISTS {schema}.{name}",
            (f"CREATE TABLE {schema}.{name} (\n  {body}\n) "
             f"WITH (external_location = {_literal(location)}, format = 'PARQUET')")]


def trino_schema(dataset: str) -> str:
    """The Trino schema a dataset's tables live in: its name, checked as dfbench names datasets."""
    if not re.fullmatch(r"[a-z0-9_.-]+", dataset):
        raise ConfigError(f"Invalid dataset name {dataset!r} for a Trino schema.")
    return dataset


# Arrow type names (pyarrow's str()) → Trino types, for the types tpchgen-cli, tpcgen-cli and
# ClickBench's files use.
_TRINO_TYPES = {"int8": "tinyint", "int16": "smallint", "int32": "integer", "int64": "bigint",
                "uint8": "smallint", "uint16": "integer", "uint32": "bigint",
                "float": "real", "double": "double", "bool": "boolean", "date32[day]": "date",
                "string": "varchar", "large_string": "varchar", "string_view": "varchar",
                "binary": "varbinary", "large_binary": "varbinary"}
_DECIMAL = re.compile(r"decimal(?:128|256)?\((\d+), (\d+)\)")
_TIMESTAMP = re.compile(r"timestamp\[(s|ms|us|ns)(?:, tz=.*)?\]")


def trino_columns(schema: object) -> list[tuple[str, str]]:
    """(name, Trino type) of each field of a pyarrow schema; a ConfigError naming a type Trino's
    table cannot be declared with here."""
    columns = []
    for field in schema:  # type: ignore[attr-defined]
        arrow = str(field.type)
        decimal, timestamp = _DECIMAL.fullmatch(arrow), _TIMESTAMP.fullmatch(arrow)
        if decimal:
            kind = f"decimal({decimal[1]}, {decimal[2]})"
        elif timestamp:
            kind = {"s": "timestamp(0)", "ms": "timestamp(3)", "us": "timestamp(6)", "ns": "timestamp(9)"}[timestamp[1]]
        elif arrow in _TRINO_TYPES:
            kind = _TRINO_TYPES[arrow]
        else:
            raise ConfigError(f"Column {field.name} has type {arrow}, which dfbench cannot declare for Trino.")
        columns.append((str(field.name), kind))
    return columns
