"""Judging a cluster's workers from their /info: peers, commits, errors, silence."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dfbench.models import Instance
from dfbench.worker.health import health_table, judge, problems_text


def instance(n: int) -> Instance:
    return Instance(instance_id=f"i-{n:017x}", name=f"c-{n}", private_ip=f"10.0.1.{10 + n}",
                    public_ip=None, availability_zone="us-east-1a", instance_type="c5n.2xlarge", state="running",
                    image_id="ami-0123456789abcdef0", spot=False, launch_time=datetime(2026, 12, 1, tzinfo=UTC))


CLUSTER = [instance(n) for n in range(3)]


def info(peers: list[str], commit: str = "abc123", errors: list[str] | None = None) -> dict[str, Any]:
    return {"worker_urls": peers, "git_commit_hash": commit, "build_time_utc": "2026-12-01T00:00:00Z",
            "errors": errors or []}


EVERYONE = [f"http://{i.private_ip}:9001" for i in CLUSTER]


def test_a_cluster_where_everyone_knows_everyone_on_one_commit_is_healthy() -> None:
    healths = judge(CLUSTER, {i.instance_id: info(EVERYONE) for i in CLUSTER})
    assert [h.ok for h in healths] == [True, True, True]
    assert [(h.commit, h.peers) for h in healths] == [("abc123", 3)] * 3
    assert problems_text(healths) == []


def test_peers_are_recognised_by_ip_or_by_ec2_private_dns_name() -> None:
    by_dns = [f"http://ip-10-0-1-{10 + n}.ec2.internal:9001" for n in range(3)]
    healths = judge(CLUSTER, {i.instance_id: info(by_dns) for i in CLUSTER})
    assert all(h.ok for h in healths)


def test_each_problem_is_named_on_the_instance_it_is_about() -> None:
    first, second, third = CLUSTER
    healths = judge(CLUSTER, {
        first.instance_id: info(EVERYONE),
        second.instance_id: info(EVERYONE[:2], errors=["peer 10.0.1.12 unreachable"]),
        # third: no answer at all
    })
    assert healths[0].problems == ()
    assert healths[1].problems == (f"peer list lacks {third.instance_id} (10.0.1.12)",
                                   "reports errors: peer 10.0.1.12 unreachable")
    assert healths[2].problems == ("/info did not answer: no answer",)
    table = health_table(healths)
    rows = table.splitlines()
    assert rows[0].split() == ["instance", "name", "commit", "peers", "problems"]
    assert rows[1].split()[-1] == "ok" and rows[2].split()[3] == "2/3" and rows[3].split()[3] == "-"


def test_the_minority_commit_is_the_problem_and_a_tie_names_every_commit() -> None:
    first, second, third = CLUSTER
    healths = judge(CLUSTER, {first.instance_id: info(EVERYONE), second.instance_id: info(EVERYONE, "def456"),
                              third.instance_id: info(EVERYONE)})
    assert [h.problems for h in healths] == [(), ("runs commit def456, most workers run abc123",), ()]
    pair = CLUSTER[:2]
    peers = EVERYONE[:2]
    tie = judge(pair, {first.instance_id: info(peers), second.instance_id: info(peers, "def456")})
    assert [h.problems for h in tie] == [("runs commit abc123; the workers disagree: abc123, def456",),
                                         ("runs commit def456; the workers disagree: abc123, def456",)]


def test_an_answer_that_is_not_the_worker_s_is_a_problem_not_a_crash() -> None:
    healths = judge(CLUSTER[:1], {CLUSTER[0].instance_id: {"status": "ok"}})
    assert healths[0].problems[0].startswith("/info is not the worker's")
    assert healths[0].commit is None and healths[0].peers is None


def test_extra_peers_beyond_the_cluster_are_reported() -> None:
    healths = judge(CLUSTER, {i.instance_id: info(EVERYONE + ["http://10.9.9.9:9001"]) for i in CLUSTER})
    assert all(h.problems == ("knows 4 worker(s), the cluster has 3: " + ", ".join(EVERYONE + ["http://10.9.9.9:9001"]),)
               for h in healths)
