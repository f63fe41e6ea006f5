"""EKS fidelity: UpdateNodegroupVersion, DescribeUpdate and ListUpdates with the update EKS runs behind them
(local/fidelity/eks_update.py states the real behaviour each test checks)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.conftest import running
from tests.local.fidelity.conftest import STILL

WORKLOADS = [{"name": "api", "replicas": 4, "pdb_min_available": 3}, {"name": "log-agent", "daemonset": True}]


def custom(faults=()):
    return running([], **{**STILL, "faults": list(faults), "eks_clusters": [{
        "name": "prod", "nodegroups": [{"name": "ng", "size": 3, "ami": "custom"}], "workloads": WORKLOADS}]})


def al2023_version(rt) -> tuple[str, str]:
    eks, ec2 = rt.client("eks"), rt.client("ec2")
    template = eks.describe_nodegroup(clusterName="prod", nodegroupName="ng")["nodegroup"]["launchTemplate"]
    created = ec2.create_launch_template_version(LaunchTemplateId=template["id"], SourceVersion="1",
                                                 LaunchTemplateData={"ImageId": rt.fleet.al2023_image})
    return template["id"], str(created["LaunchTemplateVersion"]["VersionNumber"])


def start(rt, **extra) -> dict:
    """UpdateNodegroupVersion to a new version naming the AL2023 AMI."""
    template_id, version = al2023_version(rt)
    return rt.client("eks").update_nodegroup_version(clusterName="prod", nodegroupName="ng", **extra,
                                                     launchTemplate={"id": template_id, "version": version})["update"]


def update(rt, update_id):
    return rt.client("eks").describe_update(name="prod", updateId=update_id, nodegroupName="ng")["update"]


def nodes(rt):
    sim = rt.kubernetes.clusters["prod"]
    sim.reconcile()
    return sorted((n for n in sim.nodes.values() if n.nodegroup == "ng"), key=lambda n: n.name)


def test_the_update_surges_cordons_drains_within_budgets_and_scales_back():
    """EKS: the group moves to the version and is UPDATING; twice the AZs (2) new nodes first; once they are
    Ready every outdated node is cordoned; drains respect budgets; the group ends at its size, all new."""
    with custom() as rt:
        eks, started = rt.client("eks"), start(rt)
        assert started["status"] == "InProgress" and started["type"] == "VersionUpdate"
        assert {"type": "LaunchTemplateVersion", "value": "2"} in started["params"]
        version = "2"
        group = eks.describe_nodegroup(clusterName="prod", nodegroupName="ng")["nodegroup"]
        assert group["status"] == "UPDATING" and group["launchTemplate"]["version"] == version
        rt.clock.advance(41)
        update(rt, started["id"])
        current = nodes(rt)
        assert len(current) == 5  # three old, two surged
        assert {n.os_image.startswith("Amazon Linux 2023") for n in current if not n.unschedulable} == {True}
        assert sum(n.unschedulable for n in current) == 3  # every outdated node cordoned
        for _ in range(200):
            if update(rt, started["id"])["status"] != "InProgress":
                break
            rt.clock.advance(20)
        assert update(rt, started["id"])["status"] == "Successful"
        assert eks.describe_nodegroup(clusterName="prod", nodegroupName="ng")["nodegroup"]["status"] == "ACTIVE"
        final = nodes(rt)
        assert len(final) == 3 and all(n.os_image.startswith("Amazon Linux 2023") and not n.unschedulable
                                       for n in final)
        assert rt.kubernetes.clusters["prod"].min_available["api"] >= 3
        assert eks.list_updates(name="prod", nodegroupName="ng")["updateIds"] == [started["id"]]


def test_one_update_at_a_time_and_the_same_token_is_the_same_update():
    with custom() as rt:
        eks = rt.client("eks")
        template_id, version = al2023_version(rt)
        first = eks.update_nodegroup_version(clusterName="prod", nodegroupName="ng", clientRequestToken="t1",
                                             launchTemplate={"id": template_id, "version": version})["update"]
        again = eks.update_nodegroup_version(clusterName="prod", nodegroupName="ng", clientRequestToken="t1",
                                             launchTemplate={"id": template_id, "version": version})["update"]
        assert again["id"] == first["id"]
        with pytest.raises(ClientError) as busy:
            eks.update_nodegroup_version(clusterName="prod", nodegroupName="ng",
                                         launchTemplate={"id": template_id, "version": "1"})
        assert busy.value.response["Error"]["Code"] == "ResourceInUseException"


def test_a_budget_that_blocks_fails_the_update_after_15_minutes_with_pod_eviction_failure():
    """EKS: pods that do not leave within 15 minutes fail the update (PodEvictionFailure), not before; the
    cordoned nodes stay cordoned (only another update moves the group)."""
    with custom(faults=[{"target": "eks/prod/ng", "at": "update", "kind": "pdb-blocked"}]) as rt:
        started = start(rt)
        rt.clock.advance(41)
        update(rt, started["id"])  # surged nodes Ready: the drain starts
        rt.clock.advance(880)
        assert update(rt, started["id"])["status"] == "InProgress"
        rt.clock.advance(30)
        failed = update(rt, started["id"])
        assert failed["status"] == "Failed" and failed["errors"][0]["errorCode"] == "PodEvictionFailure"
        assert sum(n.unschedulable for n in nodes(rt)) == 3


def test_new_nodes_that_never_turn_ready_fail_the_update_with_node_creation_failure():
    with custom(faults=[{"target": "eks/prod/ng", "at": "update", "kind": "unhealthy"}]) as rt:
        started = start(rt)
        rt.clock.advance(300)
        assert update(rt, started["id"])["status"] == "InProgress"
        assert not any(n.unschedulable for n in nodes(rt))  # nothing cordoned before new nodes are Ready
        rt.clock.advance(700)
        failed = update(rt, started["id"])
        assert failed["status"] == "Failed" and failed["errors"][0]["errorCode"] == "NodeCreationFailure"
