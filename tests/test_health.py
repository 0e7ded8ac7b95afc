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
    assert healths[1].errors == ("peer 10.0.1.12 unreachable",) and healths[0].errors == ()
    table = health_table(healths)
    rows = table.splitlines()
    assert rows[0].split() == ["instance", "name", "commit", "peers", "problems"]
    assert rows[1].split()[-1] == "ok" and rows[2].split()[3] == "2/3" and rows[4].split()[3] == "-"
    # The worker's errors, each on a line of its own under it.
    assert rows[3] == f"      {second.instance_id}: peer 10.0.1.12 unreachable"


def test_each_error_a_worker_reports_is_shown_under_it() -> None:
    first, second, third = CLUSTER
    errors = ["Error connecting to http://10.0.1.11:9001/: transport error",
              "Error connecting to http://10.0.1.12:9001/: connection refused"]
    healths = judge(CLUSTER, {first.instance_id: info(EVERYONE, errors=errors),
                              second.instance_id: info(EVERYONE), third.instance_id: info(EVERYONE)})
    assert [h.errors for h in healths] == [tuple(errors), (), ()]
    assert problems_text(healths) == [f"{healths[0].label}: reports errors: {'; '.join(errors)}"]
    rows = health_table(healths).splitlines()
    assert rows[1].endswith("reports 2 error(s) (peers it could not connect to):")
    assert rows[2:4] == [f"      {first.instance_id}: {error}" for error in errors]
    assert rows[4].startswith(f"  {second.instance_id}") and rows[4].endswith("ok")


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
