"""The self-managed node group migration, one function per state of eks_self_managed.asl.json.

A self-managed node group is an Auto Scaling group whose AL2 instances join the cluster through bootstrap.sh. The
migration gives the group a new launch-template version (the EKS-optimized AL2023 AMI of the cluster's version,
nodeadm `NodeConfig` user data carrying bootstrap.sh's kubelet settings and the rest of the old script, IMDSv2),
proves it with a canary node (+1 desired capacity: the node must join, turn Ready and run every DaemonSet), and
after the `before-drain` approval replaces the old nodes one at a time: cordon, PDB-aware drain, and only then
TerminateInstanceInAutoScalingGroup without decrementing, so the group launches an AL2023 instance in its place.

Why the workflow drives drain-then-terminate itself, rather than:
- an instance refresh with a termination lifecycle hook: the hook's heartbeat timeout ends in the instance's
  termination whatever the drain achieved (CONTINUE or ABANDON both terminate), so a PDB that blocks the drain
  would cost pods instead of failing safely; and the refresh replaces in batches the drain does not pace;
- blue/green with a second group: it doubles the group's capacity (and the instance quota) for the whole
  migration, and the group's owners (scaling policies, other tools naming the group) would have to move to it.
Here a blocked drain stops with the old node still serving, and a rollback replaces AL2023 nodes the same way.

Every function reads the group and the cluster first, so a retry changes nothing twice.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from migrator import clock
from migrator.ami import OsFamily, describe_images, os_family
from migrator.asg.rollout import describe_group, instance_version, resolve_version_number, version_description
from migrator.aws import execution_digest, execution_name, launch_template_data
from migrator.config import CANARY_TAG
from migrator.eks import drain as draining
from migrator.eks.checks import (
    AL2023_AMI_PARAMETER,
    daemonsets_missing,
    docker_nodes,
    ready,
    vpc_cni_ok,
    vpc_cni_version,
    zero_budgets,
)
from migrator.eks.kube import Kube
from migrator.eks.results import Check
from migrator.eks.self_managed_models import (
    Canary,
    CanaryCapacity,
    CanaryNode,
    Finalized,
    LaunchVersion,
    Preflight,
    Replaced,
    Rollback,
    SelfManagedInput,
    Settled,
)
from migrator.eks.userdata import carried_scripts, kubelet_settings, nodeadm_user_data
from migrator.errors import CanaryUnhealthy, DeadlineExceeded, NotReadyYet, PreflightFailed
from migrator.failures import CaughtError, explain_failure

CORDONED_BY = "al2023-migration/cordoned-by"  # node annotation: this execution cordoned it, and uncordons it


@dataclass(frozen=True)
class Clients:
    autoscaling: object
    ec2: object
    eks: object
    ssm: object
    kube: Kube


def drain_policy(request: SelfManagedInput, execution: str) -> draining.DrainPolicy:
    return draining.DrainPolicy(execution=execution_name(execution), delete_bare_pods=request.delete_bare_pods,
                                delete_empty_dir_data=request.delete_empty_dir_data)


# --- the group's instances and their nodes -----------------------------------------------------


def _instance_of(node) -> str:
    """aws:///<zone>/<instance id>: the kubelet registers its instance as providerID."""
    return (node.spec.provider_id or "").rsplit("/", 1)[-1]


def group_nodes(kube: Kube, group: dict) -> dict[str, object]:
    """The Node of each instance of the group that has joined, by instance id."""
    members = {i["InstanceId"] for i in group.get("Instances", [])}
    return {_instance_of(n): n for n in kube.core.list_node().items if _instance_of(n) in members}


def _old(pre: Preflight, instance: dict) -> bool:
    return instance_version(instance) == pre.original_version


def capacity_mark(group: dict, execution: str) -> CanaryCapacity | None:
    """What this execution's canary added to the group, while the group still carries its mark."""
    value = next((t["Value"] for t in group.get("Tags", []) if t["Key"] == CANARY_TAG), None)
    try:
        mark = CanaryCapacity.model_validate_json(value) if value else None
    except ValueError:
        return None  # another tool's value: not ours
    return mark if mark and mark.execution == execution_digest(execution) else None


def _settled(c: Clients, group: dict, pre: Preflight) -> tuple[list[str], str | None]:
    """Every instance InService with its node joined and Ready, as many as the group wants, and every DaemonSet
    running on each node. Returns the nodes and what is still missing (None when settled)."""
    instances = group.get("Instances", [])
    if len(instances) != group["DesiredCapacity"]:
        return [], f"{len(instances)}/{group['DesiredCapacity']} instances in {group['AutoScalingGroupName']}"
    pending = [i["InstanceId"] for i in instances if i["LifecycleState"] != "InService"]
    if pending:
        return [], f"instances {pending} not InService yet"
    nodes = group_nodes(c.kube, group)
    absent = sorted({i["InstanceId"] for i in instances} - set(nodes))
    if absent:
        return [], f"instances {absent} have not joined cluster {pre.cluster_name} yet"
    not_ready = sorted(n.metadata.name for n in nodes.values() if not ready(n))
    if not_ready:
        return [], f"nodes {not_ready} are not Ready"
    names = sorted(n.metadata.name for n in nodes.values())
    missing = daemonsets_missing(c.kube, names)
    if missing:
        return [], "DaemonSet pods not running yet: " + ", ".join(missing[:5])
    return names, None


# --- pre-flight -------------------------------------------------------------------------------


def preflight(c: Clients, request: SelfManagedInput, execution: str, tag_key: str, tag_value: str) -> Preflight:
    """Every check runs; all failures are reported together, before any change."""
    cluster = c.eks.describe_cluster(name=request.cluster_name)["cluster"]
    group = describe_group(c.autoscaling, request.group_name)
    tags = {t["Key"]: t["Value"] for t in group.get("Tags", [])}
    if tags.get(tag_key) != tag_value:
        raise PreflightFailed(f"group {request.group_name} is not tagged {tag_key}={tag_value}; "
                              "the migration may only change tagged groups")
    if group.get("LaunchConfigurationName") or group.get("MixedInstancesPolicy") or not group.get("LaunchTemplate"):
        raise PreflightFailed(f"group {request.group_name} has no plain launch template (launch configuration or "
                              "mixed instances policy): give it one first")
    spec = group["LaunchTemplate"]
    template_id, restore = spec["LaunchTemplateId"], str(spec.get("Version") or "$Default")
    version = resolve_version_number(c.ec2, template_id, restore)
    data = launch_template_data(c.ec2, template_id, version)
    images = describe_images(c.ec2, [data["ImageId"]])
    base = {"cluster_name": request.cluster_name, "cluster_version": cluster["version"], "template_id": template_id,
            "original_version": version, "restore_version": restore, "original_image_id": data["ImageId"],
            "desired": group["DesiredCapacity"], "max_size": group["MaxSize"]}
    if os_family(images.get(data["ImageId"], {})) is OsFamily.AL2023 and all(
            instance_version(i) == version for i in group.get("Instances", [])):
        return Preflight(**base, already_migrated=True, checks={"image": data["ImageId"]})
    checks, failures = {}, []

    def check(name: str, ok: bool, detail: str) -> None:
        checks[name] = Check(ok=ok, detail=detail)
        if not ok:
            failures.append(f"{name}: {detail}")

    parameter = AL2023_AMI_PARAMETER.format(version=cluster["version"])
    try:
        c.ssm.get_parameter(Name=parameter)
        check("kubernetes_version", True, f"{cluster['version']} has EKS-optimized AL2023 AMIs")
    except c.ssm.exceptions.ParameterNotFound:
        check("kubernetes_version", False, f"no EKS-optimized AL2023 AMI for Kubernetes {cluster['version']}")
    user_data = base64.b64decode(data.get("UserData") or "").decode(errors="replace")
    check("bootstrap", "bootstrap.sh" in user_data,
          "the user data calls bootstrap.sh" if "bootstrap.sh" in user_data else
          "the user data does not call /etc/eks/bootstrap.sh: its kubelet settings cannot be carried over")
    check("vpc_cni", *vpc_cni_ok(vpc_cni_version(c.eks, c.kube, request.cluster_name)))
    nodes = group_nodes(c.kube, group)
    docker = docker_nodes(list(nodes.values()))
    check("container_runtime", not docker, f"Docker on {docker}" if docker else "containerd on every node")
    zero = zero_budgets(c.kube)
    check("disruption_budgets", not (zero and request.pdb_blocks),
          f"allow no disruption: {zero}" if zero else "every budget allows a disruption")
    names = {n.metadata.name for n in nodes.values()}
    pods = [p for p in c.kube.core.list_pod_for_all_namespaces().items if p.spec.node_name in names]
    budgets = c.kube.policy.list_pod_disruption_budget_for_all_namespaces().items
    for line in draining.describe_refusals(draining.refusals(pods, budgets, drain_policy(request, execution))):
        name, _, detail = line.partition(": ")
        check(name, False, detail)
    if failures:
        raise PreflightFailed(f"{request.target} cannot be migrated: " + "; ".join(failures))
    return Preflight(**base, already_migrated=False, checks=checks, old_nodes=sorted(names),
                     kubelet=kubelet_settings(user_data))


# --- the new launch-template version -----------------------------------------------------------


def create_version(c: Clients, request: SelfManagedInput, pre: Preflight, execution: str) -> LaunchVersion:
    """From the old version (SourceVersion): the AL2023 AMI, nodeadm user data and IMDSv2 replace its own."""
    image_id = c.ssm.get_parameter(Name=AL2023_AMI_PARAMETER.format(version=pre.cluster_version))["Parameter"]["Value"]
    description = version_description(execution, request.group_name)
    for page in c.ec2.get_paginator("describe_launch_template_versions").paginate(
            LaunchTemplateId=pre.template_id, Filters=[{"Name": "image-id", "Values": [image_id]}]):
        for existing in page["LaunchTemplateVersions"]:
            if existing.get("VersionDescription") == description:
                return LaunchVersion(version=str(existing["VersionNumber"]), image_id=image_id, created=False)
    data = launch_template_data(c.ec2, pre.template_id, pre.original_version)
    cluster = c.eks.describe_cluster(name=request.cluster_name)["cluster"]
    old_script = base64.b64decode(data.get("UserData") or "").decode(errors="replace")
    user_data = nodeadm_user_data(cluster, pre.kubelet, carried_scripts(old_script))
    # LaunchTemplateData replaces whole top-level keys of the source version: the metadata options are merged
    created = c.ec2.create_launch_template_version(
        LaunchTemplateId=pre.template_id,
        SourceVersion=pre.original_version,
        VersionDescription=description,
        LaunchTemplateData={
            "ImageId": image_id,
            "UserData": base64.b64encode(user_data.encode()).decode(),
            "MetadataOptions": {**data.get("MetadataOptions", {}), "HttpTokens": "required",
                                "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": request.imds_hop_limit},
        },
    )["LaunchTemplateVersion"]
    return LaunchVersion(version=str(created["VersionNumber"]), image_id=image_id, created=True)


# --- the canary ---------------------------------------------------------------------------------


def start_canary(c: Clients, request: SelfManagedInput, pre: Preflight, ver: LaunchVersion,
                 execution: str) -> Canary:
    """The group on the new version, one more instance: the group launches it from that version. The mark
    (what the canary adds) goes on the group first, so whatever happens next a later step knows what was ours;
    a retry after a partial attempt finishes what the mark says."""
    name = request.group_name
    group = describe_group(c.autoscaling, name)
    mark = capacity_mark(group, execution)
    changed = mark is None
    if mark is None:
        full = group["DesiredCapacity"] + 1 > group["MaxSize"]
        mark = CanaryCapacity(execution=execution_digest(execution), desired=group["DesiredCapacity"] + 1,
                              raised_max_to=group["MaxSize"] + 1 if full else None)
        c.autoscaling.create_or_update_tags(Tags=[{
            "ResourceId": name, "ResourceType": "auto-scaling-group", "Key": CANARY_TAG,
            "Value": mark.model_dump_json(), "PropagateAtLaunch": False}])
    raise_max = mark.raised_max_to is not None and group["MaxSize"] < mark.raised_max_to
    if str((group.get("LaunchTemplate") or {}).get("Version")) != ver.version or raise_max:
        c.autoscaling.update_auto_scaling_group(
            AutoScalingGroupName=name, LaunchTemplate={"LaunchTemplateId": pre.template_id, "Version": ver.version},
            **({"MaxSize": mark.raised_max_to} if raise_max else {}))
    if group["DesiredCapacity"] < mark.desired:
        c.autoscaling.set_desired_capacity(AutoScalingGroupName=name, DesiredCapacity=mark.desired,
                                           HonorCooldown=False)
    return Canary(capacity=mark, started_at=clock.now(), changed=changed)


def check_canary(c: Clients, request: SelfManagedInput, pre: Preflight, ver: LaunchVersion,
                 canary: Canary) -> CanaryNode:
    """NotReadyYet until an instance of the new version is InService, its node joined and Ready, every DaemonSet
    running on it; CanaryUnhealthy, naming how far it got, after canary_deadline_seconds."""
    waited = clock.now() - canary.started_at
    group = describe_group(c.autoscaling, request.group_name)
    new = sorted((i for i in group.get("Instances", []) if instance_version(i) == ver.version),
                 key=lambda i: i["InstanceId"])
    nodes = group_nodes(c.kube, group)
    problem = None
    if not new:
        problem = f"no instance of version {ver.version} in {request.group_name} yet"
    else:
        instance = new[0]
        node = nodes.get(instance["InstanceId"])
        if instance["LifecycleState"] != "InService":
            problem = f"canary {instance['InstanceId']} is {instance['LifecycleState']}"
        elif node is None:
            problem = f"canary {instance['InstanceId']} has not joined cluster {request.cluster_name}"
        elif not ready(node):
            problem = f"canary node {node.metadata.name} ({instance['InstanceId']}) joined but is not Ready"
        else:
            missing = daemonsets_missing(c.kube, [node.metadata.name])
            if missing:
                problem = "DaemonSet pods not running on the canary: " + ", ".join(missing[:5])
            else:
                names = sorted(d.metadata.name for d in c.kube.apps.list_daemon_set_for_all_namespaces().items)
                return CanaryNode(instance_id=instance["InstanceId"], node=node.metadata.name, ready=True,
                                  daemonsets=names, seconds_since_start=round(waited))
    if waited > request.canary_deadline_seconds:
        raise CanaryUnhealthy(f"{problem} after {request.canary_deadline_seconds}s (canary_deadline_seconds)")
    raise NotReadyYet(problem)


# --- replacing the old nodes ------------------------------------------------------------------


def cordon(kube: Kube, node, execution: str) -> None:
    if not node.spec.unschedulable:
        kube.core.patch_node(node.metadata.name, {"spec": {"unschedulable": True},
                                                  "metadata": {"annotations": {CORDONED_BY: execution_name(execution)}}})


def uncordon_ours(kube: Kube, nodes: list, execution: str) -> list[str]:
    """Uncordon the nodes this execution cordoned (and only those), clearing its marks."""
    changed = []
    for node in nodes:
        if (node.metadata.annotations or {}).get(CORDONED_BY) == execution_name(execution):
            kube.core.patch_node(node.metadata.name, {"spec": {"unschedulable": None},
                                                      "metadata": {"annotations": {CORDONED_BY: None}}})
            changed.append(node.metadata.name)
    draining.clear_marks(kube, [n.metadata.name for n in nodes], execution_name(execution))
    return changed


def drain_then_terminate(c: Clients, request: SelfManagedInput, execution: str, instance_id: str, node,
                         decrement: bool):
    """Cordon and drain the node (raising while pods remain, as drain() does), then terminate its instance in
    the group: without decrementing, the group launches a replacement from its current version."""
    drained = None
    if node is not None:
        cordon(c.kube, node, execution)
        drained = draining.drain(c.kube, [node.metadata.name], 1, request.drain_deadline_seconds,
                                 drain_policy(request, execution))
    c.autoscaling.terminate_instance_in_auto_scaling_group(InstanceId=instance_id,
                                                           ShouldDecrementDesiredCapacity=decrement)
    return drained


def _in_progress(nodes: dict, candidates: list[dict], execution: str) -> dict | None:
    """The instance whose node this execution has cordoned already: its drain goes on first."""
    return next((i for i in candidates if (nodes.get(i["InstanceId"]) is not None and (
        nodes[i["InstanceId"]].metadata.annotations or {}).get(CORDONED_BY) == execution_name(execution))), None)


def replace_next(c: Clients, request: SelfManagedInput, pre: Preflight, execution: str) -> Replaced:
    """Drain the next old node and terminate its instance (the group replaces it on AL2023)."""
    group = describe_group(c.autoscaling, request.group_name)
    old = sorted((i for i in group.get("Instances", []) if _old(pre, i)), key=lambda i: i["InstanceId"])
    if not old:
        return Replaced(node=None, instance_id=None, started_at=clock.now(), remaining_al2=0)
    nodes = group_nodes(c.kube, group)
    instance = _in_progress(nodes, old, execution) or old[0]
    node = nodes.get(instance["InstanceId"])
    drained = drain_then_terminate(c, request, execution, instance["InstanceId"], node, decrement=False)
    return Replaced(node=node.metadata.name if node is not None else None, instance_id=instance["InstanceId"],
                    drained=drained, started_at=clock.now(), remaining_al2=len(old) - 1)


def wait_settled(c: Clients, request: SelfManagedInput, pre: Preflight, replaced: Replaced | None) -> Settled:
    """NotReadyYet until the replacement has joined and is Ready (the whole group settled);
    DeadlineExceeded after replace_deadline_seconds."""
    group = describe_group(c.autoscaling, request.group_name)
    names, problem = _settled(c, group, pre)
    if problem is None:
        return Settled(nodes=names, remaining_al2=sum(1 for i in group["Instances"] if _old(pre, i)))
    if replaced is not None and clock.now() - replaced.started_at > request.replace_deadline_seconds:
        raise DeadlineExceeded(f"the replacement of {replaced.instance_id} did not settle within "
                               f"{request.replace_deadline_seconds}s: {problem}")
    raise NotReadyYet(problem)


def release_capacity(c: Clients, request: SelfManagedInput, pre: Preflight, ver: LaunchVersion,
                     execution: str) -> Finalized:
    """Take back the canary's extra instance the same drained way (decrementing this time) while the group's
    desired capacity is still the one the canary set (a change since is its owners'), MaxSize too; the new
    version becomes the template's default and the group names its version as it did before."""
    name = request.group_name
    group = describe_group(c.autoscaling, name)
    mark = capacity_mark(group, execution)
    if mark is not None and group["DesiredCapacity"] == mark.desired:
        instances = sorted(group["Instances"], key=lambda i: i["InstanceId"])
        nodes = group_nodes(c.kube, group)
        instance = _in_progress(nodes, instances, execution) or instances[0]
        drain_then_terminate(c, request, execution, instance["InstanceId"], nodes.get(instance["InstanceId"]),
                             decrement=True)
        group = describe_group(c.autoscaling, name)
    _drop_mark(c, group, mark)
    c.ec2.modify_launch_template(LaunchTemplateId=pre.template_id, DefaultVersion=ver.version)
    if pre.restore_version in ("$Default", "$Latest"):
        c.autoscaling.update_auto_scaling_group(
            AutoScalingGroupName=name,
            LaunchTemplate={"LaunchTemplateId": pre.template_id, "Version": pre.restore_version})
    return Finalized(version=ver.version, desired=group["DesiredCapacity"])


def _drop_mark(c: Clients, group: dict, mark: CanaryCapacity | None) -> None:
    """MaxSize back while it is the one we raised (and fits), then the mark itself."""
    if mark is None:
        return
    name = group["AutoScalingGroupName"]
    if (mark.raised_max_to is not None and group["MaxSize"] == mark.raised_max_to
            and group["DesiredCapacity"] <= mark.raised_max_to - 1):
        c.autoscaling.update_auto_scaling_group(AutoScalingGroupName=name, MaxSize=mark.raised_max_to - 1)
    c.autoscaling.delete_tags(Tags=[{"ResourceId": name, "ResourceType": "auto-scaling-group", "Key": CANARY_TAG}])


# --- rollback -------------------------------------------------------------------------------------


def rollback(c: Clients, request: SelfManagedInput, pre: Preflight, execution: str, error: CaughtError | None,
             failed_gate: str | None) -> Rollback:
    """Step by step, safe to repeat (NotReadyYet between steps): the group back on its previous version, our
    cordons lifted from old nodes, then every AL2023 instance replaced the drained way (the first one taking
    back the canary's extra capacity), until the group serves on AL2 at its capacity."""
    name = request.group_name
    group = describe_group(c.autoscaling, name)
    if str((group.get("LaunchTemplate") or {}).get("Version")) != pre.restore_version:
        c.autoscaling.update_auto_scaling_group(
            AutoScalingGroupName=name, LaunchTemplate={"LaunchTemplateId": pre.template_id,
                                                       "Version": pre.restore_version})
    nodes = group_nodes(c.kube, group)
    old = [i for i in group["Instances"] if _old(pre, i)]
    uncordon_ours(c.kube, [nodes[i["InstanceId"]] for i in old if i["InstanceId"] in nodes], execution)
    new = sorted((i for i in group["Instances"] if not _old(pre, i)), key=lambda i: i["InstanceId"])
    mark = capacity_mark(group, execution)
    ours = mark is not None and group["DesiredCapacity"] == mark.desired
    if new:
        # one not serving (never joined or never Ready) goes first: nothing to drain
        idle = [i for i in new if i["InstanceId"] not in nodes or not ready(nodes[i["InstanceId"]])]
        in_progress = _in_progress(nodes, new, execution)
        instance = in_progress or (idle or new)[0]
        node = nodes.get(instance["InstanceId"])
        if in_progress is None and node is not None and ready(node):
            _, problem = _settled(c, {**group, "Instances": old,
                                      "DesiredCapacity": group["DesiredCapacity"] - len(new)}, pre)
            if problem:  # an earlier replacement is still joining: no second drain at once
                raise NotReadyYet(f"rolling back {name}: {problem}")
        drain_then_terminate(c, request, execution, instance["InstanceId"], node, decrement=ours)
        raise NotReadyYet(f"rolling back {name}: replacing AL2023 instance {instance['InstanceId']}")
    if ours:  # the canary's instance is gone but its capacity stands: give it back
        c.autoscaling.set_desired_capacity(AutoScalingGroupName=name, DesiredCapacity=mark.desired - 1,
                                           HonorCooldown=False)
        group = describe_group(c.autoscaling, name)
    _drop_mark(c, group, mark)
    names, problem = _settled(c, describe_group(c.autoscaling, name), pre)
    if problem:
        raise NotReadyYet(f"rolling back {name}: {problem}")
    error_name, message = explain_failure(error, failed_gate)
    return Rollback(error=error_name, cause=f"{request.target} rolled back to launch template version "
                                            f"{pre.original_version}, {len(names)} AL2 nodes serving: {message}")

