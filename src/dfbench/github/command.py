"""The ``/dfbench run`` comment of a pull request: parsed, as a pure function of its text, into a
typed request, or a typed refusal whose reply says what is wrong and how to write it; and the
limits a repository sets on what a comment may ask for (nodes, scale factor, instance types).

A comment is a command when its first non-blank line starts with the word ``/dfbench``; any other
comment is no command at all (None), and is ignored. The grammar::

    /dfbench run DATASET [--nodes N] [--instance-type T] [--base REF] [--set key=value ...]
                         [--rounds R] [--queries q1,q3]

Everything after the first line is free text. Nothing of the comment reaches a shell: the line is
split as a shell would split it (quotes) by Python's shlex, then every value is checked here.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from dfbench.data.scale import benchmark_of, canonical_dataset, dataset_name, is_sorted, scale_factor_of
from dfbench.errors import ConfigError

COMMAND = "/dfbench"
USAGE = ("/dfbench run DATASET [--nodes N] [--instance-type T] [--base REF] [--set key=value ...] "
         "[--rounds R] [--queries q1,q3]")
EXAMPLE = "/dfbench run tpch/sf10 --nodes 4 --rounds 5"

# Upstream's spellings of a generated dataset (its benchmarks' `tpch/sf10`), mapped to dfbench's
# folder names (`tpch_sf10`). The other spellings upstream uses (clickbench/0-100,
# tpch/sorted_sf10) come with the data layer's own mapping; dataset_for is the one place to switch.
# A git branch, tag or commit as `git check-ref-format` admits it, narrowed: no component starting
# with '.' or '-', no '..', '@{', '//', nor a name ending in '/', '.' or '.lock'.
_REF = re.compile(r"^(?![./-])(?!.*(?:\.\.|//|@\{|/[.-]))[A-Za-z0-9._/@-]{1,200}(?<![./])(?<!\.lock)\Z")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+\Z")
_OPTIONS = ("--nodes", "--instance-type", "--base", "--set", "--rounds", "--queries")


@dataclass(frozen=True)
class Limits:
    """What a comment may ask for, and what it gets when it asks for nothing. The workflow passes
    them (``dfbench github run --max-nodes …``); it runs from the default branch, so a pull request
    cannot change them."""

    max_nodes: int = 16
    max_scale_factor: Decimal = Decimal(100)
    instance_types: tuple[str, ...] = ("c5n.2xlarge", "c5n.4xlarge", "c6i.2xlarge", "c7i.2xlarge", "m5.2xlarge")
    max_rounds: int = 20
    nodes: int = 4
    rounds: int = 5

    def __post_init__(self) -> None:
        if not 1 <= self.nodes <= self.max_nodes:
            raise ConfigError(f"the default node count {self.nodes} must be between 1 and the maximum "
                              f"{self.max_nodes}.")
        if not 1 <= self.rounds <= self.max_rounds:
            raise ConfigError(f"the default rounds {self.rounds} must be between 1 and the maximum {self.max_rounds}.")
        if not self.instance_types:
            raise ConfigError("give at least one allowed instance type.")
        for name in self.instance_types:
            if not _INSTANCE_TYPE.match(name):
                raise ConfigError(f"{name!r} is not an EC2 instance type such as c5n.2xlarge.")
        if self.max_scale_factor <= 0:
            raise ConfigError("the maximum scale factor must be positive.")

    @property
    def instance_type(self) -> str:
        """The default: the first allowed type."""
        return self.instance_types[0]

    def describe(self) -> str:
        return (f"at most {self.max_nodes} nodes, scale factor at most {self.max_scale_factor}, at most "
                f"{self.max_rounds} rounds, instance types {', '.join(self.instance_types)}")


@dataclass(frozen=True)
class BenchRequest:
    """A valid ``/dfbench run``: what to benchmark and how. ``base`` None: the pull request's base
    branch. ``settings`` are the ``--set`` overrides, in order."""

    line: str  # the command as written
    dataset: str  # dfbench's name (tpch_sf10)
    nodes: int
    instance_type: str
    rounds: int
    base: str | None = None
    settings: tuple[tuple[str, str], ...] = ()
    queries: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Refusal:
    """A ``/dfbench`` command that cannot run; ``reason`` says why."""

    line: str
    reason: str
    limits: Limits = field(default_factory=Limits)

    def reply(self) -> str:
        return (f"dfbench cannot run this request: {self.reason}\n\n{quoted(self.line)}\n\n"
                f"Write it as\n\n{quoted(USAGE)}\n\nfor example `{EXAMPLE}` (datasets such as `tpch/sf10`, "
                f"`tpch_sf10`, `tpcds/sf1`, `clickbench_0-100`; limits here: {self.limits.describe()}).")


def quoted(text: str) -> str:
    """``text`` as a fenced code block, whatever backticks it holds: no markdown of a commenter's
    text is rendered, and no @mention in it notifies anyone."""
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    return f"{fence}\n{text}\n{fence}"


def dataset_for(name: str) -> str:
    """dfbench's dataset name for a name a comment may give, or a ConfigError: either spelling the
    data layer knows (``canonical_dataset``: upstream's tpch/sf10, tpch/sorted_sf10, tpcds/sf1,
    clickbench/0-100, or dfbench's tpch_sf10...), of a benchmark dfbench runs."""
    unknown = ConfigError(f"unknown dataset `{name}`: give tpch/sfN or tpch_sfN, tpch/sorted_sfN, tpcds/sfN or "
                          "tpcds_sfN, or clickbench/START-END")
    try:
        text = canonical_dataset(name.strip())
    except ConfigError:
        raise unknown from None
    benchmark = benchmark_of(text)
    if benchmark is None:
        raise unknown
    return dataset_name(benchmark, scale_factor_of(text), sorted=is_sorted(text)) if benchmark != "clickbench" \
        else text


def command_line(body: str) -> str | None:
    """The comment's first non-blank line when it is a ``/dfbench`` command, else None."""
    for line in body.splitlines():
        if line.strip():
            stripped = line.strip()
            return stripped if stripped.split()[0] == COMMAND else None
    return None


def parse_comment(body: str, limits: Limits | None = None) -> BenchRequest | Refusal | None:
    """The request a comment makes: None for a comment that is no command (ignored), a Refusal for
    a command that cannot run (the reply says why), else the BenchRequest. Pure: no I/O beyond the
    bundled query lists the ``--queries`` check reads."""
    limits = limits or Limits()
    line = command_line(body)
    if line is None:
        return None
    try:
        return _request(line, limits)
    except ConfigError as error:
        return Refusal(line=line, reason=str(error).rstrip("."), limits=limits)


def _request(line: str, limits: Limits) -> BenchRequest:
    try:
        words = shlex.split(line)
    except ValueError as error:
        raise ConfigError(f"the command does not split into words ({error})") from None
    if len(words) < 2 or words[1] != "run":
        raise ConfigError(f"`{COMMAND} run` is the only command" + (f", not `{words[1]}`" if len(words) > 1 else ""))
    if len(words) < 3 or words[2].startswith("-"):
        raise ConfigError("name the dataset after `run`")
    dataset = dataset_for(words[2])
    values = _options(words[3:])
    nodes = _whole(values, "--nodes", limits.nodes, limits.max_nodes)
    rounds = _whole(values, "--rounds", limits.rounds, limits.max_rounds)
    instance_type = _single(values, "--instance-type") or limits.instance_type
    if instance_type not in limits.instance_types:
        raise ConfigError(f"instance type `{instance_type}` is not allowed here (allowed: "
                          f"{', '.join(limits.instance_types)})")
    if benchmark_of(dataset) in ("tpch", "tpcds") and scale_factor_of(dataset) > limits.max_scale_factor:
        raise ConfigError(f"scale factor {scale_factor_of(dataset)} is over this repository's limit of "
                          f"{limits.max_scale_factor}")
    base = _single(values, "--base")
    if base is not None and not _REF.match(base):
        raise ConfigError(f"`{base}` is not a branch, tag or commit name")
    settings = tuple(_setting(text) for text in values.get("--set", []))
    queries = _queries(dataset, values.get("--queries"))
    return BenchRequest(line=line, dataset=dataset, nodes=nodes, instance_type=instance_type, rounds=rounds,
                        base=base, settings=settings, queries=queries)


def _options(words: Sequence[str]) -> dict[str, list[str]]:
    """``--name value`` and ``--name=value``; --queries also takes several words (q1 q3); --set may
    repeat, the others may not."""
    values: dict[str, list[str]] = {}
    index = 0
    while index < len(words):
        name, equals, value = words[index].partition("=")
        if name not in _OPTIONS:
            raise ConfigError(f"unknown option `{words[index]}`" if words[index].startswith("-")
                              else f"unexpected `{words[index]}` (one dataset, then options)")
        if name in values and name != "--set":
            raise ConfigError(f"`{name}` is given twice")
        taken = [value] if equals else []
        index += 1
        while index < len(words) and not words[index].startswith("--") and (
                not taken or name == "--queries"):
            taken.append(words[index])
            index += 1
        if not taken or not all(taken):
            raise ConfigError(f"`{name}` needs a value")
        values.setdefault(name, []).extend(taken)
    return values


def _single(values: dict[str, list[str]], name: str) -> str | None:
    found = values.get(name)
    return found[0] if found else None


def _whole(values: dict[str, list[str]], name: str, default: int, most: int) -> int:
    text = _single(values, name)
    if text is None:
        return default
    if not text.isdecimal() or not 1 <= int(text) <= most:
        raise ConfigError(f"`{name}` takes a whole number from 1 to {most} here (got `{text}`)")
    return int(text)


def _setting(text: str) -> tuple[str, str]:
    from dfbench.bench.settings import resolve_settings

    if "=" not in text:
        raise ConfigError(f"`--set {text}` must look like key=value")
    resolved = resolve_settings([text])  # the runner's own check of names and values
    if len(resolved) != 1:
        raise ConfigError(f"`--set {text}` must be one key=value (repeat --set for more)")
    [(key, value)] = resolved.items()
    return key, value


def _queries(dataset: str, given: list[str] | None) -> tuple[str, ...] | None:
    from dfbench.bench.queries import select_queries

    if given is None:
        return None
    ids = [part.strip() for text in given for part in text.split(",") if part.strip()]
    select_queries(dataset, ids)  # the bundled set of the dataset: unknown or repeated ids refused
    return tuple(ids)
