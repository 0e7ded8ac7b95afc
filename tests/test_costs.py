"""What a cluster costs: the Price List API (its stand-in answers as AWS does), the spot price, the
bundled table when AWS refuses, and where each command says it."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

import dfbench
from dfbench import ClusterSpec
from dfbench.aws import pricing
from dfbench.aws.session import connect
from dfbench.costs import Prices, accrued
from dfbench_testing import PriceList, Recorder
from test_cli import run

BUNDLED = f"bundled table of {pricing.bundled_table()['as_of']}"


def test_plan_of_twelve_c5n_2xlarge_costs_5_18_an_hour_from_the_price_list_api(
        aws, recorder: Recorder, price_list: PriceList, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "plan", "--cluster", "priced", "--count", "12", "--instance-type", "c5n.2xlarge",
                         "--region", "us-east-1")
    assert code == 0, err
    line = next(line for line in out.splitlines() if line.startswith("cost:"))
    assert line.startswith("cost: $5.18 per hour for 12 instance(s) (c5n.2xlarge at $0.432/h: AWS Price List API")
    assert recorder.mutating == []
    # Asked once, at the API's endpoint in us-east-1, with every filter that makes one product answer.
    [request] = price_list.requests
    assert {f["Field"]: f["Value"] for f in request["Filters"]} == {
        "instanceType": "c5n.2xlarge", "operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA",
        "capacitystatus": "Used", "location": "US East (N. Virginia)"}

    code, out, _ = run(capsys, "plan", "--cluster", "priced", "--count", "12", "--json")
    cost = json.loads(out)["cost"]
    assert cost["per_hour"] == pytest.approx(5.184) and cost["prices"][0]["bundled"] is False


def test_a_refused_price_list_falls_back_to_the_bundled_table_labelled(
        aws, price_list: PriceList, capsys: pytest.CaptureFixture[str]) -> None:
    price_list.refuse = "AccessDeniedException"
    code, out, err = run(capsys, "plan", "--cluster", "priced", "--count", "12")
    assert code == 0, err
    line = " ".join(next(line for line in out.splitlines() if line.startswith("cost:")).split())
    assert line.startswith("cost: $5.18 per hour for 12 instance(s) (c5n.2xlarge at $0.432/h: dfbench's " + BUNDLED)
    assert "the Price List API refused (AccessDeniedException)" in line
    assert "aws.amazon.com/ec2/pricing" in line  # its source


def test_the_price_list_is_asked_in_us_east_1_for_any_region(aws, price_list: PriceList) -> None:
    """eu-west-1 is not in the bundled table: only the API can know its price, and it answers only
    at its own endpoints (a client in eu-west-1 would find no endpoint)."""
    price_list.prices[("m5.large", "eu-west-1")] = "0.1070000000"
    plan = dfbench.plan(ClusterSpec(name="ireland", region="eu-west-1", instance_count=3, instance_type="m5.large"))
    assert plan.cost is not None
    assert plan.cost.per_hour == pytest.approx(0.321)
    assert plan.cost.prices[0].source == "AWS Price List API, on-demand Linux, eu-west-1"

    price_list.refuse = "AccessDeniedException"
    refused = dfbench.plan(ClusterSpec(name="ireland", region="eu-west-1", instance_count=3, instance_type="m5.large"))
    assert refused.cost is not None and refused.cost.per_hour is None
    assert refused.cost.prices[0].source.startswith("unknown: the Price List API refused (AccessDeniedException), "
                                                    "and dfbench's " + BUNDLED + " lacks m5.large in eu-west-1")
    assert refused.cost.hourly_text().startswith("unknown per hour")


def test_a_region_the_table_has_no_location_for_is_asked_by_its_code(aws, price_list: PriceList) -> None:
    price_list.prices[("c5n.2xlarge", "ap-southeast-7")] = "0.5000000000"
    client = connect(region=pricing.PRICING_REGION).client("pricing")
    price = pricing.on_demand_price(client, "c5n.2xlarge", "ap-southeast-7", partition="aws")
    assert (price.usd_per_hour, price.bundled) == (0.5, False)
    by_code = {"Field": "regionCode", "Type": "TERM_MATCH", "Value": "ap-southeast-7"}
    assert by_code in price_list.requests[-1]["Filters"]
    # Outside the aws partition the Price List API has nothing: the table, and why.
    gov = pricing.on_demand_price(client, "c5n.2xlarge", "us-gov-west-1", partition="aws-us-gov")
    assert gov.usd_per_hour is None and "does not cover the aws-us-gov partition" in gov.source


def test_a_spot_cluster_is_priced_at_the_current_spot_price(aws, recorder: Recorder, price_list: PriceList) -> None:
    plan = dfbench.plan(ClusterSpec(name="spotty", instance_count=4, spot=True))
    assert plan.cost is not None
    [price] = plan.cost.prices
    assert price.spot and price.source.startswith("spot price now in us-east-1")
    [asked] = recorder.named("DescribeSpotPriceHistory")
    assert asked.params["InstanceTypes"] == ["c5n.2xlarge"] and "StartTime" in asked.params
    assert price_list.requests == []
    assert plan.cost.per_hour == pytest.approx(4 * price.usd_per_hour)


def test_provision_says_the_hourly_cost_before_creating_anything_and_status_and_teardown_what_it_cost(
        aws, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "provision", "--cluster", "billed", "--count", "2")
    assert code == 0, err
    lines = err.splitlines()
    said = next(n for n, line in enumerate(lines) if "costs $0.86 per hour for 2 instance(s)" in line)
    first_change = next(n for n, line in enumerate(lines) if line.startswith("+ create"))
    assert said < first_change

    code, out, err = run(capsys, "status", "--cluster", "billed")
    assert code == 0, err
    assert "cost so far: $" in out and "now $0.86 per hour for 2 instance(s)" in " ".join(out.split())
    code, out, _ = run(capsys, "status", "--cluster", "billed", "--json")
    status = json.loads(out)
    assert status["cost"]["per_hour"] == pytest.approx(0.864) and status["cost"]["instances"] == 2

    code, out, err = run(capsys, "teardown", "--cluster", "billed")
    assert code == 0, err
    assert "lifetime cost of the instances terminated: $" in out


def test_the_cost_so_far_is_the_hours_since_launch_at_the_price(aws) -> None:
    cluster = dfbench.provision(ClusterSpec(name="meter", instance_count=2))
    later = max(i.launch_time for i in cluster.instances) + timedelta(hours=2)
    cost = accrued(Prices(connect(region="us-east-1")), cluster.instances, now=later)
    hours = sum((later - i.launch_time).total_seconds() / 3600 for i in cluster.instances)
    assert cost.instance_hours == pytest.approx(hours) and hours >= 4
    assert cost.usd == pytest.approx(0.432 * hours)
    # Stopped instances cost nothing per hour, and their hours since launch are not counted.
    stopped = [i.model_copy(update={"state": "stopped"}) for i in cluster.instances]
    idle = accrued(Prices(connect(region="us-east-1")), stopped, now=later)
    assert (idle.per_hour, idle.usd, idle.instance_hours, idle.prices) == (0.0, 0.0, 0.0, [])
