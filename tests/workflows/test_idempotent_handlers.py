"""Every mutating handler, run twice with the same input, acts once."""

from __future__ import annotations

import pytest

from migrator.asg import rollout
from migrator.asg.events import clients
from migrator.asg.models import RolloutInput
from migrator.failures import CaughtError
from migrator.workstation.local.fidelity import LambdaContext
from migrator.workstation.local.runtime import load_handlers
from tests.conftest import running

EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:asg-rollout:idempotency-1"


def call(name: str, state: dict, **extra):
    handler = load_handlers()[f"al2023-asg-{name}"]
    return handler({"execution": EXECUTION, "state": state, **extra}, LambdaContext(f"al2023-asg-{name}"))


def group(rt):
    return rt.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["web"])["AutoScalingGroups"][0]


def version_count(rt):
    return len(rt.client("ec2").describe_launch_template_versions(
        LaunchTemplateId=rt.fleet.groups["web"].template_id)["LaunchTemplateVersions"])


def test_each_mutating_handler_twice_changes_nothing_the_second_time():
    with running([{"name": "web", "size": 3}], clock={"speed": 0.001}) as rt:
        request = RolloutInput(group_name="web", min_healthy_percentage=50)
        state = {"input": request.model_dump(), "target": request.target}
        state["preflight"] = call("preflight", state)

        state["version"] = call("create-version", state)
        assert call("create-version", state) == state["version"]
        assert version_count(rt) == 2

        state["canary"] = call("start-canary", state)
        assert call("start-canary", state) == state["canary"]
        assert group(rt)["DesiredCapacity"] == 4 and len(group(rt)["Instances"]) == 4  # one canary

        rt.clock.advance(100)
        state["canary_health"] = call("check-canary", state)
        state["refresh"] = call("start-refresh", state)
        assert call("start-refresh", state) == state["refresh"]
        refreshes = rt.client("autoscaling").describe_instance_refreshes(AutoScalingGroupName="web")
        assert len(refreshes["InstanceRefreshes"]) == 1

        rt.clock.advance(5000)
        state["result"] = call("finalize", state)
        assert call("finalize", state) == state["result"]
        assert group(rt)["DesiredCapacity"] == 3 and len(group(rt)["Instances"]) == 3


def test_domain_functions_are_idempotent_without_the_powertools_record():
    """A retry after the idempotency record expired, or a crash mid-way, still finds
    what the first call made: the domain code looks before it acts."""
    with running([{"name": "web", "size": 2}], clock={"speed": 0.001}) as rt:
        c = clients()
        request = RolloutInput(group_name="web")
        pre = rollout.preflight(c, request, "al2023-migration", "enabled")
        first = rollout.create_version(c, request, pre, EXECUTION)
        again = rollout.create_version(c, request, pre, EXECUTION)
        assert (first.created, again.created, again.version) == (True, False, first.version)
        assert version_count(rt) == 2

        assert rollout.start_canary(c, pre, first, EXECUTION).changed is True
        assert rollout.start_canary(c, pre, first, EXECUTION).changed is False
        current = group(rt)
        assert len(current["Instances"]) == 3  # one canary, attached once
        assert (current["DesiredCapacity"], current["MaxSize"]) == (3, 3)  # raised once, by one


def test_rollback_twice_leaves_one_restored_group():
    with running([{"name": "web", "size": 2}], clock={"speed": 0.001}) as rt:
        c = clients()
        request = RolloutInput(group_name="web")
        pre = rollout.preflight(c, request, "al2023-migration", "enabled")
        ver = rollout.create_version(c, request, pre, EXECUTION)
        rollout.start_canary(c, pre, ver, EXECUTION)
        error = CaughtError(Error="CanaryUnhealthy", Cause="test")
        first = rollout.rollback(c, request, pre, None, error, None, EXECUTION)
        second = rollout.rollback(c, request, pre, None, error, None, EXECUTION)
        assert first.cause == second.cause
        current = group(rt)
        assert (current["DesiredCapacity"], current["MaxSize"]) == (2, 2) and len(current["Instances"]) == 2
        assert current["SuspendedProcesses"] == []
        assert {i["LaunchTemplate"]["Version"] for i in current["Instances"]} == {"1"}
        assert rt.client("autoscaling").describe_instance_refreshes(AutoScalingGroupName="web")["InstanceRefreshes"] == []


# --- standalone EC2 ------------------------------------------------------------------


def test_standalone_domain_steps_twice_make_nothing_twice():
    """Snapshots, the replacement, the cutover and the decommission, each called twice
    with the same input (no Powertools record in between), act once."""
    from migrator.workstation.local.demo import migration_input
    from migrator.standalone import migration
    from migrator.standalone.events import clients as standalone_clients
    from migrator.standalone.models import MigrationInput

    spec = {"name": "db-1", "volumes_gib": [8, 100], "elastic_ip": True}
    with running([], standalone=[spec], clock={"speed": 0.001}) as rt:
        c, ec2 = standalone_clients(), rt.client("ec2")
        built = rt.fleet.instances["db-1"]
        request = MigrationInput.model_validate(migration_input(built, rt.scenario))
        pre = migration.preflight(c, request, "al2023-migration", "enabled")

        taken = migration.snapshot(c, pre, EXECUTION)
        assert migration.snapshot(c, pre, EXECUTION).snapshots == taken.snapshots
        assert len(taken.snapshots) == 2

        new = migration.launch(c, request, pre, taken, EXECUTION)
        again = migration.launch(c, request, pre, taken, EXECUTION)
        assert again.instance_id == new.instance_id and again.reused is True

        migration.cutover(c, pre, new)
        assert migration.cutover(c, pre, new).moved is None  # already there
        address = ec2.describe_addresses(AllocationIds=[built.allocation_id])["Addresses"][0]
        assert address["InstanceId"] == new.instance_id

        migration.decommission(c, request, pre, taken)
        migration.decommission(c, request, pre, taken)
        states = {i["InstanceId"]: i["State"]["Name"] for r in ec2.describe_instances()["Reservations"]
                  for i in r["Instances"]}
        assert states[built.instance_id] == "terminated" and states[new.instance_id] == "running"
        assert sum(1 for i, s in states.items() if s == "running") == 2  # the replacement and the bystander


# --- EKS -------------------------------------------------------------------------------


OPT_IN = {"tag_key": "al2023-migration", "tag_value": "enabled"}


def test_eks_mutating_steps_twice_make_nothing_twice():
    from migrator.eks import nodegroup
    from migrator.eks.events import clients as eks_clients
    from migrator.eks.models import NodegroupInput

    spec = {"name": "prod", "nodegroups": [{"name": "ng-al2", "size": 2, "launch_template": "custom"}],
            "workloads": [{"name": "api", "replicas": 2, "pdb_min_available": 1}]}
    with running([], eks_clusters=[spec], clock={"speed": 0.001}) as rt:
        c = eks_clients("prod")
        request = NodegroupInput(cluster_name="prod", nodegroup_name="ng-al2")
        pre = nodegroup.preflight(c, request, EXECUTION, **OPT_IN)
        first = nodegroup.create_nodegroup(c, request, pre, EXECUTION)
        again = nodegroup.create_nodegroup(c, request, pre, EXECUTION)
        assert (first.created, again.created) == (True, False)
        assert sorted(rt.client("eks").list_nodegroups(clusterName="prod")["nodegroups"]) == ["ng-al2", "ng-al2-al2023"]
        templates = rt.client("ec2").describe_launch_templates(
            Filters=[{"Name": "launch-template-name", "Values": ["prod-ng-al2-al2023"]}])["LaunchTemplates"]
        assert len(templates) == 1

        assert len(nodegroup.taint_old(c, request).tainted) == 2
        assert nodegroup.taint_old(c, request).tainted == []  # already tainted and cordoned
        taints = [n.taints for n in rt.kubernetes.clusters["prod"].nodes.values() if n.nodegroup == "ng-al2"]
        assert all(len(t) == 1 for t in taints)

        nodegroup.delete_nodegroup(c, "prod", "ng-al2", **OPT_IN)
        nodegroup.delete_nodegroup(c, "prod", "ng-al2", **OPT_IN)  # DELETING: not asked again
        group = rt.client("eks").describe_nodegroup(clusterName="prod", nodegroupName="ng-al2")["nodegroup"]
        assert group["status"] == "DELETING"


def test_eks_create_and_rollback_leave_a_group_this_execution_did_not_create():
    """Resume is allowed, takeover is not: a group of the new name that appeared after
    pre-flight without this execution's tag is neither adopted nor deleted."""
    from migrator.eks import nodegroup
    from migrator.eks.events import clients as eks_clients
    from migrator.eks.models import NodegroupInput
    from migrator.errors import NotOurs

    spec = {"name": "prod", "nodegroups": [{"name": "ng-al2", "size": 1}]}
    with running([], eks_clusters=[spec]) as rt:
        c = eks_clients("prod")
        request = NodegroupInput(cluster_name="prod", nodegroup_name="ng-al2")
        pre = nodegroup.preflight(c, request, EXECUTION, **OPT_IN)
        old = rt.client("eks").describe_nodegroup(clusterName="prod", nodegroupName="ng-al2")["nodegroup"]
        rt.client("eks").create_nodegroup(clusterName="prod", nodegroupName="ng-al2-al2023", nodeRole=old["nodeRole"],
                                          subnets=old["subnets"], tags={"team": "others"})
        with pytest.raises(NotOurs):
            nodegroup.create_nodegroup(c, request, pre, EXECUTION)
        result = nodegroup.rollback(c, request, EXECUTION, None, None)
        assert "not ours and was left alone" in result.cause
        theirs = rt.client("eks").describe_nodegroup(clusterName="prod", nodegroupName="ng-al2-al2023")["nodegroup"]
        assert theirs["status"] != "DELETING" and theirs["tags"] == {"team": "others"}


def test_karpenter_change_and_rollback_twice_change_the_nodeclass_once():
    from migrator.aws import client
    from migrator.eks import karpenter
    from migrator.eks.karpenter_models import KarpenterInput
    from migrator.eks.kube import connect
    from migrator.errors import NotReadyYet

    spec = {"name": "prod", "nodegroups": [{"name": "system", "size": 1, "os": "al2023"}],
            "karpenter": [{"nodepool": "default", "size": 2, "budget_percent": 50}]}
    with running([], eks_clusters=[spec]) as rt:
        kube = connect(client("eks"), client("sts"), "prod")
        stored = lambda: rt.kubernetes.clusters["prod"].controllers[0].objects[("ec2nodeclasses", "default")]
        request = KarpenterInput(cluster_name="prod", nodepool_name="default")
        pre = karpenter.preflight(client("eks"), kube, request, EXECUTION, **OPT_IN)
        first = karpenter.change_nodeclass(kube, request, pre, EXECUTION)
        version = stored()["metadata"]["resourceVersion"]
        again = karpenter.change_nodeclass(kube, request, pre, EXECUTION)  # a retry: the change is made
        assert again.model_dump(exclude={"resource_version"}) == first.model_dump(exclude={"resource_version"})
        assert stored()["metadata"]["resourceVersion"] == version and stored()["metadata"]["generation"] == 2

        for _ in range(2):  # restored once; then it only follows Karpenter's drift back
            with pytest.raises(NotReadyYet):
                karpenter.rollback(kube, request, pre, EXECUTION, None, None)
        assert stored()["spec"]["amiSelectorTerms"] == [{"alias": "al2@latest"}]
        assert stored()["metadata"]["generation"] == 3
