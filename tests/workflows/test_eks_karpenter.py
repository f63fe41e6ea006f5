"""eks_karpenter.asl.json executed in the local runtime: success and every failure path, then the simulated
cluster (Karpenter's objects, nodes, pods) and account are checked."""

from __future__ import annotations

import email
import json

import pytest

from migrator.audit import read_trail
from migrator.eks.karpenter import CHANGED
from migrator.workstation.local.demo import karpenter_input
from migrator.workstation.local.karpenter import SimKarpenter
from migrator.workstation.local.kubernetes import Workload
from migrator.workstation.local.runtime import AUDIT_TABLE, LocalRuntime
from migrator.workstation.local.summary import _check_karpenter, _check_workloads
from migrator.workflows import EKS_KARPENTER
from tests.conftest import eventually, running

TARGET = "eks/prod/default"
POOL = {"karpenter.sh/nodepool": "default"}
WORKLOADS = [{"name": "api", "replicas": 4, "pdb_min_available": 3, "node_selector": POOL},
             {"name": "log-agent", "daemonset": True}]
AL2_SCRIPT = ("#!/bin/bash\necho 'vm.max_map_count=262144' > /etc/sysctl.d/99-app.conf\n"
              "/etc/eks/bootstrap.sh prod --kubelet-extra-args '--max-pods=58 --node-labels=team=data'\n")


def pool(**extra) -> dict:
    return {"nodepool": "default", "size": 4, "budget_percent": 50, "user_data": AL2_SCRIPT, **extra}


def karpenter(*pools, workloads=WORKLOADS, api="v1", cluster_extra=None, **extra):
    # Karpenter itself runs on a small managed group already on AL2023 (not a target of these tests)
    spec = {"name": "prod", "nodegroups": [{"name": "system", "size": 1, "os": "al2023"}],
            "karpenter": list(pools or [pool()]), "karpenter_api": api, "workloads": workloads, **(cluster_extra or {})}
    return running([], eks_clusters=[spec], **extra)


def execute(rt: LocalRuntime, payload: dict | None = None, **overrides):
    body = payload if payload is not None else {**karpenter_input(rt.fleet.karpenter[TARGET], rt.scenario), **overrides}
    with rt.clock.busy():
        run = rt.start_execution(EKS_KARPENTER, TARGET, body)
    return run, rt.wait([run], timeout=300)[run.execution_arn]


def controller(rt) -> SimKarpenter:
    return rt.kubernetes.clusters["prod"].controllers[0]


def nodeclass(rt) -> dict:
    return controller(rt).objects[("ec2nodeclasses", "default")]


def pool_nodes(rt) -> list:
    sim = rt.kubernetes.clusters["prod"]
    with sim.lock:
        sim.reconcile()
        return [n for n in sim.nodes.values() if n.labels.get("karpenter.sh/nodepool") == "default"]


def entered(rt, run) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in rt.history(run) if "stateEnteredEventDetails" in e]


def pool_instances(rt) -> list[dict]:
    found = rt.client("ec2").describe_instances(Filters=[{"Name": "tag:karpenter.sh/nodepool", "Values": ["default"]},
                                                         {"Name": "instance-state-name", "Values": ["running"]}])
    return [i for r in found["Reservations"] for i in r["Instances"]]


def assert_restored(rt, size: int = 4):
    """The pool serves on AL2: its EC2NodeClass selects AL2 again, every node AL2, Ready and neither tainted
    nor cordoned, one running instance per node, no pod lost, no budget breached."""
    assert nodeclass(rt)["spec"]["amiSelectorTerms"] == [{"alias": "al2@latest"}]
    assert nodeclass(rt)["spec"]["userData"] == AL2_SCRIPT
    nodes = pool_nodes(rt)
    assert len(nodes) == size
    now = rt.clock.now()
    assert all(n.os_image == "Amazon Linux 2" and n.ready(now) and not n.taints and not n.unschedulable for n in nodes)
    assert len(pool_instances(rt)) == size
    assert _check_workloads(rt.kubernetes.clusters["prod"]) == []
    assert _check_karpenter(rt.fleet.karpenter[TARGET], {"outcome": "rolled_back"}) == []


def test_success_drifts_every_node_to_al2023_within_the_budgets():
    with karpenter() as rt:
        before = nodeclass(rt)["metadata"]["resourceVersion"]
        run, result = execute(rt)
        assert result["status"] == "SUCCEEDED"
        spec = nodeclass(rt)["spec"]
        assert spec["amiSelectorTerms"] == [{"alias": "al2023@latest"}] and "amiFamily" not in spec
        assert nodeclass(rt)["metadata"]["resourceVersion"] != before
        assert nodeclass(rt)["metadata"]["generation"] == 2
        # the user data in the AL2023 form: kubelet settings in a NodeConfig, the rest of the script kept,
        # no bootstrap.sh (AL2023 has none)
        parts = {p.get_content_type(): p.get_payload() for p in email.message_from_string(spec["userData"]).walk()}
        assert "bootstrap.sh" not in spec["userData"]
        assert "vm.max_map_count" in parts["text/x-shellscript"]
        assert "maxPods: 58" in parts["application/node.eks.aws"] and "--node-labels=team=data" in parts[
            "application/node.eks.aws"]
        previous = json.loads(nodeclass(rt)["metadata"]["annotations"][CHANGED])["previous"]
        assert previous["amiSelectorTerms"] == [{"alias": "al2@latest"}] and previous["userData"] == AL2_SCRIPT

        nodes = pool_nodes(rt)
        assert len(nodes) == 4 and all(n.os_image.startswith("Amazon Linux 2023") for n in nodes)
        assert all(not n.taints and not n.unschedulable for n in nodes)
        instances = pool_instances(rt)
        al2023 = rt.fidelity.ssm.latest_image(al2023=True)
        assert len(instances) == 4 and {i["ImageId"] for i in instances} == {al2023}
        sim = rt.kubernetes.clusters["prod"]
        assert sim.min_available["api"] >= 3  # never below its budget while Karpenter drained
        assert _check_workloads(sim) == []
        assert _check_karpenter(rt.fleet.karpenter[TARGET], {"outcome": "migrated"}) == []
        assert _check_karpenter(rt.fleet.karpenter[TARGET], {"outcome": "rolled_back"}) != []  # it does look
        actions = [r["action"] for r in read_trail(rt.client("dynamodb"), AUDIT_TABLE, run.execution_arn)]
        assert actions == ["preflight-passed", "approval-requested", "approval-approved", "nodeclass-changed",
                           "drifted"]


def test_v1beta1_changes_the_ami_family_and_a_second_run_finds_it_migrated():
    with karpenter(api="v1beta1") as rt:
        assert nodeclass(rt)["apiVersion"] == "karpenter.k8s.aws/v1beta1"
        _, result = execute(rt)
        assert result["status"] == "SUCCEEDED"
        assert nodeclass(rt)["spec"]["amiFamily"] == "AL2023" and "amiSelectorTerms" not in nodeclass(rt)["spec"]
        assert all(n.os_image.startswith("Amazon Linux 2023") for n in pool_nodes(rt))
        version = nodeclass(rt)["metadata"]["resourceVersion"]
        again, result = execute(rt)
        assert result["status"] == "SUCCEEDED" and entered(rt, again)[-1] == "AlreadyMigrated"
        assert nodeclass(rt)["metadata"]["resourceVersion"] == version


def test_replacements_that_never_turn_ready_roll_back_past_the_deadline():
    with karpenter(faults=[{"target": TARGET, "at": "drift", "kind": "unhealthy"}]) as rt:
        run, result = execute(rt, drift_deadline_seconds=900)
        assert result["status"] == "FAILED" and result["error"] == "DeadlineExceeded"
        assert "not done within 900s" in result["cause"] and "not Ready" in result["cause"]
        assert "4 of" in result["cause"]  # no AL2 node was given up for a replacement that never came up
        assert "Rollback" in entered(rt, run)
        assert_restored(rt)


def test_a_budget_that_blocks_the_drift_is_named_and_rolled_back():
    with karpenter(faults=[{"target": TARGET, "at": "drift", "kind": "pdb-blocked"}]) as rt:
        run, result = execute(rt, drift_deadline_seconds=900)
        assert result["status"] == "FAILED" and result["error"] == "DeadlineExceeded"
        assert "drain blocked by PodDisruptionBudgets on ip-" in result["cause"]
        assert "budgets default/api allow 0" in result["cause"]
        assert_restored(rt)


def test_a_rejected_gate_changes_nothing():
    with karpenter(approvals={"gates": {f"{TARGET}/before-change": "reject"}}) as rt:
        before = json.dumps(nodeclass(rt))
        run, result = execute(rt)
        assert result["status"] == "FAILED" and result["error"] == "Rejected"
        assert "ChangeNodeClass" not in entered(rt, run) and "Rollback" in entered(rt, run)
        assert json.dumps(nodeclass(rt)) == before
        assert_restored(rt)


def test_someone_elses_change_during_the_drift_is_never_overwritten_by_the_rollback():
    with karpenter(faults=[{"target": TARGET, "at": "drift", "kind": "unhealthy"}]) as rt:
        body = {**karpenter_input(rt.fleet.karpenter[TARGET], rt.scenario), "drift_deadline_seconds": 900}
        theirs = [{"alias": "al2023@v20241011"}]
        served, edits = controller(rt)._patch, []

        def patch_then_theirs(plural, name, body, content_type):
            answer = served(plural, name, body, content_type)
            if CHANGED in ((body.get("metadata") or {}).get("annotations") or {}):  # right after our change
                edits.append(served(plural, name, {"spec": {"amiSelectorTerms": theirs}}, content_type)[0])
            return answer

        controller(rt)._patch = patch_then_theirs
        run, result = execute(rt, body)
        assert edits == [200]
        assert result["status"] == "FAILED" and result["error"] == "ConcurrentChange"
        assert "changed by someone else" in result["cause"]
        assert nodeclass(rt)["spec"]["amiSelectorTerms"] == theirs  # theirs stands


def test_a_change_made_while_the_gate_waits_is_never_overwritten():
    """The change carries the resourceVersion pre-flight read: someone else's edit in between answers 409, the
    run changes nothing and says so."""
    with karpenter() as rt:
        with rt.clock.busy():  # the gate is answered 300 simulated seconds after it asks: not before the edit
            run = rt.start_execution(EKS_KARPENTER, TARGET, karpenter_input(rt.fleet.karpenter[TARGET], rt.scenario))
            eventually(lambda: "approval-requested" in [
                r["action"] for r in read_trail(rt.client("dynamodb"), AUDIT_TABLE, run.execution_arn)],
                "the before-change gate")
            code, _ = controller(rt).serve("PATCH", "/apis/karpenter.k8s.aws/v1/ec2nodeclasses/default",
                                           {"spec": {"userData": "#!/bin/bash\necho theirs\n"}},
                                           {"Content-Type": "application/merge-patch+json"})
        assert code == 200
        result = rt.wait([run], timeout=300)[run.execution_arn]
        assert result["status"] == "FAILED" and result["error"] == "ConcurrentChange"
        assert "nothing was changed" in result["cause"]
        spec = nodeclass(rt)["spec"]
        assert spec["userData"] == "#!/bin/bash\necho theirs\n" and spec["amiSelectorTerms"] == [{"alias": "al2@latest"}]
        assert CHANGED not in nodeclass(rt)["metadata"]["annotations"]


def test_a_stale_resource_version_is_refused_with_409():
    with karpenter() as rt:
        stale = nodeclass(rt)["metadata"]["resourceVersion"]
        path = "/apis/karpenter.k8s.aws/v1/ec2nodeclasses/default"
        merge = {"Content-Type": "application/merge-patch+json"}
        assert controller(rt).serve("PATCH", path, {"spec": {"userData": "#!/bin/bash\n"}}, merge)[0] == 200
        code, body = controller(rt).serve("PATCH", path, {"metadata": {"resourceVersion": stale},
                                                          "spec": {"userData": "x"}}, merge)
        assert code == 409 and body["reason"] == "Conflict"
        code, body = controller(rt).serve("PATCH", path, {"spec": {"amiFamily": "Windows2016"}}, merge)
        assert code == 422 and "Unsupported value" in body["message"]
        assert controller(rt).serve("GET", "/apis/karpenter.k8s.aws/v1beta1/ec2nodeclasses/default", None, {})[0] == 404


def test_a_karpenter_without_al2023_and_an_old_vpc_cni_are_refused_before_any_change():
    with karpenter(api="v1beta1-no-al2023", cluster_extra={"addons": {"vpc-cni": "v1.15.1-eksbuild.1"}}) as rt:
        run, result = execute(rt)
        assert result["status"] == "FAILED" and result["error"] == "PreflightFailed"
        assert "karpenter_version" in result["cause"] and "upgrade Karpenter first" in result["cause"]
        assert "vpc_cni: VPC CNI v1.15.1" in result["cause"]  # the node checks every AL2023 path shares
        assert "Rollback" not in entered(rt, run) and nodeclass(rt)["spec"]["amiFamily"] == "AL2"


def test_a_pod_that_forbids_disruption_is_named_before_any_change():
    """A pod annotated karpenter.sh/do-not-disrupt=true keeps its node from drift: the run would wait forever."""
    with karpenter() as rt:
        sim = rt.kubernetes.clusters["prod"]
        with sim.lock:
            sim.add_workload(Workload("singleton", "default", replicas=1, node_selector=POOL,
                                      annotations={"karpenter.sh/do-not-disrupt": "true"}))
            sim.settle()
        run, result = execute(rt)
        assert result["status"] == "FAILED" and result["error"] == "PreflightFailed"
        assert "do_not_disrupt: default/singleton-" in result["cause"]
        assert "ApproveChange" not in entered(rt, run)


def test_a_budget_of_zero_nodes_is_refused_before_any_change():
    with karpenter(pool(budget_percent=0)) as rt:
        run, result = execute(rt)
        assert result["status"] == "FAILED" and result["error"] == "PreflightFailed"
        assert "nodepool_budgets: the NodePool's budgets allow no drift" in result["cause"]
        assert "ApproveChange" not in entered(rt, run)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"nodepool_name": "default"}, "cluster_name"),
        ({"cluster_name": "prod", "nodepool_name": "Default_Pool"}, "nodepool_name"),
        ({"cluster_name": "prod", "nodepool_name": "default", "drift_deadline_seconds": 10}, "drift_deadline_seconds"),
        ({"cluster_name": "prod", "nodepool_name": "default", "ami": "al2023"}, "ami"),
    ],
)
def test_invalid_input_fails_in_the_first_state_naming_the_field(payload, field):
    with karpenter() as rt:
        run, result = execute(rt, payload=payload)
        assert result["error"] == "InvalidInput"
        assert field in json.loads(result["cause"])["errorMessage"]
        assert entered(rt, run) == ["ValidateInput"]


# --- the fleet: plan and waves ------------------------------------------------------------


def test_the_plan_routes_an_opted_in_pool_to_this_workflow_and_a_wave_runs_it_as_a_child():
    from migrator.fleet.plan import discover
    from migrator.workstation.local.demo import run_scenario
    from migrator.workstation.local.scenario import parse_scenario

    data = {"version": 1, "name": "karpenter-waves", "clock": {"speed": 1000},
            "waves": {"max_instances": 10, "max_concurrency": 4},
            "eks_clusters": [{"name": "prod", "nodegroups": [{"name": "system", "size": 1, "os": "al2023"}],
                              "karpenter": [pool()], "workloads": WORKLOADS}]}
    with running([], eks_clusters=data["eks_clusters"]) as rt:
        inventory = discover(rt.client("ec2"))
        target = inventory.targets[TARGET]
        assert (target.kind, target.instances) == ("eks-karpenter", 4)
        assert target.input == {"cluster_name": "prod", "nodepool_name": "default"}
        assert inventory.karpenter == []  # opted in through the EC2NodeClass's tags: nothing left to do by hand
    summary = run_scenario(parse_scenario(data))
    (pool_target,) = [t for t in summary["targets"] if t["target"] == TARGET]
    assert (pool_target["kind"], pool_target["outcome"], pool_target["instances"]) == ("eks-karpenter", "migrated", 4)
    assert summary["invariants"] == {"ok": True, "violations": []}
    assert {w["status"] for w in summary["waves"]} == {"SUCCEEDED"}
