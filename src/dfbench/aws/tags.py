"""dfbench's ownership tags: how every resource is found again on the next call; and bringing the
tags of existing EC2 resources to the spec (create calls tag what they create)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

from dfbench.models import Change, ChangeSet

MANAGED_KEY = "dfbench:managed"
CLUSTER_KEY = "dfbench:cluster"
# Recorded on the VPC so that `status` and `teardown`, which get only a cluster name, know the bucket.
BUCKET_KEY = "dfbench:bucket"
# Recorded on an instance at launch: the time-to-live its boot armed ("none" without one). Never
# rewritten afterwards, since the timer on the instance does not change with it.
TTL_KEY = "dfbench:ttl-hours"
# Carried, besides MANAGED_KEY, by everything a `dfbench verify-aws` run creates: its run id.
VERIFY_KEY = "dfbench:verify"
MANAGED_FILTER: dict[str, object] = {"Name": f"tag:{MANAGED_KEY}", "Values": ["true"]}


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
    return [{"Name": f"tag:{CLUSTER_KEY}", "Values": [cluster]}, MANAGED_FILTER]


def is_managed(tags: Mapping[str, str], cluster: str | None = None) -> bool:
    if tags.get(MANAGED_KEY) != "true":
        return False
    return cluster is None or tags.get(CLUSTER_KEY) == cluster


def missing_tags(current: Mapping[str, str], wanted: Mapping[str, str]) -> dict[str, str]:
    """The wanted tags a resource lacks or holds with another value. Tags beyond ``wanted`` are
    left alone: dfbench cannot tell one the user dropped from the spec from one set by hand."""
    return {key: value for key, value in wanted.items() if current.get(key) != value}


def tags_text(tags: Mapping[str, str]) -> str:
    return "tag " + ", ".join(f"{key}={value}" for key, value in sorted(tags.items()))


def ensure_ec2_tags(ec2: Any, *, resource: str, found: Mapping[str, tuple[Mapping[str, str], Mapping[str, str]]],
                    changes: ChangeSet) -> None:
    """Bring existing EC2 resources' tags to what they should carry: ``found`` maps a resource id
    to (its tags now, the tags it should have). Resources lacking the same tags share one
    CreateTags (it takes many resource ids), so a tag added to the spec costs one call for the
    whole network or all instances, and a cluster whose tags match makes none."""
    groups: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for resource_id, (current, wanted) in sorted(found.items()):
        lacking = missing_tags(current, wanted)
        if lacking:
            groups.setdefault(tuple(sorted(lacking.items())), []).append(resource_id)
    for lacking_items, ids in groups.items():
        lacking = dict(lacking_items)
        changes.make(Change(action="update", resource=resource, name=", ".join(ids), detail=tags_text(lacking)),
                     partial(ec2.create_tags, Resources=ids, Tags=tag_list(lacking)))
