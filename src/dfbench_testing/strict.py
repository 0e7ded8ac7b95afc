"""Requests checked as AWS checks them, where moto and botocore do not.

- ``RequestChecks``: every request against its service model's ``pattern``, ``enum``, ``min`` and
  ``max`` (botocore's client-side validation checks types, required members and ``min`` only).
- ``Ec2Rules``: a small table of EC2's server-side rules that moto lacks, and an account opted in
  to a Local Zone (``LOCAL_ZONE``), as DescribeAvailabilityZones and
  DescribeInstanceTypeOfferings list one for such an account.

A refused request is answered with the error code and message AWS gives, in the service's wire
format, before it reaches moto; botocore raises it as it would AWS's.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import boto3
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from botocore.model import Shape

from dfbench_testing.wire import StatusOnly

# What each service calls a request that breaks its model's constraints. IAM and STS (Query
# protocol): ValidationError; Route 53: InvalidInput; EC2: InvalidParameterValue; the JSON
# services (SSM, Service Quotas, EC2 Instance Connect): ValidationException.
_VALIDATION_CODES = {"ec2": "InvalidParameterValue", "iam": "ValidationError", "sts": "ValidationError",
                     "route53": "InvalidInput", "s3": "InvalidArgument"}
# Enums that are snapshots of an open set: EC2 accepts instance types newer than a botocore's
# model, and answers an unknown one itself (InvalidInstanceType, InvalidParameterValue).
_OPEN_ENUMS = {"InstanceType"}


def _python_pattern(pattern: str) -> re.Pattern[str] | None:
    """A model's pattern (Java regular expression syntax) in Python's; None for the few Python
    cannot express (those are not checked). Translations only ever accept more than AWS does:
    ``\\p{L}``/``\\p{N}`` become ``\\w``, ``\\p{Z}`` becomes ``\\s``."""
    text = (pattern.replace(r"\p{L}", r"\w").replace(r"\p{N}", r"\w").replace(r"\p{Z}", r"\s")
            .replace(r"\p{ASCII}", r"[\x00-\x7f]").replace(r"\w-", r"\w\-"))
    text = text.replace(r"\u10000-\u10FFFF", r"\U00010000-\U0010FFFF")  # the planes beyond the BMP
    if r"\p{" in text:
        return None
    try:
        return re.compile(text)
    except re.error:
        return None


_compiled = functools.lru_cache(maxsize=None)(_python_pattern)


def violations(value: Any, shape: Shape, where: str) -> list[str]:
    """What in ``value`` breaks ``shape``'s constraints, in AWS's wording. A pattern must match the
    whole value, as the services apply it: IAM refuses the role name ``has space`` against
    ``[\\w+=,.@-]+``, which a search would find in it."""
    found: list[str] = []
    meta = shape.metadata
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                found += violations(value[name], member, f"{where}.{name}" if where else name)
    elif kind == "list" and isinstance(value, list):
        found += _length(len(value), meta, where, "length")
        for index, item in enumerate(value):
            found += violations(item, shape.member, f"{where}.{index + 1}")
    elif kind == "map" and isinstance(value, dict):
        for key, item in value.items():
            found += violations(key, shape.key, f"{where}.key")
            found += violations(item, shape.value, f"{where}.{key}")
    elif kind == "string" and isinstance(value, str):
        found += _length(len(value), meta, where, "length")
        if shape.enum and value not in shape.enum and shape.name not in _OPEN_ENUMS:
            found.append(f"Value '{value}' at '{where}' failed to satisfy constraint: Member must satisfy enum "
                         f"value set: [{', '.join(shape.enum)}]")
        pattern = _compiled(meta["pattern"]) if "pattern" in meta else None
        if pattern is not None and not pattern.fullmatch(value):
            found.append(f"Value '{value}' at '{where}' failed to satisfy constraint: Member must satisfy regular "
                         f"expression pattern: {meta['pattern']}")
    elif kind in ("integer", "long") and isinstance(value, int):
        found += _length(value, meta, where, "value")
    return found


def _length(size: int, meta: dict[str, Any], where: str, what: str) -> list[str]:
    if "min" in meta and size < meta["min"]:
        return [(f"Value at '{where}' failed to satisfy constraint: Member must have {what} greater than or equal "
                f"to {meta['min']}")]
    if "max" in meta and size > meta["max"]:
        return [(f"Value at '{where}' failed to satisfy constraint: Member must have {what} less than or equal "
                f"to {meta['max']}")]
    return []


class RequestChecks:
    """Refuse, as AWS does, any request breaking its service model's patterns, enums and limits."""

    def hook(self, client: BaseClient) -> None:
        events = client.meta.events
        events.register("before-parameter-build", self._check)
        events.register_first("before-call", self._answer)

    def _check(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if model.input_shape is None:
            return
        problems = violations(params, model.input_shape, "")
        if problems:
            context["dfbench_refused"] = problems

    def _answer(self, model: Any, context: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]] | None:
        problems = context.get("dfbench_refused")
        if not problems:
            return None
        service = model.service_model.service_name
        message = f"{len(problems)} validation error(s) detected: " + "; ".join(problems)
        return refusal(_VALIDATION_CODES.get(service, "ValidationException"), message)


def refusal(code: str, message: str, status: int = 400) -> tuple[Any, dict[str, Any]]:
    """What a ``before-call`` handler returns to answer for the service with an error."""
    return StatusOnly(status), {"Error": {"Code": code, "Message": message},
                                "ResponseMetadata": {"HTTPStatusCode": status}}


# An account opted in to the Boston Local Zone group: AWS then lists the zone among the region's
# zones (ZoneType local-zone) and in DescribeInstanceTypeOfferings for LocationType
# availability-zone, for the types it offers:
# https://docs.aws.amazon.com/local-zones/latest/ug/getting-started.html
LOCAL_ZONE = {"ZoneName": "us-east-1-bos-1a", "ZoneId": "use1-bos1-az1", "ZoneType": "local-zone",
              "GroupName": "us-east-1-bos-1", "NetworkBorderGroup": "us-east-1-bos-1", "OptInStatus": "opted-in",
              "ParentZoneName": "us-east-1a", "ParentZoneId": "use1-az1", "RegionName": "us-east-1",
              "State": "available", "Messages": []}


# An AMI's architecture never changes, and ids are not reused: known once for the session.
_IMAGE_ARCHITECTURES: dict[str, str | None] = {}


class Ec2Rules:
    """EC2's server-side rules that moto lacks (moto launches any of these), answered as EC2 does:

    - an instance type whose architecture is not the AMI's: InvalidParameterValue, naming both
      (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-instance-launch-troubleshooting.html);
    - an io1/io2 volume without Iops: InvalidParameterCombination, since Iops is required for
      those types (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_EbsBlockDevice.html);
    - the account is opted in to a Local Zone (``LOCAL_ZONE``), which moto cannot create anything
      in: a subnet or launch there is refused here, because AWS would carry it out and put the
      cluster in a Local Zone (fewer instance types and volume types, other prices), which dfbench
      must never choose by itself.
    """

    def __init__(self, endpoint: str) -> None:
        # One plain client, made on first use: a launch must not wait for a client per request
        # (dfbench's retries of a launch run against short, time-scaled deadlines).
        self._client: Any = None
        self._endpoint = endpoint

    def hook(self, client: BaseClient) -> None:
        if client.meta.service_model.service_name != "ec2":
            return
        events = client.meta.events
        events.register("before-parameter-build.ec2", self._remember)
        events.register("before-call.ec2.RunInstances", self._run_instances)
        events.register("before-call.ec2.CreateSubnet", self._create_subnet)
        events.register("after-call.ec2.DescribeAvailabilityZones", self._list_local_zone)
        events.register("after-call.ec2.DescribeInstanceTypeOfferings", self._offer_in_local_zone)

    @staticmethod
    def _remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["api_params"] = dict(params)

    def _image_architecture(self, image_id: str) -> str | None:
        if image_id not in _IMAGE_ARCHITECTURES:
            if self._client is None:
                self._client = boto3.client("ec2", endpoint_url=self._endpoint, region_name="us-east-1")
            try:
                images = self._client.describe_images(ImageIds=[image_id])["Images"]
            except ClientError:
                return None  # moto answers for the unknown AMI itself
            _IMAGE_ARCHITECTURES[image_id] = images[0].get("Architecture", "x86_64") if images else None
        return _IMAGE_ARCHITECTURES[image_id]

    def _run_instances(self, context: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]] | None:
        api = context["api_params"]
        for mapping in api.get("BlockDeviceMappings", []):
            ebs = mapping.get("Ebs", {})
            if ebs.get("VolumeType") in ("io1", "io2") and "Iops" not in ebs:
                return refusal("InvalidParameterCombination",
                               f"The parameter iops must be specified for {ebs['VolumeType']} volumes.")
        zone = api.get("Placement", {}).get("AvailabilityZone")
        if zone == LOCAL_ZONE["ZoneName"]:
            return refusal("InvalidParameterValue", f"{zone} is a Local Zone: the stand-in cannot launch there")
        image_arch = self._image_architecture(api["ImageId"]) if "ImageId" in api else None
        if image_arch and "InstanceType" in api:
            # moto's own catalogue of instance types, read in-process: no request per launch. (Imported
            # here: moto reads its flags when first imported, which MotoServer does after setting them.)
            from moto.ec2.models.instance_types import INSTANCE_TYPES

            type_archs = INSTANCE_TYPES.get(api["InstanceType"], {}).get("ProcessorInfo", {}).get(
                "SupportedArchitectures", [])
            if type_archs and image_arch not in type_archs:
                return refusal("InvalidParameterValue",
                               f"The architecture '{type_archs[0]}' of the specified instance type does not match "
                               f"the architecture '{image_arch}' of the specified AMI. Specify an instance type "
                               "and an AMI that have matching architectures, and try again. You can use "
                               "'describe-instance-types' or 'describe-images' to discover the architecture of "
                               "the instance type or AMI.")
        return None

    def _create_subnet(self, context: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]] | None:
        zone = context["api_params"].get("AvailabilityZone")
        if zone == LOCAL_ZONE["ZoneName"]:
            return refusal("InvalidParameterValue", f"{zone} is a Local Zone: the stand-in cannot create a subnet "
                           "there (AWS would, and the cluster would live in the Local Zone)")
        return None

    @staticmethod
    def _list_local_zone(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        api = context.get("api_params", {})
        filters = {f["Name"]: f["Values"] for f in api.get("Filters", [])}
        if api.get("ZoneNames") and LOCAL_ZONE["ZoneName"] not in api["ZoneNames"]:
            return
        if "zone-type" in filters and "local-zone" not in filters["zone-type"]:
            return
        if "AvailabilityZones" in parsed:
            parsed["AvailabilityZones"].append(dict(LOCAL_ZONE))

    @staticmethod
    def _offer_in_local_zone(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        api = context.get("api_params", {})
        if api.get("LocationType") != "availability-zone" or api.get("NextToken"):
            return
        offered = {o["InstanceType"] for o in parsed.get("InstanceTypeOfferings", [])}
        parsed.setdefault("InstanceTypeOfferings", []).extend(
            {"InstanceType": t, "LocationType": "availability-zone", "Location": LOCAL_ZONE["ZoneName"]}
            for t in sorted(offered))
