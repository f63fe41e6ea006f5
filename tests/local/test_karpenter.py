"""The simulated Karpenter (migrator/workstation/local/karpenter.py) through the official client, each test
stating the real behaviour it reproduces: custom resources served with resourceVersion and 409, schema
validation, drift within the NodePool's budget with a replacement first, PDB-aware termination."""

from __future__ import annotations

import json

import boto3
import pytest
from kubernetes import client as k8s
from moto import mock_aws

from migrator import clock as domain_clock
from migrator.eks.kube import Kube, eks_token
from migrator.workstation.local.clock import SimClock
from migrator.workstation.local.karpenter import SimKarpenter
from migrator.workstation.local.kubernetes import KubernetesApi, SimCluster, Workload

BOOT = 40.0


def build(api_version: str = "v1", size: int = 4, budget: int = 50, blocked=set):
    clock = SimClock(start=100_000.0)
    cluster = SimCluster("prod", "1.30", clock, pod_termination=10, nodegroups=list, pod_start=5)
    cluster.add_workload(Workload("api", "default", replicas=size, pdb_min_available=size - 1,
                                  node_selector={"karpenter.sh/nodepool": "default"}))
    cluster.add_workload(Workload("aws-node", "kube-system", daemonset=True))
    instances = []
    karpenter = SimKarpenter(cluster, api_version, BOOT, launch=lambda claim: instances.append(claim.name) or claim.name,
                             terminate=lambda _: None, has_fault=lambda pool, kind: False)
    karpenter.add_pool("default", size, budget, "m5.large", "#!/bin/bash\n", clock.now() - 3600, {"team": "data"})
    cluster.controllers.append(karpenter)
    cluster.blocked_pdbs = blocked
    cluster.settle()
    return clock, cluster, karpenter


@pytest.fixture
def served():
    clock, cluster, karpenter = build()
    domain_clock.use(clock.now)
    api = KubernetesApi()
    api.start()
    api.clusters["prod"] = cluster
    with mock_aws():
        sts = boto3.client("sts", "us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
        configuration = k8s.Configuration()
        configuration.host = api.endpoint("prod")
        configuration.api_key = {"authorization": "Bearer " + eks_token(sts, "prod")}
        yield karpenter, Kube(k8s.ApiClient(configuration))
    api.stop()
    domain_clock.use(None)


def test_custom_resources_answer_get_and_merge_patch_with_resource_versions_and_409_when_stale(served):
    """A real API server bumps resourceVersion (and generation on a spec change) on every write and answers
    409 Conflict to a patch whose metadata.resourceVersion is not the current one."""
    karpenter, kube = served
    read = kube.custom.get_cluster_custom_object("karpenter.k8s.aws", "v1", "ec2nodeclasses", "default")
    assert read["spec"]["amiSelectorTerms"] == [{"alias": "al2@latest"}] and read["metadata"]["generation"] == 1
    patched = kube.custom.patch_cluster_custom_object(
        "karpenter.k8s.aws", "v1", "ec2nodeclasses", "default",
        {"metadata": {"resourceVersion": read["metadata"]["resourceVersion"]},
         "spec": {"amiSelectorTerms": [{"alias": "al2023@latest"}]}})
    assert int(patched["metadata"]["resourceVersion"]) > int(read["metadata"]["resourceVersion"])
    assert patched["metadata"]["generation"] == 2
    with pytest.raises(k8s.ApiException) as stale:
        kube.custom.patch_cluster_custom_object(
            "karpenter.k8s.aws", "v1", "ec2nodeclasses", "default",
            {"metadata": {"resourceVersion": read["metadata"]["resourceVersion"]}, "spec": {"userData": "x"}})
    assert stale.value.status == 409 and json.loads(stale.value.body)["reason"] == "Conflict"
    pools = kube.custom.list_cluster_custom_object("karpenter.sh", "v1", "nodepools")["items"]
    assert [p["spec"]["disruption"]["budgets"] for p in pools] == [[{"nodes": "50%"}]]


def test_a_version_the_crds_do_not_serve_is_404_and_a_strategic_merge_patch_415(served):
    """Only the CRD's served versions exist; custom resources take no strategic merge patch."""
    karpenter, kube = served
    with pytest.raises(k8s.ApiException) as missing:
        kube.custom.get_cluster_custom_object("karpenter.k8s.aws", "v1beta1", "ec2nodeclasses", "default")
    assert missing.value.status == 404
    with pytest.raises(k8s.ApiException) as media:
        kube.custom.patch_cluster_custom_object("karpenter.k8s.aws", "v1", "ec2nodeclasses", "default",
                                                {"spec": {"userData": "x"}},
                                                _content_type="application/strategic-merge-patch+json")
    assert media.value.status == 415
    crd = kube.extensions.read_custom_resource_definition("ec2nodeclasses.karpenter.k8s.aws")
    assert [(v.name, v.served, v.storage) for v in crd.spec.versions] == [("v1", True, True)]


def test_the_crd_schema_refuses_what_it_does_not_declare():
    """v1beta1 CRDs of releases before AL2023 enumerate amiFamily without it (422 Invalid); a v1 alias may not
    stand beside other amiSelectorTerms."""
    _, _, old = build("v1beta1-no-al2023")
    merge = {"Content-Type": "application/merge-patch+json"}
    code, body = old.serve("PATCH", "/apis/karpenter.k8s.aws/v1beta1/ec2nodeclasses/default",
                           {"spec": {"amiFamily": "AL2023"}}, merge)
    assert code == 422 and 'Unsupported value: "AL2023"' in body["message"]
    _, _, v1 = build("v1")
    code, body = v1.serve("PATCH", "/apis/karpenter.k8s.aws/v1/ec2nodeclasses/default",
                          {"spec": {"amiSelectorTerms": [{"alias": "al2023@latest"}, {"id": "ami-1"}]}}, merge)
    assert code == 422 and "mutually exclusive" in body["message"]


def drift(clock, cluster, karpenter, seconds: float, step: float = 5.0):
    """Karpenter acts whenever the API server is called: call it every `step` simulated seconds."""
    end = clock.now() + seconds
    while clock.now() < end:
        clock.advance(step)
        with cluster.lock:
            cluster.reconcile()


def change_to_al2023(karpenter):
    code, _ = karpenter.serve("PATCH", "/apis/karpenter.k8s.aws/v1/ec2nodeclasses/default",
                              {"spec": {"amiSelectorTerms": [{"alias": "al2023@latest"}]}},
                              {"Content-Type": "application/merge-patch+json"})
    assert code == 200


def test_drift_replaces_within_the_budget_a_replacement_first_and_keeps_every_pod_within_its_pdb():
    """Drifted nodes are replaced at most `nodes` of the budget at a time (a percentage rounded up, nodes being
    disrupted counting against it); each replacement is launched and Ready before its candidate's NodeClaim is
    deleted; the termination controller evicts honouring PDBs, then terminates."""
    clock, cluster, karpenter = build(size=4, budget=50)
    change_to_al2023(karpenter)
    drift(clock, cluster, karpenter, 1200)
    claims = list(karpenter.claims.values())
    old = [c for c in claims if c.family == "AL2"]
    assert len(old) == 4 and all(c.removed_at is not None for c in old)
    for candidate in old:
        replacement = karpenter.claims[candidate.replacing]
        assert replacement.launched_at + BOOT <= candidate.deleted_at  # replacement joined first
    spans = sorted((c.disrupting_since, c.removed_at) for c in old)
    for moment, _ in spans:
        # the pool's nodes then (the pre-spun replacements that joined count, as Karpenter counts them)
        nodes = sum(1 for c in claims if c.launched_at + BOOT <= moment and (c.removed_at or moment + 1) > moment)
        assert sum(1 for s, e in spans if s <= moment < e) <= -(-nodes * 50 // 100)
    assert spans[1][0] < spans[0][1]  # more than one at a time: the budget allows 2
    nodes = [n for n in cluster.nodes.values() if n.labels.get("karpenter.sh/nodepool") == "default"]
    assert len(nodes) == 4 and all(n.os_image.startswith("Amazon Linux 2023") and not n.taints for n in nodes)
    assert cluster.min_available["api"] >= 3 and not cluster.lost_pods


def test_a_pdb_that_allows_nothing_keeps_the_node_tainted_and_draining():
    """Without a terminationGracePeriod, a PDB that allows no disruption blocks the node's termination: it stays,
    tainted karpenter.sh/disrupted, its pods in place."""
    clock, cluster, karpenter = build(size=2, budget=50, blocked=lambda: {"api"})
    change_to_al2023(karpenter)
    drift(clock, cluster, karpenter, 900)
    draining = [c for c in karpenter.claims.values() if c.deleted_at is not None and c.removed_at is None]
    assert draining and not any(c.removed_at for c in karpenter.claims.values())
    for claim in draining:
        node = cluster.nodes[karpenter.node_of(claim)]
        assert {"key": "karpenter.sh/disrupted", "effect": "NoSchedule"} in node.taints
        assert any(p.node == node.name and p.workload == "api" for p in cluster.pods.values())


def test_a_pod_that_forbids_disruption_keeps_its_node_from_drift():
    """karpenter.sh/do-not-disrupt=true on a pod: its node is never a drift candidate; the others drift."""
    clock, cluster, karpenter = build(size=2, budget=100)
    cluster.add_workload(Workload("singleton", "default", replicas=1, node_selector={"karpenter.sh/nodepool": "default"},
                                  annotations={"karpenter.sh/do-not-disrupt": "true"}))
    cluster.settle()
    change_to_al2023(karpenter)
    drift(clock, cluster, karpenter, 900)
    kept = [c for c in karpenter.claims.values() if c.family == "AL2" and c.removed_at is None]
    assert len(kept) == 1 and kept[0].disrupting_since is None
    node = karpenter.node_of(kept[0])
    assert any(p.node == node and p.workload == "singleton" for p in cluster.pods.values())
