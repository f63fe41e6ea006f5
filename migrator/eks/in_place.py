"""The in-place update of a managed node group whose launch template names a custom AMI, one function per
state of eks_in_place.asl.json.

EKS can swap the AMI of such a group in place (FACTS.md): a new launch-template version with the AL2023
EKS-optimized AMI, nodeadm user data and IMDSv2, then UpdateNodegroupVersion with it. EKS itself surges
new nodes, cordons and drains the old ones (PDB-aware, giving up after 15 minutes per pod) and scales
back; the workflow follows the update to its end and validates the result. A rollback is the same update
back to the previous template version. A group without a custom AMI cannot change its AMI in place: it
takes the blue/green workflow (eks_nodegroup.asl.json). Every function reads the current state first, so
a retry changes nothing twice.
"""

from __future__ import annotations

import base64

from botocore.exceptions import ClientError

from migrator import clock
from migrator.ami import OsFamily, describe_images, os_family, resolve_al2023_ami
from migrator.aws import client_token, error_code, execution_name, launch_template_data
from migrator.eks.in_place_models import (
    Followed,
    InPlaceInput,
    InPlacePreflight,
    InPlaceValidated,
    LaunchTemplateRef,
    UpdateStarted,
    Versioned,
)
from migrator.eks.checks import AL2023_AMI_PARAMETER, node_checks, require_daemonsets
from migrator.eks.checks import ready as is_ready
from migrator.eks.nodegroup import (
    Clients,
    describe_nodegroup,
    drain_policy,
    nodes_of,
    opted_in_nodegroup,
    refusal_checks,
    set_node,
)
from migrator.eks.paths import IN_PLACE, update_path
from migrator.eks.results import Check, Rollback
from migrator.eks.userdata import carried_scripts, kubelet_settings, nodeadm_user_data
from migrator.errors import DeadlineExceeded, NotReadyYet, PreflightFailed, RollbackFailed, UpdateFailed
from migrator.failures import CaughtError, explain_failure

AL2023_OS_IMAGE = "Amazon Linux 2023"  # how a node's status.nodeInfo.osImage starts on AL2023
ENDED = ("Successful", "Failed", "Cancelled")


def version_description(execution: str) -> str:
    """What marks the launch-template version this execution created, so a retry finds it."""
    return f"al2023-migration {execution_name(execution)}"[:255]


# --- pre-flight ---------------------------------------------------------------------


def preflight(c: Clients, request: InPlaceInput, execution: str, tag_key: str, tag_value: str) -> InPlacePreflight:
    """Every check runs; all failures are reported together, before any change."""
    cluster = c.eks.describe_cluster(name=request.cluster_name)["cluster"]
    group = opted_in_nodegroup(c, request.cluster_name, request.nodegroup_name, tag_key, tag_value)
    path, reason, data = update_path(c.ec2, group)
    if path != IN_PLACE:
        raise PreflightFailed(f"{request.target} takes the blue/green path, not this one: {reason}; "
                              "migrate it with the eks-nodegroup workflow")
    template = group["launchTemplate"]
    reference = LaunchTemplateRef(id=template["id"], name=template.get("name", ""), version=str(template["version"]))
    base = {"cluster_version": cluster["version"], "path": path, "reason": reason, "launch_template": reference}
    image = describe_images(c.ec2, [data["ImageId"]]).get(data["ImageId"], {})
    if os_family(image) is OsFamily.AL2023:
        return InPlacePreflight(**base, already_migrated=True, checks={
            "custom_ami": Check(ok=True, detail=f"{data['ImageId']} ({image.get('Name', '?')}) is already AL2023")})
    checks, failures = {}, []

    def check(name: str, ok: bool, detail: str) -> None:
        checks[name] = Check(ok=ok, detail=detail)
        if not ok:
            failures.append(f"{name}: {detail}")

    check("path", True, reason)
    described = c.ec2.describe_launch_templates(LaunchTemplateIds=[template["id"]])["LaunchTemplates"][0]
    tagged = {t["Key"]: t["Value"] for t in described.get("Tags", [])}.get(tag_key) == tag_value
    check("launch_template_tag", tagged, f"launch template {described['LaunchTemplateName']} is tagged "
          f"{tag_key}={tag_value}" if tagged else f"launch template {described['LaunchTemplateName']} is not tagged "
          f"{tag_key}={tag_value}: tag it as its node group is, so the migration may add a version")
    ami = {}
    try:
        ami = resolve_al2023_ami(c.ssm, c.ec2, ami_id=None,
                                 ssm_parameter=AL2023_AMI_PARAMETER.format(version=cluster["version"]))
        check("kubernetes_version", True, f"{cluster['version']}: EKS-optimized AL2023 AMI {ami['image_id']}")
    except (PreflightFailed, ClientError) as error:
        check("kubernetes_version", False, f"no EKS-optimized AL2023 AMI for Kubernetes {cluster['version']}: {error}")
    busy = [u for u in _updates(c, request) if u["status"] == "InProgress"]
    check("no_update_in_progress", not busy,
          f"update {busy[0]['id']} is in progress" if busy else "no update of the group in progress")
    nodes = nodes_of(c.kube, request.nodegroup_name)
    node_checks(c.eks, c.kube, request.cluster_name, nodes, request.pdb_blocks, check)
    refusal_checks(c, {n.metadata.name for n in nodes}, drain_policy(request, execution), check)
    if failures:
        raise PreflightFailed(f"{request.target} cannot be updated in place: " + "; ".join(failures))
    user_data = base64.b64decode(data["UserData"]).decode(errors="replace") if data.get("UserData") else None
    return InPlacePreflight(
        **base, already_migrated=False, checks=checks, image_id=ami["image_id"], image_source=ami["source"],
        kubelet=kubelet_settings(user_data), nodes=sorted(n.metadata.name for n in nodes),
        cordoned_before=sorted(n.metadata.name for n in nodes if n.spec.unschedulable))


# --- the new launch-template version ----------------------------------------------------------


def create_version(c: Clients, request: InPlaceInput, pre: InPlacePreflight, execution: str) -> Versioned:
    """The group's template data with the AL2023 AMI, nodeadm `NodeConfig` user data (the old bootstrap.sh
    kubelet settings carried over) and IMDSv2 required. The whole data is copied, not only `SourceVersion`
    (which moto ignores), so the version is complete wherever it is created."""
    template = pre.launch_template
    description = version_description(execution)
    for page in c.ec2.get_paginator("describe_launch_template_versions").paginate(LaunchTemplateId=template.id):
        for found in page["LaunchTemplateVersions"]:
            if found.get("VersionDescription") == description:
                return Versioned(launch_template_id=template.id, version=str(found["VersionNumber"]),
                                 previous_version=template.version, image_id=pre.image_id, created=False)
    data = launch_template_data(c.ec2, template.id, template.version)
    cluster = c.eks.describe_cluster(name=request.cluster_name)["cluster"]
    metadata = {**data.get("MetadataOptions", {}), "HttpTokens": "required", "HttpEndpoint": "enabled",
                "HttpPutResponseHopLimit": request.imds_hop_limit}
    created = c.ec2.create_launch_template_version(
        LaunchTemplateId=template.id, SourceVersion=template.version, VersionDescription=description,
        ClientToken=client_token(execution, "launch-template-version"),
        LaunchTemplateData={**data, "ImageId": pre.image_id, "MetadataOptions": metadata,
                            "UserData": base64.b64encode(nodeadm_user_data(cluster, pre.kubelet, carried_scripts(
                                base64.b64decode(data.get("UserData") or "").decode(errors="replace"))).encode()).decode()},
    )["LaunchTemplateVersion"]
    return Versioned(launch_template_id=template.id, version=str(created["VersionNumber"]),
                     previous_version=template.version, image_id=pre.image_id, created=True)


# --- EKS's update -----------------------------------------------------------------------------


def _updates(c: Clients, request: InPlaceInput) -> list[dict]:
    """The group's updates, newest first, each with its launch-template version (from its params)."""
    found = []
    for page in c.eks.get_paginator("list_updates").paginate(name=request.cluster_name,
                                                             nodegroupName=request.nodegroup_name):
        for update_id in page.get("updateIds", []):
            update = c.eks.describe_update(name=request.cluster_name, updateId=update_id,
                                           nodegroupName=request.nodegroup_name)["update"]
            update["version"] = next((p["value"] for p in update.get("params", [])
                                      if p["type"] == "LaunchTemplateVersion"), None)
            found.append(update)
    return sorted(found, key=lambda u: u.get("createdAt") or 0, reverse=True)


def _start(c: Clients, request: InPlaceInput, template_id: str, version: str, token: str,
           updates: list[dict]) -> tuple[str, bool]:
    """UpdateNodegroupVersion to `version`, unless one of `updates` (the ones that count) to it is already in
    progress or done; another update in progress is waited for (EKS runs one at a time)."""
    mine = next((u for u in updates if u["version"] == version and u["status"] in ("InProgress", "Successful")), None)
    if mine is not None:
        return mine["id"], False
    busy = next((u for u in updates if u["status"] == "InProgress"), None)
    if busy is not None:
        raise NotReadyYet(f"update {busy['id']} of {request.nodegroup_name} is in progress; EKS runs one at a time")
    try:
        update = c.eks.update_nodegroup_version(
            clusterName=request.cluster_name, nodegroupName=request.nodegroup_name,
            launchTemplate={"id": template_id, "version": version}, force=request.force,
            clientRequestToken=token)["update"]
    except ClientError as error:
        if error_code(error) == "ResourceInUseException":
            raise NotReadyYet(f"{request.nodegroup_name} is busy: {error}") from None
        raise
    return update["id"], True


def start_update(c: Clients, request: InPlaceInput, versioned: Versioned, execution: str) -> UpdateStarted:
    update_id, started = _start(c, request, versioned.launch_template_id, versioned.version,
                                client_token(execution, f"update-{versioned.version}"), _updates(c, request))
    return UpdateStarted(update_id=update_id, started=started, started_at=clock.now())


def _describe_update(c: Clients, request: InPlaceInput, update_id: str) -> dict:
    return c.eks.describe_update(name=request.cluster_name, updateId=update_id,
                                 nodegroupName=request.nodegroup_name)["update"]


def _errors(update: dict) -> str:
    return "; ".join(f"{e.get('errorCode')}: {e.get('errorMessage')}" for e in update.get("errors") or []) or "no detail"


def follow_update(c: Clients, request: InPlaceInput, started: UpdateStarted) -> Followed:
    """NotReadyYet while EKS's update is InProgress (the state's Retry polls), UpdateFailed when it ends
    Failed or Cancelled, DeadlineExceeded past `update_deadline_seconds`."""
    update = _describe_update(c, request, started.update_id)
    if update["status"] in ("Failed", "Cancelled"):
        raise UpdateFailed(f"EKS update {started.update_id} of {request.target} ended {update['status']}: "
                           f"{_errors(update)}")
    if update["status"] != "Successful":
        if clock.now() - started.started_at > request.update_deadline_seconds:
            raise DeadlineExceeded(f"EKS update {started.update_id} still {update['status']} after "
                                   f"{request.update_deadline_seconds}s")
        raise NotReadyYet(f"EKS update {started.update_id} is {update['status']}")
    return Followed(update_id=started.update_id, status=update["status"])


def validate(c: Clients, request: InPlaceInput, started: UpdateStarted) -> InPlaceValidated:
    """Every node of the group Ready, schedulable and on AL2023, as many as the group wants; the DaemonSets on
    each; every disruption budget met. NotReadyYet until then, DeadlineExceeded past the deadline."""
    try:
        group = describe_nodegroup(c.eks, request.cluster_name, request.nodegroup_name)
        desired = group["scalingConfig"]["desiredSize"]
        nodes = nodes_of(c.kube, request.nodegroup_name)
        wrong = sorted(n.metadata.name for n in nodes if not is_ready(n) or n.spec.unschedulable
                       or not (n.status.node_info.os_image or "").startswith(AL2023_OS_IMAGE))
        if wrong or len(nodes) < desired:
            raise NotReadyYet(f"{len(nodes) - len(wrong)}/{desired} nodes Ready on AL2023; not yet: {wrong[:5]}")
        names = sorted(n.metadata.name for n in nodes)
        require_daemonsets(c.kube, names)
        budgets, short = [], []
        for pdb in c.kube.policy.list_pod_disruption_budget_for_all_namespaces().items:
            healthy, wanted = (pdb.status.current_healthy, pdb.status.desired_healthy) if pdb.status else (0, 1)
            line = f"{pdb.metadata.namespace}/{pdb.metadata.name} {healthy}/{wanted} healthy"
            budgets.append(line)
            if (healthy or 0) < (wanted or 0):
                short.append(line)
        if short:
            raise NotReadyYet("workloads below their budgets: " + ", ".join(short[:5]))
    except NotReadyYet as waiting:
        if clock.now() - started.started_at > request.update_deadline_seconds + request.validate_deadline_seconds:
            raise DeadlineExceeded(f"{request.target} not healthy on AL2023 in time: {waiting}") from None
        raise
    return InPlaceValidated(nodes=names, daemonsets_everywhere=True, budgets=sorted(budgets))


# --- rollback --------------------------------------------------------------------------------


def rollback(c: Clients, request: InPlaceInput, pre: InPlacePreflight, versioned: Versioned | None, execution: str,
             error: CaughtError | None, failed_gate: str | None) -> Rollback:
    """Step by step, safe to repeat (the state's Retry calls it again on NotReadyYet): wait for an update in
    progress to end; uncordon the AL2 nodes EKS cordoned (never those cordoned before the run); while the group
    is not back on the previous template version with only AL2 nodes, update it back (followed to its end)."""
    updates = _updates(c, request)
    busy = next((u for u in updates if u["status"] == "InProgress"), None)
    if busy is not None:
        raise NotReadyYet(f"waiting for EKS update {busy['id']} (version {busy['version']}) to end")
    nodes = nodes_of(c.kube, request.nodegroup_name)
    kept = set(pre.cordoned_before)
    for node in nodes:
        al2 = not (node.status.node_info.os_image or "").startswith(AL2023_OS_IMAGE)
        if al2 and node.spec.unschedulable and node.metadata.name not in kept:
            set_node(c.kube, node.metadata.name,
                     [t for t in _serialized_taints(node) if t.get("key") != "node.kubernetes.io/unschedulable"],
                     False)
    previous = pre.launch_template.version
    group = describe_nodegroup(c.eks, request.cluster_name, request.nodegroup_name)
    on_al2023 = [n.metadata.name for n in nodes if (n.status.node_info.os_image or "").startswith(AL2023_OS_IMAGE)]
    if str((group.get("launchTemplate") or {}).get("version")) != previous or on_al2023:
        # only updates after this run's own count: an older update to `previous` is history
        forward = next((u for u in updates if versioned and u["version"] == versioned.version), None)
        since = forward.get("createdAt") if forward else None
        later = [u for u in updates if since is None or (u.get("createdAt") and u["createdAt"] > since)]
        back = [u for u in later if u["version"] == previous]
        if back and back[0]["status"] in ("Failed", "Cancelled"):
            raise RollbackFailed(f"EKS update {back[0]['id']} back to launch-template version {previous} ended "
                                 f"{back[0]['status']}: {_errors(back[0])}; nodes on AL2023: {on_al2023[:5]}")
        update_id, _ = _start(c, request, pre.launch_template.id, previous,
                              client_token(execution, f"rollback-{previous}"), later)
        raise NotReadyYet(f"EKS update {update_id} back to launch-template version {previous}: "
                          f"{len(on_al2023)} node(s) on AL2023")
    name, message = explain_failure(error, failed_gate)
    kept_version = f"; version {versioned.version} is kept, unused" if versioned else ""
    return Rollback(error=name, cause=f"{request.target} rolled back: its nodes run launch-template version "
                                      f"{previous} (AL2) again, none left cordoned{kept_version}: {message}")


def _serialized_taints(node) -> list[dict]:
    from kubernetes.client import ApiClient

    return [ApiClient().sanitize_for_serialization(t) for t in (node.spec.taints or [])]
