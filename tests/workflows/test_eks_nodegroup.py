"""eks_nodegroup.asl.json executed in the local runtime: success and every failure
path, then the simulated account and cluster are checked."""

from __future__ import annotations

import base64
import json

import pytest

from migrator.audit import read_trail
from migrator.eks.drain import DRAIN_STARTED
from migrator.eks.userdata import parse_node_config
from migrator.workstation.local.demo import nodegroup_input
from migrator.workstation.local.kubernetes import Pod
from migrator.workstation.local.runtime import AUDIT_TABLE, LocalRuntime
from migrator.workstation.local.summary import _check_untouched, _check_workloads
from migrator.workflows import EKS_NODEGROUP
from tests.conftest import running

WORKLOADS = [{"name": "api", "replicas": 4, "pdb_min_available": 3}, {"name": "log-agent", "daemonset": True}]


def cluster(*groups, workloads=WORKLOADS, **extra):
    spec = {"name": "prod", "nodegroups": list(groups), "workloads": workloads, **extra}
    return {"eks_clusters": [spec]}


def eks(*groups, workloads=WORKLOADS, cluster_extra=None, **extra):
    return running([], **cluster(*groups, workloads=workloads, **(cluster_extra or {})), **extra)


def execute(rt: LocalRuntime, target: str, payload: dict | None = None, *, later: dict | None = None, **overrides):
    """Run the workflow on `target`; `later` maps simulated seconds from the start to a change someone
    makes then. The clock is held until the run and the timers exist, so neither can jump first."""
    built = rt.fleet.nodegroups[target]
    body = payload if payload is not None else {**nodegroup_input(built, rt.scenario), **overrides}
    with rt.clock.busy():
        for delay, change in (later or {}).items():
            rt.clock.call_later(delay, change)
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
        # the same name would make the old group the new one: no approval, every node cordoned
        ({"cluster_name": "prod", "nodegroup_name": "ng-a", "new_nodegroup_name": "ng-a"}, "new_nodegroup_name"),
    ],
)
def test_invalid_input_fails_in_the_first_state_naming_the_field(payload, field):
    with eks({"name": "ng-a", "size": 1}) as rt:
        run, result = execute(rt, "eks/prod/ng-a", payload=payload)
        assert result["error"] == "InvalidInput"
        assert field in json.loads(result["cause"])["errorMessage"]
        assert entered(rt, run) == ["ValidateInput"]


# --- ownership: only what we own --------------------------------------------------------


def failures(rt, run) -> list[str]:
    """Every Lambda failure's error and cause, in order (what Retry saw)."""
    return [f"{d['error']}: {d.get('cause', '')}" for e in rt.history(run)
            if (d := e.get("lambdaFunctionFailedEventDetails"))]


def test_a_group_without_the_opt_in_tag_is_refused_and_left_as_it_was():
    with eks({"name": "ng-theirs", "size": 2, "opt_in": False}) as rt:
        run, result = execute(rt, "eks/prod/ng-theirs")
        assert result["status"] == "FAILED" and result["error"] == "PreflightFailed"
        assert "not tagged al2023-migration=enabled" in result["cause"]
        assert groups(rt) == {"ng-theirs"} and "CreateNodegroup" not in entered(rt, run)
        assert _check_untouched(rt, rt.fleet.nodegroups["eks/prod/ng-theirs"]) == []


def test_a_new_name_that_is_another_teams_group_is_refused_and_that_group_untouched():
    with eks({"name": "ng-a", "size": 2}, {"name": "ng-theirs", "size": 1, "opt_in": False},
             approvals={"gates": {"eks/prod/ng-a/before-drain": "reject"}}) as rt:
        run, result = execute(rt, "eks/prod/ng-a", new_nodegroup_name="ng-theirs")
        assert result["status"] == "FAILED" and result["error"] == "PreflightFailed"
        assert "new_nodegroup: ng-theirs already exists and this execution did not create it" in result["cause"]
        assert "Rollback" not in entered(rt, run)  # nothing was changed, nothing to drain or delete
        assert groups(rt) == {"ng-a", "ng-theirs"}
        assert _check_untouched(rt, rt.fleet.nodegroups["eks/prod/ng-theirs"]) == []


# --- drain policy: what kubectl drain refuses ----------------------------------------------


def test_bare_and_empty_dir_pods_are_refused_by_name_unless_the_input_consents():
    workloads = [*WORKLOADS, {"name": "one-off", "replicas": 1, "controller": "none"},
                 {"name": "cache", "replicas": 2, "empty_dir": True}]
    with eks({"name": "ng-a", "size": 2}, workloads=workloads) as rt:
        _, result = execute(rt, "eks/prod/ng-a")
        assert result["status"] == "FAILED" and result["error"] == "PreflightFailed"
        pods = {p.name: p.workload for p in sim(rt).pods.values()}
        assert "bare_pods: default/one-off-" in result["cause"] and "--force" in result["cause"]
        assert "empty_dir_pods: default/cache-" in result["cause"] and "--delete-emptydir-data" in result["cause"]
        assert sum(1 for w in pods.values() if w in ("one-off", "cache")) == 3  # nothing evicted
        assert groups(rt) == {"ng-a"}

    with eks({"name": "ng-a", "size": 2}, workloads=workloads) as rt:
        _, result = execute(rt, "eks/prod/ng-a", delete_bare_pods=True, delete_empty_dir_data=True)
        assert result["status"] == "SUCCEEDED"
        cluster_sim = sim(rt)
        assert len(cluster_sim.evicted_bare) == 1 and len(cluster_sim.evicted_empty_dir) == 2  # as consented
        assert not any(p.workload == "one-off" for p in cluster_sim.pods.values())  # gone for good
        assert _check_workloads(cluster_sim, bare_pods=True, empty_dir=True) == []


def test_a_bare_pod_started_on_an_old_node_after_preflight_is_refused_by_the_drain_and_kept():
    """Someone `kubectl run`s a debug pod on an AL2 node while the run waits for approval:
    the drain refuses it as kubectl would, the run rolls back, and the pod still runs."""
    workloads = [*WORKLOADS, {"name": "debug", "replicas": 0, "controller": "none"}]
    with eks({"name": "ng-a", "size": 2}, workloads=workloads) as rt:
        def start_debug_pod():
            cluster_sim = sim(rt)
            with cluster_sim.lock:
                node = sorted(n.name for n in cluster_sim.nodes.values() if n.nodegroup == "ng-a")[0]
                cluster_sim.pods[("default", "debug")] = Pod("debug", "default", "debug", False, rt.clock.now(),
                                                             node=node, ready_at=rt.clock.now())
        run, result = execute(rt, "eks/prod/ng-a", later={400: start_debug_pod})  # after pre-flight, before the drain
        assert result["error"] == "DrainRefused" and "bare_pods: default/debug" in result["cause"]
        assert_restored(rt, "ng-a", 2)
        assert ("default", "debug") in sim(rt).pods and sim(rt).evicted_bare == []


def test_overlapping_budgets_are_refused_naming_both():
    workloads = [{"name": "api", "replicas": 4, "pdb_min_available": 2, "extra_pdb": True}]
    with eks({"name": "ng-a", "size": 2}, workloads=workloads) as rt:
        _, result = execute(rt, "eks/prod/ng-a", delete_bare_pods=True, delete_empty_dir_data=True)
        assert result["status"] == "FAILED" and result["error"] == "PreflightFailed"
        assert "overlapping_budgets: default/api-" in result["cause"]
        assert "by default/api and default/api-extra" in result["cause"]


def test_a_second_budget_added_during_the_run_fails_the_drain_with_a_named_error():
    """The eviction API answers 500 for a pod under two budgets: a named error, and the
    rollback puts the old nodes back in service."""
    with eks({"name": "ng-a", "size": 2}) as rt:
        add_budget = lambda: setattr(sim(rt).workloads["api"], "extra_pdb", True)  # noqa: E731
        run, result = execute(rt, "eks/prod/ng-a", later={400: add_budget})  # before the drain
        assert any(f.startswith("EvictionFailed: ") and "more than one PodDisruptionBudget" in f
                   and "default/api-" in f for f in failures(rt, run))
        assert result["error"] == "EvictionFailed" and "more than one PodDisruptionBudget" in result["cause"]
        assert_restored(rt, "ng-a", 2)
        assert all(not n.annotations for n in sim(rt).nodes.values())


def test_pods_pinned_to_the_old_group_are_named_before_any_change():
    workloads = [*WORKLOADS, {"name": "pinned", "replicas": 2, "node_selector": {"eks.amazonaws.com/nodegroup": "ng-a"}}]
    with eks({"name": "ng-a", "size": 2}, workloads=workloads) as rt:
        _, result = execute(rt, "eks/prod/ng-a")
        assert result["status"] == "FAILED" and result["error"] == "PreflightFailed"
        assert "pinned_pods: default/pinned-" in result["cause"] and "never schedule on ng-a-al2023" in result["cause"]
        assert groups(rt) == {"ng-a"}


# --- drain bookkeeping -----------------------------------------------------------------------


def test_a_drain_mark_left_by_an_earlier_run_does_not_fail_this_one_and_rollback_clears_ours():
    with eks({"name": "ng-a", "size": 2}, approvals={"gates": {"eks/prod/ng-a/before-delete": "reject"}}) as rt:
        for node in sim(rt).nodes.values():  # an earlier run's marks, long past any deadline
            node.annotations[DRAIN_STARTED] = '{"execution": "an-earlier-run", "at": 0}'
        run, result = execute(rt, "eks/prod/ng-a", drain_batch_size=2)
        assert "DrainOldNodes" in entered(rt, run) and "DeadlineExceeded" not in str(failures(rt, run))
        assert result["error"] == "Rejected"
        assert_restored(rt, "ng-a", 2)
        assert all(DRAIN_STARTED not in n.annotations for n in sim(rt).nodes.values())  # ours cleared


def test_other_taints_keep_their_time_when_the_rollback_writes_them_back():
    with eks({"name": "ng-a", "size": 2}, approvals={"gates": {"eks/prod/ng-a/before-drain": "reject"}}) as rt:
        theirs = {"key": "dedicated", "value": "gpu", "effect": "PreferNoSchedule", "timeAdded": "2026-01-01T00:00:00Z"}
        for node in sim(rt).nodes.values():
            node.taints.append(dict(theirs))
        _, result = execute(rt, "eks/prod/ng-a")
        assert result["error"] == "Rejected"
        assert [n.taints for n in sim(rt).nodes.values()] == [[theirs]] * 2
        assert not any(n.unschedulable for n in sim(rt).nodes.values())


def test_blocked_evictions_name_the_budget_and_a_budget_still_being_processed():
    with eks({"name": "ng-a", "size": 2}, faults=[{"target": "eks/prod/ng-a", "at": "drain", "kind": "pdb-blocked"}]) as rt:
        run, _ = execute(rt, "eks/prod/ng-a", drain_deadline_seconds=300)
        blocked = [f for f in failures(rt, run) if f.startswith("EvictionBlocked")]
        assert blocked and "The disruption budget api needs 4 healthy pods and has 4 currently" in blocked[0]
    with eks({"name": "ng-a", "size": 2}) as rt:
        sim(rt).uncomputed_pdbs.add("api")  # the disruption controller has not computed it
        run, result = execute(rt, "eks/prod/ng-a", drain_deadline_seconds=300)
        blocked = [f for f in failures(rt, run) if f.startswith("EvictionBlocked")]
        assert blocked and "The disruption budget api is still being processed by the server." in blocked[0]
        assert "retry after 10s" in blocked[0]
        assert result["error"] == "DeadlineExceeded"
        assert_restored(rt, "ng-a", 2)


def test_rollback_drains_the_new_nodes_in_batches_so_no_workload_drops_to_zero():
    workloads = [{"name": "web", "replicas": 4}]  # no budget: only batching keeps it up
    with eks({"name": "ng-a", "size": 2}, workloads=workloads,
             approvals={"gates": {"eks/prod/ng-a/before-delete": "reject"}}) as rt:
        _, result = execute(rt, "eks/prod/ng-a", drain_batch_size=1)
        assert result["error"] == "Rejected"
        assert_restored(rt, "ng-a", 2)
        assert sim(rt).min_available["web"] >= 1
