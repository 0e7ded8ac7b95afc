"""Benchmarks of pull requests from their comments (`dfbench github init | run | role`): the
``/dfbench run`` grammar and its limits, dfbench's GitHub REST client, the event and the decision,
the benchmark job's pipeline and comments, the workflow, and the repository's AWS role.

Only the light parts are re-exported here; ``dfbench.github.role`` (boto3) and
``dfbench.github.pipeline`` (the cluster life cycle) are imported where they are used."""

from dfbench.github.api import GitHub, PullRequest
from dfbench.github.command import BenchRequest, Limits, Refusal, dataset_for, parse_comment
from dfbench.github.event import Accepted, Event, decide, read_event

__all__ = ["Accepted", "BenchRequest", "Event", "GitHub", "Limits", "PullRequest", "Refusal", "dataset_for",
           "decide", "parse_comment", "read_event"]
