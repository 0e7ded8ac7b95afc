"""What a cluster costs: per hour before anything is created (plan, provision), so far while it
runs (status, clusters), over its instances' life at teardown.

Compute only: EC2 bills a running instance by the second at the price ``aws/pricing.py`` finds
(on-demand from the Price List API, spot from the current spot price, else the bundled table);
the root volumes, data transfer and the hosted zone are not counted. "So far" is measured from
each instance's LaunchTime, which EC2 moves to the last start after a stop: hours before a stop
are not counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from dfbench.aws import pricing
from dfbench.aws.session import Aws, connect
from dfbench.config import ClusterSpec
from dfbench.errors import aws_errors
from dfbench.models import Cluster, Cost, Instance, Price

# Instances that will cost money from now on (pending ones in a moment), and those that have
# been billed since their LaunchTime: EC2 bills from running until stopping or shutting-down.
CHARGING_STATES = ("pending", "running")
BILLED_STATES = ("running",)


class Prices:
    """Prices for one command, each instance type (and market) looked up once."""

    def __init__(self, aws: Aws) -> None:
        self.aws = aws
        self._found: dict[tuple[str, bool], Price] = {}
        self._pricing: object | None = None

    def of(self, instance_type: str, *, spot: bool, zones: Iterable[str] = ()) -> Price:
        key = (instance_type, spot)
        if key not in self._found:
            if spot:
                self._found[key] = pricing.spot_price(self.aws.client("ec2"), instance_type, self.aws.region,
                                                      sorted(set(zones)))
            else:
                self._found[key] = pricing.on_demand_price(
                    self._price_list(), instance_type, self.aws.region,
                    partition=self.aws.session.get_partition_for_region(self.aws.region))
        return self._found[key]

    def _price_list(self) -> object:
        """A Price List API client, at its endpoint in us-east-1 whatever the cluster's region."""
        if self._pricing is None:
            self._pricing = connect(region=pricing.PRICING_REGION, profile=self.aws.profile).client("pricing")
        return self._pricing


def estimate(prices: Prices, spec: ClusterSpec, zones: Iterable[str]) -> Cost:
    """What the cluster of ``spec`` costs per hour once all its instances run; ``zones``: where it
    may be launched (a spot price differs by zone)."""
    price = prices.of(spec.instance_type, spot=spec.spot, zones=zones)
    per_hour = None if price.usd_per_hour is None else spec.instance_count * price.usd_per_hour
    return Cost(instances=spec.instance_count, per_hour=per_hour, prices=[price])


def accrued(prices: Prices, instances: Iterable[Instance], *, now: datetime | None = None) -> Cost:
    """What ``instances`` cost per hour now (those pending or running) and have cost since their
    LaunchTime (those running), at each type's price now."""
    now = now or datetime.now(UTC)
    charging = [i for i in instances if i.state in CHARGING_STATES]
    by_type: dict[tuple[str, bool], list[Instance]] = {}
    for instance in charging:
        by_type.setdefault((instance.instance_type, instance.spot), []).append(instance)
    found = {key: prices.of(key[0], spot=key[1], zones=[i.availability_zone for i in group])
             for key, group in sorted(by_type.items())}
    per_hour: float | None = 0.0
    usd: float | None = 0.0
    hours = 0.0
    for key, group in by_type.items():
        rate = found[key].usd_per_hour
        ran = sum(max(0.0, (now - i.launch_time).total_seconds() / 3600) for i in group if i.state in BILLED_STATES)
        hours += ran
        per_hour = None if rate is None or per_hour is None else per_hour + rate * len(group)
        usd = None if rate is None or usd is None else usd + rate * ran
    return Cost(instances=len(charging), per_hour=per_hour, prices=list(found.values()), instance_hours=hours, usd=usd)


def cluster_cost(cluster: Cluster, *, profile: str | None = None) -> Cost:
    """The cost so far of a cluster as ``status`` found it."""
    with aws_errors(profile):
        return accrued(Prices(connect(region=cluster.region, profile=profile)), cluster.instances)
