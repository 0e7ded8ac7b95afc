"""The benchmark of an accepted request, as the workflow's benchmark job runs it: provision a
cluster of the pull request's own (TTL 2 h, spot when the workflow says so), an interleaved A/B of
the base and head workers built by the build job (``run_ab_cluster``), one comment with the
comparison; a failure anywhere, one comment naming the step and the end of its output; teardown
always (the workflow's ``if: always()`` step and the instances' time-to-live back it up).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dfbench.errors import DfbenchError
from dfbench.github.api import GitHub
from dfbench.github.event import Accepted, Event
from dfbench.github.report import RunLinks, Sides, failure_comment, result_comment

log = logging.getLogger("dfbench")

TTL_HOURS = 2.0
_TAIL = 60


@dataclass(frozen=True)
class BenchSettings:
    """What the workflow sets for every request (its flags to ``dfbench github run``)."""

    region: str | None = None
    spot: bool = False
    via: str = "auto"
    data_dir: Path = Path("dfbench-results")
    plot: Path | None = None
    ttl_hours: float = TTL_HOURS


def cluster_name(number: int) -> str:
    """One cluster per pull request: the workflow's concurrency group runs one request at a time."""
    return f"dfbench-pr-{int(number)}"


class StepFailed(Exception):
    def __init__(self, step: str, tail: list[str]) -> None:
        self.step = step
        self.tail = tail
        super().__init__(f"step {step} failed")


class _Tail(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: deque[str] = deque(maxlen=_TAIL)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.extend(self.format(record).splitlines())


@contextmanager
def step(name: str) -> Iterator[None]:
    """Run a step, keeping the end of what it logged; any failure becomes StepFailed(name, that
    end and the error's own lines)."""
    tail = _Tail()
    log.addHandler(tail)
    log.info("== %s", name)
    try:
        yield
    except Exception as error:  # any failure of the step: named in the comment, then the job fails
        text = str(error) if isinstance(error, DfbenchError) else f"{type(error).__name__}: {error}"
        log.error("%s failed: %s", name, text)
        raise StepFailed(name, [*tail.lines]) from error
    finally:
        log.removeHandler(tail)


def run_benchmark(event: Event, accepted: Accepted, github: GitHub, *, base_binary: Path, head_binary: Path,
                  settings: BenchSettings, links: RunLinks | None = None) -> int:
    """Provision, A/B, comment; teardown always. 0 when the comparison was posted and the cluster
    is gone, else 1 (after a comment naming the failed step)."""
    import dfbench.provision as lifecycle
    from dfbench.ab import run_ab_cluster
    from dfbench.aws.session import default_region
    from dfbench.comparison.plot import write_plot
    from dfbench.config import ClusterSpec

    request, name = accepted.request, cluster_name(event.number)
    failure: StepFailed | None = None
    try:
        with step("provision"):
            lifecycle.provision(ClusterSpec(name=name, region=default_region(settings.region),
                                            instance_type=request.instance_type, instance_count=request.nodes,
                                            spot=settings.spot, ttl_hours=settings.ttl_hours))
        with step("benchmark"):
            run = run_ab_cluster(cluster=name, base=base_binary, new=head_binary, dataset=request.dataset,
                                 rounds=request.rounds, queries=list(request.queries) if request.queries else None,
                                 base_name=f"base-{accepted.base_sha[:12]}", new_name=f"head-{accepted.head_sha[:12]}",
                                 data_dir=settings.data_dir,
                                 settings=["distributed", *(f"{k}={v}" for k, v in request.settings)],
                                 via=settings.via, region=settings.region, progress=False)
        if settings.plot is not None:
            with step("chart"):
                write_plot(run.comparison, settings.plot)
        body = result_comment(run.comparison, request, author=event.author, links=links,
                              sides=Sides(base_ref=accepted.base_ref, base_sha=accepted.base_sha,
                                          head_sha=accepted.head_sha))
        with step("comment"):
            github.comment(event.number, body)
    except StepFailed as failed:
        failure = failed
    cleaned = True
    try:
        with step("teardown"):
            report = lifecycle.teardown(name, region=settings.region)
            if report.left:
                raise DfbenchError(f"left: {', '.join(report.left)}; " + "; ".join(report.errors))
    except StepFailed as failed:
        cleaned = False
        failure = failure or failed
    if failure is None:
        return 0
    github.comment(event.number, failure_comment(failure.step, failure.tail, request, author=event.author,
                                                 links=links, cleaned_up=cleaned))
    return 1
