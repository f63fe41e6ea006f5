"""eks_nodegroup.asl.json executed in the local runtime: success and every failure
path, then the simulated account and cluster are checked."""

from __future__ import annotations

import base64
import json

import pytest

from migrator.audit import read_trail
from migrator.eks.userdata import parse_node_config
from migrator.workstation.local.demo import nodegroup_input
from migrator.workstation.local.runtime import AUDIT_TABLE, LocalRuntime
from migrator.workstation.local.summary import _check_workloads
from migrator.workflows import EKS_NODEGROUP
from tests.conftest import running

WORKLOADS = [{"name": "api", "replicas": 4, "pdb_min_available": 3}, {"name": "log-agent", "daemonset": True}]


def cluster(*groups, workloads=WORKLOADS, **extra):
    spec = {"name": "prod", "nodegroups": list(groups), "workloads": workloads, **extra}
    return {"eks_clusters": [spec]}


def eks(*groups, workloads=WORKLOADS, cluster_extra=None, **extra):
    return running([], **cluster(*groups, workloads=workloads, **(cluster_extra or {})), **extra)


def execute(rt: LocalRuntime, target: str, payload: dict | None = None, **overrides):
    built = rt.fleet.nodegroups[target]
    body = payload if payload is not None else {**nodegroup_input(built, rt.scenario), **overrides}
    run = rt.start_execution(EKS_NODEGROUP, target, body)
    return run, rt.wait([run], timeout=300)[run.execution_arn]


def groups(rt) -> set[str]:
    return set(rt.client("eks").list_nodegroups(clusterName="prod")["nodegroups"])


def sim(rt):
    cluster_sim = rt.kubernetes.clusters["prod"]
    cluster_sim.reconcile()
    return cluster_sim


def entered(rt, run) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in rt.history(run) if "stateEnteredEventDetails" in e]


def assert_restored(rt, name: str, size: int):
    """The AL2 group serves: present, every node untainted and schedulable, the new
    group gone, no pod lost, no budget breached."""
    assert groups(rt) >= {name} and f"{name}-al2023" not in groups(rt)
    nodes = [n for n in sim(rt).nodes.values() if n.nodegroup == name]
    assert len(nodes) == size
    assert all(not n.unschedulable and not n.taints for n in nodes)
    assert _check_workloads(sim(rt)) == []


def test_success_moves_every_workload_to_al2023_within_its_budget():
    with eks({"name": "ng-general", "size": 3, "launch_template": "custom"}) as rt:
        run, result = execute(rt, "eks/prod/ng-general", imds_hop_limit=2, drain_batch_size=2)
        assert result["status"] == "SUCCEEDED"
        assert groups(rt) == {"ng-general-al2023"}
        new = rt.client("eks").describe_nodegroup(clusterName="prod", nodegroupName="ng-general-al2023")["nodegroup"]
        assert new["amiType"] == "AL2023_x86_64_STANDARD"
        assert new["labels"] == {"workload": "general"}
        assert new["scalingConfig"]["desiredSize"] == 3

        template = rt.client("ec2").describe_launch_template_versions(
            LaunchTemplateId=new["launchTemplate"]["id"])["LaunchTemplateVersions"][0]["LaunchTemplateData"]
        assert template["MetadataOptions"]["HttpTokens"] == "required"
        assert template["MetadataOptions"]["HttpPutResponseHopLimit"] == 2
        config = parse_node_config(base64.b64decode(template["UserData"]).decode())
        assert config["kind"] == "NodeConfig"
        described = rt.client("eks").describe_cluster(name="prod")["cluster"]
        assert config["spec"]["cluster"]["apiServerEndpoint"] == described["endpoint"]
        assert config["spec"]["cluster"]["cidr"] == "172.20.0.0/16"
        # the kubelet settings the AL2 template passed to bootstrap.sh
        assert config["spec"]["kubelet"] == {"config": {"maxPods": 58}, "flags": ["--node-labels=workload=general"]}

        cluster_sim = sim(rt)
        assert {n.nodegroup for n in cluster_sim.nodes.values()} == {"ng-general-al2023"}
        assert cluster_sim.min_available["api"] >= 3  # never below the budget during the drain
        assert _check_workloads(cluster_sim) == []
        assert "EvictionBlocked" in {e.get("lambdaFunctionFailedEventDetails", {}).get("error")
                                     for e in rt.history(run)}  # the budget pushed back and Retry waited
        actions = [r["action"] for r in read_trail(rt.client("dynamodb"), AUDIT_TABLE, run.execution_arn)]
        assert actions == ["preflight-passed", "nodegroup-created", "nodegroup-ready", "old-nodes-tainted",
                           "new-nodes-validated", "approval-requested", "approval-approved", "old-nodes-drained",
                           "approval-requested", "approval-approved", "old-nodegroup-deleting", "migrated"]


def test_without_a_custom_template_eks_defaults_are_used():
    with eks({"name": "ng-batch", "size": 2}) as rt:
        _, result = execute(rt, "eks/prod/ng-batch", launch_template="none")
        assert result["status"] == "SUCCEEDED"
        new = rt.client("eks").describe_nodegroup(clusterName="prod", nodegroupName="ng-batch-al2023")["nodegroup"]
        assert not new.get("launchTemplate") and new["instanceTypes"] == ["m5.large"]


def test_a_failed_new_group_rolls_back_before_any_taint():
    with eks({"name": "ng-general", "size": 2}, faults=[
            {"target": "eks/prod/ng-general", "at": "create", "kind": "error"}]) as rt:
        run, result = execute(rt, "eks/prod/ng-general")
        assert result["status"] == "FAILED" and result["error"] == "NodegroupFailed"
        assert "CREATE_FAILED" in result["cause"]
        assert "TaintOldNodes" not in entered(rt, run)
        assert_restored(rt, "ng-general", 2)


def test_a_budget_that_blocks_the_drain_rolls_back_naming_pods_and_budgets():
    with eks({"name": "ng-general", "size": 2}, faults=[
            {"target": "eks/prod/ng-general", "at": "drain", "kind": "pdb-blocked"}]) as rt:
        run, result = execute(rt, "eks/prod/ng-general", drain_deadline_seconds=300)
        assert result["status"] == "FAILED" and result["error"] == "DeadlineExceeded"
        assert "did not drain within 300s" in result["cause"]
        assert "default/api" in result["cause"] and "allows 0" in result["cause"]
        assert_restored(rt, "ng-general", 2)


@pytest.mark.parametrize("gate", ["before-drain", "before-delete"])
def test_a_rejected_gate_rolls_back(gate):
    with eks({"name": "ng-a", "size": 2}, approvals={"gates": {f"eks/prod/ng-a/{gate}": "reject"}}) as rt:
        run, result = execute(rt, "eks/prod/ng-a")
        assert result["status"] == "FAILED" and result["error"] == "Rejected"
        assert ("DrainOldNodes" in entered(rt, run)) == (gate == "before-delete")
        assert_restored(rt, "ng-a", 2)


def test_every_failed_preflight_check_is_reported_before_any_change():
    with eks({"name": "ng-old", "size": 2, "container_runtime": "docker"},
             workloads=[{"name": "db", "replicas": 2, "pdb_min_available": 2}],
             cluster_extra={"addons": {"vpc-cni": "v1.15.1-eksbuild.1"}}) as rt:
        run, result = execute(rt, "eks/prod/ng-old")
        assert result["status"] == "FAILED" and result["error"] == "PreflightFailed"
        for words in ("vpc_cni: VPC CNI v1.15.1", "container_runtime: Docker", "disruption_budgets: allow no disruption",
                      "default/db"):
            assert words in result["cause"]
        assert groups(rt) == {"ng-old"} and "Rollback" not in entered(rt, run)


def test_a_group_already_on_al2023_is_left_alone():
    with eks({"name": "ng-new", "size": 2, "os": "al2023"}) as rt:
        run, result = execute(rt, "eks/prod/ng-new")
        assert result["status"] == "SUCCEEDED" and entered(rt, run)[-1] == "AlreadyMigrated"
        assert groups(rt) == {"ng-new"}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"nodegroup_name": "ng"}, "cluster_name"),
        ({"cluster_name": "prod", "nodegroup_name": "ng", "ami_type": "AL2_x86_64"}, "ami_type"),
        ({"cluster_name": "prod", "nodegroup_name": "ng", "imds_hop_limit": 3}, "imds_hop_limit"),
        ({"cluster_name": "prod", "nodegroup_name": "ng", "drain_batch_size": 0}, "drain_batch_size"),
    ],
)
def test_invalid_input_fails_in_the_first_state_naming_the_field(payload, field):
    with eks({"name": "ng-a", "size": 1}) as rt:
        run, result = execute(rt, "eks/prod/ng-a", payload=payload)
        assert result["error"] == "InvalidInput"
        assert field in json.loads(result["cause"])["errorMessage"]
        assert entered(rt, run) == ["ValidateInput"]
