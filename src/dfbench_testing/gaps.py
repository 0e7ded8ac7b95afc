"""Where moto departs from AWS in a way that matters to dfbench: the AWS behaviour, supplied at
the request boundary."""

from __future__ import annotations

import re
from typing import Any

import boto3
from botocore.client import BaseClient

from dfbench_testing.wire import StatusOnly, error_response


class MotoGaps:
    """AWS behaviour moto lacks, supplied at the request boundary.

    - CreateBucket with ``CreateBucketConfiguration.Tags``: AWS tags the bucket atomically; moto
      ignores the tags. We apply them right after the call succeeds.
    - Bucket policies: moto treats any Deny statement as denying everything, conditions ignored,
      so dfbench's TLS-only policy would lock every later call out. Put/Get/DeleteBucketPolicy
      are answered here, with AWS's responses, from a store of the policies dfbench sent.
    - CreateHostedZone's CallerReference: AWS answers a reference it has seen before with
      HostedZoneAlreadyExists (HTTP 409) and creates nothing, which is what makes a retried create
      idempotent; moto makes a second zone. The rule holds here for the references of deleted
      zones too, as AWS documents it for health checks' references (dfbench must survive that
      case): a zone's reference is remembered when its deletion is sent.
    """

    def __init__(self, endpoint: str) -> None:
        self.policies: dict[str, str] = {}
        self.deleted_zone_references: set[str] = set()
        self._endpoint = endpoint
        self._raw: dict[str, Any] = {}

    def hook(self, client: BaseClient) -> None:
        if client.meta.service_model.service_name == "route53":
            client.meta.events.register("before-send.route-53.CreateHostedZone", self._create_zone)
            client.meta.events.register("before-send.route-53.DeleteHostedZone", self._delete_zone)
            return
        if client.meta.service_model.service_name != "s3":
            return
        events = client.meta.events
        events.register("before-parameter-build.s3", self._remember_params)
        events.register("before-call.s3.PutBucketPolicy", self._put_policy)
        events.register("before-call.s3.GetBucketPolicy", self._get_policy)
        events.register("before-call.s3.DeleteBucketPolicy", self._delete_policy)
        events.register("after-call.s3.DeleteBucket", self._bucket_deleted)
        events.register("after-call.s3.CreateBucket", self._tag_new_bucket)

    @staticmethod
    def _remember_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["api_params"] = dict(params)

    # A before-call handler that returns (http_response, parsed) answers in place of the service.
    def _put_policy(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        api = context["api_params"]
        self.policies[api["Bucket"]] = api["Policy"]
        return StatusOnly(204), {"ResponseMetadata": {"HTTPStatusCode": 204}}

    def _get_policy(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        bucket = context["api_params"]["Bucket"]
        if bucket not in self.policies:
            return StatusOnly(404), {"Error": {"Code": "NoSuchBucketPolicy",
                                               "Message": "The bucket policy does not exist"},
                                     "ResponseMetadata": {"HTTPStatusCode": 404}}
        return StatusOnly(200), {"Policy": self.policies[bucket], "ResponseMetadata": {"HTTPStatusCode": 200}}

    def _delete_policy(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        self.policies.pop(context["api_params"]["Bucket"], None)
        return StatusOnly(204), {"ResponseMetadata": {"HTTPStatusCode": 204}}

    def _bucket_deleted(self, http_response: Any, context: dict[str, Any], **_: Any) -> None:
        if http_response.status_code < 300:
            self.policies.pop(context["api_params"]["Bucket"], None)

    def _tag_new_bucket(self, http_response: Any, context: dict[str, Any], **_: Any) -> None:
        api = context["api_params"]
        tags = api.get("CreateBucketConfiguration", {}).get("Tags")
        if tags and http_response.status_code < 300:
            self._client("s3").put_bucket_tagging(Bucket=api["Bucket"], Tagging={"TagSet": tags})

    def _client(self, service: str) -> Any:
        """A plain client of the emulator, outside dfbench's hooks; made once (a client costs tens
        of milliseconds to build, and these answer inside every provision)."""
        if service not in self._raw:
            self._raw[service] = boto3.client(service, endpoint_url=self._endpoint, region_name="us-east-1")
        return self._raw[service]

    def _route53(self) -> Any:
        return self._client("route53")

    def _create_zone(self, request: Any, **_: Any) -> Any:
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
        match = re.search(r"<CallerReference>(.*?)</CallerReference>", body)
        reference = match.group(1) if match else ""
        existing = {zone["CallerReference"] for page in self._route53().get_paginator("list_hosted_zones").paginate()
                    for zone in page["HostedZones"]}
        if reference in existing or reference in self.deleted_zone_references:
            return error_response("route-53", "HostedZoneAlreadyExists", "A hosted zone has already been created "
                                  f"with the specified caller reference: {reference}", 409)
        return None

    def _delete_zone(self, request: Any, **_: Any) -> None:
        zone_id = request.url.rstrip("/").rsplit("/", 1)[1]
        try:
            zone = self._route53().get_hosted_zone(Id=zone_id)["HostedZone"]
        except self._route53().exceptions.NoSuchHostedZone:
            return
        self.deleted_zone_references.add(zone["CallerReference"])
