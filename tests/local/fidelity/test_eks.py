"""EKS fidelity: node group lifecycle, nodes, add-ons and the optimized-AMI parameters."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.conftest import running
from tests.local.fidelity.conftest import STILL


EKS = {"eks_clusters": [{"name": "prod", "version": "1.30", "addons": {"vpc-cni": "v1.18.3-eksbuild.1"},
                         "nodegroups": [{"name": "ng-al2", "size": 2}]}]}


def test_a_new_node_group_is_creating_then_active_and_deleting_then_gone():
    """AWS: CREATING while the instances launch, ACTIVE, then DELETING until gone
    (moto: ACTIVE at once, gone at once)."""
    with running([], **{**STILL, **EKS, "timings": {"nodegroup_create": 240, "nodegroup_delete": 180}}) as rt:
        eks = rt.client("eks")
        group = eks.describe_nodegroup(clusterName="prod", nodegroupName="ng-al2")["nodegroup"]
        eks.create_nodegroup(clusterName="prod", nodegroupName="ng-new", subnets=group["subnets"],
                             nodeRole=group["nodeRole"], amiType="AL2023_x86_64_STANDARD")

        def status():
            return eks.describe_nodegroup(clusterName="prod", nodegroupName="ng-new")["nodegroup"]["status"]

        assert status() == "CREATING"
        rt.clock.advance(241)
        assert status() == "ACTIVE"
        eks.delete_nodegroup(clusterName="prod", nodegroupName="ng-new")
        assert status() == "DELETING"
        rt.clock.advance(181)
        assert eks.list_nodegroups(clusterName="prod")["nodegroups"] == ["ng-al2"]


def test_add_ons_and_the_eks_optimized_ami_parameters_exist():
    with running([], **{**STILL, **EKS}) as rt:
        eks, ssm = rt.client("eks"), rt.client("ssm")
        assert eks.list_addons(clusterName="prod")["addons"] == ["vpc-cni"]
        assert eks.describe_addon(clusterName="prod", addonName="vpc-cni")["addon"]["addonVersion"] == "v1.18.3-eksbuild.1"
        with pytest.raises(ClientError) as missing:
            eks.describe_addon(clusterName="prod", addonName="coredns")
        assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
        value = ssm.get_parameter(
            Name="/aws/service/eks/optimized-ami/1.30/amazon-linux-2023/x86_64/standard/recommended/image_id")
        assert value["Parameter"]["Value"] == rt.fleet.al2023_image


def test_nodes_register_when_the_group_has_booted():
    with running([], **{**STILL, **EKS, "timings": {"nodegroup_create": 240, "instance_boot": 40}}) as rt:
        eks, cluster = rt.client("eks"), rt.kubernetes.clusters["prod"]
        group = eks.describe_nodegroup(clusterName="prod", nodegroupName="ng-al2")["nodegroup"]
        eks.create_nodegroup(clusterName="prod", nodegroupName="ng-new", subnets=group["subnets"],
                             nodeRole=group["nodeRole"], amiType="AL2023_x86_64_STANDARD",
                             scalingConfig={"minSize": 3, "maxSize": 3, "desiredSize": 3})
        rt.clock.advance(270)
        cluster.reconcile()
        assert sum(1 for n in cluster.nodes.values() if n.nodegroup == "ng-new") == 0  # ACTIVE, still booting
        rt.clock.advance(20)
        cluster.reconcile()
        new = [n for n in cluster.nodes.values() if n.nodegroup == "ng-new"]
        assert len(new) == 3 and all(n.os_image.startswith("Amazon Linux 2023") for n in new)


def test_pod_identity_associations_are_listed_by_namespace_and_service_account():
    """AWS: ListPodIdentityAssociations (GET /clusters/NAME/pod-identity-associations) filtered by namespace and
    serviceAccount; moto has no such API. A workload's `aws_identity: pod_identity` makes one."""
    workloads = [{"name": "queue", "service_account": "queue", "aws_identity": "pod_identity"},
                 {"name": "api", "service_account": "api"}]
    with running([], **{**STILL, "eks_clusters": [{**EKS["eks_clusters"][0], "workloads": workloads}]}) as rt:
        eks = rt.client("eks")
        [association] = eks.list_pod_identity_associations(clusterName="prod", namespace="default",
                                                           serviceAccount="queue")["associations"]
        assert (association["namespace"], association["serviceAccount"]) == ("default", "queue")
        assert eks.list_pod_identity_associations(clusterName="prod", namespace="default",
                                                  serviceAccount="api")["associations"] == []
