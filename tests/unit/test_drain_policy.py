"""What kubectl drain refuses and what pins a pod to a node group, on the client's own models."""

from kubernetes import client as k8s

from migrator.eks import drain
from migrator.eks.nodegroup import NODEGROUP_LABEL, _pinned_to

RS = k8s.V1OwnerReference(api_version="apps/v1", kind="ReplicaSet", name="web-1", uid="u", controller=True)


def pod(name, owners=(RS,), volumes=None, labels=None, affinity=None, node_selector=None):
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name=name, namespace="default", owner_references=list(owners) or None,
                                  labels=labels or {"app": "web"}),
        spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="c")], volumes=volumes, affinity=affinity,
                           node_selector=node_selector),
        status=k8s.V1PodStatus(phase="Running"))


def budget(name, **selector):
    return k8s.V1PodDisruptionBudget(metadata=k8s.V1ObjectMeta(name=name, namespace="default"),
                                     spec=k8s.V1PodDisruptionBudgetSpec(selector=k8s.V1LabelSelector(**selector)))


def test_bare_and_empty_dir_pods_are_refused_unless_consented_and_overlaps_always():
    scratch = [k8s.V1Volume(name="s", empty_dir=k8s.V1EmptyDirVolumeSource())]
    # an owner that is not a controller does not count, as kubectl's GetControllerOf
    loose = k8s.V1OwnerReference(api_version="v1", kind="ConfigMap", name="x", uid="u")
    pods = [pod("bare", owners=()), pod("loose", owners=(loose,)), pod("cache", volumes=scratch), pod("fine")]
    budgets = [budget("web", match_labels={"app": "web"}),
               budget("all-web", match_expressions=[k8s.V1LabelSelectorRequirement(key="app", operator="In",
                                                                                    values=["web"])])]
    found = drain.refusals(pods, budgets, drain.DrainPolicy(execution="run"))
    assert found["bare_pods"] == ["default/bare", "default/loose"]
    assert found["empty_dir_pods"] == ["default/cache"]
    assert "default/fine by default/all-web and default/web" in found["overlapping_budgets"]
    consented = drain.refusals(pods, budgets[:1], drain.DrainPolicy("run", delete_bare_pods=True,
                                                                    delete_empty_dir_data=True))
    assert consented == {}


def test_a_pod_is_pinned_by_node_selector_or_required_affinity_not_by_preference():
    required = k8s.V1Affinity(node_affinity=k8s.V1NodeAffinity(
        required_during_scheduling_ignored_during_execution=k8s.V1NodeSelector(node_selector_terms=[
            k8s.V1NodeSelectorTerm(match_expressions=[k8s.V1NodeSelectorRequirement(
                key=NODEGROUP_LABEL, operator="In", values=["ng-old"])])])))
    preferred = k8s.V1Affinity(node_affinity=k8s.V1NodeAffinity(
        preferred_during_scheduling_ignored_during_execution=[k8s.V1PreferredSchedulingTerm(
            weight=1, preference=k8s.V1NodeSelectorTerm(match_expressions=[k8s.V1NodeSelectorRequirement(
                key=NODEGROUP_LABEL, operator="In", values=["ng-old"])]))]))
    assert _pinned_to(pod("a", node_selector={NODEGROUP_LABEL: "ng-old"})) == {"ng-old"}
    assert _pinned_to(pod("b", affinity=required)) == {"ng-old"}
    assert _pinned_to(pod("c", affinity=preferred)) == set()


def test_a_pod_that_also_allows_the_new_group_is_not_pinned():
    both = k8s.V1Affinity(node_affinity=k8s.V1NodeAffinity(
        required_during_scheduling_ignored_during_execution=k8s.V1NodeSelector(node_selector_terms=[
            k8s.V1NodeSelectorTerm(match_expressions=[k8s.V1NodeSelectorRequirement(
                key=NODEGROUP_LABEL, operator="In", values=["ng-old", "ng-old-al2023"])])])))
    assert _pinned_to(pod("d", affinity=both)) == {"ng-old", "ng-old-al2023"}
