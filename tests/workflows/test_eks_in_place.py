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
    assert all(n.os_image == "Amazon Linux 2" and n.ready(rt.clock.now()) and not n.unschedulable for n in serving)
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


def test_new_nodes_that_never_turn_ready_fail_the_update_and_it_is_rolled_back():
    with eks(faults=[{"target": TARGET, "at": "update", "kind": "unhealthy"}]) as rt:
        run, result = execute(rt)
        assert result["status"] == "FAILED" and result["error"] == "UpdateFailed", result
        assert "NodeCreationFailure" in result["cause"]
        assert "Validate" not in entered(rt, run) and "Rollback" in entered(rt, run)
        updates = rt.fidelity.eks.updates.updates[("prod", "ng-custom")]
        assert [(u.version, u.status) for u in updates] == [("2", "Failed"), ("1", "Successful")]
        assert_restored(rt)
        assert trail(rt, run)[-1] == "rolled-back"


def test_a_budget_that_blocks_eks_drain_fails_after_15_minutes_and_is_rolled_back():
    with eks(faults=[{"target": TARGET, "at": "update", "kind": "pdb-blocked"}]) as rt:
        run, result = execute(rt)
        assert result["status"] == "FAILED" and result["error"] == "UpdateFailed", result
        assert "PodEvictionFailure" in result["cause"] and "default/api-" in result["cause"]
        failed = rt.fidelity.eks.updates.updates[("prod", "ng-custom")][0]
        started = min(failed.drain_started.values())
        assert failed.status == "Failed" and rt.clock.now() >= started + 900
        assert_restored(rt)  # nothing left cordoned: the nodes EKS cordoned serve again


def test_force_deletes_what_a_budget_blocks_after_15_minutes():
    with eks(faults=[{"target": TARGET, "at": "update", "kind": "pdb-blocked"}]) as rt:
        run, result = execute(rt, force=True)
        assert result["status"] == "SUCCEEDED", result
        assert all(n.os_image.startswith("Amazon Linux 2023") for n in nodes(rt))


def test_a_rejected_gate_changes_no_node_and_keeps_the_version():
    with eks(approvals={"default": "reject"}) as rt:
        run, result = execute(rt)
        assert result["status"] == "FAILED" and result["error"] == "Rejected", result
        assert "StartUpdate" not in entered(rt, run)
        assert ("prod", "ng-custom") not in rt.fidelity.eks.updates.updates  # EKS never asked
        assert_restored(rt)
        versions = rt.client("ec2").describe_launch_template_versions(
            LaunchTemplateId=group(rt)["launchTemplate"]["id"])["LaunchTemplateVersions"]
        assert len(versions) == 2  # the new version is kept, unused


def test_a_failed_validation_after_a_successful_update_updates_back(monkeypatch):
    """The update succeeded but the AL2023 nodes do not hold (a budget never met): back to version 1."""
    from migrator.eks import in_place

    def never_healthy(c, request, started):
        from migrator.errors import DeadlineExceeded
        raise DeadlineExceeded("api 2/3 healthy (simulated)")

    monkeypatch.setattr(in_place, "validate", never_healthy)
    with eks() as rt:
        run, result = execute(rt)
        assert result["status"] == "FAILED" and result["error"] == "DeadlineExceeded", result
        updates = rt.fidelity.eks.updates.updates[("prod", "ng-custom")]
        assert [(u.version, u.status) for u in updates] == [("2", "Successful"), ("1", "Successful")]
        assert_restored(rt)
        assert sim(rt).min_available["api"] >= 3  # both updates kept the budget


def test_bad_input_fails_in_the_first_state_naming_the_field():
    with eks() as rt:
        run, result = execute(rt, {"cluster_name": "prod", "nodegroup_name": "ng-custom", "imds_hop_limit": 3})
        assert result["status"] == "FAILED" and result["error"] == "InvalidInput"
        assert "imds_hop_limit" in result["cause"]
        assert entered(rt, run) == ["ValidateInput"]
        run, result = execute(rt, {"cluster_name": "prod", "nodegroup_name": "ng-custom", "force": "yes"})
        assert result["error"] == "InvalidInput" and "force" in result["cause"]


def test_a_group_without_a_custom_ami_is_refused_naming_the_blue_green_path():
    with running([], eks_clusters=[{"name": "prod", "nodegroups": [{"name": "ng-custom", "size": 2,
                                                                    "launch_template": "custom"}],
                                    "workloads": WORKLOADS}]) as rt:
        run, result = execute(rt, {"cluster_name": "prod", "nodegroup_name": "ng-custom"})
        assert result["status"] == "FAILED" and result["error"] == "PreflightFailed"
        assert "blue/green" in result["cause"] and "names no AMI" in result["cause"]
        assert ("prod", "ng-custom") not in rt.fidelity.eks.updates.updates


def test_the_scenarios_end_as_they_expect_with_every_invariant():
    """The rehearsal's own audit: no pod below its budget, nothing cordoned after a rollback, versions as the
    outcome says (summary._check_in_place)."""
    from migrator.config import SCENARIOS_DIR
    from migrator.workstation.local.demo import run_scenario
    from migrator.workstation.local.scenario import load_scenario

    for name in ("eks-in-place-pdb-blocked", "eks-in-place-rejected"):
        summary = run_scenario(load_scenario(SCENARIOS_DIR / f"{name}.yaml"))
        assert summary["invariants"] == {"ok": True, "violations": []}, name
        assert summary["expectations"]["ok"], summary["expectations"]
        assert {t["kind"] for t in summary["targets"]} == {"eks-in-place"}


def test_plan_routes_custom_ami_groups_in_place_and_a_wave_starts_them_as_children():
    from migrator.workstation.local.demo import run_scenario
    from migrator.workstation.local.scenario import parse_scenario

    plans = []
    scenario = parse_scenario({
        "version": 1, "name": "in-place-waves", "waves": {"max_instances": 50},
        "eks_clusters": [{"name": "prod", "workloads": WORKLOADS, "nodegroups": [
            {"name": "ng-custom", "size": 2, "ami": "custom"}, {"name": "ng-general", "size": 2}]}]})
    summary = run_scenario(scenario, on_plan=plans.append)
    targets = {t["target"]: t for w in plans[0]["waves"] for t in w["targets"]}
    assert targets[TARGET]["kind"] == "eks-in-place" and targets[TARGET]["state_machine"] == EKS_IN_PLACE.name
    assert "custom AMI" in targets[TARGET]["path_reason"]
    assert targets["eks/prod/ng-general"]["kind"] == "eks" and "blue/green" in targets["eks/prod/ng-general"][
        "path_reason"]
    assert {t["target"]: (t["kind"], t["outcome"]) for t in summary["targets"]} == {
        TARGET: ("eks-in-place", "migrated"), "eks/prod/ng-general": ("eks", "migrated")}
    assert summary["invariants"]["ok"], summary["invariants"]
