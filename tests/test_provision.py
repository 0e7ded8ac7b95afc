"""provision / plan / status / teardown against moto server: idempotency, convergence, interrupts."""

from __future__ import annotations

import itertools

import pytest

import dfbench
from dfbench import ClusterSpec
from dfbench.transport import known_hosts
from dfbench_testing import Interrupt, hooked


def inventory(session, cluster: str) -> dict[str, list[str]]:
    """What exists for a cluster, seen through plain boto3 clients (not dfbench's)."""
    ec2, iam = session.client("ec2"), session.client("iam")
    tag = [{"Name": "tag:dfbench:cluster", "Values": [cluster]}]
    found = {
        "vpc": [v["VpcId"] for v in ec2.describe_vpcs(Filters=tag)["Vpcs"]],
        "subnet": [s["SubnetId"] for s in ec2.describe_subnets(Filters=tag)["Subnets"]],
        "igw": [g["InternetGatewayId"] for g in ec2.describe_internet_gateways(Filters=tag)["InternetGateways"]],
        "route_table": [r["RouteTableId"] for r in ec2.describe_route_tables(Filters=tag)["RouteTables"]],
        "security_group": [g["GroupId"] for g in ec2.describe_security_groups(Filters=tag)["SecurityGroups"]],
        "instance": [
            i["InstanceId"]
            for r in ec2.describe_instances(
                Filters=[*tag, {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]
            )["Reservations"]
            for i in r["Instances"]
        ],
        "role": [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"].startswith(f"dfbench-{cluster}-")],
        "instance_profile": [
            p["InstanceProfileName"]
            for p in iam.list_instance_profiles()["InstanceProfiles"]
            if p["InstanceProfileName"].startswith(f"dfbench-{cluster}-")
        ],
        "hosted_zone": [z["Id"] for z in session.client("route53").list_hosted_zones()["HostedZones"]
                        if z["Name"] == f"{cluster}.us-east-1.dfbench.internal."],
    }
    return {kind: sorted(ids) for kind, ids in found.items()}


def workers_record(session, cluster: str) -> list[str] | None:
    """The private addresses the cluster's workers record lists (None: no record)."""
    route53 = session.client("route53")
    name = f"workers.{cluster}.us-east-1.dfbench.internal."
    for zone in route53.list_hosted_zones()["HostedZones"]:
        if zone["Name"] == f"{cluster}.us-east-1.dfbench.internal.":
            for raw in route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]:
                if raw["Name"] == name and raw["Type"] == "A":
                    return sorted(r["Value"] for r in raw["ResourceRecords"])
    return None


def live_private_ips(session, cluster: str) -> list[str]:
    ec2 = session.client("ec2")
    filters = [{"Name": "tag:dfbench:cluster", "Values": [cluster]},
               {"Name": "instance-state-name", "Values": ["pending", "running"]}]
    return sorted(i["PrivateIpAddress"] for r in ec2.describe_instances(Filters=filters)["Reservations"]
                  for i in r["Instances"])


def dfbench_buckets(session) -> list[str]:
    s3 = session.client("s3")
    names = []
    for bucket in s3.list_buckets()["Buckets"]:
        try:
            tags = s3.get_bucket_tagging(Bucket=bucket["Name"])["TagSet"]
        except s3.exceptions.ClientError:
            continue
        if {"Key": "dfbench:managed", "Value": "true"} in tags:
            names.append(bucket["Name"])
    return names


def assert_converged(session, cluster: str, count: int) -> dict[str, list[str]]:
    found = inventory(session, cluster)
    singles = {k: len(v) for k, v in found.items() if k != "instance"}
    assert singles == dict.fromkeys(singles, 1), found
    assert len(found["instance"]) == count, found
    assert workers_record(session, cluster) == live_private_ips(session, cluster), found
    return found


def zone_id(session, cluster: str) -> str | None:
    ids = inventory(session, cluster)["hosted_zone"]
    return ids[0].split("/")[-1] if ids else None


def assert_zone_on_vpc(session, cluster) -> None:
    """One private zone, on the cluster's VPC, whose VPC resolves names (DNS support and
    hostnames on), and the cluster record names its workers record."""
    [zone] = inventory(session, cluster.name)["hosted_zone"]
    answer = session.client("route53").get_hosted_zone(Id=zone)
    assert answer["HostedZone"]["Config"]["PrivateZone"] is True
    assert [v["VPCId"] for v in answer["VPCs"]] == [cluster.vpc_id]
    ec2 = session.client("ec2")
    for attribute, key in (("enableDnsSupport", "EnableDnsSupport"), ("enableDnsHostnames", "EnableDnsHostnames")):
        assert ec2.describe_vpc_attribute(VpcId=cluster.vpc_id, Attribute=attribute)[key]["Value"] is True
    assert cluster.workers_dns_name == f"workers.{cluster.name}.us-east-1.dfbench.internal"


def test_provision_three_times_gives_one_set_of_resources(aws, inspector, recorder):
    spec = ClusterSpec(name="idem", instance_count=3)
    first = dfbench.provision(spec)
    assert len(first.instances) == 3
    assert all(i.state == "running" and i.private_ip for i in first.instances)
    assert [i.name for i in first.instances] == ["idem-0", "idem-1", "idem-2"]
    before = assert_converged(inspector, "idem", 3)

    recorder.clear()
    second, third = dfbench.provision(spec), dfbench.provision(spec)
    assert second == third == first
    assert recorder.mutating == [], [c.operation for c in recorder.mutating]
    assert assert_converged(inspector, "idem", 3) == before
    assert dfbench.plan(spec).changes == []


def test_plan_is_read_only_and_lists_everything(aws, recorder):
    result = dfbench.plan(ClusterSpec(name="planned", instance_count=4))
    assert recorder.mutating == []
    created = {(c.action, c.resource) for c in result.changes}
    for resource in ("bucket", "iam-role", "instance-profile", "vpc", "internet-gateway", "route-table",
                     "subnet", "security-group", "instances", "hosted-zone", "dns-record"):
        assert ("create", resource) in created, resource
    launch = next(c for c in result.changes if c.resource == "instances")
    assert launch.detail.startswith("4 x c5n.2xlarge")
    assert dfbench.status("planned") is None


def test_count_changes_converge_without_duplicates(aws, inspector, recorder):
    cluster = dfbench.provision(ClusterSpec(name="scale", instance_count=3))
    original = {i.instance_id for i in cluster.instances}
    assert_zone_on_vpc(inspector, cluster)

    recorder.clear()
    grown = dfbench.provision(ClusterSpec(name="scale", instance_count=5))
    launches = recorder.named("RunInstances")
    assert [(c.params["MinCount"], c.params["MaxCount"]) for c in launches] == [(2, 2)]
    assert recorder.named("TerminateInstances") == []
    assert original <= {i.instance_id for i in grown.instances}
    assert sorted(i.name for i in grown.instances) == [f"scale-{n}" for n in range(5)]
    assert_converged(inspector, "scale", 5)
    assert_zone_on_vpc(inspector, grown)
    assert dfbench.plan(ClusterSpec(name="scale", instance_count=5)).changes == []

    recorder.clear()
    shrunk = dfbench.provision(ClusterSpec(name="scale", instance_count=2))
    assert recorder.named("RunInstances") == []
    (terminate,) = recorder.named("TerminateInstances")
    assert len(terminate.params["InstanceIds"]) == 3
    # The lowest-numbered instances stay; the newest names go.
    assert [i.name for i in shrunk.instances] == ["scale-0", "scale-1"]
    assert_converged(inspector, "scale", 2)
    assert_zone_on_vpc(inspector, shrunk)
    assert dfbench.plan(ClusterSpec(name="scale", instance_count=2)).changes == []
    assert dfbench.plan(ClusterSpec(name="scale", instance_count=4)).changes[-1].detail == (
        "A: the private addresses of all 4 instances, once launched")

    zone = zone_id(inspector, "scale")
    report = dfbench.teardown("scale", delete_bucket=True)
    assert report.left == [] and f"hosted-zone {zone} (scale.us-east-1.dfbench.internal)" in report.deleted
    assert inventory(inspector, "scale") == {kind: [] for kind in inventory(inspector, "scale")}


def test_changed_instance_type_replaces_instances(aws, inspector):
    dfbench.provision(ClusterSpec(name="retype", instance_count=2))
    spec = ClusterSpec(name="retype", instance_count=2, instance_type="c5.xlarge")
    planned = dfbench.plan(spec)
    assert [c.action for c in planned.changes if c.resource == "instances"] == ["replace", "create"]
    cluster = dfbench.provision(spec)
    assert {i.instance_type for i in cluster.instances} == {"c5.xlarge"}
    assert_converged(inspector, "retype", 2)


def test_stopped_instance_is_started(aws, inspector):
    cluster = dfbench.provision(ClusterSpec(name="stopped", instance_count=2))
    stopped = cluster.instances[1].instance_id
    inspector.client("ec2").stop_instances(InstanceIds=[stopped])
    planned = dfbench.plan(ClusterSpec(name="stopped", instance_count=2))
    assert [(c.action, c.name) for c in planned.changes] == [("start", stopped)]
    again = dfbench.provision(ClusterSpec(name="stopped", instance_count=2))
    assert {i.state for i in again.instances} == {"running"}
    assert {i.instance_id for i in again.instances} == {i.instance_id for i in cluster.instances}
    assert_converged(inspector, "stopped", 2)


def test_tags_added_to_the_spec_reach_every_existing_resource_in_few_calls(aws, inspector, recorder):
    dfbench.provision(ClusterSpec(name="tagged", instance_count=3, tags={"team": "a"}))
    spec = ClusterSpec(name="tagged", instance_count=3, tags={"team": "b", "cost-center": "42"})
    planned = dfbench.plan(spec)
    assert {(c.action, c.resource) for c in planned.changes} == {
        ("update", "network"), ("update", "instances"), ("update", "iam-role"), ("update", "instance-profile"),
        ("update", "hosted-zone")}
    assert all(c.detail == "tag cost-center=42, team=b" for c in planned.changes)

    recorder.clear()
    cluster = dfbench.provision(spec)
    mutating = [c.operation for c in recorder.mutating]
    # One CreateTags for the five network resources, one for the three instances.
    assert sorted(mutating) == ["ChangeTagsForResource", "CreateTags", "CreateTags", "TagInstanceProfile", "TagRole"]
    assert dfbench.plan(spec).changes == []
    assert cluster == dfbench.status("tagged")
    ec2 = inspector.client("ec2")
    wanted = {"team": "b", "cost-center": "42"}
    for described, key in ((ec2.describe_vpcs()["Vpcs"], "VpcId"), (ec2.describe_subnets()["Subnets"], "SubnetId"),
                           (ec2.describe_route_tables()["RouteTables"], "RouteTableId"),
                           (ec2.describe_internet_gateways()["InternetGateways"], "InternetGatewayId"),
                           (ec2.describe_security_groups()["SecurityGroups"], "GroupId")):
        ours = [r for r in described if any(t["Key"] == "dfbench:cluster" for t in r.get("Tags", []))]
        assert ours and all(wanted.items() <= {t["Key"]: t["Value"] for t in r["Tags"]}.items() for r in ours), key
    assert all(wanted.items() <= i.tags.items() for i in cluster.instances)
    role = inspector.client("iam").list_role_tags(RoleName=cluster.role_name)["Tags"]
    assert wanted.items() <= {t["Key"]: t["Value"] for t in role}.items()
    zone = inspector.client("route53").list_tags_for_resource(ResourceType="hostedzone",
                                                              ResourceId=zone_id(inspector, "tagged"))
    assert wanted.items() <= {t["Key"]: t["Value"] for t in zone["ResourceTagSet"]["Tags"]}.items()


def test_a_new_ttl_is_said_to_reach_only_new_instances(aws, recorder, caplog):
    first = dfbench.provision(ClusterSpec(name="ttl", instance_count=2, ttl_hours=2))
    assert {i.tags["dfbench:ttl-hours"] for i in first.instances} == {"2"}
    recorder.clear()
    caplog.clear()
    dfbench.provision(ClusterSpec(name="ttl", instance_count=2, ttl_hours=2))
    assert "ttl_hours" not in caplog.text

    planned = dfbench.plan(ClusterSpec(name="ttl", instance_count=3, ttl_hours=4.5))
    assert "ttl_hours is now 4.5" in caplog.text and first.instances[0].instance_id in caplog.text
    assert "(2 h)" in caplog.text
    # The record stays what the instances really run with: no change planned for it.
    assert not any("ttl" in c.detail for c in planned.changes)
    grown = dfbench.provision(ClusterSpec(name="ttl", instance_count=3, ttl_hours=4.5))
    assert [i.tags["dfbench:ttl-hours"] for i in grown.instances] == ["2", "2", "4.5"]
    # The new instance's boot arms the new time-to-live (4.5 h).
    assert "dfbench_ttl_seconds=16200\n" in recorder.named("RunInstances")[-1].params["UserData"]


def test_teardown_drops_the_ssh_pins_of_the_instances_it_terminated(aws):
    cluster = dfbench.provision(ClusterSpec(name="pinned", instance_count=2))
    other = "i-0123456789abcdef0"
    pins = known_hosts.default_path()  # under the test's own XDG_STATE_HOME (conftest)
    pins.parent.mkdir(parents=True)
    pins.write_text("".join(f"{i.instance_id} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK{n}\n"
                            for n, i in enumerate(cluster.instances)) + f"{other} ssh-ed25519 AAAAC3Nza\n")
    assert dfbench.teardown("pinned").clean
    assert pins.read_text() == f"{other} ssh-ed25519 AAAAC3Nza\n"


def test_a_stopping_instance_is_started_once_it_has_stopped(aws, inspector, recorder):
    cluster = dfbench.provision(ClusterSpec(name="stopping", instance_count=2))
    stopping = cluster.instances[0].instance_id
    inspector.client("ec2").stop_instances(InstanceIds=[stopping])
    # moto stops at once; EC2 shows "stopping" for a while and refuses StartInstances meanwhile
    # (IncorrectInstanceState). The first two descriptions after this show it stopping.
    shown = {"stopping": 2}

    def still_stopping(parsed, **_):
        if shown["stopping"] <= 0:
            return
        shown["stopping"] -= 1
        for reservation in parsed.get("Reservations", []):
            for raw in reservation["Instances"]:
                if raw["InstanceId"] == stopping:
                    raw["State"] = {"Code": 64, "Name": "stopping"}

    def hook(client):
        client.meta.events.register("after-call.ec2.DescribeInstances", still_stopping)

    recorder.clear()
    with hooked(hook):
        again = dfbench.provision(ClusterSpec(name="stopping", instance_count=2))
    assert {i.state for i in again.instances} == {"running"}
    assert [i.instance_id for i in again.instances] == [i.instance_id for i in cluster.instances]
    calls = [c.operation for c in recorder.calls if c.operation in ("DescribeInstances", "StartInstances")]
    start = calls.index("StartInstances")
    # Started only after a description no longer showed it stopping, and only once.
    assert calls.count("StartInstances") == 1 and calls[:start].count("DescribeInstances") >= 3
    assert recorder.named("StartInstances")[0].params["InstanceIds"] == [stopping]


# The interrupt tests walk every mutating call of a run; they are split in SHARDS interleaved
# slices so that parallel test workers share them. Each cluster gets its own name, so no
# emulator reset is needed between runs.
SHARDS = 4


def interrupted(run, after: int) -> Interrupt | None:
    """Run ``run`` with an interrupt after its ``after``-th mutating call; None if it finished first."""
    interrupt = Interrupt(after=after)
    with hooked(interrupt.hook):
        try:
            run()
        except KeyboardInterrupt:
            return interrupt
    return None


@pytest.mark.parametrize("shard", range(SHARDS))
def test_interrupted_provision_converges_from_any_point(aws, inspector, recorder, shard):
    """Interrupt a cold provision after each of its mutating calls in turn, then run it again."""
    for after in itertools.count(shard + 1, SHARDS):
        name = f"intr{after}"
        spec = ClusterSpec(name=name, instance_count=2)
        interrupt = interrupted(lambda s=spec: dfbench.provision(s), after)
        if interrupt is None:
            break
        recorder.clear()
        cluster = dfbench.provision(spec)
        assert len(cluster.instances) == 2, f"interrupted after {interrupt.last} (call {after})"
        assert_converged(inspector, name, 2)
        assert dfbench.plan(spec).changes == [], f"after {interrupt.last}"
        # The re-run never launched more than what was missing.
        assert sum(c.params["MaxCount"] for c in recorder.named("RunInstances")) <= 2

        report = dfbench.teardown(name, delete_bucket=True)
        assert report.left == [], f"after {interrupt.last}"
        assert inventory(inspector, name) == {kind: [] for kind in inventory(inspector, name)}
        assert dfbench_buckets(inspector) == []
        again = dfbench.teardown(name, delete_bucket=True)
        assert (again.deleted, again.left) == ([], [])
    # A cold provision of two instances makes twenty-odd mutating calls: every shard saw some.
    assert after > 4 * SHARDS


@pytest.mark.parametrize("shard", range(SHARDS))
def test_interrupted_teardown_converges(aws, inspector, shard):
    for after in itertools.count(shard + 1, SHARDS):
        name = f"td{after}"
        dfbench.provision(ClusterSpec(name=name, instance_count=2))
        interrupt = interrupted(lambda n=name: dfbench.teardown(n, delete_bucket=True), after)
        report = dfbench.teardown(name, delete_bucket=True)
        assert report.left == [], f"after {interrupt.last if interrupt else 'nothing'}"
        assert inventory(inspector, name) == {kind: [] for kind in inventory(inspector, name)}
        assert dfbench_buckets(inspector) == []
        if interrupt is None:
            break
    assert after > 2 * SHARDS


def test_teardown_reports_and_second_teardown_does_nothing(aws, inspector):
    cluster = dfbench.provision(ClusterSpec(name="gone", instance_count=2))
    report = dfbench.teardown("gone")
    assert report.clean and report.left == []
    assert {f"instance {i.instance_id}" for i in cluster.instances} <= set(report.deleted)
    assert f"vpc {cluster.vpc_id}" in report.deleted
    assert f"iam-role {cluster.role_name}" in report.deleted
    assert inventory(inspector, "gone") == {kind: [] for kind in inventory(inspector, "gone")}
    # The bucket holds datasets: it survives a plain teardown.
    assert dfbench_buckets(inspector) == [cluster.bucket]
    assert dfbench.status("gone") is None
    second = dfbench.teardown("gone")
    assert (second.deleted, second.left) == ([], [])


def test_clusters_are_isolated(aws, inspector):
    a = dfbench.provision(ClusterSpec(name="alpha", instance_count=2))
    b = dfbench.provision(ClusterSpec(name="beta", instance_count=1))
    assert a.vpc_id != b.vpc_id and a.role_name != b.role_name and a.bucket == b.bucket
    dfbench.teardown("alpha", delete_bucket=True)
    assert_converged(inspector, "beta", 1)
    # beta still uses the shared bucket: it was kept, and said so.
    assert dfbench_buckets(inspector) == [a.bucket]
    status = dfbench.status("beta")
    assert status is not None and [i.instance_id for i in status.instances] == [b.instances[0].instance_id]


def test_status_reads_the_cluster_back(aws):
    cluster = dfbench.provision(ClusterSpec(name="stat", instance_count=2))
    found = dfbench.status("stat")
    assert found is not None
    assert found.model_dump() == cluster.model_dump()
    assert dfbench.status("nothing-here") is None


def test_outputs_file_written(aws, tmp_path):
    cluster = dfbench.provision(ClusterSpec(name="out", instance_count=1))
    written = dfbench.Cluster.model_validate_json((tmp_path / ".dfbench" / "out.json").read_text())
    assert written == cluster
    dfbench.teardown("out")
    assert not (tmp_path / ".dfbench" / "out.json").exists()
