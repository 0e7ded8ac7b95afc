"""Eventual consistency, which moto lacks and ``NotYetVisible`` supplies: right after its create, a
VPC, subnet, security group, internet gateway, route table, role or instance profile is unknown
for a while to the calls naming it. One provision still converges."""

from __future__ import annotations

import dfbench
from dfbench import ClusterSpec
from dfbench_testing import NotYetVisible, hooked


def test_one_provision_converges_while_new_resources_are_not_visible_yet(aws, recorder):
    late = NotYetVisible(times=2)
    with hooked(late.hook):
        cluster = dfbench.provision(ClusterSpec(name="late", instance_count=1))

    # Every kind of resource was unknown twice to the first calls naming it, and waited for.
    assert set(late.hits) == {"InvalidVpcID.NotFound", "InvalidSubnetID.NotFound", "InvalidGroup.NotFound",
                              "InvalidInternetGatewayID.NotFound", "InvalidRouteTableID.NotFound", "NoSuchEntity",
                              "InvalidParameterValue"}
    assert late.hits["NoSuchEntity"] == 4  # the role twice, the instance profile twice
    assert [i.state for i in cluster.instances] == ["running"]
    assert len(recorder.named("CreateVpc")) == len(recorder.named("CreateRole")) == 1
    assert dfbench.plan(ClusterSpec(name="late", instance_count=1)).changes == []
