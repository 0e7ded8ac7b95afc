"""What `dfbench verify-aws` observed and what it concludes: the facts a run gathers, the one record
of a probe's result (``Finding``), the report of a run, and its JSON and Markdown."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dfbench.files import write_atomically, write_json_atomically
from dfbench.models import Record


class Unobserved(Exception):
    """A fact a probe needs was not gathered (its step failed, was interrupted, or cannot happen
    here): the probe's row says so with holds null."""


@dataclass
class Facts:
    """What the run's steps measured, by name, and why the steps that failed did so."""

    values: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # step -> its error, one line
    errors: dict[str, str] = field(default_factory=dict)  # fact -> the error of the call that would give it
    steps: dict[str, str] = field(default_factory=dict)  # fact name -> the step that records it

    def record(self, step: str, **values: Any) -> None:
        for name, value in values.items():
            self.values[name] = value
            self.steps[name] = step

    def need(self, name: str, step: str) -> Any:
        """The fact ``name``, which ``step`` gathers; Unobserved saying why it is missing."""
        if name in self.values:
            return self.values[name]
        if name in self.errors:
            raise Unobserved(f"not observed: {self.errors[name]}")
        if step in self.failures:
            raise Unobserved(f"not observed: step {step!r} failed: {self.failures[step]}")
        earlier = "; ".join(f"step {s!r} failed: {error}" for s, error in self.failures.items())
        raise Unobserved(f"not observed: step {step!r} did not run" + (f" ({earlier})" if earlier else ""))


# A probe's judgement: what was observed, whether the assumption holds (None: not observable), evidence.
Judgement = tuple[str, bool | None, str]


@dataclass(frozen=True)
class Probe:
    """One assumption README lists as not verified against real AWS. ``readme`` is the words of
    README's note that name it (tests/test_verify_aws.py checks both ways that every note has a
    probe and every probe a note); ``judge`` turns the run's facts into the judgement."""

    key: str
    assumption: str
    readme: str
    judge: Callable[[Facts], Judgement]


class Finding(Record):
    """One row of the report: one probe's result."""

    probe: str
    assumption: str
    observed: str
    holds: bool | None
    evidence: str


def judge(probe: Probe, facts: Facts) -> Finding:
    try:
        observed, holds, evidence = probe.judge(facts)
    except Unobserved as missing:
        observed, holds, evidence = "not observed", None, str(missing)
    except (KeyError, ValueError, TypeError, IndexError) as error:  # an answer of a shape not foreseen
        observed, holds, evidence = "not judged", None, f"the observation could not be read: {error!r}"
    return Finding(probe=probe.key, assumption=probe.assumption, observed=observed, holds=holds, evidence=evidence)


class VerifyReport(Record):
    """A run of verify-aws: where, when, what it found, and what its cleanup could not delete
    (``left``: empty when it left nothing)."""

    run_id: str
    region: str
    account: str
    endpoint: str | None  # an endpoint override (an emulator): the answers are not AWS's then
    started: str
    seconds: float
    interrupted: bool
    findings: list[Finding]
    left: list[str]

    def counts(self) -> dict[str, int]:
        holds = [f.holds for f in self.findings]
        return {"holds": holds.count(True), "fails": holds.count(False), "unobserved": holds.count(None)}

    def markdown(self) -> str:
        counts = self.counts()
        lines = [
            f"# dfbench verify-aws, run {self.run_id}",
            "",
            f"Region {self.region}, account {self.account}, started {self.started}, {self.seconds:.0f} s"
            + (" (interrupted)" if self.interrupted else "") + ".",
            f"{counts['holds']} hold, {counts['fails']} do not, {counts['unobserved']} not observed.",
        ]
        if self.endpoint:
            lines.append(f"Against the endpoint {self.endpoint}, not AWS: these are that emulator's answers.")
        lines.append("Left behind: " + ("; ".join(self.left) if self.left else "nothing") + ".")
        lines += ["", "| assumption | observed | holds | evidence |", "|---|---|---|---|"]
        mark = {True: "yes", False: "**no**", None: "not observed"}
        for f in self.findings:
            lines.append(f"| {_cell(f.assumption)} | {_cell(f.observed)} | {mark[f.holds]} | {_cell(f.evidence)} |")
        return "\n".join(lines) + "\n"

    def write(self, path: Path) -> Path:
        """The JSON at ``path`` and the Markdown beside it (same stem, .md); returns the latter."""
        markdown = path.with_suffix(".md")
        write_json_atomically(path, self.model_dump(mode="json"))
        write_atomically(markdown, self.markdown())
        return markdown


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
