"""The SQL a run sends before its queries: session settings (``SET``) and the external tables."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from dfbench.errors import ConfigError
from dfbench.sql import quoted_identifier

# The CDK tooling's settings for the distributed engine (ARCHITECTURE.md §5). Sent by default to a real
# worker; dfbench's local worker gets none unless asked (``settings="distributed"``): it records
# ``distributed.*`` and applies ``datafusion.*``, which would change what a local run measures.
DISTRIBUTED_DEFAULTS: dict[str, str] = {
    "distributed.file_scan_config_bytes_per_partition": "16777216",
    "distributed.cardinality_task_count_factor": "1",
    "datafusion.execution.batch_size": "32768",
    "distributed.shuffle_batch_size": "0",
    "distributed.collect_metrics": "true",
    "distributed.compression": "lz4",
    "distributed.children_isolator_unions": "true",
    "distributed.broadcast_joins": "true",
    "distributed.partial_reduce": "false",
    "distributed.dynamic_task_count": "false",
    "distributed.dynamic_bytes_per_partition": "16777216",
    "distributed.max_tasks_per_stage": "0",
    "datafusion.optimizer.repartition_file_min_size": "10485760",
    "datafusion.execution.target_partitions": "8",
}
SETTING_PRESETS: dict[str, dict[str, str]] = {"distributed": DISTRIBUTED_DEFAULTS, "none": {}}

_SETTING_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)+$")
_BARE_VALUE = re.compile(r"^[A-Za-z0-9_.+-]+$")


def _setting_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def resolve_settings(settings: Mapping[str, Any] | Iterable[str] | str | None,
                     default: Mapping[str, str] | None = None) -> dict[str, str]:
    """Settings as ``{key: value}``.

    ``None`` gives ``default``. A mapping is taken as is. A string or a list of strings holds preset
    names (``distributed``: the CDK tooling's 14 defaults, ``none``) and ``key=value`` overrides, applied
    in order: ``["distributed", "distributed.compression=zstd"]``.
    """
    if settings is None:
        return dict(default or {})
    resolved: dict[str, str] = {}
    if isinstance(settings, Mapping):
        items: list[tuple[str, Any]] = list(settings.items())
    else:
        items = []
        for entry in [settings] if isinstance(settings, str) else settings:
            for part in (p.strip() for p in str(entry).split(",")):
                if not part:
                    continue
                if "=" in part:
                    key, value = part.split("=", 1)
                    items.append((key.strip(), value.strip()))
                elif part.lower() in SETTING_PRESETS:
                    items.extend(SETTING_PRESETS[part.lower()].items())
                else:
                    raise ConfigError(f"Invalid setting {part!r}: not a preset ({', '.join(SETTING_PRESETS)}) "
                                      "and not key=value (e.g. distributed.compression=zstd).")
    for key, value in items:
        if not _SETTING_KEY.match(key):
            raise ConfigError(f"Invalid setting name {key!r}: expected a dotted name such as "
                              "distributed.compression or datafusion.execution.batch_size.")
        if _setting_value(value).strip() == "":
            raise ConfigError(f"Setting {key} has no value: give {key}=<value>.")
        resolved[key] = _setting_value(value)
    return resolved


def settings_sql(settings: Mapping[str, str]) -> str:
    lines = []
    for key, value in settings.items():
        literal = value if _BARE_VALUE.match(value) else "'" + value.replace("'", "''") + "'"
        lines.append(f"SET {key} = {literal};")
    return "\n".join(lines)


def table_sql(table: str, location: str) -> str:
    """Re-create ``table`` on the parquet files at ``location``; the name is checked and quoted
    (it comes from a manifest or a bucket listing, which anyone with write access can craft)."""
    name = quoted_identifier(table)
    location = location.rstrip("/") + "/"
    return (f"DROP TABLE IF EXISTS {name};\n"
            f"CREATE EXTERNAL TABLE IF NOT EXISTS {name} STORED AS PARQUET "
            f"LOCATION '{location.replace(chr(39), chr(39) * 2)}';")
