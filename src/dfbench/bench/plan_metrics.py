"""What a query did, read from the plan text the worker answers with: bytes and messages moved
between stages, rows out of the network boundaries, spills, bytes scanned, stages and tasks.

The format is upstream datafusion-distributed's ``display_plan_ascii(plan, true)`` after
``rewrite_distributed_plan_with_metrics`` (``src/stage.rs`` at f9461e87: ``display_ascii``,
``format_metrics_by_task``, ``metrics_suffix``, ``format_tasks_for_stage``; the boundaries'
``fmt_as`` in ``src/execution_plans/network_{shuffle,coalesce,broadcast}.rs``), which the worker
(``benchmarks/src/bin/worker.rs``) renders with the per-task format:

- a head ``┌───── DistributedExec`` and, per stage, ``┌───── Stage 2 ── tasks=2, partitions=16``;
- a node per line, ``│ <one-line display>, metrics=[name=value, ...]``; with per-task metrics a
  value is ``{0:v, 1:v}`` (task id: value), aggregated it is one value;
- a network boundary is ``[Stage N] => NetworkShuffleExec: ...`` (or ``NetworkCoalesceExec``,
  ``NetworkBroadcastExec``), carrying ``bytes_transferred`` and ``msg_count``;
- values as DataFusion displays them (``datafusion/common/src/display/human_readable.rs``): counts
  plain below 1000, else ``1.53 K``/``123.5 M``/``1.00 B``/``2.00 T`` (base 1000); sizes ``1023.0 B``,
  ``20.1 KB``, ``2.0 MB``, ``GB``, ``TB`` (base 1024). ``B`` is a billion for a count and a byte for
  a size, told apart by the metric's name (:data:`_SIZES`). Displayed values carry three
  significant digits, so totals are as precise as that.

The parser fails soft: a plan in another format (dfbench's local worker, an older or newer
worker) gives empty metrics, never an error.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

log = logging.getLogger("dfbench")

# The metrics object of a result file's iteration (ARCHITECTURE §7), in this order.
METRICS = ("bytesMoved", "messages", "networkRows", "spills", "spilledBytes", "bytesScanned", "stages", "tasks")
# What each key sums, and over which nodes ("network": the network boundaries only).
_SUMMED = {"bytesMoved": ("bytes_transferred", "network"), "messages": ("msg_count", "network"),
           "networkRows": ("output_rows", "network"), "spills": ("spill_count", "all"),
           "spilledBytes": ("spilled_bytes", "all"), "bytesScanned": ("bytes_scanned", "all")}
# Metrics displayed as sizes (DataFusion's OutputBytes and SpilledBytes, datafusion-distributed's
# bytes_counter metrics): their "B" is a byte; every other name's is a billion.
_SIZES = frozenset({"bytes_transferred", "spilled_bytes", "output_bytes", "plan_bytes_sent", "work_unit_bytes",
                    "bytes_ready"})
_HEAD = re.compile(r"┌─+ DistributedExec\b")
_STAGE = re.compile(r"┌─+ Stage (?P<stage>\d+) ── tasks=(?P<tasks>\d+), partitions=\d+")
_BOUNDARY = re.compile(r"\[Stage \d+\] => Network(?:Shuffle|Coalesce|Broadcast)Exec:")
_SUFFIX = ", metrics=["
_VALUE = re.compile(r"^(?P<number>\d+(?:\.\d+)?)(?: ?(?P<unit>[KMBT]|KB|MB|GB|TB))?$")
_COUNT_UNITS = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}
_SIZE_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def _entries(text: str) -> Iterator[tuple[str, str]]:
    """``name=value`` pairs of a ``metrics=[...]`` body, a value being ``{...}`` or up to the next
    top-level ``, ``."""
    depth, start = 0, 0
    for index, char in enumerate(text):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif char == "," and depth == 0:
            yield _pair(text[start:index])
            start = index + 1
    if text[start:].strip():
        yield _pair(text[start:])


def _pair(entry: str) -> tuple[str, str]:
    name, _, value = entry.strip().partition("=")
    return name.strip(), value.strip()


def _number(name: str, text: str) -> float:
    """One displayed value of metric ``name``; ValueError when it is not a count or a size."""
    match = _VALUE.match(text.strip())
    if not match:
        raise ValueError(f"not a count or a size: {text!r}")
    unit = match["unit"]
    if unit is None:
        return float(match["number"])
    sizes = name in _SIZES
    if unit in _SIZE_UNITS and (sizes or unit != "B"):
        return float(match["number"]) * _SIZE_UNITS[unit]
    if unit in _COUNT_UNITS and not (sizes and unit == "B"):
        return float(match["number"]) * _COUNT_UNITS[unit]
    raise ValueError(f"{name}: {text!r}")


def _value(name: str, text: str) -> float:
    """A metric's displayed value summed over tasks: ``{0:v, 1:v}`` or one ``v``."""
    if text.startswith("{") and text.endswith("}"):
        body = text[1:-1].strip()
        return sum(_number(name, part.partition(":")[2]) for part in body.split(", ") if part) if body else 0.0
    return _number(name, text)


def _metrics_of(line: str) -> dict[str, float] | None:
    """The metrics a node line shows (only the names summed here), or None when it shows none."""
    at = line.rfind(_SUFFIX)
    if at < 0 or not line.rstrip().endswith("]"):
        return None
    body = line[at + len(_SUFFIX):line.rstrip().rfind("]")]
    wanted = {name for name, _ in _SUMMED.values()}
    found: dict[str, float] = {}
    for name, value in _entries(body):
        if name in wanted:
            found[name] = found.get(name, 0.0) + _value(name, value)
    return found


def parse_plan_metrics(plan: str) -> dict[str, int]:
    """Per-query totals of what the plan shows (:data:`METRICS`); empty for a plan that is not
    upstream's distributed display, or that cannot be read (a warning says why)."""
    try:
        return _parse(plan)
    except (ValueError, TypeError, AttributeError) as error:
        log.warning("plan metrics not read (left empty): %s", error)
        return {}


def _parse(plan: str) -> dict[str, int]:
    if not isinstance(plan, str) or not _HEAD.search(plan):
        return {}
    stages: set[int] = set()
    tasks = 0
    sums = dict.fromkeys(_SUMMED, 0.0)
    shown = False  # any node with metrics=[...]: a plan displayed without metrics has totals unknown
    for line in plan.splitlines():
        header = _STAGE.search(line)
        if header:
            stages.add(int(header["stage"]))
            tasks += int(header["tasks"])
            continue
        if _HEAD.search(line):
            continue
        metrics = _metrics_of(line)
        if metrics is None:
            continue
        shown = True
        boundary = bool(_BOUNDARY.search(line))
        for key, (name, nodes) in _SUMMED.items():
            if name in metrics and (nodes == "all" or boundary):
                sums[key] += metrics[name]
    result = {key: round(value) for key, value in sums.items()} if shown else {}
    result.update(stages=len(stages), tasks=tasks)
    return {key: result[key] for key in METRICS if key in result}
