"""Self-managed nodes join from their user data (local/fidelity/node_join.py): bootstrap.sh on AL2, a complete
nodeadm NodeConfig on AL2023, nothing else; registered after the boot, Ready after node_ready."""

from __future__ import annotations

import base64

from migrator.eks.userdata import nodeadm_user_data
from tests.conftest import running
from tests.local.fidelity.conftest import STILL

CLUSTER = {"eks_clusters": [{"name": "prod", "self_managed": [{"name": "sm", "size": 1}],
                             "workloads": [{"name": "agent", "daemonset": True}]}],
           **STILL, "timings": {"instance_boot": 40, "node_ready": 20}}


def launch(rt, image: str, user_data: str) -> str:
    return rt.client("ec2").run_instances(ImageId=image, MinCount=1, MaxCount=1, UserData=user_data,
                                          SubnetId=rt.fleet.subnet_id)["Instances"][0]["InstanceId"]


def node_of(rt, instance_id: str):
    sim = rt.kubernetes.clusters["prod"]
    with sim.lock:
        sim.reconcile()
        return next((n for n in sim.nodes.values() if n.instance_id == instance_id), None)


def cluster(rt) -> dict:
    return rt.client("eks").describe_cluster(name="prod")["cluster"]


def test_an_al2_instance_joins_through_bootstrap_sh_and_turns_ready_after_node_ready():
    with running([], **CLUSTER) as rt:
        instance = launch(rt, rt.fleet.al2_image, "#!/bin/bash\n/etc/eks/bootstrap.sh prod "
                                                  "--kubelet-extra-args '--node-labels=role=edge'\n")
        assert node_of(rt, instance) is None  # still booting
        rt.clock.advance(41)
        node = node_of(rt, instance)
        assert node is not None and node.labels["role"] == "edge" and not node.ready(rt.clock.now())
        rt.clock.advance(20)
        assert node_of(rt, instance).ready(rt.clock.now())
        rt.client("ec2").terminate_instances(InstanceIds=[instance])
        assert node_of(rt, instance) is None  # the cloud controller deletes the Node of a gone instance


def test_no_bootstrap_sh_on_al2023_and_no_nodeadm_on_al2():
    with running([], **CLUSTER) as rt:
        config = nodeadm_user_data(cluster(rt), {})
        ignored = [launch(rt, rt.fleet.al2023_image, "#!/bin/bash\n/etc/eks/bootstrap.sh prod\n"),
                   launch(rt, rt.fleet.al2_image, config),
                   launch(rt, rt.fleet.al2_image, "#!/bin/bash\n/etc/eks/bootstrap.sh staging\n")]
        rt.clock.advance(61)
        assert [node_of(rt, i) for i in ignored] == [None, None, None]


def test_an_al2023_instance_joins_only_with_the_clusters_endpoint_ca_and_service_cidr():
    with running([], **CLUSTER) as rt:
        described = cluster(rt)
        good = launch(rt, rt.fleet.al2023_image, nodeadm_user_data(described, {}))
        wrong = {
            "endpoint": {**described, "endpoint": "https://elsewhere.example.com"},
            "ca": {**described, "certificateAuthority": {"data": base64.b64encode(b"other").decode()}},
            "cidr": {**described, "kubernetesNetworkConfig": {"serviceIpv4Cidr": "10.100.0.0/16"}},
        }
        bad = {what: launch(rt, rt.fleet.al2023_image, nodeadm_user_data(c, {})) for what, c in wrong.items()}
        rt.clock.advance(61)
        assert node_of(rt, good).ready(rt.clock.now())
        assert {what: node_of(rt, i) for what, i in bad.items()} == {"endpoint": None, "ca": None, "cidr": None}


def test_under_a_canary_fault_the_groups_al2023_nodes_never_turn_ready_and_run_no_daemonset():
    faults = [{"target": "eks/prod/sm", "at": "canary", "kind": "unhealthy"}]
    with running([], **CLUSTER, faults=faults) as rt:
        instance = launch(rt, rt.fleet.al2023_image, nodeadm_user_data(cluster(rt), {}))
        rt.client("ec2").create_tags(Resources=[instance], Tags=[{"Key": "aws:autoscaling:groupName", "Value": "sm"}])
        rt.clock.advance(600)
        node = node_of(rt, instance)
        assert node is not None and not node.ready(rt.clock.now())
        sim = rt.kubernetes.clusters["prod"]
        assert not any(p.node == node.name for p in sim.pods.values())
