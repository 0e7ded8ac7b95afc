"""Is a cluster ready to benchmark? Judged from every worker's ``/info`` (ARCHITECTURE.md §5).

A distributed run is only meaningful when every worker knows every other one (a worker missing a
peer silently runs with fewer tasks) and all of them run the same build (a mixed cluster measures
neither commit). Both the deploy's verification (``/info`` read on each instance through SSM) and
the check before a remote run (``/info`` read through the transports) judge with :func:`judge`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from dfbench.models import Instance, Record


class WorkerHealth(Record):
    """One instance's worker as its ``/info`` shows it."""

    instance_id: str
    name: str
    commit: str | None = None
    peers: int | None = None
    problems: tuple[str, ...] = ()
    # /info's errors: the peers the worker could not connect to, each as the worker words it.
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def label(self) -> str:
        return f"{self.instance_id} ({self.name})" if self.name else self.instance_id


def _host(url: object) -> str:
    text = str(url)
    return (urlsplit(text if "://" in text else f"//{text}").hostname or "").lower()


def _knows(hosts: set[str], instance: Instance) -> bool:
    """A peer list names an instance by its private IP, or by EC2's private DNS name built from it
    (ip-10-0-1-5 or ip-10-0-1-5.ec2.internal)."""
    if not instance.private_ip:
        return True  # nothing to recognise it by: the count check still applies
    dashed = "ip-" + instance.private_ip.replace(".", "-")
    return any(h in (instance.private_ip, dashed) or h.startswith(dashed + ".") for h in hosts)


def judge(instances: Sequence[Instance], infos: Mapping[str, dict[str, Any] | str]) -> list[WorkerHealth]:
    """Each instance's health from ``infos`` (instance id → the parsed ``/info``, or the text of why
    there is none). An instance absent from ``infos`` did not answer. Checked: the answer is the
    worker's (``git_commit_hash`` and ``worker_urls``), the peer list holds every instance, the
    worker reports no errors, and its commit is the one most of the cluster runs."""
    healths: list[WorkerHealth] = []
    commits: dict[str, str] = {}
    for instance in instances:
        info = infos.get(instance.instance_id, "no answer")
        problems: list[str] = []
        commit = peers = None
        errors: tuple[str, ...] = ()
        if isinstance(info, str):
            problems.append(f"/info did not answer: {info}")
        elif not isinstance(info.get("git_commit_hash"), str) or not isinstance(info.get("worker_urls"), list):
            problems.append("/info is not the worker's (no git_commit_hash and worker_urls): "
                            f"{str(info)[:200]}")
        else:
            commit = commits[instance.instance_id] = info["git_commit_hash"]
            urls = info["worker_urls"]
            peers = len(urls)
            hosts = {_host(url) for url in urls}
            missing = [i for i in instances if not _knows(hosts, i)]
            if missing:
                problems.append("peer list lacks " + ", ".join(f"{i.instance_id} ({i.private_ip})" for i in missing))
            elif peers != len(instances):
                problems.append(f"knows {peers} worker(s), the cluster has {len(instances)}: "
                                f"{', '.join(map(str, urls)) or 'none'}")
            errors = tuple(map(str, info.get("errors") or ()))
            if errors:
                problems.append(f"{_ERRORS}{'; '.join(errors)}")
        healths.append(WorkerHealth(instance_id=instance.instance_id, name=instance.name, commit=commit,
                                    peers=peers, problems=tuple(problems), errors=errors))
    if len(set(commits.values())) > 1:
        healths = [h.model_copy(update={"problems": (*h.problems, _commit_problem(h.commit, commits))})
                   if h.commit is not None and _commit_problem(h.commit, commits) else h for h in healths]
    return healths


_ERRORS = "reports errors: "


def _commit_problem(commit: str, commits: Mapping[str, str]) -> str | None:
    """What is wrong with running ``commit`` in a cluster whose workers run ``commits``: the commit
    most workers run is taken as the intended one; with no majority every worker is named."""
    counts = Counter(commits.values()).most_common()
    majority = counts[0][0] if len(counts) == 1 or counts[0][1] > counts[1][1] else None
    if commit == majority:
        return None
    if majority is not None:
        return f"runs commit {commit}, most workers run {majority}"
    return f"runs commit {commit}; the workers disagree: {', '.join(sorted(set(commits.values())))}"


def problems_text(healths: Sequence[WorkerHealth]) -> list[str]:
    """One line per problem, prefixed with the instance it is about."""
    return [f"{h.label}: {problem}" for h in healths for problem in h.problems]


def health_table(healths: Sequence[WorkerHealth], total: int | None = None) -> str:
    """A plain-text table, one row per instance: commit, peers known, what is wrong; under a
    worker whose /info reports errors, one line per error (a peer it could not connect to)."""
    total = len(healths) if total is None else total
    rows = [("instance", "name", "commit", "peers", "problems")]
    below: dict[int, tuple[str, ...]] = {}
    for h in healths:
        shown = [p for p in h.problems if not p.startswith(_ERRORS)]
        if h.errors:
            shown.append(f"reports {len(h.errors)} error(s) (peers it could not connect to):")
            below[len(rows)] = h.errors
        rows.append((h.instance_id, h.name or "-", (h.commit or "-")[:12],
                     "-" if h.peers is None else f"{h.peers}/{total}", "; ".join(shown) or "ok"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  " + "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
                     + "  " + row[4])
        lines += [f"      {row[0]}: {error}" for error in below.get(index, ())]
    return "\n".join(lines)
