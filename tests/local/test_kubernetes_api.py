"""The simulated Kubernetes API through the official client, and the drain logic
against it: DaemonSet and mirror pods, 429 from a budget, the deadline."""

from __future__ import annotations

import json

import boto3
import pytest
from kubernetes import client as k8s
from moto import mock_aws

from migrator import clock as domain_clock
from migrator.eks import drain as draining
from migrator.eks.kube import Kube, eks_token
from migrator.errors import DeadlineExceeded, EvictionBlocked, NotReadyYet
from migrator.workstation.local.clock import SimClock
from migrator.workstation.local.kubernetes import KubernetesApi, NodegroupNodes, Pod, SimCluster, Workload

POLICY = draining.DrainPolicy(execution="run-1")


@pytest.fixture
def world():
    clock = SimClock(start=10_000.0)
    domain_clock.use(clock.now)
    api = KubernetesApi()
    api.start()
    groups = [NodegroupNodes("ng-al2", 2, {}, [], "Amazon Linux 2", "containerd://1.7.11", registered_at=0)]
    cluster = SimCluster("prod", "1.30", clock, pod_termination=10, nodegroups=lambda: groups, pod_start=5)
    cluster.add_workload(Workload("api", "default", replicas=2, pdb_min_available=1))
    cluster.add_workload(Workload("aws-node", "kube-system", daemonset=True))
    api.clusters["prod"] = cluster
    cluster.settle()
    with mock_aws():
        sts = boto3.client("sts", "us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
        configuration = k8s.Configuration()
        configuration.host = api.endpoint("prod")
        configuration.api_key = {"authorization": "Bearer " + eks_token(sts, "prod")}
        yield clock, cluster, Kube(k8s.ApiClient(configuration)), groups
    api.stop()
    domain_clock.use(None)


def names(cluster, node):
    return sorted(p.workload for p in cluster.pods.values() if p.node == node and p.deleting_at is None)


def test_eviction_answers_201_then_429_with_the_disruption_budget_cause(world):
    clock, cluster, kube, _ = world
    api_pods = [p for p in kube.core.list_pod_for_all_namespaces(label_selector="app=api").items]
    eviction = k8s.V1Eviction(metadata=k8s.V1ObjectMeta(name=api_pods[0].metadata.name, namespace="default"))
    kube.core.create_namespaced_pod_eviction(api_pods[0].metadata.name, "default", eviction)
    budget = kube.policy.list_pod_disruption_budget_for_all_namespaces().items[0]
    assert budget.status.disruptions_allowed == 0  # dropped by one
    with pytest.raises(k8s.ApiException) as blocked:
        kube.core.create_namespaced_pod_eviction(api_pods[1].metadata.name, "default", eviction)
    assert blocked.value.status == 429
    assert '"reason": "DisruptionBudget"' in blocked.value.body and "needs 1 healthy pods" in blocked.value.body
    # the evicted pod terminates for its grace period, it is not gone at once
    evicted = kube.core.read_namespaced_pod(api_pods[0].metadata.name, "default")
    assert evicted.metadata.deletion_timestamp is not None
    clock.advance(11)
    with pytest.raises(k8s.ApiException) as gone:
        kube.core.read_namespaced_pod(api_pods[0].metadata.name, "default")
    assert gone.value.status == 404


def test_a_bad_token_is_refused(world):
    _, _, kube, _ = world
    configuration = k8s.Configuration()
    configuration.host = kube.api_client.configuration.host
    configuration.api_key = {"authorization": "Bearer k8s-aws-v1.bm90LWEtdXJs"}
    with pytest.raises(k8s.ApiException) as refused:
        k8s.CoreV1Api(k8s.ApiClient(configuration)).list_node()
    assert refused.value.status == 401


def test_drain_skips_daemonset_and_mirror_pods_and_waits_for_termination(world):
    clock, cluster, kube, groups = world
    groups.append(NodegroupNodes("ng-new", 2, {}, [], "Amazon Linux 2023", "containerd://1.7.22", registered_at=0))
    cluster.reconcile()
    old = sorted(n.name for n in cluster.nodes.values() if n.nodegroup == "ng-al2")
    for name in old:
        kube.core.patch_node(name, [{"op": "add", "path": "/spec/unschedulable", "value": True}])
    cluster.pods[("kube-system", "static-etcd")] = Pod("static-etcd", "kube-system", "aws-node", False, 0,
                                                       node=old[0], ready_at=0, mirror=True)
    with pytest.raises((NotReadyYet, EvictionBlocked)):
        draining.drain(kube, old, batch_size=2, deadline_seconds=900, policy=POLICY)
    for _ in range(20):  # as the state machine's Retry would, on the simulated clock
        clock.advance(20)
        try:
            result = draining.drain(kube, old, batch_size=2, deadline_seconds=900, policy=POLICY)
            break
        except (NotReadyYet, EvictionBlocked):
            continue
    assert result.drained == old
    for name in old:
        assert "api" not in names(cluster, name)
        assert "aws-node" in names(cluster, name)  # DaemonSet pods stay
    assert ("kube-system", "static-etcd") in cluster.pods  # mirror pods are never evicted
    assert cluster.min_available["api"] >= 1


def test_a_node_that_cannot_drain_fails_at_its_deadline_naming_pods_and_budgets(world):
    clock, cluster, kube, _ = world
    cluster.blocked_pdbs = lambda: {"api"}
    nodes = sorted(cluster.nodes)
    with pytest.raises(EvictionBlocked):
        draining.drain(kube, nodes, batch_size=1, deadline_seconds=300, policy=POLICY)
    clock.advance(301)
    with pytest.raises(DeadlineExceeded) as late:
        draining.drain(kube, nodes, batch_size=1, deadline_seconds=300, policy=POLICY)
    assert "did not drain within 300s" in str(late.value)
    assert "default/api (allows 0)" in str(late.value)


# --- answers a real API server gives (FACTS.md, "More from a real API server") ------------------


def evict(kube, pod):
    kube.core.create_namespaced_pod_eviction(
        pod.metadata.name, pod.metadata.namespace,
        k8s.V1Eviction(metadata=k8s.V1ObjectMeta(name=pod.metadata.name, namespace=pod.metadata.namespace)))


def running_pods(kube, app):
    return kube.core.list_pod_for_all_namespaces(label_selector=f"app={app}").items


def test_a_blocked_eviction_has_the_generic_message_on_top_and_the_budget_in_causes(world):
    """Real: message "Cannot evict pod as it would violate the pod's disruption budget.",
    details.causes[0].message "The disruption budget api needs 1 healthy pods and has 1 currently"."""
    _, _, kube, _ = world
    first, second = running_pods(kube, "api")
    evict(kube, first)
    with pytest.raises(k8s.ApiException) as blocked:
        evict(kube, second)
    body = json.loads(blocked.value.body)
    assert body["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert body["details"]["causes"] == [{"reason": "DisruptionBudget",
                                          "message": "The disruption budget api needs 1 healthy pods and has 1 currently"}]
    assert "api needs 1" in draining.explain(blocked.value)


def test_a_budget_not_computed_yet_answers_429_still_being_processed_retry_after_10(world):
    """Real: an uncomputed budget has no status yet; every eviction of a running pod it
    covers answers 429, cause "The disruption budget api is still being processed by the
    server.", details.retryAfterSeconds 10."""
    _, cluster, kube, _ = world
    cluster.uncomputed_pdbs.add("api")
    budget = kube.policy.list_pod_disruption_budget_for_all_namespaces().items[0]
    assert budget.status.observed_generation is None and budget.status.disruptions_allowed is None
    with pytest.raises(k8s.ApiException) as blocked:
        evict(kube, running_pods(kube, "api")[0])
    body = json.loads(blocked.value.body)
    assert blocked.value.status == 429 and body["details"]["retryAfterSeconds"] == 10
    assert body["details"]["causes"][0]["message"] == "The disruption budget api is still being processed by the server."


def test_a_pod_under_two_budgets_answers_500_with_no_reason(world):
    """Real: {"status":"Failure","message":"This pod has more than one PodDisruptionBudget,
    which the eviction subresource does not support.","code":500} (no reason)."""
    _, cluster, kube, _ = world
    cluster.workloads["api"].extra_pdb = True
    assert sorted(b.metadata.name for b in kube.policy.list_pod_disruption_budget_for_all_namespaces().items) == [
        "api", "api-extra"]
    with pytest.raises(k8s.ApiException) as failed:
        evict(kube, running_pods(kube, "api")[0])
    body = json.loads(failed.value.body)
    assert failed.value.status == 500 and "reason" not in body
    assert body["message"] == ("This pod has more than one PodDisruptionBudget, which the eviction subresource "
                               "does not support.")


def test_bare_pods_have_no_owner_and_empty_dir_pods_a_volume(world):
    """Real: a pod created on its own has no ownerReferences and, evicted, is not recreated;
    an emptyDir volume is listed in spec.volumes."""
    clock, cluster, kube, _ = world
    cluster.add_workload(Workload("one-off", "default", replicas=1, bare=True, empty_dir=True))
    cluster.settle()
    pod = running_pods(kube, "one-off")[0]
    assert pod.metadata.owner_references is None
    assert draining.bare(pod) and draining.has_empty_dir(pod)
    evict(kube, pod)
    clock.advance(11)
    assert running_pods(kube, "one-off") == []  # nothing recreates it
    assert cluster.evicted_bare == cluster.evicted_empty_dir == [f"default/{pod.metadata.name}"]


def test_unknown_taint_fields_are_dropped_and_time_added_kept(world):
    """Real: a taint written with `time_added` is stored without its time; `timeAdded` is kept
    (as RFC 3339 UTC)."""
    _, cluster, kube, _ = world
    node = sorted(cluster.nodes)[0]
    kube.core.patch_node(node, [{"op": "add", "path": "/spec/taints", "value": [
        {"key": "a", "effect": "NoSchedule", "time_added": "2026-01-01T00:00:00Z"},
        {"key": "b", "effect": "NoSchedule", "timeAdded": "2026-01-01T00:00:00+00:00"}]}])
    taints = kube.core.read_node(node).spec.taints
    assert [(t.key, t.time_added) for t in taints][0] == ("a", None)
    assert taints[1].time_added.isoformat() == "2026-01-01T00:00:00+00:00"
    assert cluster.nodes[node].taints[1] == {"key": "b", "effect": "NoSchedule", "timeAdded": "2026-01-01T00:00:00Z"}


def test_service_accounts_carry_their_irsa_annotation_and_unknown_ones_answer_404(world):
    """A pod names its service account (spec.serviceAccountName; host-network pods say so); every namespace has
    `default`; IRSA is the account's eks.amazonaws.com/role-arn annotation."""
    _, cluster, kube, _ = world
    cluster.add_workload(Workload("s3-sync", "default", replicas=1, service_account="s3-sync"))
    cluster.service_account_annotations[("default", "s3-sync")] = {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"}
    cluster.settle()
    pods = {p.metadata.name.rsplit("-", 1)[0]: p for p in kube.core.list_pod_for_all_namespaces().items}
    assert pods["s3-sync"].spec.service_account_name == "s3-sync" and not pods["s3-sync"].spec.host_network
    annotated = kube.core.read_namespaced_service_account("s3-sync", "default")
    assert annotated.metadata.annotations == {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"}
    assert kube.core.read_namespaced_service_account("default", "default").metadata.annotations is None
    with pytest.raises(k8s.ApiException) as missing:
        kube.core.read_namespaced_service_account("nobody", "default")
    assert missing.value.status == 404
