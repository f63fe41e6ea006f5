"""eks_self_managed.asl.json executed in the local runtime: success and every failure path, then the simulated
account and cluster are checked."""

from __future__ import annotations

import base64

from migrator.audit import read_trail
from migrator.eks.userdata import parse_node_config, shell_scripts
from migrator.workstation.local.demo import plan_fleet, run_waves, self_managed_input
from migrator.workstation.local.runtime import AUDIT_TABLE, LocalRuntime
from migrator.workstation.local.summary import _check_self_managed, _check_workloads
from migrator.workflows import EKS_SELF_MANAGED
from tests.conftest import running

TARGET = "eks/prod/sm-ingress"
WORKLOADS = [{"name": "api", "replicas": 4, "pdb_min_available": 3}, {"name": "log-agent", "daemonset": True}]


def self_managed(size: int = 3, workloads=WORKLOADS, group_extra=None, **extra):
    group = {"name": "sm-ingress", "size": size, **(group_extra or {})}
    return running([], eks_clusters=[{"name": "prod", "self_managed": [group], "workloads": workloads}], **extra)


def execute(rt: LocalRuntime, payload: dict | None = None, **overrides):
    built = rt.fleet.self_managed[TARGET]
    body = payload if payload is not None else {**self_managed_input(built, rt.scenario), **overrides}
    run = rt.start_execution(EKS_SELF_MANAGED, TARGET, body)
    return run, rt.wait([run], timeout=300)[run.execution_arn]


def group(rt) -> dict:
    return rt.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=["sm-ingress"])["AutoScalingGroups"][0]


def images(rt) -> set[str]:
    ids = [i["InstanceId"] for i in group(rt)["Instances"]]
    reservations = rt.client("ec2").describe_instances(InstanceIds=ids)["Reservations"]
    return {i["ImageId"] for r in reservations for i in r["Instances"]}


def nodes(rt) -> list:
    sim = rt.kubernetes.clusters["prod"]
    with sim.lock:
        sim.reconcile()
        return [n for n in sim.nodes.values() if n.nodegroup == "sm-ingress"]


def entered(rt, run) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in rt.history(run) if "stateEnteredEventDetails" in e]


def assert_serving_on(rt, image: str, size: int):
    """The group at its capacity, every instance on `image`, each joined, Ready, schedulable; no pod lost."""
    current = group(rt)
    assert current["DesiredCapacity"] == size and current["MaxSize"] == size
    assert images(rt) == {image}
    joined = nodes(rt)
    now = rt.clock.now()
    assert len(joined) == size and all(n.ready(now) and not n.unschedulable for n in joined)
    assert not any(t["Key"] == "al2023-migration:canary" for t in current.get("Tags", []))
    assert _check_workloads(rt.kubernetes.clusters["prod"]) == []


def test_success_replaces_every_node_after_draining_it():
    with self_managed() as rt:
        run, result = execute(rt)
        assert result["status"] == "SUCCEEDED", result
        assert_serving_on(rt, rt.fleet.al2023_image, 3)
        template = rt.client("ec2").describe_launch_template_versions(
            LaunchTemplateId=rt.fleet.self_managed[TARGET].template_id, Versions=["$Default"])["LaunchTemplateVersions"][0]
        data = template["LaunchTemplateData"]
        assert data["MetadataOptions"]["HttpTokens"] == "required"
        assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
        user_data = base64.b64decode(data["UserData"]).decode()
        config = parse_node_config(user_data)
        described = rt.client("eks").describe_cluster(name="prod")["cluster"]
        assert config["spec"]["cluster"]["apiServerEndpoint"] == described["endpoint"]
        assert config["spec"]["cluster"]["cidr"] == "172.20.0.0/16"
        assert config["spec"]["kubelet"] == {"config": {"maxPods": 29},
                                             "flags": ["--node-labels=workload=sm-ingress,team=edge"]}
        assert "sysctl --system" in shell_scripts(user_data)[0] and "bootstrap.sh" not in shell_scripts(user_data)[0]
        assert {n.labels["team"] for n in nodes(rt)} == {"edge"}  # the kubelet settings carried over
        sim = rt.kubernetes.clusters["prod"]
        assert sim.min_available["api"] >= 3 and not sim.lost_pods
        actions = [r["action"] for r in read_trail(rt.client("dynamodb"), AUDIT_TABLE, run.execution_arn)]
        assert actions[:5] == ["preflight-passed", "launch-template-version-created", "canary-started",
                               "canary-ready", "approval-requested"]
        assert actions.count("old-node-replaced") == 3 and actions[-1] == "migrated"


def test_a_canary_that_never_turns_ready_rolls_back_before_any_drain():
    with self_managed(faults=[{"target": TARGET, "at": "canary", "kind": "unhealthy"}]) as rt:
        run, result = execute(rt, canary_deadline_seconds=300)
        assert result["status"] == "FAILED" and result["error"] == "CanaryUnhealthy"
        assert "joined but is not Ready" in result["cause"]
        assert "ApproveDrain" not in entered(rt, run) and "ReplaceNextNode" not in entered(rt, run)
        assert_serving_on(rt, rt.fleet.al2_image, 3)


def test_a_budget_that_blocks_the_drain_rolls_back_naming_pods_and_budgets():
    with self_managed(faults=[{"target": TARGET, "at": "drain", "kind": "pdb-blocked"}]) as rt:
        run, result = execute(rt, drain_deadline_seconds=300)
        assert result["status"] == "FAILED" and result["error"] == "DeadlineExceeded"
        assert "did not drain within 300s" in result["cause"]
        assert "default/api" in result["cause"] and "allows 0" in result["cause"]
        assert_serving_on(rt, rt.fleet.al2_image, 3)  # the canary drained away, nothing left cordoned


def test_a_rejected_gate_rolls_back_and_the_canary_is_drained_first():
    with self_managed(approvals={"gates": {f"{TARGET}/before-drain": "reject"}}) as rt:
        run, result = execute(rt)
        assert result["status"] == "FAILED" and result["error"] == "Rejected"
        assert "ReplaceNextNode" not in entered(rt, run)
        assert_serving_on(rt, rt.fleet.al2_image, 3)
        actions = [r["action"] for r in read_trail(rt.client("dynamodb"), AUDIT_TABLE, run.execution_arn)]
        assert actions[-2:] == ["approval-rejected", "rolled-back"]


def test_bad_input_fails_in_the_first_state_naming_the_field():
    with self_managed(size=1) as rt:
        run, result = execute(rt, {"cluster_name": "prod", "group_name": "sm-ingress", "imds_hop_limit": 3})
        assert result["status"] == "FAILED" and result["error"] == "InvalidInput"
        assert "imds_hop_limit" in result["cause"]
        assert entered(rt, run) == ["ValidateInput"]
        run, result = execute(rt, {"cluster_name": "prod", "group": "sm-ingress"})
        assert result["status"] == "FAILED" and "group" in result["cause"]
        assert images(rt) == {rt.fleet.al2_image}


def test_the_invariants_name_a_node_left_cordoned_and_a_group_off_its_image():
    with self_managed(size=2) as rt:
        built = rt.fleet.self_managed[TARGET]
        assert _check_self_managed(rt, built, {"outcome": "rolled_back"}) == []
        node = nodes(rt)[0]
        node.unschedulable = True
        problems = _check_self_managed(rt, built, {"outcome": "migrated"})
        assert any("cordoned" in p and node.name in p for p in problems)
        assert any("not on" in p for p in problems)  # migrated, yet still on AL2


def test_a_fleet_wave_starts_it_as_a_child_execution():
    with self_managed(size=2, waves={"max_instances": 10}) as rt:
        plan = plan_fleet(rt)
        [target] = [t for wave in plan["waves"] for t in wave["targets"]]
        assert (target["target"], target["kind"], target["state_machine"]) == (
            TARGET, "eks-self-managed", EKS_SELF_MANAGED.name)
        run_waves(rt, plan)
        [child] = [r for r in rt.runs if r.workflow is EKS_SELF_MANAGED]
        assert rt.status(child)["status"] == "SUCCEEDED"
        assert_serving_on(rt, rt.fleet.al2023_image, 2)


def test_a_group_without_the_opt_in_tag_is_refused_before_any_change():
    with self_managed(size=1, group_extra={"opt_in": False}) as rt:
        assert rt.scenario.expected_outcome(TARGET, EKS_SELF_MANAGED.gates) == "failed"
        run, result = execute(rt)
        assert result["status"] == "FAILED" and result["error"] == "PreflightFailed"
        assert "is not tagged al2023-migration=enabled" in result["cause"]
        assert "CreateVersion" not in entered(rt, run)
        assert len(rt.client("ec2").describe_launch_template_versions(
            LaunchTemplateId=rt.fleet.self_managed[TARGET].template_id)["LaunchTemplateVersions"]) == 1


def test_the_mutating_steps_twice_change_nothing_twice():
    from migrator.eks import self_managed as domain
    from migrator.eks.self_managed_events import clients
    from migrator.eks.self_managed_models import SelfManagedInput

    execution = "arn:aws:states:us-east-1:123456789012:execution:eks-self-managed:idempotency-1"
    with self_managed(size=1) as rt:
        c = clients("prod")
        request = SelfManagedInput(cluster_name="prod", group_name="sm-ingress")
        pre = domain.preflight(c, request, execution, "al2023-migration", "enabled")
        first = domain.create_version(c, request, pre, execution)
        again = domain.create_version(c, request, pre, execution)
        assert (first.created, again.created, first.version) == (True, False, again.version)
        canary = domain.start_canary(c, request, pre, first, execution)
        assert not domain.start_canary(c, request, pre, first, execution).changed and canary.changed
        current = group(rt)
        assert (current["DesiredCapacity"], current["MaxSize"]) == (2, 2)  # one more, MaxSize raised for it
        assert current["LaunchTemplate"]["Version"] == first.version


def test_a_canary_start_cut_after_its_mark_is_finished_by_the_retry():
    """Throttled after the mark went on the group: the retry finds the mark and does the rest of what it says."""
    from migrator.aws import execution_digest
    from migrator.config import CANARY_TAG
    from migrator.eks import self_managed as domain
    from migrator.eks.self_managed_events import clients
    from migrator.eks.self_managed_models import CanaryCapacity, SelfManagedInput

    execution = "arn:aws:states:us-east-1:123456789012:execution:eks-self-managed:partial-1"
    with self_managed(size=1) as rt:
        c = clients("prod")
        request = SelfManagedInput(cluster_name="prod", group_name="sm-ingress")
        pre = domain.preflight(c, request, execution, "al2023-migration", "enabled")
        version = domain.create_version(c, request, pre, execution)
        mark = CanaryCapacity(execution=execution_digest(execution), desired=2, raised_max_to=2)
        c.autoscaling.create_or_update_tags(Tags=[{"ResourceId": "sm-ingress", "ResourceType": "auto-scaling-group",
                                                   "Key": CANARY_TAG, "Value": mark.model_dump_json(),
                                                   "PropagateAtLaunch": False}])
        canary = domain.start_canary(c, request, pre, version, execution)
        current = group(rt)
        assert not canary.changed and canary.capacity == mark
        assert (current["DesiredCapacity"], current["MaxSize"], current["LaunchTemplate"]["Version"]) == (
            2, 2, version.version)
