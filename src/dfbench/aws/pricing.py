"""What an instance costs per hour: AWS's Price List API for on-demand instances, the current spot
price for spot ones, else the table bundled with dfbench (``prices.json``), labelled as such.

A price is information, never a reason to stop: every AWS failure here (a caller without
``pricing:GetProducts``, a partition without the Price List API, a type AWS does not list) falls
back to the bundled table, and past it to an unknown price, with the reason in ``Price.source``.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dfbench.errors import error_code
from dfbench.models import Price

log = logging.getLogger("dfbench")

# The Price List Query API answers at three endpoints (us-east-1, eu-central-1, ap-south-1), each
# for every region of the aws partition:
# https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/using-price-list-query-api.html
PRICING_REGION = "us-east-1"
PRICE_LIST_PARTITION = "aws"
API_SOURCE = "AWS Price List API, on-demand Linux"
# A product of the AmazonEC2 price list is one instance type in one location for one operating
# system, tenancy, preinstalled software and capacity status (capacity reservations are listed
# as products of their own, "UnusedCapacityReservation" and "AllocatedCapacityReservation"):
# these fix all but the location, so exactly one product answers.
_FIXED_FILTERS = {"operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used"}
# Spot prices of Linux instances in a VPC are listed under both descriptions.
_SPOT_DESCRIPTIONS = ["Linux/UNIX", "Linux/UNIX (Amazon VPC)"]


@cache
def bundled_table() -> dict[str, Any]:
    """prices.json: its ``as_of`` date, ``source``, the Price List's location name of each region,
    and groups of regions sharing one on-demand price per instance type."""
    return json.loads(resources.files("dfbench.aws").joinpath("prices.json").read_text(encoding="utf-8"))


def bundled_price(instance_type: str, region: str, *, reason: str, spot: bool = False) -> Price:
    """The bundled on-demand price (an upper bound for a spot instance), labelled with its date and
    source and why it was used; an unknown price when the table lacks the type or region."""
    table = bundled_table()
    for group in table["price_groups"]:
        if region in group["regions"] and instance_type in group["usd_per_hour"]:
            return Price(instance_type=instance_type, region=region, spot=spot, bundled=True,
                         usd_per_hour=float(group["usd_per_hour"][instance_type]),
                         source=f"dfbench's bundled table of {table['as_of']} (on-demand{', no spot' if spot else ''}; "
                                f"{table['source']}), since {reason}")
    return Price(instance_type=instance_type, region=region, spot=spot, usd_per_hour=None,
                 source=f"unknown: {reason}, and dfbench's bundled table of {table['as_of']} lacks "
                        f"{instance_type} in {region}")


def price_list_filters(instance_type: str, region: str) -> list[dict[str, str]]:
    """GetProducts filters for one Linux on-demand instance type in a region. The region is named
    as the price list names it (``location``, "US East (N. Virginia)"); a region the bundled table
    has no name for is matched by its code (``regionCode``)."""
    location = bundled_table()["locations"].get(region)
    where = {"location": location} if location else {"regionCode": region}
    return [{"Type": "TERM_MATCH", "Field": field, "Value": value}
            for field, value in {"instanceType": instance_type, **_FIXED_FILTERS, **where}.items()]


def on_demand_prices(pricing: Any, instance_type: str, region: str) -> set[Decimal]:
    """The distinct hourly USD prices of the OnDemand terms of the products answering the filters
    (one, when the filters hold). Each PriceList item is a JSON document in a string."""
    prices: set[Decimal] = set()
    pages = pricing.get_paginator("get_products").paginate(
        ServiceCode="AmazonEC2", FormatVersion="aws_v1", Filters=price_list_filters(instance_type, region))
    for page in pages:
        for item in page["PriceList"]:
            product = json.loads(item) if isinstance(item, str) else item
            for term in product.get("terms", {}).get("OnDemand", {}).values():
                for dimension in term.get("priceDimensions", {}).values():
                    if dimension.get("unit") == "Hrs" and "USD" in dimension.get("pricePerUnit", {}):
                        prices.add(Decimal(dimension["pricePerUnit"]["USD"]))
    return prices


def on_demand_price(pricing: Any, instance_type: str, region: str, *, partition: str) -> Price:
    """From the Price List API (``pricing``: a client of PRICING_REGION), else the bundled table
    with the reason."""
    if partition != PRICE_LIST_PARTITION:
        return bundled_price(instance_type, region, reason=f"the Price List API does not cover the {partition} "
                             "partition")
    try:
        prices = on_demand_prices(pricing, instance_type, region)
    except (ClientError, BotoCoreError) as error:
        reason = error_code(error) or type(error).__name__
        log.debug("Price List API: %s", error)
        return bundled_price(instance_type, region, reason=f"the Price List API refused ({reason})")
    if len(prices) != 1:
        found = ", ".join(f"${p}" for p in sorted(prices)) or "no product"
        return bundled_price(instance_type, region, reason=f"the Price List API answered {found} for {instance_type} "
                             f"in {region}")
    return Price(instance_type=instance_type, region=region, spot=False, usd_per_hour=float(prices.pop()),
                 source=f"{API_SOURCE}, {region}")


def spot_price(ec2: Any, instance_type: str, region: str, zones: list[str], *, now: datetime | None = None) -> Price:
    """The current spot price: the highest among ``zones`` (where the cluster is or may be
    launched; all the region's when empty), from DescribeSpotPriceHistory asked for prices from
    now on, which lists the price in effect now in each zone. Falls back to the bundled on-demand
    price (what a spot instance costs at most) when the history cannot be read."""
    try:
        latest: dict[str, tuple[datetime, Decimal]] = {}
        pages = ec2.get_paginator("describe_spot_price_history").paginate(
            InstanceTypes=[instance_type], ProductDescriptions=_SPOT_DESCRIPTIONS,
            StartTime=now or datetime.now(UTC),
            **({"Filters": [{"Name": "availability-zone", "Values": zones}]} if zones else {}))
        for page in pages:
            for entry in page["SpotPriceHistory"]:
                zone, when = entry["AvailabilityZone"], entry["Timestamp"]
                if zone not in latest or when > latest[zone][0]:
                    latest[zone] = (when, Decimal(entry["SpotPrice"]))
    except (ClientError, BotoCoreError) as error:
        reason = error_code(error) or type(error).__name__
        return bundled_price(instance_type, region, spot=True, reason=f"DescribeSpotPriceHistory refused ({reason})")
    if not latest:
        return bundled_price(instance_type, region, spot=True,
                             reason=f"EC2 lists no spot price for {instance_type} in {', '.join(zones) or region}")
    zone, (_, highest) = max(latest.items(), key=lambda item: item[1][1])
    return Price(instance_type=instance_type, region=region, spot=True, usd_per_hour=float(highest),
                 source=f"spot price now in {zone} (DescribeSpotPriceHistory"
                        + (f", the highest of {len(latest)} zones)" if len(latest) > 1 else ")"))
