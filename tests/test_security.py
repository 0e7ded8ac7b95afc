"""Security posture and ownership: what dfbench opens, encrypts, grants, and never touches."""

from __future__ import annotations

import base64
import json
import subprocess

import pytest

import dfbench
from dfbench import ClusterSpec
from dfbench.errors import OwnershipError


def only(calls):
    assert len(calls) == 1, calls
    return calls[0]


def test_bucket_is_private_encrypted_and_tls_only(aws, inspector, recorder):
    cluster = dfbench.provision(ClusterSpec(name="sec", instance_count=1))
    s3 = inspector.client("s3")
    block = s3.get_public_access_block(Bucket=cluster.bucket)["PublicAccessBlockConfiguration"]
    assert block == {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                     "RestrictPublicBuckets": True}
    rule = s3.get_bucket_encryption(Bucket=cluster.bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    # moto cannot evaluate policy conditions, so the policy is checked as dfbench sent it.
    policy = json.loads(only(recorder.named("PutBucketPolicy")).params["Policy"])
    (deny,) = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Principal"] == "*" and deny["Action"] == "s3:*"
    assert set(deny["Resource"]) == {f"arn:aws:s3:::{cluster.bucket}", f"arn:aws:s3:::{cluster.bucket}/*"}


def test_instances_require_imdsv2_and_encrypt_volumes(aws, inspector, recorder):
    spec = ClusterSpec(name="sec", instance_count=2, volume_size_gib=300)
    cluster = dfbench.provision(spec)
    launch = only(recorder.named("RunInstances")).params
    assert launch["MetadataOptions"]["HttpTokens"] == "required"
    (root,) = launch["BlockDeviceMappings"]
    assert root["Ebs"] == {"VolumeSize": 300, "VolumeType": "gp3", "Encrypted": True, "DeleteOnTermination": True}
    assert launch["InstanceInitiatedShutdownBehavior"] == "terminate"
    assert launch["IamInstanceProfile"] == {"Name": cluster.instance_profile_name}
    described = inspector.client("ec2").describe_instances(InstanceIds=[i.instance_id for i in cluster.instances])
    for reservation in described["Reservations"]:
        for instance in reservation["Instances"]:
            assert instance["MetadataOptions"]["HttpTokens"] == "required"
            tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
            assert tags["BenchmarkCluster"] == "datafusion"
            assert tags["dfbench:cluster"] == "sec" and tags["dfbench:managed"] == "true"


def test_ami_comes_from_the_public_parameter(aws, inspector, recorder):
    cluster = dfbench.provision(ClusterSpec(name="sec", instance_count=1))
    (lookup,) = recorder.named("GetParameter")
    assert lookup.params["Name"] == "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    expected = inspector.client("ssm").get_parameter(Name=lookup.params["Name"])["Parameter"]["Value"]
    assert cluster.ami_id == expected
    assert only(recorder.named("RunInstances")).params["ImageId"] == expected


def test_spot_and_time_to_live(aws, recorder):
    dfbench.provision(ClusterSpec(name="sec", instance_count=1, spot=True, ttl_hours=1.5))
    launch = only(recorder.named("RunInstances")).params
    assert launch["InstanceMarketOptions"]["MarketType"] == "spot"
    user_data = launch["UserData"]
    if not user_data.startswith("#!"):
        user_data = base64.b64decode(user_data).decode()
    assert "dfbench_ttl_seconds=5400\n" in user_data and "ttl-check" in user_data
    # Then the newest published worker is installed at boot, from this cluster's bucket.
    assert user_data.index("systemctl poweroff") < user_data.index(".dfbench/artifacts/worker")
    assert "datafusion-distributed-benchmarks-123456789012-us-east-1" in user_data
    assert subprocess.run(["bash", "-n"], input=user_data, text=True, check=False).returncode == 0
    # Powering off must end in termination, not a stopped instance that still bills its volume.
    assert launch["InstanceInitiatedShutdownBehavior"] == "terminate"


def test_security_group_admits_only_the_cluster_unless_asked(aws, inspector):
    cluster = dfbench.provision(ClusterSpec(name="sec", instance_count=1))
    ec2 = inspector.client("ec2")

    def ingress():
        group = ec2.describe_security_groups(GroupIds=[cluster.security_group_id])["SecurityGroups"][0]
        return [
            (p["IpProtocol"], p.get("FromPort"), [r["CidrIp"] for r in p.get("IpRanges", [])],
             [g["GroupId"] for g in p.get("UserIdGroupPairs", [])])
            for p in group["IpPermissions"]
        ]

    assert ingress() == [("-1", None, [], [cluster.security_group_id])]

    with_ssh = ClusterSpec(name="sec", instance_count=1, ssh_ingress_cidrs=["203.0.113.7/32"])
    assert [c.detail for c in dfbench.plan(with_ssh).changes] == ["allow tcp/22 from 203.0.113.7/32"]
    dfbench.provision(with_ssh)
    assert sorted(ingress(), key=str) == sorted(
        [("-1", None, [], [cluster.security_group_id]), ("tcp", 22, ["203.0.113.7/32"], [])], key=str)

    without = ClusterSpec(name="sec", instance_count=1)
    assert [c.detail for c in dfbench.plan(without).changes] == ["revoke tcp/22 from 203.0.113.7/32"]
    dfbench.provision(without)
    assert ingress() == [("-1", None, [], [cluster.security_group_id])]


def test_role_reads_only_its_bucket_and_parameters_and_writes_only_command_output_and_trino_s_metastore(
        aws, inspector):
    cluster = dfbench.provision(ClusterSpec(name="sec", instance_count=1))
    iam = inspector.client("iam")
    role = iam.get_role(RoleName=cluster.role_name)["Role"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    attached = [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=cluster.role_name)["AttachedPolicies"]]
    assert attached == ["arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"]
    (inline_name,) = iam.list_role_policies(RoleName=cluster.role_name)["PolicyNames"]
    document = iam.get_role_policy(RoleName=cluster.role_name, PolicyName=inline_name)["PolicyDocument"]
    grants = {(action, resource) for s in document["Statement"] for action in _listed(s["Action"])
              for resource in _listed(s["Resource"])}
    bucket = f"arn:aws:s3:::{cluster.bucket}"
    assert grants == {
        ("ec2:DescribeInstances", "*"),
        ("s3:ListBucket", bucket),
        ("s3:GetBucketLocation", bucket),
        ("s3:GetObject", f"{bucket}/*"),
        # The SSM agent uploads command output with the instance's role: one prefix, nothing else.
        ("s3:PutObject", f"{bucket}/.dfbench/ssm-output/*"),
        # Trino's file metastore (dfbench engine install trino): its declarations, one prefix.
        ("s3:PutObject", f"{bucket}/.dfbench/trino-metastore/*"),
        ("s3:DeleteObject", f"{bucket}/.dfbench/trino-metastore/*"),
        # --secret-env: this cluster's parameters only (GetParameter, not GetParametersByPath).
        ("ssm:GetParameter", f"arn:aws:ssm:us-east-1:{cluster.account}:parameter/dfbench/sec/*"),
    }
    assert all(s["Effect"] == "Allow" for s in document["Statement"])


def _listed(value):
    return [value] if isinstance(value, str) else value


def test_user_bucket_is_used_but_never_changed_or_deleted(aws, inspector, recorder):
    s3 = inspector.client("s3")
    s3.create_bucket(Bucket="users-own-data")
    s3.put_object(Bucket="users-own-data", Key="tpch_sf1/lineitem/0.parquet", Body=b"data")
    cluster = dfbench.provision(ClusterSpec(name="sec", instance_count=1, bucket="users-own-data"))
    assert cluster.bucket == "users-own-data"
    bucket_writes = [c.operation for c in recorder.mutating if c.service == "s3"]
    assert bucket_writes == []

    report = dfbench.teardown("sec", delete_bucket=True)
    assert any("users-own-data" in item and "not created by dfbench" in item for item in report.left)
    assert s3.get_object(Bucket="users-own-data", Key="tpch_sf1/lineitem/0.parquet")["Body"].read() == b"data"


def test_dfbench_bucket_deleted_only_when_asked_with_every_version(aws, inspector):
    cluster = dfbench.provision(ClusterSpec(name="sec", instance_count=1))
    s3 = inspector.client("s3")
    s3.put_bucket_versioning(Bucket=cluster.bucket, VersioningConfiguration={"Status": "Enabled"})
    for body in (b"one", b"two"):
        s3.put_object(Bucket=cluster.bucket, Key="tpch_sf1/nation/0.parquet", Body=body)
    s3.delete_object(Bucket=cluster.bucket, Key="tpch_sf1/nation/0.parquet")  # leaves a delete marker
    s3.create_multipart_upload(Bucket=cluster.bucket, Key="half-uploaded")

    kept = dfbench.teardown("sec")
    assert kept.clean
    assert s3.head_bucket(Bucket=cluster.bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200

    dfbench.provision(ClusterSpec(name="sec", instance_count=1))
    report = dfbench.teardown("sec", delete_bucket=True)
    assert report.clean and f"bucket {cluster.bucket}" in report.deleted
    assert cluster.bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_bucket_owned_by_another_account_is_a_clear_error(aws, faults, recorder):
    faults.error("s3", "HeadBucket", "403", "Forbidden", status=403)
    with pytest.raises(OwnershipError) as raised:
        dfbench.provision(ClusterSpec(name="sec", instance_count=1, bucket="someone-elses-bucket"))
    assert "BENCHMARK_BUCKET" in str(raised.value)
    assert recorder.mutating == []


def test_foreign_role_with_our_name_is_refused_before_any_change(aws, inspector, recorder):
    inspector.client("iam").create_role(RoleName="dfbench-sec-us-east-1", AssumeRolePolicyDocument="{}")
    with pytest.raises(OwnershipError):
        dfbench.provision(ClusterSpec(name="sec", instance_count=1))
    assert recorder.mutating == []
