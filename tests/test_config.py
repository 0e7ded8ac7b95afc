"""ClusterSpec: strict validation of everything a user can ask for, before any AWS call."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dfbench.aws.iam import role_name
from dfbench.config import MAX_NAME_LENGTH, ClusterSpec, make_spec
from dfbench.errors import ConfigError

# The longest region names dfbench is expected to meet (14 characters).
LONGEST_REGION = "ap-southeast-4"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defaults come from the environment: start every test from a known one."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "BENCHMARK_BUCKET"):
        monkeypatch.delenv(name, raising=False)


# --- defaults and environment --------------------------------------------------------------------


def test_defaults() -> None:
    spec = ClusterSpec()
    assert spec.name == "dfbench"
    assert spec.region == "us-east-1"
    assert spec.instance_type == "c5n.2xlarge"
    assert spec.instance_count == 12
    assert spec.volume_size_gib == 200
    assert spec.volume_type == "gp3"
    assert spec.ssh_ingress_cidrs == ()
    assert spec.spot is False
    assert spec.bucket is None
    assert spec.ami is None
    assert spec.ttl_hours is None
    assert spec.tags == {}


def test_region_from_aws_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    assert ClusterSpec().region == "eu-west-3"
    assert make_spec().region == "eu-west-3"
    # An explicit region wins over the environment.
    assert ClusterSpec(region="us-west-2").region == "us-west-2"


def test_region_from_aws_default_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ca-central-1")
    assert ClusterSpec().region == "ca-central-1"
    monkeypatch.setenv("AWS_REGION", "eu-north-1")
    assert ClusterSpec().region == "eu-north-1"


def test_invalid_region_from_environment_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "nowhere")
    with pytest.raises(ConfigError, match=r"region: 'nowhere' is not an AWS region"):
        make_spec()


def test_bucket_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCHMARK_BUCKET", "my-benchmark-data")
    assert ClusterSpec().bucket == "my-benchmark-data"
    assert make_spec(bucket=None).bucket == "my-benchmark-data"
    assert ClusterSpec(bucket="other-bucket").bucket == "other-bucket"


def test_empty_bucket_environment_means_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCHMARK_BUCKET", "")
    assert ClusterSpec().bucket is None


def test_invalid_bucket_from_environment_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCHMARK_BUCKET", "Not_A_Bucket")
    with pytest.raises(ConfigError, match="bucket:"):
        make_spec()


# --- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "Dfbench",  # uppercase
        "df_bench",  # underscore
        "1cluster",  # leading digit
        "cluster-",  # trailing dash
        "my--cluster",  # double dash
        "a" * (MAX_NAME_LENGTH + 1),  # 33 characters
        "",
        "1",
        "-cluster",
        "my cluster",
        "my.cluster",
        "cluster\n",  # a trailing newline must not slip past the pattern
    ],
)
def test_invalid_names_rejected(name: str) -> None:
    with pytest.raises(ValidationError) as raised:
        ClusterSpec(name=name)
    assert [e["loc"] for e in raised.value.errors()] == [("name",)]


def test_name_length_limit_is_33_exclusive() -> None:
    assert MAX_NAME_LENGTH == 32
    assert ClusterSpec(name="a" * 32).name == "a" * 32


@pytest.mark.parametrize("name", ["x", "ab", "a1", "bench-1", "x-y-z", "a" + "0" * 31])
def test_valid_names_accepted(name: str) -> None:
    assert ClusterSpec(name=name).name == name


def test_longest_name_fits_iam_role_name() -> None:
    name = "a" + "b-" * 15 + "c"  # 32 characters, dashes included
    assert len(name) == MAX_NAME_LENGTH
    spec = ClusterSpec(name=name, region=LONGEST_REGION)
    role = role_name(spec.name, spec.region)
    assert name in role and LONGEST_REGION in role
    assert len(role) <= 64


@pytest.mark.parametrize("region", ["nowhere", "US-EAST-1", "us-east", "useast1", "us-east-1a", "us-east-1\n"])
def test_invalid_regions_rejected(region: str) -> None:
    with pytest.raises(ValidationError) as raised:
        ClusterSpec(region=region)
    assert [e["loc"] for e in raised.value.errors()] == [("region",)]


@pytest.mark.parametrize("region", ["us-east-1", LONGEST_REGION, "us-gov-west-1", "eu-central-2"])
def test_valid_regions_accepted(region: str) -> None:
    assert ClusterSpec(region=region).region == region


# --- instances -----------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, 101, -1])
def test_instance_count_out_of_range_rejected(count: int) -> None:
    with pytest.raises(ValidationError) as raised:
        ClusterSpec(instance_count=count)
    assert [e["loc"] for e in raised.value.errors()] == [("instance_count",)]


@pytest.mark.parametrize("count", [1, 100])
def test_instance_count_bounds_accepted(count: int) -> None:
    assert ClusterSpec(instance_count=count).instance_count == count


def test_instance_count_is_strict() -> None:
    with pytest.raises(ValidationError):
        ClusterSpec(instance_count="3")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        ClusterSpec(instance_count=2.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("instance_type", ["c5n", "C5N.2XLARGE", "c5n.", ".large", "c5n.2xlarge\n"])
def test_invalid_instance_type_rejected(instance_type: str) -> None:
    with pytest.raises(ValidationError) as raised:
        ClusterSpec(instance_type=instance_type)
    assert [e["loc"] for e in raised.value.errors()] == [("instance_type",)]


@pytest.mark.parametrize(
    "ami", ["ami-123", "ami-0123456789ABCDEF0", "ami-0123456789abcdef", "img-0123456789abcdef0", "ami-12345678\n"]
)
def test_invalid_ami_rejected(ami: str) -> None:
    with pytest.raises(ValidationError) as raised:
        ClusterSpec(ami=ami)
    assert [e["loc"] for e in raised.value.errors()] == [("ami",)]


@pytest.mark.parametrize("ami", ["ami-12345678", "ami-0123456789abcdef0"])
def test_valid_ami_accepted(ami: str) -> None:
    assert ClusterSpec(ami=ami).ami == ami


# --- bucket --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bucket",
    [
        "ab",  # too short
        "a" * 64,  # too long
        "MyBucket",  # uppercase
        "192.168.1.1",  # formatted like an IP address
        "xn--abc",  # reserved prefix
        "sthree-data",  # reserved prefix
        "my..bucket",  # adjacent dots
        "my.-bucket",
        "bucket-s3alias",  # reserved suffix
        "bucket--ol-s3",
        "-bucket",
        "bucket-",
        "my_bucket",
        "my-bucket\n",
    ],
)
def test_invalid_bucket_rejected(bucket: str) -> None:
    with pytest.raises(ValidationError) as raised:
        ClusterSpec(bucket=bucket)
    assert [e["loc"] for e in raised.value.errors()] == [("bucket",)]


@pytest.mark.parametrize("bucket", ["abc", "datafusion-distributed-benchmarks-123456789012-us-east-1", "my.bucket.1"])
def test_valid_bucket_accepted(bucket: str) -> None:
    assert ClusterSpec(bucket=bucket).bucket == bucket


# --- ssh CIDRs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("cidr", ["999.1.1.1/32", "10.0.0.0/33", "not-a-cidr", "", "10.0.0.0/8\n"])
def test_bad_cidr_rejected(cidr: str) -> None:
    with pytest.raises(ValidationError) as raised:
        ClusterSpec(ssh_ingress_cidrs=(cidr,))
    assert [e["loc"] for e in raised.value.errors()] == [("ssh_ingress_cidrs",)]


@pytest.mark.parametrize("cidr", ["2001:db8::/32", "::1/128"])
def test_ipv6_cidr_rejected(cidr: str) -> None:
    with pytest.raises(ConfigError, match="only IPv4"):
        make_spec(ssh_ingress_cidrs=(cidr,))


def test_cidrs_normalised_and_deduplicated() -> None:
    spec = ClusterSpec(ssh_ingress_cidrs=("10.1.0.0/16", "10.1.0.0/16", "203.0.113.7", "203.0.113.7/32"))
    assert spec.ssh_ingress_cidrs == ("10.1.0.0/16", "203.0.113.7/32")


def test_cidrs_accept_a_list() -> None:
    spec = make_spec(ssh_ingress_cidrs=["198.51.100.0/24"])
    assert spec.ssh_ingress_cidrs == ("198.51.100.0/24",)


# --- tags ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["aws:x", "dfbench:x", "dfbench:cluster", "Name"])
def test_reserved_tag_keys_rejected(key: str) -> None:
    with pytest.raises(ValidationError) as raised:
        ClusterSpec(tags={key: "v"})
    assert [e["loc"] for e in raised.value.errors()] == [("tags",)]


@pytest.mark.parametrize("tags", [{"": "v"}, {"k" * 129: "v"}, {"k": "v" * 257}])
def test_tag_length_limits(tags: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        ClusterSpec(tags=tags)


def test_user_tags_accepted() -> None:
    assert ClusterSpec(tags={"team": "query-engine", "cost-center": ""}).tags == {
        "team": "query-engine",
        "cost-center": "",
    }


def test_discovery_tag_key_in_tags_rejected() -> None:
    with pytest.raises(ValidationError, match="tag-discovery worker's peer tag"):
        ClusterSpec(tags={"BenchmarkCluster": "other"})


def test_the_discovery_tag_is_no_longer_a_setting() -> None:
    """The tag-discovery worker hard-codes its tag: a spec that sets another is refused, not ignored."""
    with pytest.raises(ConfigError, match="discovery_tag"):
        make_spec(discovery_tag="Peers=mine")


# --- strictness ----------------------------------------------------------------------------------


def test_extra_fields_rejected() -> None:
    with pytest.raises(ValidationError) as raised:
        ClusterSpec(instances=3)  # type: ignore[call-arg]
    assert [e["type"] for e in raised.value.errors()] == ["extra_forbidden"]


def test_spec_is_frozen() -> None:
    spec = ClusterSpec()
    with pytest.raises(ValidationError):
        spec.instance_count = 3  # type: ignore[misc]


def test_spot_is_strict_bool() -> None:
    assert ClusterSpec(spot=True).spot is True
    with pytest.raises(ValidationError):
        ClusterSpec(spot="yes")  # type: ignore[arg-type]


# --- make_spec: one ConfigError line naming the field --------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "Bad_Name"}, "name"),
        ({"name": "a" * 33}, "name"),
        ({"region": "nowhere"}, "region"),
        ({"instance_count": 0}, "instance_count"),
        ({"instance_count": 101}, "instance_count"),
        ({"instance_type": "huge"}, "instance_type"),
        ({"ami": "ami-xyz"}, "ami"),
        ({"bucket": "192.168.1.1"}, "bucket"),
        ({"bucket": "my..bucket"}, "bucket"),
        ({"volume_size_gib": 4}, "volume_size_gib"),
        ({"volume_type": "st1"}, "volume_type"),
        ({"ttl_hours": 0.0}, "ttl_hours"),
        ({"ssh_ingress_cidrs": ("999.1.1.1/32",)}, "ssh_ingress_cidrs"),
        ({"ssh_ingress_cidrs": ("2001:db8::/32",)}, "ssh_ingress_cidrs"),
        ({"tags": {"Name": "x"}}, "tags"),
        ({"tags": {"aws:x": "y"}}, "tags"),
        ({"nonsense": 1}, "nonsense"),
    ],
)
def test_make_spec_one_line_config_error(fields: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as raised:
        make_spec(**fields)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("Invalid cluster spec: ")
    assert f"{field}: " in message
    assert raised.value.exit_code == 2
    # The pydantic error is not chained: nothing but the one line reaches the user.
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_make_spec_discovery_tag_in_tags_names_discovery_tag() -> None:
    with pytest.raises(ConfigError) as raised:
        make_spec(tags={"BenchmarkCluster": "x"})
    message = str(raised.value)
    assert "\n" not in message
    assert "'BenchmarkCluster' is the tag-discovery worker's peer tag" in message


def test_make_spec_several_problems_still_one_line() -> None:
    with pytest.raises(ConfigError) as raised:
        make_spec(name="Bad", instance_count=0, bucket="xn--abc", region="nowhere\nus-east-1")
    message = str(raised.value)
    assert "\n" not in message
    for field in ("name: ", "instance_count: ", "bucket: ", "region: "):
        assert field in message


def test_make_spec_ignores_none_and_builds_spec() -> None:
    spec = make_spec(name="bench", region=None, instance_count=3, ssh_ingress_cidrs=None, tags=None)
    assert spec == ClusterSpec(name="bench", instance_count=3)
