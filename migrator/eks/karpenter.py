"""The Karpenter pool migration, one function per task of eks_karpenter.asl.json.

The pool's EC2NodeClass is changed from AL2 to AL2023 through the Kubernetes API (v1: `amiSelectorTerms:
[{alias: al2023@latest}]`; v1beta1: `amiFamily: AL2023`), its user data carried into the AL2023 (nodeadm)
form; Karpenter's drift then replaces the pool's nodes within its disruption budgets, and the run follows it.
The change is recorded on the EC2NodeClass itself (an annotation with the previous values), so a retried
change or rollback reads what this execution did; a rollback restores only the fields we changed, and only
while they still hold what we wrote.
"""

from __future__ import annotations

import json
import math
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import yaml
from kubernetes import client as k8s

from migrator import clock
from migrator.aws import execution_name
from migrator.eks import drain as draining
from migrator.eks.checks import node_checks, ready
from migrator.eks.karpenter_models import (
    AmiSelection,
    Changed,
    Drifted,
    KarpenterInput,
    KarpenterPreflight,
    KarpenterRollback,
)
from migrator.eks.kube import Kube
from migrator.eks.results import Check
from migrator.eks.userdata import BOUNDARY, carried_scripts, kubelet_settings
from migrator.errors import ConcurrentChange, DeadlineExceeded, NotReadyYet, PreflightFailed
from migrator.failures import CaughtError, explain_failure

CORE, AWS = "karpenter.sh", "karpenter.k8s.aws"
NODECLASS_CRD = f"ec2nodeclasses.{AWS}"
NODEPOOL_LABEL = "karpenter.sh/nodepool"
DISRUPTED_TAINTS = ("karpenter.sh/disrupted", "karpenter.sh/disruption")  # v1, v1beta1
CHANGED = "al2023-migration/changed"  # annotation: {"execution", "at", "previous", "applied"}
AL2023_ALIAS = "al2023@latest"
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"  # a pod annotation that keeps its node from drift
DEFAULT_BUDGET = "10%"  # Karpenter's default when a NodePool sets no budgets


def _drain_policy(request: KarpenterInput, execution: str) -> draining.DrainPolicy:
    return draining.DrainPolicy(execution=execution_name(execution), delete_bare_pods=request.delete_bare_pods,
                                delete_empty_dir_data=request.delete_empty_dir_data)


def served_version(kube: Kube) -> tuple[str | None, list[str]]:
    """The EC2NodeClass version the cluster serves (its CRD's storage version) and the amiFamily values that
    version's schema accepts."""
    try:
        crd = kube.extensions.read_custom_resource_definition(NODECLASS_CRD)
    except k8s.ApiException as error:
        if error.status == 404:
            return None, []
        raise
    served = [v for v in crd.spec.versions if v.served]
    version = next((v for v in served if v.storage), served[0] if served else None)
    if version is None:
        return None, []
    spec = ((version.schema.open_apiv3_schema.properties or {}).get("spec") if version.schema else None)
    family = (spec.properties or {}).get("amiFamily") if spec else None
    return version.name, list(family.enum or []) if family else []


def _get(kube: Kube, version: str, plural: str, name: str) -> dict | None:
    group = CORE if plural == "nodepools" else AWS
    try:
        return kube.custom.get_cluster_custom_object(group, version, plural, name)
    except k8s.ApiException as error:
        if error.status == 404:
            return None
        raise


def nodes_of(kube: Kube, pool: str) -> list:
    return kube.core.list_node(label_selector=f"{NODEPOOL_LABEL}={pool}").items


def on_al2023(node) -> bool:
    return (node.status.node_info.os_image or "").startswith("Amazon Linux 2023")


def _disrupting(node) -> bool:
    return bool(node.spec.unschedulable) or any(t.key in DISRUPTED_TAINTS for t in (node.spec.taints or []))


def family_of(spec: dict) -> str | None:
    for term in spec.get("amiSelectorTerms") or []:
        if term.get("alias"):
            family = term["alias"].split("@", 1)[0]
            return {"al2": "AL2", "al2023": "AL2023"}.get(family, family)
    return spec.get("amiFamily")


# --- user data ------------------------------------------------------------------------------


def al2023_user_data(old: str | None) -> str | None:
    """The AL2 user data in the form Karpenter merges for AL2023: a MIME multipart document with a nodeadm
    `NodeConfig` carrying the kubelet settings the script gave bootstrap.sh (Karpenter adds the cluster's
    endpoint, CA and CIDR itself), then the old scripts without their bootstrap.sh call (AL2023 has none)
    as shell-script parts (`carried_scripts`, as every AL2023 path carries them)."""
    if not old or not old.strip():
        return old
    kubelet, scripts = kubelet_settings(old), carried_scripts(old)
    if not kubelet and not scripts:
        return None
    document = MIMEMultipart(boundary=BOUNDARY)
    if kubelet:
        config = {"apiVersion": "node.eks.aws/v1alpha1", "kind": "NodeConfig", "spec": {"kubelet": kubelet}}
        part = MIMEText(yaml.safe_dump(config, sort_keys=False))
        part.replace_header("Content-Type", "application/node.eks.aws")
        document.attach(part)
    for script in scripts:
        document.attach(MIMEText(script, "x-shellscript"))
    return document.as_string()


def _wanted(version: str, current: AmiSelection) -> AmiSelection:
    if family_of(current.model_dump()) == "AL2023":  # changed already (AL2 nodes still drifting): keep it
        return current
    user_data = al2023_user_data(current.userData)
    if version == "v1":  # the alias names the family; another amiFamily (AL2) would contradict it
        family = current.amiFamily if current.amiFamily not in (None, "AL2") else None
        return AmiSelection(amiFamily=family, amiSelectorTerms=[{"alias": AL2023_ALIAS}], userData=user_data)
    # v1beta1: terms selecting AL2 images by id or tag would keep them; without terms Karpenter takes the
    # EKS-optimized AL2023 AMI for the cluster version
    return AmiSelection(amiFamily="AL2023", amiSelectorTerms=None, userData=user_data)


# --- pre-flight -------------------------------------------------------------------------------


def allowed_disruptions(nodepool: dict, nodes: int) -> tuple[int, list[str]]:
    """How many nodes Karpenter may drift at once under the pool's budgets, and the scheduled budgets (which
    may allow fewer within their windows). A percentage is of the pool's nodes, rounded up."""
    budgets = (nodepool.get("spec", {}).get("disruption") or {}).get("budgets")
    if budgets is None:
        budgets = [{"nodes": DEFAULT_BUDGET}]
    allowed, scheduled = None, []
    for budget in budgets:
        if "Drifted" not in budget.get("reasons", ["Drifted"]):
            continue
        value = str(budget.get("nodes", DEFAULT_BUDGET))
        count = math.ceil(nodes * int(value[:-1]) / 100) if value.endswith("%") else int(value)
        if budget.get("schedule"):
            scheduled.append(f"{value} during {budget['schedule']} for {budget.get('duration', '?')}")
            continue
        allowed = count if allowed is None else min(allowed, count)
    return (nodes if allowed is None else allowed), scheduled


def preflight(eks, kube: Kube, request: KarpenterInput, execution: str, tag_key: str,
              tag_value: str) -> KarpenterPreflight:
    """Only a pool whose EC2NodeClass tags its instances with the opt-in tag (`spec.tags`, so discovery sees
    them opted in) is ours to change. Every other check runs; all failures are reported together, before
    any change."""
    version, families = served_version(kube)
    if version is None:
        raise PreflightFailed(f"{request.target}: Karpenter's EC2NodeClass API is not installed in the cluster")
    nodepool = _get(kube, version, "nodepools", request.nodepool_name)
    if nodepool is None:
        raise PreflightFailed(f"{request.target}: NodePool {request.nodepool_name} not found ({CORE}/{version})")
    nodeclass_name = nodepool["spec"]["template"]["spec"]["nodeClassRef"]["name"]
    nodeclass = _get(kube, version, "ec2nodeclasses", nodeclass_name)
    if nodeclass is None:
        raise PreflightFailed(f"{request.target}: EC2NodeClass {nodeclass_name} not found")
    if (nodeclass["spec"].get("tags") or {}).get(tag_key) != tag_value:
        raise PreflightFailed(f"{request.target}: EC2NodeClass {nodeclass_name} does not tag its instances "
                              f"{tag_key}={tag_value} (spec.tags); the migration may only change opted-in pools")
    current = AmiSelection.of(nodeclass["spec"])
    checks, failures = {}, []

    def check(name: str, ok: bool, detail: str) -> None:
        checks[name] = Check(ok=ok, detail=detail)
        if not ok:
            failures.append(f"{name}: {detail}")

    base = {"api_version": version, "nodeclass": nodeclass_name, "current": current,
            "resource_version": nodeclass["metadata"]["resourceVersion"]}
    nodes = nodes_of(kube, request.nodepool_name)
    al2 = sorted(n.metadata.name for n in nodes if not on_al2023(n))
    if family_of(nodeclass["spec"]) == "AL2023" and not al2:
        check("ami_family", True, f"EC2NodeClass {nodeclass_name} already selects AL2023")
        return KarpenterPreflight(**base, already_migrated=True, checks=checks)
    supported = version == "v1" or "AL2023" in families
    check("karpenter_version", supported,
          f"{AWS}/{version} selects AL2023 by amiSelectorTerms alias {AL2023_ALIAS}" if version == "v1" else
          f"{AWS}/{version} accepts amiFamily AL2023" if supported else
          f"{AWS}/{version} accepts amiFamily {families}, not AL2023: upgrade Karpenter first")
    check("ami_family", family_of(nodeclass["spec"]) in ("AL2", "AL2023"),
          f"EC2NodeClass {nodeclass_name} selects {family_of(nodeclass['spec'])}")
    sharing = sorted(p["metadata"]["name"] for p in kube.custom.list_cluster_custom_object(
        CORE, version, "nodepools").get("items", [])
        if p["metadata"]["name"] != request.nodepool_name
        and p["spec"]["template"]["spec"]["nodeClassRef"]["name"] == nodeclass_name)
    check("nodeclass_shared", not sharing,
          f"EC2NodeClass {nodeclass_name} is also used by NodePools {sharing}: changing it drifts them too"
          if sharing else f"EC2NodeClass {nodeclass_name} is used by {request.nodepool_name} only")
    node_checks(eks, kube, request.cluster_name, nodes, request.pdb_blocks, check)  # VPC CNI, Docker, PDBs
    allowed, scheduled = allowed_disruptions(nodepool, len(nodes))
    check("nodepool_budgets", allowed > 0 or not nodes,
          (f"Karpenter may replace {allowed} of {len(nodes)} nodes at a time" if allowed > 0 else
           "no nodes now: the pool's next nodes launch on AL2023" if not nodes else
           f"the NodePool's budgets allow no drift ({len(nodes)} nodes): drift would never progress")
          + (f"; scheduled budgets {scheduled}" if scheduled else ""))
    names = {n.metadata.name for n in nodes}
    pods = [p for p in kube.core.list_pod_for_all_namespaces().items if p.spec.node_name in names]
    budgets = kube.policy.list_pod_disruption_budget_for_all_namespaces().items
    pinned = sorted(draining.name_of(p) for p in pods if draining.evictable(p)
                    and (p.metadata.annotations or {}).get(DO_NOT_DISRUPT) == "true")
    check("do_not_disrupt", not pinned,
          f"{', '.join(pinned[:10])} carry {DO_NOT_DISRUPT}=true: Karpenter never drifts the nodes they run on"
          if pinned else f"no pod of the pool carries {DO_NOT_DISRUPT}")
    for line in draining.describe_refusals(draining.refusals(pods, budgets, _drain_policy(request, execution))):
        name, _, detail = line.partition(": ")
        check(name, False, detail)
    if failures:
        raise PreflightFailed(f"{request.target} cannot be migrated: " + "; ".join(failures))
    wanted = _wanted(version, current)
    checks["user_data"] = Check(ok=True, detail="none" if not current.userData else
                                "carried into a nodeadm NodeConfig and a shell-script part (bootstrap.sh lines "
                                "dropped)")
    return KarpenterPreflight(**base, already_migrated=False, checks=checks, wanted=wanted, al2_nodes=al2,
                              disruptions_allowed=allowed)


# --- the change --------------------------------------------------------------------------------


def _mark(nodeclass: dict) -> dict | None:
    try:
        mark = json.loads((nodeclass["metadata"].get("annotations") or {}).get(CHANGED) or "null")
    except ValueError:
        return None
    return mark if isinstance(mark, dict) else None


def change_nodeclass(kube: Kube, request: KarpenterInput, pre: KarpenterPreflight, execution: str) -> Changed:
    """A JSON merge patch carrying the resourceVersion read at pre-flight: if anyone changed the EC2NodeClass
    since (while the gate waited), the API server answers 409 and nothing is changed."""
    name = execution_name(execution)
    nodeclass = _get(kube, pre.api_version, "ec2nodeclasses", pre.nodeclass)
    if nodeclass is None:
        raise ConcurrentChange(f"EC2NodeClass {pre.nodeclass} was deleted since pre-flight")
    mark = _mark(nodeclass)
    if mark and mark.get("execution") == name:  # a retry: the change is made
        return Changed(nodeclass=pre.nodeclass, previous=AmiSelection(**mark["previous"]),
                       applied=AmiSelection(**mark["applied"]), at=mark["at"],
                       resource_version=nodeclass["metadata"]["resourceVersion"])
    now = clock.now()
    record = {"execution": name, "at": now, "previous": pre.current.model_dump(mode="json"),
              "applied": pre.wanted.model_dump(mode="json")}
    patch = {"metadata": {"resourceVersion": pre.resource_version, "annotations": {CHANGED: json.dumps(record)}},
             "spec": pre.wanted.as_patch()}
    try:
        changed = kube.custom.patch_cluster_custom_object(AWS, pre.api_version, "ec2nodeclasses", pre.nodeclass, patch)
    except k8s.ApiException as error:
        if error.status == 409:
            raise ConcurrentChange(
                f"EC2NodeClass {pre.nodeclass} changed since pre-flight (resourceVersion {pre.resource_version} is "
                f"stale): nothing was changed; run again to check it anew") from None
        raise
    return Changed(nodeclass=pre.nodeclass, previous=pre.current, applied=pre.wanted, at=now,
                   resource_version=changed["metadata"]["resourceVersion"])


# --- following the drift -------------------------------------------------------------------------


def _progress(kube: Kube, pool: str, stale) -> tuple[list, str]:
    """The nodes still to replace (`stale(node)`), those Karpenter is draining with the budgets that block
    them, and new nodes not Ready: a line an operator reads."""
    nodes = nodes_of(kube, pool)
    left = sorted(n.metadata.name for n in nodes if stale(n))
    not_ready = sorted(n.metadata.name for n in nodes if not ready(n))
    parts = [f"{len(left)} of {len(nodes)} nodes of {pool} still to replace" + (f": {left[:10]}" if left else "")]
    blocked = []
    budgets = None
    for node in sorted((n for n in nodes if _disrupting(n)), key=lambda n: n.metadata.name):
        pods = [p for p in draining.pods_on(kube, node.metadata.name)
                if draining.evictable(p) and p.metadata.deletion_timestamp is None]
        if budgets is None:
            budgets = kube.policy.list_pod_disruption_budget_for_all_namespaces().items
        zero = sorted({name for p in pods for name in draining.covering_budgets(
            p, [b for b in budgets if b.status and b.status.disruptions_allowed == 0])})
        if zero:
            blocked.append(f"{node.metadata.name} (pods {', '.join(draining.name_of(p) for p in pods[:5])}; "
                           f"budgets {', '.join(zero)} allow 0)")
    if blocked:
        parts.append("drain blocked by PodDisruptionBudgets on " + "; ".join(blocked))
    if not_ready:
        parts.append(f"not Ready: {not_ready[:10]}")
    done = not left and not not_ready and not any(_disrupting(n) for n in nodes)
    return (nodes if done else []), "; ".join(parts)


def check_drift(kube: Kube, request: KarpenterInput, changed: Changed) -> Drifted:
    """NotReadyYet while AL2 nodes remain (or replacements are not Ready, or nodes are being drained);
    DeadlineExceeded past the input's deadline, naming what is left and what blocks it."""
    nodes, progress = _progress(kube, request.nodepool_name, lambda n: not on_al2023(n))
    if nodes:
        return Drifted(nodes=sorted(n.metadata.name for n in nodes), at=clock.now())
    if clock.now() - changed.at > request.drift_deadline_seconds:
        raise DeadlineExceeded(f"drift of {request.target} not done within {request.drift_deadline_seconds}s: "
                               + progress)
    raise NotReadyYet(progress)


# --- rollback --------------------------------------------------------------------------------------


def rollback(kube: Kube, request: KarpenterInput, pre: KarpenterPreflight | None, execution: str,
             error: CaughtError | None, failed_gate: str | None) -> KarpenterRollback:
    """The EC2NodeClass's fields we changed get their previous values back, only while they still hold what we
    wrote (else ConcurrentChange: someone else's change is never overwritten); then NotReadyYet until
    Karpenter has drifted the pool back (no AL2023 node left, none being drained, every node Ready)."""
    name, message = explain_failure(error, failed_gate)
    nodeclass = _get(kube, pre.api_version, "ec2nodeclasses", pre.nodeclass) if pre else None
    mark = _mark(nodeclass) if nodeclass else None
    if not mark or mark.get("execution") != execution_name(execution):
        return KarpenterRollback(error=name, cause=f"{request.target}: nothing was changed; the pool serves on "
                                                   f"AL2 as before: {message}")
    previous, applied = AmiSelection(**mark["previous"]), AmiSelection(**mark["applied"])
    current = AmiSelection.of(nodeclass["spec"])
    if current != previous:
        if current != applied:
            raise ConcurrentChange(
                f"EC2NodeClass {pre.nodeclass} was changed by someone else after our change "
                f"(now {current.model_dump(exclude_none=True, exclude={'userData'})}): it is left as it is; "
                f"restore {previous.model_dump(exclude_none=True, exclude={'userData'})} by hand if wanted")
        patch = {"metadata": {"resourceVersion": nodeclass["metadata"]["resourceVersion"]},
                 "spec": previous.as_patch()}
        try:
            kube.custom.patch_cluster_custom_object(AWS, pre.api_version, "ec2nodeclasses", pre.nodeclass, patch)
        except k8s.ApiException as failure:
            if failure.status == 409:
                raise ConcurrentChange(f"EC2NodeClass {pre.nodeclass} changed while the rollback restored it; "
                                       "it is left as it is") from None
            raise
    back_to = family_of(previous.model_dump()) or "AL2"
    nodes, progress = _progress(kube, request.nodepool_name, lambda n: on_al2023(n) != (back_to == "AL2023"))
    if not nodes:
        raise NotReadyYet(f"Karpenter drifts back to {back_to}: " + progress)
    return KarpenterRollback(error=name, cause=f"{request.target} rolled back: EC2NodeClass {pre.nodeclass} "
                                               f"restored, {len(nodes)} nodes on {back_to} again: {message}")
