"""A cluster record over instances launched in moto directly: for work that needs running
instances and a bucket (SSM commands to them, their bucket's objects) but not the network, role
and zone a full ``dfbench.provision`` makes, which costs seconds per test."""

from __future__ import annotations

from typing import Any

from dfbench.models import Cluster, Instance

# One of the images moto bundles (its AMI check accepts it).
IMAGE = "ami-12c6146b"


def launched_cluster(session: Any, *, name: str, count: int, bucket: str, instance_type: str = "c5n.2xlarge",
                     region: str = "us-east-1") -> Cluster:
    """``count`` running instances (one RunInstances) and the bucket ``bucket`` created, as the
    Cluster record ``dfbench.status`` gives (``session``: a plain boto3 session on the emulator)."""
    session.client("s3").create_bucket(Bucket=bucket)
    launched = session.client("ec2").run_instances(ImageId=IMAGE, InstanceType=instance_type, MinCount=count,
                                                   MaxCount=count)["Instances"]
    instances = [Instance(instance_id=i["InstanceId"], name=f"{name}-{n}", private_ip=i.get("PrivateIpAddress"),
                          public_ip=None, availability_zone=i["Placement"]["AvailabilityZone"],
                          instance_type=instance_type, state="running", image_id=IMAGE, spot=False,
                          launch_time=i["LaunchTime"])
                 for n, i in enumerate(launched)]
    return Cluster(name=name, region=region, account="123456789012", bucket=bucket, vpc_id=None, subnet_id=None,
                   internet_gateway_id=None, route_table_id=None, security_group_id=None, role_name=name,
                   instance_profile_name=name, ami_id=IMAGE, instances=instances)
