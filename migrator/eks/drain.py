"""PDB-aware drain through the Eviction API, one call at a time: the state machine
polls it with Retry, so a 429 from a disruption budget is retried with backoff by
Step Functions, never by sleeping in the Lambda."""

from __future__ import annotations

import json

from dataclasses import dataclass

from kubernetes import client as k8s

from migrator import clock
from migrator.eks.results import Drained
from migrator.errors import DeadlineExceeded, DrainRefused, EvictionBlocked, EvictionFailed, NotReadyYet

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


@dataclass(frozen=True)
class DrainPolicy:
    """What the operator consented to, as kubectl drain's flags say it; the drain's
    deadline annotation belongs to `execution`."""

    execution: str
    delete_bare_pods: bool = False  # kubectl --force
    delete_empty_dir_data: bool = False  # kubectl --delete-emptydir-data


def name_of(pod) -> str:
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


def bare(pod) -> bool:
    """No controller owns it: once evicted nothing recreates it."""
    return not any(o.controller for o in (pod.metadata.owner_references or []))


def has_empty_dir(pod) -> bool:
    return any(v.empty_dir is not None for v in (pod.spec.volumes or []))


def covering_budgets(pod, budgets: list) -> list[str]:
    """The budgets (namespace/name) whose selector selects this pod. An empty selector
    selects every pod of its namespace (policy/v1)."""
    labels = pod.metadata.labels or {}
    found = []
    for pdb in budgets:
        if pdb.metadata.namespace != pod.metadata.namespace:
            continue
        selector = pdb.spec.selector
        wanted = (selector.match_labels or {}) if selector else {}
        if all(labels.get(k) == v for k, v in wanted.items()) and _expressions_match(selector, labels):
            found.append(f"{pdb.metadata.namespace}/{pdb.metadata.name}")
    return sorted(found)


def _expressions_match(selector, labels: dict) -> bool:
    for term in (selector.match_expressions or []) if selector else []:
        value, values = labels.get(term.key), term.values or []
        ok = {"In": value in values, "NotIn": value not in values,
              "Exists": term.key in labels, "DoesNotExist": term.key not in labels}.get(term.operator, False)
        if not ok:
            return False
    return True


def refusals(pods: list, budgets: list, policy: DrainPolicy) -> dict[str, list[str]]:
    """What kubectl drain refuses (and the eviction API would fail on), by pod name:
    no controller unless `--force`, emptyDir unless `--delete-emptydir-data`, and a
    pod covered by more than one budget (the eviction API answers 500, always)."""
    found = {"bare_pods": [], "empty_dir_pods": [], "overlapping_budgets": []}
    for pod in pods:
        if not evictable(pod):
            continue
        if bare(pod) and not policy.delete_bare_pods:
            found["bare_pods"].append(name_of(pod))
        if has_empty_dir(pod) and not policy.delete_empty_dir_data:
            found["empty_dir_pods"].append(name_of(pod))
        covering = covering_budgets(pod, budgets)
        if len(covering) > 1:
            found["overlapping_budgets"].append(f"{name_of(pod)} by {' and '.join(covering)}")
    return {k: sorted(v) for k, v in found.items() if v}


REFUSAL_HINTS = {
    "bare_pods": "no controller would recreate them (set delete_bare_pods: true to evict them anyway, "
                 "as kubectl drain --force)",
    "empty_dir_pods": "their emptyDir data would be lost (set delete_empty_dir_data: true to evict them anyway, "
                      "as kubectl drain --delete-emptydir-data)",
    "overlapping_budgets": "covered by more than one PodDisruptionBudget, which the eviction API refuses "
                           "(500); remove one of the budgets",
}


def describe_refusals(found: dict[str, list[str]]) -> list[str]:
    return [f"{kind}: {', '.join(pods[:10])}{' …' if len(pods) > 10 else ''}: {REFUSAL_HINTS[kind]}"
            for kind, pods in found.items()]


def budgets_of(kube, pods: list) -> list[str]:
    """The PDBs (namespace/name) that select any of these pods, with what they allow now."""
    names = set()
    for pdb in kube.policy.list_pod_disruption_budget_for_all_namespaces().items:
        if any(covering_budgets(pod, [pdb]) for pod in pods):
            names.add(f"{pdb.metadata.namespace}/{pdb.metadata.name} "
                      f"(allows {pdb.status.disruptions_allowed if pdb.status else '?'})")
    return sorted(names)


def drain(kube, nodes: list[str], batch_size: int, deadline_seconds: int, policy: DrainPolicy) -> Drained:
    """Evict what can be evicted from the next `batch_size` undrained nodes.

    Returns when every node is empty of evictable pods, its deadline mark cleared.
    Raises NotReadyYet while evicted pods are still terminating, EvictionBlocked
    while a disruption budget answers 429 (naming the budget), DrainRefused for pods
    the policy does not allow to evict, EvictionFailed for an eviction the server
    refuses for good (500), and DeadlineExceeded (naming pods and budgets) for a
    node that has not drained within `deadline_seconds` of its first eviction."""
    now = clock.now()
    remaining = {}
    for node in sorted(nodes):
        left = [p for p in pods_on(kube, node) if evictable(p)]
        if left:
            remaining[node] = left
    if not remaining:
        clear_marks(kube, nodes, policy.execution)
        return Drained(drained=sorted(nodes), at=now)

    batch = list(remaining)[:batch_size]
    # kubectl refuses before evicting anything: what arrived since pre-flight is checked again
    # (two budgets over a pod need no check here: the eviction API answers 500 for it)
    refused = refusals([p for node in batch for p in remaining[node]], [], policy)
    if refused:
        raise DrainRefused("the drain would destroy what was not consented to: " + "; ".join(describe_refusals(refused)))
    blocked, terminating = [], []
    for node in batch:
        started = _mark_started(kube, node, now, policy.execution)
        if now - started > deadline_seconds:
            stuck = remaining[node]
            raise DeadlineExceeded(
                f"node {node} did not drain within {deadline_seconds}s: pods "
                + ", ".join(name_of(p) for p in stuck)
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
                    blocked.append(f"{name_of(pod)}: {explain(error)}")
                elif error.status >= 500:
                    raise EvictionFailed(f"evicting {name_of(pod)} failed ({error.status}): {explain(error)}") from None
                elif error.status != 404:  # 404: gone already
                    raise
    progress = f"{len(nodes) - len(remaining)}/{len(nodes)} nodes drained"
    if blocked:
        raise EvictionBlocked(f"{progress}; blocked by disruption budgets: " + "; ".join(blocked[:5]))
    raise NotReadyYet(f"{progress}; waiting for {len(terminating)} evicted pod(s) to terminate")


def _mark(annotations: dict) -> dict | None:
    try:
        mark = json.loads(annotations.get(DRAIN_STARTED) or "null")
    except ValueError:
        return None  # an older or foreign format: not ours
    return mark if isinstance(mark, dict) else None


def _mark_started(kube, node: str, now: float, execution: str) -> float:
    """When this execution began draining this node, kept on the node itself so retries
    share it. A mark another execution left behind is not ours: this run starts its own."""
    mark = _mark(kube.core.read_node(node).metadata.annotations or {})
    if mark and mark.get("execution") == execution:
        return float(mark["at"])
    value = json.dumps({"execution": execution, "at": now})
    kube.core.patch_node(node, {"metadata": {"annotations": {DRAIN_STARTED: value}}})
    return now


def clear_marks(kube, nodes: list[str], execution: str) -> None:
    """Remove this execution's drain marks (a merge patch with null deletes the key)."""
    for node in nodes:
        try:
            annotations = kube.core.read_node(node).metadata.annotations or {}
        except k8s.ApiException as error:
            if error.status == 404:
                continue
            raise
        mark = _mark(annotations)
        if mark and mark.get("execution") == execution:
            kube.core.patch_node(node, {"metadata": {"annotations": {DRAIN_STARTED: None}}})


def explain(error) -> str:
    """A blocked or failed eviction in the server's words: the top-level message is
    generic, the budget and its numbers are in details.causes[].message, and a budget
    not computed yet says so with details.retryAfterSeconds."""
    try:
        body = json.loads(error.body)
    except (TypeError, ValueError):
        return f"{error.status} {error.reason}"
    details = body.get("details") or {}
    causes = [c["message"] for c in details.get("causes") or [] if c.get("message")]
    text = "; ".join(causes) or body.get("message") or f"{error.status} {error.reason}"
    if details.get("retryAfterSeconds"):
        text += f" (retry after {details['retryAfterSeconds']}s)"
    return text
