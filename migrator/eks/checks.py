"""Checks every kind of EKS node migration shares (managed node group, self-managed group): the VPC CNI version,
the container runtime, disruption budgets, DaemonSet pods on new nodes, Ready nodes."""

from __future__ import annotations

import re

from botocore.exceptions import ClientError

from migrator.aws import error_code
from migrator.errors import NotReadyYet

MIN_VPC_CNI = (1, 16, 2)
AL2023_AMI_PARAMETER = "/aws/service/eks/optimized-ami/{version}/amazon-linux-2023/x86_64/standard/recommended/image_id"


def version_tuple(text: str) -> tuple[int, ...]:
    found = re.search(r"v?(\d+)\.(\d+)\.(\d+)", text or "")
    return tuple(int(x) for x in found.groups()) if found else (0, 0, 0)


def vpc_cni_version(eks, kube, cluster: str) -> str:
    """The vpc-cni add-on's version, else the aws-node DaemonSet's image tag."""
    try:
        return eks.describe_addon(clusterName=cluster, addonName="vpc-cni")["addon"]["addonVersion"]
    except ClientError as error:
        if error_code(error) != "ResourceNotFoundException":
            raise
    try:
        daemonset = kube.apps.read_namespaced_daemon_set("aws-node", "kube-system")
        return daemonset.spec.template.spec.containers[0].image.rsplit(":", 1)[-1]
    except Exception:  # no aws-node: an unusual CNI, reported as unknown
        return ""


def vpc_cni_ok(cni: str) -> tuple[bool, str]:
    return (version_tuple(cni) >= MIN_VPC_CNI,
            f"VPC CNI {cni or 'unknown'} (needs >= {'.'.join(map(str, MIN_VPC_CNI))})")


def docker_nodes(nodes: list) -> list[str]:
    """Nodes whose container runtime is Docker, which AL2023 does not support."""
    return sorted(n.metadata.name for n in nodes
                  if (n.status.node_info.container_runtime_version or "").startswith("docker"))


def zero_budgets(kube) -> list[str]:
    """Disruption budgets (namespace/name) that allow no disruption now."""
    return sorted(f"{p.metadata.namespace}/{p.metadata.name}"
                  for p in kube.policy.list_pod_disruption_budget_for_all_namespaces().items
                  if p.status and p.status.disruptions_allowed == 0)


def ready(node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or []))


def daemonsets_missing(kube, nodes: list[str]) -> list[str]:
    """`<DaemonSet> on <node>` for every DaemonSet without a Running pod on one of `nodes`."""
    missing = []
    pods = kube.core.list_pod_for_all_namespaces().items
    for daemonset in kube.apps.list_daemon_set_for_all_namespaces().items:
        running = {p.spec.node_name for p in pods if p.status.phase == "Running"
                   and any(o.kind == "DaemonSet" and o.name == daemonset.metadata.name
                           for o in (p.metadata.owner_references or []))}
        missing += [f"{daemonset.metadata.name} on {n}" for n in nodes if n not in running]
    return missing


def require_daemonsets(kube, nodes: list[str]) -> None:
    """NotReadyYet until every DaemonSet has a Running pod on each of `nodes`."""
    missing = daemonsets_missing(kube, nodes)
    if missing:
        raise NotReadyYet("DaemonSet pods not running yet: " + ", ".join(missing[:5]))


def node_checks(eks, kube, cluster: str, nodes: list, pdb_blocks: bool, check) -> None:
    """What AL2023 nodes need of the cluster and of a group's nodes, whichever path the group takes: the VPC CNI
    version, no Docker runtime, disruption budgets that allow progress (unless `pdb_blocks` is off)."""
    check("vpc_cni", *vpc_cni_ok(vpc_cni_version(eks, kube, cluster)))
    docker = docker_nodes(nodes)
    check("container_runtime", not docker, f"Docker on {docker}" if docker else "containerd on every node")
    zero = zero_budgets(kube)
    check("disruption_budgets", not (zero and pdb_blocks),
          f"allow no disruption: {zero}" if zero else "every budget allows a disruption")
