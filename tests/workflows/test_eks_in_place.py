"""eks_in_place.asl.json executed in the local runtime: a managed node group whose launch template names a
custom AMI, updated in place by EKS's own update; success and every failure path, then the simulated account
and cluster are checked."""

from __future__ import annotations

import base64

from migrator.audit import read_trail
from migrator.eks.userdata import parse_node_config
from migrator.workstation.local.demo import in_place_input
from migrator.workstation.local.runtime import AUDIT_TABLE, LocalRuntime
from migrator.workstation.local.summary import _check_workloads
from migrator.workflows import EKS_IN_PLACE
from tests.conftest import running

WORKLOADS = [{"name": "api", "replicas": 4, "pdb_min_available": 3}, {"name": "log-agent", "daemonset": True}]
TARGET = "eks/prod/ng-custom"


def eks(size=3, workloads=WORKLOADS, **extra):
    group = {"name": "ng-custom", "size": size, "ami": "custom", **extra.pop("group", {})}
    return running([], eks_clusters=[{"name": "prod", "nodegroups": [group], "workloads": workloads}], **extra)


def execute(rt: LocalRuntime, payload: dict | None = None, **overrides):
    built = rt.fleet.nodegroups[TARGET]
    body = payload if payload is not None else {**in_place_input(built, rt.scenario), **overrides}
    run = rt.start_execution(EKS_IN_PLACE, TARGET, body)
    return run, rt.wait([run], timeout=300)[run.execution_arn]


def sim(rt):
    cluster = rt.kubernetes.clusters["prod"]
    cluster.reconcile()
    return cluster


def nodes(rt):
    return [n for n in sim(rt).nodes.values() if n.nodegroup == "ng-custom"]


def group(rt) -> dict:
    return rt.client("eks").describe_nodegroup(clusterName="prod", nodegroupName="ng-custom")["nodegroup"]


def entered(rt, run) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in rt.history(run) if "stateEnteredEventDetails" in e]


def trail(rt, run) -> list[str]:
    return [r["action"] for r in read_trail(rt.client("dynamodb"), AUDIT_TABLE, run.execution_arn)]


def assert_restored(rt, size: int = 3):
    """The group serves on its previous version: every node AL2, Ready, schedulable; no pod lost, no budget
    breached."""
    assert group(rt)["launchTemplate"]["version"] == "1" and group(rt)["status"] == "ACTIVE"
    serving = nodes(rt)
    assert len(serving) == size
    assert all(n.os_image == "Amazon Linux 2" and n.ready and not n.unschedulable for n in serving)
    assert _check_workloads(sim(rt)) == []


def test_success_updates_every_node_to_al2023_in_place_within_the_budget():
    with eks() as rt:
        run, result = execute(rt, imds_hop_limit=2)
        assert result["status"] == "SUCCEEDED", result
        described = group(rt)
        assert described["launchTemplate"]["version"] == "2" and described["status"] == "ACTIVE"
        ec2 = rt.client("ec2")
        data = ec2.describe_launch_template_versions(LaunchTemplateId=described["launchTemplate"]["id"],
                                                     Versions=["2"])["LaunchTemplateVersions"][0]["LaunchTemplateData"]
        image = ec2.describe_images(ImageIds=[data["ImageId"]])["Images"][0]
        assert "al2023" in image["Name"]
        assert data["MetadataOptions"]["HttpTokens"] == "required"
        assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 2
        assert data["InstanceType"] == "m5.large"  # the rest of the template carried over
        config = parse_node_config(base64.b64decode(data["UserData"]).decode())
        assert config["spec"]["cluster"]["cidr"] == "172.20.0.0/16"
        assert config["spec"]["kubelet"] == {"config": {"maxPods": 58}, "flags": ["--node-labels=workload=general"]}

        serving = nodes(rt)
        assert len(serving) == 3
        assert all(n.os_image.startswith("Amazon Linux 2023") and not n.unschedulable for n in serving)
        cluster = sim(rt)
        assert cluster.min_available["api"] >= 3
        assert _check_workloads(cluster) == []
        assert trail(rt, run) == ["preflight-passed", "launch-template-version-created", "approval-requested",
                                  "approval-approved", "update-started", "update-ended", "migrated"]
