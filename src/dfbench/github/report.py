"""The comments ``dfbench github run`` posts: the comparison of a finished run, a failed step, a
refused commenter. Markdown; the commenter's text only ever inside a code block."""

from __future__ import annotations

import os
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dfbench.comparison.records import Comparison
from dfbench.comparison.render import detectable_sentence, render_markdown, suite_sentence, tooling_lines
from dfbench.github.command import BenchRequest, quoted

# GitHub refuses a comment body over 65536 characters; a failure's output is cut well below that.
MAX_COMMENT = 60000
FAILURE_TAIL_LINES = 30


@dataclass(frozen=True)
class RunLinks:
    """Where the workflow run's logs are: GITHUB_SERVER_URL/GITHUB_REPOSITORY/actions/runs/GITHUB_RUN_ID."""

    server: str
    repository: str
    run_id: str

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> RunLinks | None:
        env = os.environ if environ is None else environ
        if not env.get("GITHUB_RUN_ID") or not env.get("GITHUB_REPOSITORY"):
            return None
        return cls(server=env.get("GITHUB_SERVER_URL") or "https://github.com", repository=env["GITHUB_REPOSITORY"],
                   run_id=env["GITHUB_RUN_ID"])

    @property
    def run_url(self) -> str:
        return f"{self.server.rstrip('/')}/{self.repository}/actions/runs/{self.run_id}"


@dataclass(frozen=True)
class Sides:
    """What was compared: the base ref and the two commits built."""

    base_ref: str
    base_sha: str
    head_sha: str


def _logs_line(links: RunLinks | None) -> str:
    if links is None:
        return "Logs: this run's job output."
    return (f"Logs: [workflow run {links.run_id}]({links.run_url}); the chart and the result files are its "
            "`dfbench-results` artifact.")


def _request_block(request: BenchRequest, author: str) -> str:
    return f"Request by {author}:\n\n{quoted(request.line)}"


def tasks_line(comparison: Comparison) -> str | None:
    """TASKS as upstream's benchmark bot prints it: the sum over the queries that succeeded on
    both sides of each side's median task count; None when the workers report no tasks."""
    prev = new = 0
    for query in comparison.queries:
        if query.base is None or query.new is None or query.base.failed or query.new.failed:
            continue
        prev += round(statistics.median(i.tasks for i in query.base.iterations))
        new += round(statistics.median(i.tasks for i in query.new.iterations))
    if prev == 0 and new == 0:
        return None
    return f"{'TASKS'.rjust(8)}: prev={prev}, new={new}"


def result_comment(comparison: Comparison, request: BenchRequest, *, author: str, sides: Sides,
                   links: RunLinks | None) -> str:
    """The verdict first, then the smallest detectable change, the queries (collapsed), the links
    and the exact request."""
    table = render_markdown(comparison).splitlines()[1:]  # its heading is replaced by this comment's
    tooling = tooling_lines(comparison)
    tasks = tasks_line(comparison)
    if tasks is not None:
        tooling.append(tasks)
    detectable = detectable_sentence(comparison)
    lines = [(f"### dfbench: `{comparison.dataset}` on {request.nodes} × {request.instance_type}, "
              f"{request.rounds} interleaved rounds"),
             "",
             f"Head `{sides.head_sha[:12]}` against base `{sides.base_ref}` (`{sides.base_sha[:12]}`).",
             "",
             f"**Suite: {suite_sentence(comparison)}**",
             ""]
    if detectable is not None:
        lines += [detectable[0].upper() + detectable[1:] + ".", ""]
    lines += [f"<details><summary>Queries ({len(comparison.queries)})</summary>", "", *table, "",
              quoted("\n".join(tooling)), "", "</details>", "", _logs_line(links), "",
              _request_block(request, author)]
    return "\n".join(lines) + "\n"


def failure_comment(step: str, tail: Sequence[str], request: BenchRequest, *, author: str,
                    links: RunLinks | None, cleaned_up: bool | None) -> str:
    """A failed step: its name and the end of its output. ``cleaned_up`` None: no cluster was made."""
    shown = list(tail)[-FAILURE_TAIL_LINES:]
    output = "\n".join(shown)[-MAX_COMMENT // 2:]
    after = ("Nothing was provisioned." if cleaned_up is None else "The cluster was torn down." if cleaned_up else
             "The teardown did not finish: the workflow's teardown step and the instances' time-to-live remove "
             "what is left.")
    return "\n".join([f"### dfbench: the **{step}** step failed", "", "The end of its output:", "",
                      quoted(output or "(no output)"), "", after, "", _logs_line(links), "",
                      _request_block(request, author)]) + "\n"


def refused_commenter(author: str, repository: str) -> str:
    return (f"dfbench runs benchmarks only for people with write access to {repository}; {author} has none, so "
            "nothing was started. Ask a maintainer to comment the command.")
