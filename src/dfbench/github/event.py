"""What ``dfbench github run`` reads of the workflow's event, and what it decides from it.

The event file (``$GITHUB_EVENT_PATH``) is JSON GitHub writes: a comment's body, branch names and
titles reach dfbench only through it, parsed here in Python, never through a shell. Two events
start the workflow: ``issue_comment`` (created, on a pull request; a comment on an issue or an
edited one is no request) and ``workflow_dispatch`` with the inputs ``pr`` and ``command``.

The decision, for a comment that is a ``/dfbench`` command, checks the commenter's write access
through the API before anything else (``author_association`` says nothing about a user's role
in an organisation's teams: the permission endpoint does), answers a refusal with a reply, and
acknowledges a valid request with an eyes reaction. An ordinary comment gets no request at all.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dfbench.errors import ConfigError
from dfbench.github.api import GitHub, PullRequest
from dfbench.github.command import BenchRequest, Limits, Refusal, parse_comment
from dfbench.github.report import refused_commenter

EVENTS = ("issue_comment", "workflow_dispatch")


@dataclass(frozen=True)
class Event:
    name: str  # issue_comment or workflow_dispatch
    number: int  # the pull request's
    author: str
    body: str
    comment_id: int | None = None
    bot: bool = False


@dataclass(frozen=True)
class Accepted:
    """A request that may run, with the commits it compares."""

    request: BenchRequest
    pull: PullRequest
    base_ref: str
    base_sha: str

    @property
    def head_sha(self) -> str:
        return self.pull.head_sha


def read_event(path: str | Path, name: str | None = None) -> Event | None:
    """The event, or None for one that is no request (a comment on an issue, an edit). ``name`` is
    GITHUB_EVENT_NAME (read from the environment when not given)."""
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read the event file {path}: {error}") from None
    if not isinstance(payload, dict):
        raise ConfigError(f"the event file {path} holds no JSON object")
    name = name or os.environ.get("GITHUB_EVENT_NAME") or ""
    try:
        return _event(payload, name)
    except (KeyError, TypeError, ValueError) as error:
        raise ConfigError(f"the event file {path} lacks the fields of a GitHub {name} event ({error!r})") \
            from None


def _event(payload: dict[str, Any], name: str) -> Event | None:
    if name not in EVENTS:
        raise ConfigError(f"GITHUB_EVENT_NAME is {name!r}: the workflow runs on {' or '.join(EVENTS)}")
    if name == "issue_comment":
        issue, comment = payload["issue"], payload["comment"]
        if payload.get("action") != "created" or issue.get("pull_request") is None:
            return None
        user = comment["user"]
        return Event(name=name, number=int(issue["number"]), author=str(user["login"]),
                     body=str(comment.get("body") or ""), comment_id=int(comment["id"]),
                     bot=user.get("type") == "Bot")
    inputs = payload.get("inputs") or {}
    number = str(inputs.get("pr", "")).strip()
    if not number.isdecimal():
        raise ConfigError(f"the workflow's input `pr` must be a pull request number (got {number!r})")
    return Event(name=name, number=int(number), author=str(payload["sender"]["login"]),
                 body=str(inputs.get("command") or ""))


def decide(event: Event, github: GitHub, limits: Limits, *, answer: bool = True) -> Accepted | None:
    """The request to run, or None. ``answer``: reply to refusals and react to a valid request
    (the workflow's first job); the benchmark job decides again, silently, before any AWS call."""
    parsed = None if event.bot else parse_comment(event.body, limits)
    if parsed is None:
        return None
    if not github.can_write(event.author):
        if answer:
            github.comment(event.number, refused_commenter(event.author, github.repository))
        return None
    if isinstance(parsed, Refusal):
        if answer:
            github.comment(event.number, parsed.reply())
        return None
    if answer and event.comment_id is not None:
        github.react(event.comment_id, "eyes")
    pull = github.pull_request(event.number)
    base_ref = parsed.base or pull.base_ref
    base_sha = github.commit_sha(base_ref)
    if base_sha is None:
        if answer:
            github.comment(event.number, Refusal(parsed.line, f"{github.repository} has no branch, tag or commit "
                                                 f"`{base_ref}` to compare with", limits).reply())
        return None
    return Accepted(request=parsed, pull=pull, base_ref=base_ref, base_sha=base_sha)


def write_outputs(accepted: Accepted | None, path: str | Path | None) -> dict[str, str]:
    """The step outputs the build job reads (``$GITHUB_OUTPUT``): whether to go on, and the two
    commits to build, each a 40-hex sha (so nothing else can reach the next job's inputs)."""
    outputs = {"proceed": "false"}
    if accepted is not None:
        for sha in (accepted.base_sha, accepted.head_sha):
            if len(sha) != 40 or any(c not in "0123456789abcdef" for c in sha):
                raise ConfigError(f"GitHub answered {sha!r} for a commit: not a sha")
        outputs = {"proceed": "true", "base_sha": accepted.base_sha, "head_sha": accepted.head_sha,
                   "pr": str(accepted.pull.number)}
    if path:
        with Path(path).open("a", encoding="utf-8") as file:
            file.writelines(f"{key}={value}\n" for key, value in outputs.items())
    return outputs

