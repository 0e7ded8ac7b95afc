"""The S3 bucket that holds datasets, worker artifacts and command output.

Ownership rule: dfbench manages a bucket only if it carries ``dfbench:managed=true``, which
dfbench sets in the CreateBucket call itself (so an interrupted create never leaves an untagged
bucket), or right after it where tagging at creation is unavailable (botocore before 1.39.3) or
refused (no ``s3:TagResource``). A bucket without that tag is the user's: dfbench reads from it and writes to it, but
never changes its settings, empties it or deletes it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from dfbench.aws.tags import is_managed, tag_dict, tag_list
from dfbench.errors import OwnershipError, error_code
from dfbench.models import Change, ChangeSet

log = logging.getLogger("dfbench")

TLS_ONLY_SID = "DfbenchDenyInsecureTransport"
_BLOCK_ALL = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}


@dataclass(frozen=True)
class BucketState:
    name: str
    managed: bool
    public_access_blocked: bool = False
    encrypted: bool = False
    tls_only: bool = False
    policy: dict[str, Any] | None = None
    # No tags and no objects, under the name dfbench would create: what a create interrupted
    # before its PutBucketTagging leaves (see _create). Taken as dfbench's by the next provision.
    untagged_and_empty: bool = False


def _tls_only_statement(bucket: str) -> dict[str, Any]:
    return {
        "Sid": TLS_ONLY_SID,
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


@dataclass(frozen=True)
class ListedBucket:
    """A bucket of the account carrying dfbench:managed=true, where it lives and since when."""

    name: str
    region: str
    created: datetime | None
    tags: dict[str, str]


def find_managed_buckets(s3: Any) -> list[ListedBucket]:
    """Every bucket of the account tagged dfbench:managed=true: the buckets dfbench created."""
    found = []
    for raw in s3.list_buckets().get("Buckets", []):
        name = raw["Name"]
        try:
            tags = tag_dict(s3.get_bucket_tagging(Bucket=name)["TagSet"])
            if not is_managed(tags):
                continue
            # LocationConstraint is empty for us-east-1 (and "EU" for the oldest eu-west-1 buckets).
            location = s3.get_bucket_location(Bucket=name).get("LocationConstraint") or "us-east-1"
        except ClientError as error:
            if error_code(error) in {"NoSuchTagSet", "NoSuchBucket", "404", "AccessDenied", "403"}:
                continue  # untagged, gone since the listing, or not readable: not dfbench's to delete
            raise
        found.append(ListedBucket(name, "eu-west-1" if location == "EU" else location, raw.get("CreationDate"), tags))
    return found


def find_bucket(s3: Any, name: str, *, adopt_untagged: bool = False) -> BucketState | None:
    """The bucket's state, or None when no bucket has this name anywhere. ``adopt_untagged``: the
    name is dfbench's own default, so a bucket there with no tags and no objects is looked at as
    one an interrupted create left behind."""
    try:
        s3.head_bucket(Bucket=name)
    except ClientError as error:
        if error_code(error) in {"404", "NoSuchBucket", "NotFound"}:
            return None
        if error_code(error) in {"403", "AccessDenied", "Forbidden"}:
            raise OwnershipError(
                f"S3 bucket {name!r} exists but you cannot access it (it probably belongs to "
                "another account; bucket names are global). Set BENCHMARK_BUCKET (or --bucket) "
                "to a unique name."
            ) from None
        raise
    try:
        tags = tag_dict(s3.get_bucket_tagging(Bucket=name)["TagSet"])
    except ClientError as error:
        if error_code(error) != "NoSuchTagSet":
            raise
        tags = {}
    if not is_managed(tags):
        empty = adopt_untagged and not tags and s3.list_objects_v2(Bucket=name, MaxKeys=1).get("KeyCount", 0) == 0
        return BucketState(name=name, managed=False, untagged_and_empty=empty)
    policy = _policy(s3, name)
    return BucketState(
        name=name,
        managed=True,
        public_access_blocked=_public_access_blocked(s3, name),
        encrypted=_encrypted(s3, name),
        tls_only=_tls_only(policy, name),
        policy=policy,
    )


def _public_access_blocked(s3: Any, name: str) -> bool:
    try:
        config = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
    except ClientError as error:
        if error_code(error) == "NoSuchPublicAccessBlockConfiguration":
            return False
        raise
    return all(config.get(key) for key in _BLOCK_ALL)


def _encrypted(s3: Any, name: str) -> bool:
    try:
        rules = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
    except ClientError as error:
        if error_code(error) == "ServerSideEncryptionConfigurationNotFoundError":
            return False
        raise
    return any(rule.get("ApplyServerSideEncryptionByDefault") for rule in rules)


def _policy(s3: Any, name: str) -> dict[str, Any] | None:
    try:
        return json.loads(s3.get_bucket_policy(Bucket=name)["Policy"])
    except ClientError as error:
        if error_code(error) == "NoSuchBucketPolicy":
            return None
        raise


def _tls_only(policy: dict[str, Any] | None, name: str) -> bool:
    statements = (policy or {}).get("Statement", [])
    return _tls_only_statement(name) in statements


def ensure_bucket(
    s3: Any, *, name: str, region: str, tags: dict[str, str], found: BucketState | None, changes: ChangeSet
) -> None:
    """Create the bucket if absent; bring a dfbench bucket's security settings to the spec."""
    if found is not None and found.untagged_and_empty:
        changes.make(
            Change(action="update", resource="bucket", name=name,
                   detail="tag as dfbench's (an interrupted create left it untagged and empty)"),
            lambda: s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": tag_list(tags)}),
        )
        found = BucketState(name=name, managed=True)
    if found is not None and not found.managed:
        log.debug("bucket %s is not dfbench's: using it as it is", name)
        return
    if found is None:
        changes.make(
            Change(action="create", resource="bucket", name=name,
                   detail="public access blocked, encrypted, TLS only"),
            lambda: _create(s3, name, region, tags),
        )
        found = BucketState(name=name, managed=True)
    if not found.public_access_blocked:
        changes.make(
            Change(action="update", resource="bucket", name=name, detail="block public access"),
            lambda: s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=_BLOCK_ALL),
        )
    if not found.encrypted:
        changes.make(
            Change(action="update", resource="bucket", name=name, detail="default encryption (SSE-S3)"),
            lambda: s3.put_bucket_encryption(
                Bucket=name,
                ServerSideEncryptionConfiguration={
                    "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                               "BucketKeyEnabled": True}]
                },
            ),
        )
    if not found.tls_only:
        changes.make(
            Change(action="update", resource="bucket", name=name, detail="policy: deny requests without TLS"),
            lambda: s3.put_bucket_policy(Bucket=name, Policy=json.dumps(_with_tls_only(found.policy, name))),
        )


def _with_tls_only(policy: dict[str, Any] | None, name: str) -> dict[str, Any]:
    """The bucket's policy with dfbench's statement added or replaced; other statements kept."""
    statements = [s for s in (policy or {}).get("Statement", []) if s.get("Sid") != TLS_ONLY_SID]
    return {"Version": "2012-10-17", "Statement": [*statements, _tls_only_statement(name)]}


def _create(s3: Any, name: str, region: str, tags: dict[str, str]) -> None:
    config: dict[str, Any] = {}
    # us-east-1 is the one region that rejects an explicit LocationConstraint.
    if region != "us-east-1":
        config["LocationConstraint"] = region
    if tags_at_creation(s3):
        try:
            _create_call(s3, name, {**config, "Tags": tag_list(tags)})
            return
        except ClientError as error:
            # Tagging at creation needs s3:TagResource besides s3:CreateBucket, and S3 refuses the
            # whole CreateBucket (AccessDenied) without it:
            # https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucket.html
            if error_code(error) != "AccessDenied":
                raise
            log.debug("CreateBucket with tags refused (%s): creating, then tagging", error_code(error))
    else:
        log.debug("this botocore (before 1.39.3) cannot tag a bucket at creation: creating, then tagging")
    # The bucket exists untagged until PutBucketTagging: a run interrupted right between the two
    # leaves it untagged and empty, which the next provision adopts under dfbench's default name
    # only (find_bucket); a bucket the user named stays the user's then.
    _create_call(s3, name, config)
    s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": tag_list(tags)})


def tags_at_creation(s3: Any) -> bool:
    """Whether this botocore's S3 model has ``CreateBucketConfiguration.Tags`` (botocore 1.39.3
    on; an older one refuses the parameter before sending anything)."""
    configuration = s3.meta.service_model.operation_model("CreateBucket").input_shape.members[
        "CreateBucketConfiguration"]
    return "Tags" in configuration.members


def _create_call(s3: Any, name: str, config: dict[str, Any]) -> None:
    try:
        s3.create_bucket(Bucket=name, **({"CreateBucketConfiguration": config} if config else {}))
    except ClientError as error:
        if error_code(error) == "BucketAlreadyExists":
            raise OwnershipError(
                f"S3 bucket name {name!r} is taken by another account (bucket names are global). "
                "Set BENCHMARK_BUCKET (or --bucket) to a unique name."
            ) from None
        # BucketAlreadyOwnedByYou: a previous interrupted run created it; carry on.
        if error_code(error) != "BucketAlreadyOwnedByYou":
            raise


def delete_bucket(s3: Any, name: str) -> int:
    """Delete every object version, delete marker and unfinished upload, then the bucket.
    Returns the number of object versions deleted."""
    deleted = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
        keys = [
            {"Key": item["Key"], "VersionId": item["VersionId"]}
            for item in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        # Pages hold at most 1000 entries, the DeleteObjects limit.
        if keys:
            answer = s3.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise OwnershipError(
                    f"Could not delete {len(answer['Errors'])} objects of bucket {name}: "
                    f"{first.get('Code')}: {first.get('Message')} ({first.get('Key')})"
                )
            deleted += len(keys)
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=name):
        for upload in page.get("Uploads", []):
            s3.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    s3.delete_bucket(Bucket=name)
    return deleted
