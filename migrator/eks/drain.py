"""PDB-aware drain through the Eviction API, one call at a time: the state machine
polls it with Retry, so a 429 from a disruption budget is retried with backoff by
Step Functions, never by sleeping in the Lambda."""

from __future__ import annotations

import json

from kubernetes import client as k8s

from migrator import clock
from migrator.eks.results import Drained
from migrator.errors import DeadlineExceeded, EvictionBlocked, NotReadyYet

DRAIN_STARTED = "al2023-migration/drain-started-at"
MIRROR = "kubernetes.io/config.mirror"


def evictable(pod) -> bool:
    """What a drain evicts: not DaemonSet pods, not mirror (static) pods, not
    pods that already finished."""
    owners = pod.metadata.owner_references or []
    if any(o.kind == "DaemonSet" for o in owners):
        return False
    if MIRROR in (pod.metadata.annotations or {}):
        return False
    return pod.status.phase not in ("Succeeded", "Failed")


def pods_on(kube, node: str) -> list:
    return kube.core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").items


def budgets_of(kube, pods: list) -> list[str]:
    """The PDBs (namespace/name) whose selector matches any of these pods."""
    names = []
    for pdb in kube.policy.list_pod_disruption_budget_for_all_namespaces().items:
        wanted = (pdb.spec.selector.match_labels or {}) if pdb.spec.selector else {}
        for pod in pods:
            labels = pod.metadata.labels or {}
            if pod.metadata.namespace == pdb.metadata.namespace and all(labels.get(k) == v for k, v in wanted.items()):
                names.append(f"{pdb.metadata.namespace}/{pdb.metadata.name} "
                             f"(allows {pdb.status.disruptions_allowed if pdb.status else '?'})")
                break
    return sorted(set(names))


def drain(kube, nodes: list[str], batch_size: int, deadline_seconds: int) -> Drained:
    """Evict what can be evicted from the next `batch_size` undrained nodes.

    Returns when every node is empty of evictable pods. Raises NotReadyYet while
    evicted pods are still terminating, EvictionBlocked while a disruption budget
    answers 429, and DeadlineExceeded (naming pods and budgets) for a node that
    has not drained within `deadline_seconds` of its first eviction."""
    now = clock.now()
    remaining = {}
    for node in sorted(nodes):
        left = [p for p in pods_on(kube, node) if evictable(p)]
        if left:
            remaining[node] = left
    if not remaining:
        return Drained(drained=sorted(nodes), at=now)

    batch = list(remaining)[:batch_size]
    blocked, terminating = [], []
    for node in batch:
        started = _mark_started(kube, node, now)
        if now - started > deadline_seconds:
            stuck = remaining[node]
            raise DeadlineExceeded(
                f"node {node} did not drain within {deadline_seconds}s: pods "
                + ", ".join(f"{p.metadata.namespace}/{p.metadata.name}" for p in stuck)
                + "; disruption budgets " + (", ".join(budgets_of(kube, stuck)) or "none")
            )
        for pod in remaining[node]:
            if pod.metadata.deletion_timestamp is not None:
                terminating.append(pod.metadata.name)
                continue
            try:
                kube.core.create_namespaced_pod_eviction(
                    pod.metadata.name, pod.metadata.namespace,
                    k8s.V1Eviction(metadata=k8s.V1ObjectMeta(name=pod.metadata.name, namespace=pod.metadata.namespace)),
                )
                terminating.append(pod.metadata.name)
            except k8s.ApiException as error:
                if error.status == 429:
                    blocked.append(f"{pod.metadata.namespace}/{pod.metadata.name}: {_reason(error)}")
                elif error.status != 404:  # 404: gone already
                    raise
    progress = f"{len(nodes) - len(remaining)}/{len(nodes)} nodes drained"
    if blocked:
        raise EvictionBlocked(f"{progress}; blocked by disruption budgets: " + "; ".join(blocked[:5]))
    raise NotReadyYet(f"{progress}; waiting for {len(terminating)} evicted pod(s) to terminate")


def _mark_started(kube, node: str, now: float) -> float:
    """When this node's drain began, kept on the node itself so retries share it."""
    annotations = kube.core.read_node(node).metadata.annotations or {}
    if DRAIN_STARTED in annotations:
        return float(annotations[DRAIN_STARTED])
    kube.core.patch_node(node, {"metadata": {"annotations": {DRAIN_STARTED: str(now)}}})
    return now


def _reason(error) -> str:
    try:
        return json.loads(error.body).get("message", "429")
    except (TypeError, ValueError):
        return "429 Too Many Requests"
