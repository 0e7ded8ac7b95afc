"""AWS's Price List Query API (pricing:GetProducts), which moto lacks (it answers HTTP 500),
answered as AWS answers it: products of the AmazonEC2 price list as JSON documents in strings,
those matching every TERM_MATCH filter, from the API's endpoints only.
https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/API_pricing_GetProducts.html"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.client import BaseClient
from botocore.exceptions import EndpointConnectionError

from dfbench_testing.wire import error_response, json_response

# The regions whose endpoint serves the Price List Query API (for every region's prices).
ENDPOINT_REGIONS = ("us-east-1", "eu-central-1", "ap-south-1")
# The price list's name of each region it holds here (its "location" attribute).
LOCATIONS = {"us-east-1": "US East (N. Virginia)", "us-west-2": "US West (Oregon)", "eu-west-1": "EU (Ireland)",
             "eu-central-1": "EU (Frankfurt)", "ap-southeast-7": "Asia Pacific (Thailand)"}
# On-demand Linux prices (USD per hour, as the price list writes them) of the types the tests use.
DEFAULT_PRICES = {("c5n.2xlarge", "us-east-1"): "0.4320000000", ("c5.xlarge", "us-east-1"): "0.1700000000",
                  ("t3.micro", "us-east-1"): "0.0104000000"}
_CREDENTIAL_REGION = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/pricing/")


def _usd(value: float) -> str:
    return f"{value:.10f}"


class PriceList:
    """GetProducts over a small AmazonEC2 price list: for each (instance type, region) of
    ``prices``, the on-demand Linux product dfbench wants, and its neighbours that a missing filter
    lets through, each at another price, listed first: the same type with dedicated tenancy, as
    capacity reservation rows (UnusedCapacityReservation, AllocatedCapacityReservation at $0), on
    Windows, and with SQL Server Web preinstalled. Each product also holds a Reserved term.
    ``refuse``: an error code to answer instead (AccessDeniedException for a caller without
    pricing:GetProducts). ``requests``: the parameters of every GetProducts answered."""

    def __init__(self, prices: dict[tuple[str, str], str] | None = None, *, refuse: str | None = None) -> None:
        self.prices = dict(DEFAULT_PRICES if prices is None else prices)
        self.refuse = refuse
        self.requests: list[dict[str, Any]] = []

    def hook(self, client: BaseClient) -> None:
        if client.meta.service_model.service_name == "pricing":
            client.meta.events.register_first("before-send.pricing.GetProducts", self._answer)

    def products(self) -> list[dict[str, Any]]:
        found = []
        for (instance_type, region), usd in sorted(self.prices.items()):
            price = float(usd)
            base = {"servicecode": "AmazonEC2", "instanceType": instance_type, "location": LOCATIONS[region],
                    "locationType": "AWS Region", "regionCode": region, "operatingSystem": "Linux",
                    "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used",
                    "licenseModel": "No License required", "operation": "RunInstances",
                    "usagetype": f"BoxUsage:{instance_type}"}
            for changed, rate in (({"tenancy": "Dedicated", "usagetype": f"DedicatedUsage:{instance_type}"}, 1.1),
                                  ({"capacitystatus": "UnusedCapacityReservation"}, 1.0),
                                  ({"capacitystatus": "AllocatedCapacityReservation"}, 0.0),
                                  ({"operatingSystem": "Windows", "operation": "RunInstances:0002"}, 1.4),
                                  ({"preInstalledSw": "SQL Web", "operation": "RunInstances:0200"}, 1.2)):
                found.append(_product({**base, **changed}, _usd(price * rate)))
            found.append(_product(base, usd))
        return found

    def _answer(self, request: Any, **_: Any) -> AWSResponse:
        authorization = request.headers.get("Authorization", b"")
        if isinstance(authorization, bytes):
            authorization = authorization.decode()
        match = _CREDENTIAL_REGION.search(authorization)
        region = match.group(1) if match else "?"
        if region not in ENDPOINT_REGIONS:
            # No api.pricing.<region>.amazonaws.com exists elsewhere: the name does not resolve.
            raise EndpointConnectionError(endpoint_url=f"https://api.pricing.{region}.amazonaws.com/")
        params = json.loads(request.body or b"{}")
        self.requests.append(params)
        if self.refuse:
            return error_response("pricing", self.refuse, "User is not authorized to perform: pricing:GetProducts",
                                  400)
        filters = params.get("Filters", [])
        if any(f.get("Type") != "TERM_MATCH" for f in filters):
            return error_response("pricing", "InvalidParameterException", "Filter type must be TERM_MATCH", 400)
        matching = [json.dumps(product) for product in self.products()
                    if params.get("ServiceCode") == "AmazonEC2"
                    and all(product["product"]["attributes"].get(f["Field"]) == f["Value"] for f in filters)]
        start = int(params.get("NextToken") or 0)
        size = int(params.get("MaxResults") or 100)
        page: dict[str, Any] = {"FormatVersion": "aws_v1", "PriceList": matching[start:start + size]}
        if start + size < len(matching):
            page["NextToken"] = str(start + size)
        return json_response(page)


def _product(attributes: dict[str, str], usd: str) -> dict[str, Any]:
    """One product as the price list holds it: attributes, an OnDemand term with one hourly
    dimension, and a Reserved term (one year, no upfront) at another rate."""
    sku = hashlib.sha256(json.dumps(attributes, sort_keys=True).encode()).hexdigest()[:16].upper()

    def term(code: str, rate: str, extra: dict[str, str]) -> dict[str, Any]:
        key = f"{sku}.{code}"
        return {key: {"offerTermCode": code, "sku": sku, "effectiveDate": "2026-11-01T00:00:00Z",
                      "termAttributes": extra,
                      "priceDimensions": {f"{key}.6YS6EN2CT7": {
                          "rateCode": f"{key}.6YS6EN2CT7", "unit": "Hrs", "beginRange": "0", "endRange": "Inf",
                          "appliesTo": [], "description": f"${rate} per {attributes['instanceType']} hour",
                          "pricePerUnit": {"USD": rate}}}}}

    return {"product": {"productFamily": "Compute Instance", "attributes": attributes, "sku": sku},
            "serviceCode": "AmazonEC2",
            "terms": {"OnDemand": term("JRTCKXETXF", usd, {}),
                      "Reserved": term("4NA7Y494T4", _usd(float(usd) * 0.63),
                                       {"LeaseContractLength": "1yr", "PurchaseOption": "No Upfront"})},
            "version": "20261101000000", "publicationDate": "2026-11-01T00:00:00Z"}
