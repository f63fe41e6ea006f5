"""The EKS node group migration, one function per state of eks_nodegroup.asl.json.

Blue/green: a new AL2023 managed node group beside the AL2 one, the old nodes
tainted and cordoned, PDB-aware drain, the old group deleted last. Every function
reads the current state first, so a retry changes nothing twice.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from botocore.exceptions import ClientError
from kubernetes import client as k8s
from kubernetes.client import ApiClient

from migrator import clock
from migrator.aws import client_token, error_code, execution_name, launch_template_data
from migrator.config import EXECUTION_TAG
from migrator.eks import drain as draining
from migrator.eks.checks import AL2023_AMI_PARAMETER, node_checks, require_daemonsets
from migrator.eks.checks import ready as is_ready
from migrator.eks.kube import Kube
from migrator.eks.models import NodegroupInput
from migrator.eks.paths import BLUE_GREEN, update_path
from migrator.eks.results import (
    Check,
    Created,
    Deleted,
    Deleting,
    Drained,
    Preflight,
    Ready,
    Rollback,
    SourceConfig,
    Tainted,
    Validated,
)
from migrator.compat.checks import Compatibility
from migrator.compat.host import HostFacts
from migrator.compat.rules import evaluate
from migrator.eks.userdata import carried_scripts, kubelet_settings, nodeadm_user_data
from migrator.errors import DeadlineExceeded, NodegroupFailed, NotOurs, NotReadyYet, PreflightFailed
from migrator.failures import CaughtError, explain_failure

NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"
AL2_TAINT = {"key": "os", "value": "al2", "effect": "NoSchedule"}
SOURCE_NODEGROUP_TAG = "al2023-migration:source-nodegroup"


@dataclass(frozen=True)
class Clients:
    eks: object
    ec2: object
    ssm: object
    kube: Kube


def describe_nodegroup(eks, cluster: str, name: str) -> dict | None:
    try:
        return eks.describe_nodegroup(clusterName=cluster, nodegroupName=name)["nodegroup"]
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            return None
        raise


def created_by(group: dict, execution: str) -> bool:
    """A node group this execution created: it carries this execution's tag."""
    return (group.get("tags") or {}).get(EXECUTION_TAG) == execution_name(execution)


def drain_policy(request: NodegroupInput, execution: str) -> draining.DrainPolicy:
    return draining.DrainPolicy(execution=execution_name(execution), delete_bare_pods=request.delete_bare_pods,
                                delete_empty_dir_data=request.delete_empty_dir_data)


def nodes_of(kube: Kube, nodegroup: str) -> list:
    return kube.core.list_node(label_selector=f"{NODEGROUP_LABEL}={nodegroup}").items


# --- pre-flight ---------------------------------------------------------------------


def preflight(c: Clients, request: NodegroupInput, execution: str, tag_key: str, tag_value: str) -> Preflight:
    """Every check runs; all failures are reported together, before any change."""
    cluster = c.eks.describe_cluster(name=request.cluster_name)["cluster"]
    old = opted_in_nodegroup(c, request.cluster_name, request.nodegroup_name, tag_key, tag_value)
    base = {"cluster_version": cluster["version"], "old": request.nodegroup_name, "new": request.new_name}
    if old.get("amiType", "").startswith("AL2023"):
        return Preflight(**base, already_migrated=True, checks={"ami_type": old["amiType"]})
    checks, failures = {}, []

    def check(name: str, ok: bool, detail: str) -> None:
        checks[name] = Check(ok=ok, detail=detail)
        if not ok:
            failures.append(f"{name}: {detail}")

    try:
        c.ssm.get_parameter(Name=AL2023_AMI_PARAMETER.format(version=cluster["version"]))
        check("kubernetes_version", True, f"{cluster['version']} has EKS-optimized AL2023 AMIs")
    except ClientError:
        check("kubernetes_version", False, f"no EKS-optimized AL2023 AMI for Kubernetes {cluster['version']}")
    ami_type = old.get("amiType", "")
    check("al2_node_group", ami_type.startswith("AL2_") or ami_type == "CUSTOM", f"amiType {ami_type}")
    path, reason, _ = update_path(c.ec2, old)  # informs only: a custom-AMI group may also go blue/green
    check("path", True, reason if path == BLUE_GREEN else f"{reason}; blue/green as asked (eks-in-place would "
                                                          "keep the group)")
    nodes = nodes_of(c.kube, request.nodegroup_name)
    node_checks(c.eks, c.kube, request.cluster_name, nodes, request.pdb_blocks, check)
    _check_new_name(c, request, execution, check)
    _check_pods(c, request, {n.metadata.name for n in nodes}, execution, check)
    template = old.get("launchTemplate")
    user_data = None
    if template:
        encoded = launch_template_data(c.ec2, template["id"], template["version"]).get("UserData")
        user_data = base64.b64decode(encoded).decode(errors="replace") if encoded else None
    carried = carried_scripts(user_data)
    if carried:  # never dropped: only our launch template's nodeadm document can carry them
        check("user_data", request.launch_template == "custom",
              f"{len(carried)} script(s) besides bootstrap.sh go into the nodeadm document" if request.launch_template
              == "custom" else "the old user data runs more than bootstrap.sh; launch_template none would drop it: "
                               "use launch_template custom to carry it")
    if failures:
        raise PreflightFailed(f"{request.target} cannot be migrated: " + "; ".join(failures))
    findings = evaluate(HostFacts(user_data="\n".join(carried)))  # the carried scripts, checked statically
    pod_warnings = _pods_without_aws_identity(c, request, {n.metadata.name for n in nodes})
    return Preflight(
        **base,
        already_migrated=False,
        checks=checks,
        old_nodes=sorted(n.metadata.name for n in nodes),
        config=SourceConfig(
            subnets=old["subnets"],
            scaling_config=old["scalingConfig"],
            instance_types=old.get("instanceTypes") or [],
            capacity_type=old.get("capacityType", "ON_DEMAND"),
            labels=old.get("labels") or {},
            taints=old.get("taints") or [],
            node_role=old["nodeRole"],
            tags={k: v for k, v in (old.get("tags") or {}).items() if not k.startswith("aws:")},
        ),
        kubelet=kubelet_settings(user_data),
        old_launch_template=template,
        carried_scripts=carried,
        compatibility=Compatibility(instance_id=None, scanned=False, blockers=findings.names("blocker"),
                                    warnings=findings.names("warning") + pod_warnings, mode=request.compatibility)
        if carried or pod_warnings else None,
    )


def opted_in_nodegroup(c: Clients, cluster: str, name: str, tag_key: str, tag_value: str) -> dict:
    """The node group, refused in pre-flight when it does not exist or does not carry the opt-in tag."""
    group = describe_nodegroup(c.eks, cluster, name)
    if group is None:
        raise PreflightFailed(f"node group {name} not found in cluster {cluster}")
    if (group.get("tags") or {}).get(tag_key) != tag_value:
        raise PreflightFailed(f"node group {name} is not tagged {tag_key}={tag_value}; "
                              "the migration may only change tagged node groups")
    return group


def refusal_checks(c: Clients, nodes: set[str], policy: draining.DrainPolicy, check) -> list:
    """What a drain of `nodes` would refuse, named pod by pod (kubectl's refusals, which EKS's own
    drain does not make: it evicts them); returns the pods on those nodes."""
    pods = [p for p in c.kube.core.list_pod_for_all_namespaces().items if p.spec.node_name in nodes]
    budgets = c.kube.policy.list_pod_disruption_budget_for_all_namespaces().items
    for line in draining.describe_refusals(draining.refusals(pods, budgets, policy)):
        name, _, detail = line.partition(": ")
        check(name, False, detail)
    return pods


def _check_new_name(c: Clients, request: NodegroupInput, execution: str, check) -> None:
    """The new group is created beside the old one; a group of that name that this
    execution did not create is someone else's (resume is allowed, takeover is not)."""
    if request.new_name == request.nodegroup_name:
        check("new_nodegroup", False, f"the new group's name {request.new_name} is the old group's")
        return
    existing = describe_nodegroup(c.eks, request.cluster_name, request.new_name)
    ok = existing is None or created_by(existing, execution)
    check("new_nodegroup", ok, f"{request.new_name} is free" if existing is None else
          f"{request.new_name} was created by this execution" if ok else
          f"{request.new_name} already exists and this execution did not create it (no {EXECUTION_TAG} tag of "
          f"this run): choose another new_nodegroup_name")


def _check_pods(c: Clients, request: NodegroupInput, old_nodes: set[str], execution: str, check) -> None:
    """What a drain of the old nodes would refuse or never move, named pod by pod."""
    pods = refusal_checks(c, old_nodes, drain_policy(request, execution), check)
    pinned = sorted(draining.name_of(p) for p in pods if draining.evictable(p)
                    and request.nodegroup_name in (allowed := _pinned_to(p)) and request.new_name not in allowed)
    check("pinned_pods", not pinned,
          f"{', '.join(pinned[:10])} select {NODEGROUP_LABEL}={request.nodegroup_name} (node selector or required "
          f"affinity) and would never schedule on {request.new_name}" if pinned else "no pod is pinned to the old group")


IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"


def _pods_without_aws_identity(c: Clients, request: NodegroupInput, old_nodes: set[str]) -> list[str]:
    """Warnings: service accounts of pods on the old nodes with neither IRSA (the role-arn annotation)
    nor an EKS Pod Identity association. AL2023 requires IMDSv2 and, with hop limit 1, a pod's
    containers cannot reach IMDS: such pods lose the node role's credentials. Host-network pods
    (aws-node, kube-proxy) still reach it, so they are not listed."""
    if request.launch_template == "custom" and request.imds_hop_limit != 1:
        return []
    pods = [p for p in c.kube.core.list_pod_for_all_namespaces().items
            if p.spec.node_name in old_nodes and not p.spec.host_network]
    by_account: dict[tuple[str, str], list[str]] = {}
    for pod in pods:
        by_account.setdefault((pod.metadata.namespace, pod.spec.service_account_name or "default"), []).append(
            pod.metadata.name)
    warnings = []
    for (namespace, account), names in sorted(by_account.items()):
        try:
            annotations = c.kube.core.read_namespaced_service_account(account, namespace).metadata.annotations or {}
        except k8s.ApiException as error:
            if error.status != 404:
                raise
            annotations = {}
        if IRSA_ANNOTATION in annotations or c.eks.list_pod_identity_associations(
                clusterName=request.cluster_name, namespace=namespace, serviceAccount=account)["associations"]:
            continue
        names = sorted(names)
        warnings.append(f"pod-credentials: {namespace}/{account} ({', '.join(names[:3])}"
                        f"{f' and {len(names) - 3} more' if len(names) > 3 else ''}): neither IRSA nor EKS Pod "
                        "Identity; with IMDSv2 and hop limit 1 on AL2023 they lose the node role's credentials")
    return warnings


def _pinned_to(pod) -> set[str]:
    """The node groups a pod may only run on, by node selector or required node affinity."""
    groups = set()
    selected = (pod.spec.node_selector or {}).get(NODEGROUP_LABEL)
    if selected:
        groups.add(selected)
    affinity = pod.spec.affinity.node_affinity if pod.spec.affinity else None
    required = affinity.required_during_scheduling_ignored_during_execution if affinity else None
    for term in (required.node_selector_terms or []) if required else []:
        for expression in term.match_expressions or []:
            if expression.key == NODEGROUP_LABEL and expression.operator == "In":
                groups.update(expression.values or [])
    return groups


# --- the new group --------------------------------------------------------------------


def create_nodegroup(c: Clients, request: NodegroupInput, pre: Preflight, execution: str) -> Created:
    existing = describe_nodegroup(c.eks, request.cluster_name, request.new_name)
    if existing is not None and not created_by(existing, execution):
        raise NotOurs(f"node group {request.new_name} exists and this execution did not create it; it is left alone")
    if existing is not None:
        return Created(nodegroup=request.new_name, created=False, started_at=clock.now(),
                       launch_template=existing.get("launchTemplate"))
    config = pre.config
    spec = {
        "clusterName": request.cluster_name,
        "nodegroupName": request.new_name,
        "subnets": config.subnets,
        "scalingConfig": config.scaling_config,
        "capacityType": config.capacity_type,
        "labels": config.labels,
        "nodeRole": config.node_role,
        "amiType": request.ami_type,
        "tags": {**config.tags, EXECUTION_TAG: execution_name(execution),
                 SOURCE_NODEGROUP_TAG: request.nodegroup_name},
        "clientRequestToken": client_token(execution, "nodegroup"),
    }
    if config.taints:
        spec["taints"] = config.taints
    if config.instance_types:
        spec["instanceTypes"] = config.instance_types
    template = None
    if request.launch_template == "custom":
        template = _launch_template(c, request, pre, execution)
        spec["launchTemplate"] = template
    c.eks.create_nodegroup(**spec)
    return Created(nodegroup=request.new_name, created=True, started_at=clock.now(), launch_template=template)


def _launch_template(c: Clients, request: NodegroupInput, pre: Preflight, execution: str) -> dict:
    name = f"{request.cluster_name}-{request.new_name}"[:128]
    found = c.ec2.describe_launch_templates(Filters=[{"Name": "launch-template-name", "Values": [name]}])
    if found["LaunchTemplates"]:
        return {"id": found["LaunchTemplates"][0]["LaunchTemplateId"], "version": "1"}
    cluster = c.eks.describe_cluster(name=request.cluster_name)["cluster"]
    user_data = nodeadm_user_data(cluster, pre.kubelet, pre.carried_scripts)
    created = c.ec2.create_launch_template(
        LaunchTemplateName=name,
        ClientToken=client_token(execution, "launch-template"),
        LaunchTemplateData={
            "UserData": base64.b64encode(user_data.encode()).decode(),
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled",
                                "HttpPutResponseHopLimit": request.imds_hop_limit},
        },
        TagSpecifications=[{"ResourceType": "launch-template", "Tags": [
            {"Key": k, "Value": v} for k, v in pre.config.tags.items()]}],
    )["LaunchTemplate"]
    return {"id": created["LaunchTemplateId"], "version": "1"}


def wait_nodegroup(c: Clients, request: NodegroupInput, created: Created) -> Ready:
    group = describe_nodegroup(c.eks, request.cluster_name, request.new_name)
    if group is None:
        raise NodegroupFailed(f"node group {request.new_name} disappeared")
    status = group["status"]
    if status in ("CREATE_FAILED", "DEGRADED"):
        issues = "; ".join(i.get("message", i.get("code", "")) for i in (group.get("health") or {}).get("issues", []))
        raise NodegroupFailed(f"node group {request.new_name} is {status}: {issues}".rstrip(": "))
    if clock.now() - created.started_at > request.nodegroup_deadline_seconds:
        raise DeadlineExceeded(f"node group {request.new_name} not ready within {request.nodegroup_deadline_seconds}s")
    if status != "ACTIVE":
        raise NotReadyYet(f"node group {request.new_name} is {status}")
    desired = group["scalingConfig"]["desiredSize"]
    ready = [n.metadata.name for n in nodes_of(c.kube, request.new_name) if is_ready(n)]
    if len(ready) < desired:
        raise NotReadyYet(f"{len(ready)}/{desired} nodes of {request.new_name} Ready")
    return Ready(nodes=sorted(ready))


# --- taint, validate, drain, delete -----------------------------------------------------


def _ours(taint) -> bool:
    return (taint.key, taint.value, taint.effect) == (AL2_TAINT["key"], AL2_TAINT["value"], AL2_TAINT["effect"])


def _taints_without_ours(node) -> list[dict]:
    """The node's other taints as the API spells them (`timeAdded`, not `time_added`):
    the server drops fields it does not know."""
    serializer = ApiClient()
    return [serializer.sanitize_for_serialization(t) for t in (node.spec.taints or []) if not _ours(t)]


def set_node(kube: Kube, name: str, taints: list[dict], unschedulable: bool) -> None:
    """A JSON patch: unambiguous whatever patch strategy the server applies to lists
    (`add` replaces an existing member)."""
    kube.core.patch_node(name, [
        {"op": "add", "path": "/spec/taints", "value": taints},
        {"op": "add", "path": "/spec/unschedulable", "value": unschedulable},
    ])


def taint_old(c: Clients, request: NodegroupInput) -> Tainted:
    changed = []
    for node in nodes_of(c.kube, request.nodegroup_name):
        others = _taints_without_ours(node)
        if len(others) == len(node.spec.taints or []) or not node.spec.unschedulable:
            set_node(c.kube, node.metadata.name, others + [AL2_TAINT], True)
            changed.append(node.metadata.name)
    return Tainted(tainted=changed, taint=f"{AL2_TAINT['key']}={AL2_TAINT['value']}:{AL2_TAINT['effect']}")


def validate_new(c: Clients, request: NodegroupInput, pre: Preflight) -> Validated:
    """DaemonSet pods running on every new node; the new nodes take workloads
    (Ready, schedulable, no taint the old group did not have)."""
    nodes = nodes_of(c.kube, request.new_name)
    names = sorted(n.metadata.name for n in nodes)
    copied = {(t["key"], t.get("effect")) for t in pre.config.taints}
    for node in nodes:
        extra = [t.key for t in (node.spec.taints or []) if (t.key, t.effect) not in copied]
        if node.spec.unschedulable or extra or not is_ready(node):
            raise NotReadyYet(f"node {node.metadata.name} cannot take workloads yet ({extra or 'not ready'})")
    require_daemonsets(c.kube, names)
    return Validated(nodes=names, daemonsets_everywhere=True)
def drain_old(c: Clients, request: NodegroupInput, execution: str) -> Drained:
    nodes = [n.metadata.name for n in nodes_of(c.kube, request.nodegroup_name)]
    return draining.drain(c.kube, nodes, request.drain_batch_size, request.drain_deadline_seconds,
                          drain_policy(request, execution))


def delete_nodegroup(c: Clients, cluster: str, name: str, tag_key: str, tag_value: str) -> Deleting:
    """The old group, only while it still carries the opt-in tag (as IAM also requires)."""
    group = describe_nodegroup(c.eks, cluster, name)
    if group is not None and (group.get("tags") or {}).get(tag_key) != tag_value:
        raise NotOurs(f"node group {name} no longer carries {tag_key}={tag_value}; it is not deleted")
    if group is not None and group["status"] not in ("DELETING",):
        c.eks.delete_nodegroup(clusterName=cluster, nodegroupName=name)
    return Deleting(deleting=name, started_at=clock.now())


def wait_deleted(c: Clients, cluster: str, name: str) -> Deleted:
    group = describe_nodegroup(c.eks, cluster, name)
    if group is None:
        return Deleted(deleted=name)
    if group["status"] == "DELETE_FAILED":
        raise NodegroupFailed(f"deleting node group {name} failed")
    raise NotReadyYet(f"node group {name} is {group['status']}")


# --- rollback ----------------------------------------------------------------------------


def rollback(c: Clients, request: NodegroupInput, execution: str, error: CaughtError | None,
             failed_gate: str | None) -> Rollback:
    """Step by step, safe to repeat: old nodes untainted, uncordoned and their drain
    marks cleared; the new nodes cordoned and drained back in budget-aware batches;
    the new group deleted and gone. Only a new group this execution created is touched."""
    policy = drain_policy(request, execution)
    old_nodes = nodes_of(c.kube, request.nodegroup_name)
    for node in old_nodes:
        others = _taints_without_ours(node)
        if len(others) != len(node.spec.taints or []) or node.spec.unschedulable:
            set_node(c.kube, node.metadata.name, others, False)
    draining.clear_marks(c.kube, [n.metadata.name for n in old_nodes], policy.execution)
    group = describe_nodegroup(c.eks, request.cluster_name, request.new_name)
    ours = group is not None and created_by(group, execution)
    if ours and group["status"] != "DELETING":
        new_nodes = nodes_of(c.kube, request.new_name)
        for node in new_nodes:
            if not node.spec.unschedulable:
                set_node(c.kube, node.metadata.name, _taints_without_ours(node), True)
        # no workload pod may be left only on the new group: drain it back first, as the
        # forward drain does (a workload without a budget must not drop to zero at once)
        draining.drain(c.kube, [n.metadata.name for n in new_nodes], request.drain_batch_size,
                       request.drain_deadline_seconds, policy)
        c.eks.delete_nodegroup(clusterName=request.cluster_name, nodegroupName=request.new_name)
        raise NotReadyYet(f"deleting node group {request.new_name}")
    if ours:
        raise NotReadyYet(f"node group {request.new_name} is {group['status']}")
    name, message = explain_failure(error, failed_gate)
    removed = f"{request.new_name} removed" if group is None else f"{request.new_name} is not ours and was left alone"
    return Rollback(error=name, cause=f"{request.target} rolled back: the AL2 nodes serve again, "
                                      f"{removed}: {message}")
