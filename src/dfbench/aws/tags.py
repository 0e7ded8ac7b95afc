"""dfbench's ownership tags: how every resource is found again on the next call."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

MANAGED_KEY = "dfbench:managed"
CLUSTER_KEY = "dfbench:cluster"
# Recorded on the VPC so that `status` and `teardown`, which get only a cluster name, know the bucket.
BUCKET_KEY = "dfbench:bucket"


def cluster_tags(cluster: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return {**(extra or {}), CLUSTER_KEY: cluster, MANAGED_KEY: "true"}


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in sorted(tags.items())]


def tag_dict(tags: Iterable[Mapping[str, str]] | None) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in tags or ()}


def tag_specifications(resource_type: str, tags: Mapping[str, str]) -> list[dict[str, object]]:
    """Tags applied by the create call itself: a resource never exists untagged, so an interrupt
    right after creation cannot leak it (the next run finds it by these tags)."""
    return [{"ResourceType": resource_type, "Tags": tag_list(tags)}]


def cluster_filters(cluster: str) -> list[dict[str, object]]:
    return [
        {"Name": f"tag:{CLUSTER_KEY}", "Values": [cluster]},
        {"Name": f"tag:{MANAGED_KEY}", "Values": ["true"]},
    ]


def is_managed(tags: Mapping[str, str], cluster: str | None = None) -> bool:
    if tags.get(MANAGED_KEY) != "true":
        return False
    return cluster is None or tags.get(CLUSTER_KEY) == cluster
