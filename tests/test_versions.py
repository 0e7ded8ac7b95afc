"""The lowest boto3/botocore pyproject.toml admits: what those versions lack is worked around, and
`make test-min-versions` runs this file at exactly those versions (a second venv), so the floors
are tested, not guessed. Also where S3 refuses tagging a bucket at creation (no s3:TagResource)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import botocore
import pytest

import dfbench
from dfbench import ClusterSpec
from dfbench.aws import bucket as buckets
from dfbench.aws.session import connect
from dfbench.aws.tags import cluster_tags, tag_dict
from dfbench.models import ChangeSet
from dfbench_testing import Interrupt, hooked

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "dfbench-versions-test"


def _floors_in_pyproject() -> dict[str, str]:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {m["name"]: m["floor"] for d in dependencies
            if (m := re.fullmatch(r"(?P<name>boto3|botocore)>=(?P<floor>[\d.]+)", d))}


def _pins_in_makefile() -> dict[str, str]:
    line = next(line for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith("MIN_VERSIONS"))
    return dict(re.findall(r"(\S+)==(\S+)", line))


def test_the_floors_in_pyproject_are_the_versions_make_test_min_versions_installs():
    floors, pins = _floors_in_pyproject(), _pins_in_makefile()
    assert set(floors) == {"boto3", "botocore"}
    assert {name: pins.get(name) for name in floors} == floors


def _tags(s3, name: str) -> dict[str, str]:
    return tag_dict(s3.get_bucket_tagging(Bucket=name)["TagSet"])


def test_a_bucket_is_created_tagged_even_when_tagging_at_creation_is_refused(aws, faults, recorder, inspector):
    # AWS refuses a CreateBucket carrying tags, whole, to an identity without s3:TagResource
    # (https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucket.html).
    faults.error("s3", "CreateBucket", "AccessDenied", "not authorized to perform: s3:TagResource", status=403,
                 when=lambda body: "<Tags>" in body)
    s3 = connect(region="us-east-1").client("s3")
    tags = cluster_tags("tagless")
    buckets.ensure_bucket(s3, name=BUCKET, region="us-east-1", tags=tags, found=None, changes=ChangeSet(apply=True))

    assert _tags(inspector.client("s3"), BUCKET) == tags
    last_create = recorder.named("CreateBucket")[-1]
    assert "Tags" not in last_create.params.get("CreateBucketConfiguration", {})
    assert len(recorder.named("PutBucketTagging")) == 1
    state = buckets.find_bucket(s3, BUCKET)
    assert state is not None and state.managed and state.encrypted and state.tls_only


def test_a_create_interrupted_before_its_tagging_is_taken_over_by_the_next_run(aws, faults, inspector):
    faults.error("s3", "CreateBucket", "AccessDenied", "not authorized to perform: s3:TagResource", status=403,
                 when=lambda body: "<Tags>" in body)
    tags = cluster_tags("tagless")
    interrupt = Interrupt(after=1)
    with hooked(interrupt.hook):  # on the clients made inside the block
        try:
            buckets.ensure_bucket(connect(region="us-east-1").client("s3"), name=BUCKET, region="us-east-1", tags=tags,
                                  found=None, changes=ChangeSet(apply=True))
        except KeyboardInterrupt:
            pass
    assert interrupt.last == "CreateBucket"
    s3 = connect(region="us-east-1").client("s3")

    # Under a name the user gave, an untagged bucket stays the user's; under dfbench's own name,
    # an untagged empty one is what the interrupted create left, and is finished.
    assert buckets.find_bucket(s3, BUCKET) == buckets.BucketState(name=BUCKET, managed=False)
    found = buckets.find_bucket(s3, BUCKET, adopt_untagged=True)
    assert found is not None and found.untagged_and_empty
    buckets.ensure_bucket(s3, name=BUCKET, region="us-east-1", tags=tags, found=found, changes=ChangeSet(apply=True))
    assert _tags(inspector.client("s3"), BUCKET) == tags
    again = buckets.find_bucket(s3, BUCKET, adopt_untagged=True)
    assert again is not None and again.managed and again.tls_only


def test_an_untagged_bucket_holding_objects_is_never_taken_over(aws, inspector):
    inspector.client("s3").create_bucket(Bucket=BUCKET)
    inspector.client("s3").put_object(Bucket=BUCKET, Key="mine.txt", Body=b"user data")
    found = buckets.find_bucket(connect(region="us-east-1").client("s3"), BUCKET, adopt_untagged=True)
    assert found == buckets.BucketState(name=BUCKET, managed=False)


@pytest.mark.skipif(botocore.__version__ != _floors_in_pyproject()["botocore"],
                    reason="runs at the floor only (make test-min-versions); tests/test_provision.py covers the newest")
def test_a_cluster_provisions_plans_and_tears_down_at_these_versions(aws, inspector):
    """At the floors: every request dfbench builds passes this botocore's own parameter validation,
    and the result is one converged cluster."""
    spec = ClusterSpec(name="floor", instance_count=1)
    cluster = dfbench.provision(spec)
    assert [i.state for i in cluster.instances] == ["running"]
    assert _tags(inspector.client("s3"), cluster.bucket)["dfbench:cluster"] == "floor"
    assert dfbench.plan(spec).changes == []
    report = dfbench.teardown("floor", delete_bucket=True)
    assert report.left == [], (botocore.__version__, report)
