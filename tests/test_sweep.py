"""`dfbench clusters` and `dfbench sweep` against the emulator: orphans of each kind found, a dry run
that deletes nothing, --yes deleting exactly them, and what must never go (a live or stopped
cluster, an unmanaged VPC or role, the bucket) left in place; an interrupted sweep converges."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta

import pytest

import dfbench
from dfbench import ClusterSpec
from dfbench.aws.tags import CLUSTER_KEY, MANAGED_KEY, VERIFY_KEY, tag_list, tag_specifications
from dfbench_testing import Recorder
from test_cli import run
from test_provision import dfbench_buckets, interrupted, inventory

ORPHAN_KINDS = {"vpc", "subnet", "route-table", "internet-gateway", "security-group", "hosted-zone",
                "instance-profile", "iam-role"}


def terminate_all(session, cluster: str, region: str = "us-east-1") -> None:
    """What a time-to-live (or a hand in the console) does: the instances end, the rest stays."""
    ec2 = session.client("ec2", region_name=region)
    ids = [i["InstanceId"] for r in ec2.describe_instances(
        Filters=[{"Name": "tag:dfbench:cluster", "Values": [cluster]}])["Reservations"] for i in r["Instances"]]
    if ids:
        ec2.terminate_instances(InstanceIds=ids)


def seed(inspector) -> dict[str, object]:
    """A live cluster, a stopped one, a dead one (instances terminated, everything else left), what a
    verify-aws run left (tagged with its run id, no cluster), and what dfbench must never take:
    an unmanaged VPC, an unmanaged role named like dfbench's, a managed VPC naming no owner."""
    alive = dfbench.provision(ClusterSpec(name="alive", instance_count=1))
    paused = dfbench.provision(ClusterSpec(name="paused", instance_count=1))
    ec2, iam = inspector.client("ec2"), inspector.client("iam")
    ec2.stop_instances(InstanceIds=[paused.instances[0].instance_id])
    dead = dfbench.provision(ClusterSpec(name="dead", instance_count=1))
    terminate_all(inspector, "dead")
    verify_tags = {MANAGED_KEY: "true", VERIFY_KEY: "run1"}
    verify_vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16",
                                TagSpecifications=tag_specifications("vpc", verify_tags))["Vpc"]["VpcId"]
    iam.create_role(RoleName="dfbench-verify-run1-us-east-1", AssumeRolePolicyDocument="{}",
                    Tags=tag_list(verify_tags))
    unmanaged_vpc = ec2.create_vpc(CidrBlock="10.2.0.0/16")["Vpc"]["VpcId"]
    iam.create_role(RoleName="dfbench-mine-us-east-1", AssumeRolePolicyDocument="{}",
                    Tags=tag_list({CLUSTER_KEY: "mine"}))
    ownerless_vpc = ec2.create_vpc(CidrBlock="10.3.0.0/16", TagSpecifications=tag_specifications(
        "vpc", {MANAGED_KEY: "true"}))["Vpc"]["VpcId"]
    return {"alive": alive, "paused": paused, "dead": dead, "verify_vpc": verify_vpc, "unmanaged_vpc": unmanaged_vpc,
            "ownerless_vpc": ownerless_vpc}


def dead_resources(inspector) -> set[tuple[str, str]]:
    found = inventory(inspector, "dead")
    kinds = {"vpc": "vpc", "subnet": "subnet", "igw": "internet-gateway", "route_table": "route-table",
             "security_group": "security-group", "role": "iam-role", "instance_profile": "instance-profile",
             "hosted_zone": "hosted-zone"}
    return {(kinds[kind], ident.split("/")[-1]) for kind, ids in found.items() if kind in kinds for ident in ids}


def untouched(inspector, seeded) -> None:
    """Everything that is not an orphan is there as it was."""
    for name, count in (("alive", 1), ("paused", 1)):
        found = inventory(inspector, name)
        assert {k: len(v) for k, v in found.items() if k != "instance"} == dict.fromkeys(
            [k for k in found if k != "instance"], 1), found
        assert len(found["instance"]) == count
    ec2, iam = inspector.client("ec2"), inspector.client("iam")
    vpcs = {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]}
    assert {seeded["unmanaged_vpc"], seeded["ownerless_vpc"]} <= vpcs
    assert iam.get_role(RoleName="dfbench-mine-us-east-1")["Role"]
    assert dfbench_buckets(inspector) == [seeded["alive"].bucket]


def test_sweep_finds_each_kind_deletes_nothing_dry_and_exactly_the_orphans_with_yes(
        aws, inspector, recorder: Recorder, capsys: pytest.CaptureFixture[str]) -> None:
    seeded = seed(inspector)
    verify_run = {("vpc", seeded["verify_vpc"]), ("iam-role", "dfbench-verify-run1-us-east-1")}
    expected = dead_resources(inspector) | verify_run
    assert {kind for kind, _ in expected} == ORPHAN_KINDS

    recorder.clear()
    code, out, err = run(capsys, "sweep", "--older-than", "0", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert {(o["kind"], o["id"]) for o in report["orphans"]} == expected
    assert report["deleted"] == [] and report["applied"] is False
    assert recorder.mutating == []
    # The managed VPC naming no owner is said to be kept, and why.
    assert any(seeded["ownerless_vpc"] in line and "names no cluster" in line for line in report["skipped"])
    # Deletion order: the zone first, the network from its members to the VPC, profiles before roles.
    kinds = [o["kind"] for o in report["orphans"]]
    assert kinds.index("hosted-zone") < kinds.index("security-group") < kinds.index("vpc") \
        < kinds.index("instance-profile") < kinds.index("iam-role")

    code, out, _ = run(capsys, "sweep", "--older-than", "0")
    assert "dry run: nothing deleted" in out and f"vpc {seeded['verify_vpc']}" in out

    recorder.clear()
    code, out, err = run(capsys, "sweep", "--older-than", "0", "--yes", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert {(o["kind"], o["id"]) for o in report["deleted"]} == expected and report["left"] == []
    assert dead_resources(inspector) == set()
    assert seeded["verify_vpc"] not in {v["VpcId"] for v in inspector.client("ec2").describe_vpcs()["Vpcs"]}
    untouched(inspector, seeded)
    # Every deleting call named an orphan (or a part of one: a route table's association, a record).
    touched = {str(v) for call in recorder.mutating for v in call.params.values() if isinstance(v, str)}
    others = {ident for name in ("alive", "paused") for ids in inventory(inspector, name).values() for ident in ids}
    assert not touched & ({i.split("/")[-1] for i in others} | {seeded["unmanaged_vpc"], seeded["ownerless_vpc"]})

    code, out, _ = run(capsys, "sweep", "--older-than", "0", "--yes")
    assert code == 0 and "no orphan in us-east-1" in out


def test_young_orphans_are_left_unless_older_than_zero(aws, inspector) -> None:
    dfbench.provision(ClusterSpec(name="dead", instance_count=1))
    terminate_all(inspector, "dead")
    report = dfbench.sweep(apply=True)  # the default: one hour
    assert report.orphans == [] and report.deleted == []
    assert any(line.startswith("cluster dead (us-east-1): ") and "not older than 1h" in line
               for line in report.skipped), report.skipped
    assert len(inventory(inspector, "dead")["vpc"]) == 1


def test_a_role_is_kept_while_its_cluster_lives_in_its_region(aws, inspector) -> None:
    """IAM is global: the role of cluster twin in eu-west-1 stays while twin's instance runs there,
    though twin of us-east-1 is dead and swept, and a region not swept is not judged."""
    dfbench.provision(ClusterSpec(name="twin", instance_count=1))
    dfbench.provision(ClusterSpec(name="twin", region="eu-west-1", instance_count=1))
    terminate_all(inspector, "twin")  # us-east-1's only
    report = dfbench.sweep(region="us-east-1", older_than=timedelta(0), apply=True)
    assert {o.id for o in report.deleted if o.kind == "iam-role"} == {"dfbench-twin-us-east-1"}
    iam = inspector.client("iam")
    assert iam.get_role(RoleName="dfbench-twin-eu-west-1")["Role"]
    assert dfbench.status("twin", region="eu-west-1") is not None

    listed = [(c.name, c.region, c.live) for region in ("us-east-1", "eu-west-1")
              for c in dfbench.clusters(region=region)]
    assert listed == [("twin", "us-east-1", False), ("twin", "eu-west-1", True)]

    terminate_all(inspector, "twin", region="eu-west-1")
    nothing = dfbench.sweep(region="us-east-1", older_than=timedelta(0))
    assert nothing.orphans == []
    swept = dfbench.sweep(all_regions=True, older_than=timedelta(0), apply=True)
    assert "dfbench-twin-eu-west-1" in {o.id for o in swept.deleted} and swept.clean
    assert {o.region for o in swept.deleted} == {"eu-west-1"} and len(swept.regions) > 10


def test_a_network_holding_an_instance_not_of_dfbench_is_kept(aws, inspector) -> None:
    """Someone launched an instance of their own, untagged, into a dead cluster's subnet: its
    network stays (AWS would refuse it anyway, after minutes of DependencyViolation); the rest goes."""
    cluster = dfbench.provision(ClusterSpec(name="dead", instance_count=1))
    terminate_all(inspector, "dead")
    ec2 = inspector.client("ec2")
    [foreign] = ec2.run_instances(ImageId=cluster.ami_id, InstanceType="t3.micro", MinCount=1, MaxCount=1,
                                  SubnetId=cluster.subnet_id)["Instances"]
    report = dfbench.sweep(older_than=timedelta(0), apply=True)
    assert {o.kind for o in report.deleted} == {"hosted-zone", "instance-profile", "iam-role"}, report.deleted
    assert sum(foreign["InstanceId"] in line for line in report.skipped) == 5  # vpc, subnet, igw, table, group
    found = inventory(inspector, "dead")
    assert [len(found[k]) for k in ("vpc", "subnet", "igw", "route_table", "security_group")] == [1, 1, 1, 1, 1]


def test_buckets_only_with_buckets_and_only_when_no_cluster_uses_them(aws, inspector) -> None:
    cluster = dfbench.provision(ClusterSpec(name="keeper", instance_count=1))
    user_bucket = "my-own-data"
    inspector.client("s3").create_bucket(Bucket=user_bucket)
    report = dfbench.sweep(older_than=timedelta(0), apply=True, include_buckets=True)
    assert report.orphans == [] and any(cluster.bucket in line and "role dfbench-keeper" in line
                                        for line in report.skipped)
    assert dfbench.teardown("keeper").clean  # the bucket stays, holding data
    inspector.client("s3").put_object(Bucket=cluster.bucket, Key="tpch_sf1/lineitem/1.parquet", Body=b"x")
    # Younger than --older-than, it stays (provision makes it before the role recording it).
    young = dfbench.sweep(apply=True, include_buckets=True)
    assert young.orphans == [] and any(line.startswith(f"bucket {cluster.bucket}: created ")
                                       for line in young.skipped), young.skipped
    without = dfbench.sweep(older_than=timedelta(0), apply=True)
    assert without.orphans == [] and dfbench_buckets(inspector) == [cluster.bucket]
    again = dfbench.sweep(older_than=timedelta(0), apply=True, include_buckets=True)
    assert [o.id for o in again.deleted] == [cluster.bucket] and again.clean
    assert dfbench_buckets(inspector) == []
    assert user_bucket in {b["Name"] for b in inspector.client("s3").list_buckets()["Buckets"]}


def test_clusters_lists_each_cluster_with_its_state_deadline_and_cost(
        aws, inspector, capsys: pytest.CaptureFixture[str]) -> None:
    dfbench.provision(ClusterSpec(name="one", instance_count=2, ttl_hours=3))
    dfbench.provision(ClusterSpec(name="two", instance_count=1))
    terminate_all(inspector, "two")
    code, out, err = run(capsys, "clusters", "--json")
    assert code == 0, err
    listed = {c["name"]: c for c in json.loads(out)}
    assert set(listed) == {"one", "two"}
    one, two = listed["one"], listed["two"]
    assert one["instances"] == {"running": 2} and one["live"] is True
    assert one["cost"]["per_hour"] == pytest.approx(0.864) and one["cost"]["usd"] is not None
    assert one["ttl_deadline"] is not None and one["age_hours"] is not None
    assert two["instances"] == {"terminated": 1} and two["live"] is False and two["cost"]["per_hour"] == 0

    code, out, _ = run(capsys, "clusters")
    text = " ".join(out.split())
    assert "one" in text and "2 running" in text and "$0.86" in text and "sweep takes what is left" in text
    assert "AWS Price List API" in text


@pytest.mark.parametrize("shard", range(2))
def test_an_interrupted_sweep_converges(aws, inspector, shard: int) -> None:
    alive = dfbench.provision(ClusterSpec(name="alive", instance_count=1))
    for after in itertools.count(shard + 1, 2):
        name = f"gone{after}"
        dfbench.provision(ClusterSpec(name=name, instance_count=1))
        terminate_all(inspector, name)
        interrupt = interrupted(lambda: dfbench.sweep(older_than=timedelta(0), apply=True), after)
        report = dfbench.sweep(older_than=timedelta(0), apply=True)
        assert report.clean, f"after {interrupt.last if interrupt else 'nothing'}: {report}"
        assert all(ids == [] for ids in inventory(inspector, name).values()), after
        assert dfbench.sweep(older_than=timedelta(0)).orphans == []
        assert dfbench.status("alive") is not None and len(dfbench.status("alive").instances) == 1
        if interrupt is None:
            break
    assert alive.bucket in dfbench_buckets(inspector)
    # A dead cluster's sweep makes a dozen deleting calls: each shard interrupted several.
    assert after > 8


@pytest.mark.parametrize("shard", range(2))
def test_sweep_takes_what_an_interrupted_provision_left(aws, inspector, shard: int) -> None:
    """A provision interrupted after each of its changes in turn, its instances (if any) ended
    since: sweep takes everything it left but the bucket. The one thing it leaves is a zone created
    and not yet tagged (no dfbench:managed=true): teardown of that cluster finds it by its
    CallerReference, and says so."""
    for after in itertools.count(shard + 1, 2):
        name = f"cut{after}"
        interrupt = interrupted(lambda name=name: dfbench.provision(ClusterSpec(name=name, instance_count=1)), after)
        if interrupt is None:
            break
        terminate_all(inspector, name)
        report = dfbench.sweep(older_than=timedelta(0), apply=True)
        assert report.clean, f"after {interrupt.last}: {report}"
        left = {kind: ids for kind, ids in inventory(inspector, name).items() if ids}
        if interrupt.last == "CreateHostedZone":
            # The zone, and the VPC it answers in (no zone outlives its VPC), said to be kept.
            assert sorted(left) == ["hosted_zone", "vpc"], left
            assert any(left["vpc"][0] in line and "dfbench teardown" in line for line in report.skipped)
            assert dfbench.teardown(name).clean
            left = {kind: ids for kind, ids in inventory(inspector, name).items() if ids}
        assert left == {}, f"after {interrupt.last}: {left}"
    assert after > 10


@pytest.mark.parametrize("shard", range(2))
def test_sweep_takes_what_an_interrupted_teardown_left(aws, inspector, shard: int) -> None:
    for after in itertools.count(shard + 1, 2):
        name = f"half{after}"
        dfbench.provision(ClusterSpec(name=name, instance_count=1))
        interrupt = interrupted(lambda name=name: dfbench.teardown(name), after)
        terminate_all(inspector, name)  # interrupted before its instances went: they end by their time-to-live
        report = dfbench.sweep(older_than=timedelta(0), apply=True)
        assert report.clean, f"after {interrupt.last if interrupt else 'nothing'}: {report}"
        assert all(ids == [] for ids in inventory(inspector, name).values()), after
        if interrupt is None:
            break
    assert after > 6
