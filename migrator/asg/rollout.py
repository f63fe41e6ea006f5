"""The Auto Scaling group rollout, one function per state of asg_rollout.asl.json.

Every function reads the group's current state before it changes anything, so
running it twice with the same input changes nothing the second time.
"""

from __future__ import annotations

from dataclasses import dataclass

from migrator import clock
from migrator.ami import OsFamily, describe_images, os_family, resolve_al2023_ami
from migrator.asg.models import RolloutInput
from migrator.asg.results import (
    Canary,
    CanaryMarks,
    CanaryEvidence,
    CanaryHealth,
    Finalized,
    LaunchVersion,
    Preflight,
    Refresh,
    RefreshDone,
    Rollback,
    RollbackDone,
)
from migrator.aws import client_token, execution_digest, launch_template_data
from migrator.config import CANARY_TAG, EXECUTION_TAG, GROUP_TAG
from migrator.failures import CaughtError, explain_failure
from migrator.health import alarms_in_alarm
from migrator.errors import (
    CanaryUnhealthy,
    DeadlineExceeded,
    NotReadyYet,
    PreflightFailed,
    RefreshFailed,
    RollbackFailed,
)

ACTIVE_REFRESH = {"Pending", "InProgress", "Baking"}
STOPPING_REFRESH = {"Cancelling", "RollbackInProgress"}


@dataclass(frozen=True)
class Clients:
    autoscaling: object
    ec2: object
    ssm: object
    elbv2: object
    cloudwatch: object


# AWS may terminate an attached instance to rebalance Availability Zones; the
# canary must survive its bake and gate, so AZRebalance is off while it serves
# (and back on after, if it was on). ReplaceUnhealthy stays on: an unhealthy
# canary must not keep serving, and its absence fails the canary check anyway.
CANARY_SUSPENDS = ["AZRebalance"]


def version_description(execution: str, group: str) -> str:
    """Marks the version this execution created for this group, so a retry finds
    it: the digest of the full execution ARN (names repeat across state machines)."""
    return f"al2023-migration {execution_digest(execution)} group={group}"[:255]


def canary_tags(execution: str, group: str) -> dict[str, str]:
    return {EXECUTION_TAG: execution_digest(execution), GROUP_TAG: group}


# --- reading the group -------------------------------------------------------


def describe_group(autoscaling, name: str) -> dict:
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
    if not groups:
        raise PreflightFailed(f"Auto Scaling group {name} does not exist")
    return groups[0]


def instance_version(instance: dict) -> str | None:
    spec = instance.get("LaunchTemplate") or {}
    return str(spec["Version"]) if "Version" in spec else None


def resolve_version_number(ec2, template_id: str, spec: str) -> str:
    versions = ec2.describe_launch_template_versions(LaunchTemplateId=template_id, Versions=[spec])
    return str(versions["LaunchTemplateVersions"][0]["VersionNumber"])


def latest_refresh(autoscaling, group: str, refresh_id: str | None = None) -> dict | None:
    kwargs = {"AutoScalingGroupName": group}
    if refresh_id:
        kwargs["InstanceRefreshIds"] = [refresh_id]
    refreshes = autoscaling.describe_instance_refreshes(**kwargs)["InstanceRefreshes"]
    return refreshes[0] if refreshes else None  # AWS lists the newest first


# --- the states ---------------------------------------------------------------


def preflight(c: Clients, request: RolloutInput, tag_key: str, tag_value: str) -> Preflight:
    group = describe_group(c.autoscaling, request.group_name)
    name = request.group_name
    tags = {t["Key"]: t["Value"] for t in group.get("Tags", [])}
    if tags.get(tag_key) != tag_value:
        raise PreflightFailed(
            f"group {name} is not tagged {tag_key}={tag_value}; the migration may only change tagged groups"
        )
    if group.get("LaunchConfigurationName"):
        raise PreflightFailed(
            f"group {name} uses launch configuration {group['LaunchConfigurationName']}; "
            "migrate it to a launch template first (launch configurations get no new AMIs)"
        )
    if group.get("MixedInstancesPolicy"):
        raise PreflightFailed(f"group {name} uses a mixed instances policy, which this version does not migrate")
    spec = group.get("LaunchTemplate")
    if not spec:
        raise PreflightFailed(f"group {name} has no launch template")

    template_id = spec["LaunchTemplateId"]
    version_spec = str(spec.get("Version") or "$Default")
    version = resolve_version_number(c.ec2, template_id, version_spec)
    data = launch_template_data(c.ec2, template_id, version)
    instances = group.get("Instances", [])
    image_ids = [data["ImageId"], *_instance_images(c.ec2, [i["InstanceId"] for i in instances]).values()]
    images = describe_images(c.ec2, image_ids)
    families = {os_family(images.get(image_id, {})) for image_id in image_ids}
    already = families == {OsFamily.AL2023}
    if not already and OsFamily.AL2 not in families:
        raise PreflightFailed(f"group {name} runs neither Amazon Linux 2 nor AL2023 ({sorted(families)})")
    return Preflight(
        already_migrated=already,
        group_name=name,
        template_id=template_id,
        template_name=spec.get("LaunchTemplateName", ""),
        original_version=version,
        restore_version=version if version_spec == "$Latest" else version_spec,
        original_image_id=data["ImageId"],
        desired=group["DesiredCapacity"],
        min=group["MinSize"],
        max=group["MaxSize"],
        instance_ids=sorted(i["InstanceId"] for i in instances),
        target_group_arns=group.get("TargetGroupARNs", []),
    )


def _instance_images(ec2, instance_ids: list[str]) -> dict[str, str]:
    """Image id per instance, in pages of 200 ids."""
    images = {}
    paginator = ec2.get_paginator("describe_instances")
    for start in range(0, len(instance_ids), 200):
        for page in paginator.paginate(InstanceIds=instance_ids[start : start + 200]):
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    images[instance["InstanceId"]] = instance["ImageId"]
    return images


def create_version(c: Clients, request: RolloutInput, pre: Preflight, execution: str) -> LaunchVersion:
    ami = resolve_al2023_ami(c.ssm, c.ec2, ami_id=request.ami_id, ssm_parameter=request.ami_ssm_parameter)
    description = version_description(execution, pre.group_name)
    paginator = c.ec2.get_paginator("describe_launch_template_versions")
    # Versions cannot be tagged: the description carries execution and group.
    for page in paginator.paginate(LaunchTemplateId=pre.template_id,
                                   Filters=[{"Name": "image-id", "Values": [ami["image_id"]]}]):
        for existing in page["LaunchTemplateVersions"]:
            if existing.get("VersionDescription") == description:
                return _version_result(existing, ami, created=False)

    source = launch_template_data(c.ec2, pre.template_id, pre.original_version)
    # LaunchTemplateData replaces whole top-level keys of the source version, so
    # the metadata options are merged, not overwritten: only HttpTokens changes.
    metadata = {**source.get("MetadataOptions", {}), "HttpTokens": "required", "HttpEndpoint": "enabled"}
    created = c.ec2.create_launch_template_version(
        LaunchTemplateId=pre.template_id,
        SourceVersion=pre.original_version,
        VersionDescription=description,
        LaunchTemplateData={"ImageId": ami["image_id"], "MetadataOptions": metadata},
    )["LaunchTemplateVersion"]
    return _version_result(created, ami, created=True)


def _version_result(version: dict, ami: dict, created: bool) -> LaunchVersion:
    return LaunchVersion(
        version=str(version["VersionNumber"]),
        image_id=version["LaunchTemplateData"]["ImageId"],
        ami_name=ami["name"],
        ami_source=ami["source"],
        created=created,
    )


def find_canary(ec2, execution: str, group: str, alive: bool = True) -> dict | None:
    """The canary this execution launched for this group, by both tags (`alive`:
    not one that others' scaling or health checks have terminated since)."""
    filters = [{"Name": f"tag:{key}", "Values": [value]} for key, value in canary_tags(execution, group).items()]
    if alive:
        filters.append({"Name": "instance-state-name", "Values": ["pending", "running"]})
    for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                return instance
    return None


def _marks(instance: dict) -> CanaryMarks | None:
    value = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}.get(CANARY_TAG)
    return CanaryMarks.from_tag(value) if value else None


def _subnet(group: dict) -> str:
    """The group's first subnet (AZRebalance is suspended while the canary serves)."""
    subnets = [s for s in (group.get("VPCZoneIdentifier") or "").split(",") if s]
    return subnets[0] if subnets else ""


def start_canary(c: Clients, pre: Preflight, ver: LaunchVersion, execution: str) -> Canary:
    """Launch one instance from the new version and attach it to the group (and so
    to its target groups). The group's own launch template does not change: until
    the refresh is approved, every instance the group launches is the old AMI.
    AWS raises DesiredCapacity by one on attach and refuses above MaxSize, so a
    full group gets MaxSize + 1, marked on the canary to be given back."""
    name = pre.group_name
    group = describe_group(c.autoscaling, name)
    instance = find_canary(c.ec2, execution, name)
    if instance is None:
        propagated = {t["Key"]: t["Value"] for t in group.get("Tags", [])
                      if t.get("PropagateAtLaunch") and not t["Key"].startswith("aws:")}
        tags = {**propagated, **canary_tags(execution, name)}
        subnet = _subnet(group)
        instance = c.ec2.run_instances(
            LaunchTemplate={"LaunchTemplateId": pre.template_id, "Version": ver.version},
            MinCount=1, MaxCount=1, ClientToken=client_token(execution, f"canary/{name}"),
            **({"SubnetId": subnet} if subnet else {}),
            TagSpecifications=[{"ResourceType": "instance",
                                "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
        )["Instances"][0]
    instance_id = instance["InstanceId"]
    members = {i["InstanceId"] for i in group.get("Instances", [])}
    marks = _marks(instance)
    changed = instance_id not in members
    if changed:
        full = group["DesiredCapacity"] + 1 > group["MaxSize"]
        # an earlier attempt may have raised MaxSize already: still ours
        raised = marks.raised_max_to if marks and marks.raised_max_to == group["MaxSize"] else None
        if full:
            raised = group["MaxSize"] + 1
        suspended_now = {p["ProcessName"] for p in group.get("SuspendedProcesses", [])}
        suspend = marks.suspended if marks else [p for p in CANARY_SUSPENDS if p not in suspended_now]
        marks = CanaryMarks(desired=group["DesiredCapacity"] + 1, raised_max_to=raised, suspended=suspend)
        # the mark comes first: whatever happens next, a later step knows what was ours
        c.ec2.create_tags(Resources=[instance_id], Tags=[{"Key": CANARY_TAG, "Value": marks.tag()}])
        if full:
            c.autoscaling.update_auto_scaling_group(AutoScalingGroupName=name, MaxSize=raised)
        c.autoscaling.attach_instances(AutoScalingGroupName=name, InstanceIds=[instance_id])
    if marks.suspended:
        c.autoscaling.suspend_processes(AutoScalingGroupName=name, ScalingProcesses=marks.suspended)
    return Canary(instance_id=instance_id, marks=marks, started_at=clock.now(), changed=changed)


def check_canary(
    c: Clients, request: RolloutInput, pre: Preflight, ver: LaunchVersion, canary: Canary, settled: bool
) -> CanaryHealth:
    """Raise NotReadyYet while the canary is launching; CanaryUnhealthy on any bad
    sign. With `settled` (after the bake) not-ready counts as unhealthy too."""
    waited = clock.now() - canary.started_at
    not_ready = CanaryUnhealthy if settled else NotReadyYet
    if not settled and waited > request.canary_deadline_seconds:
        raise DeadlineExceeded(
            f"canary of {pre.group_name} not healthy within {request.canary_deadline_seconds}s"
        )
    group = describe_group(c.autoscaling, pre.group_name)
    instance_id = canary.instance_id
    instance = next((i for i in group.get("Instances", []) if i["InstanceId"] == instance_id), None)
    if instance is None:
        raise CanaryUnhealthy(f"canary {instance_id} is no longer in {pre.group_name} (terminated or detached)")
    targets = {}
    if instance["HealthStatus"] != "Healthy":
        raise CanaryUnhealthy(f"canary {instance_id} is {instance['HealthStatus']} in {pre.group_name}")
    if instance["LifecycleState"] != "InService":
        raise not_ready(f"canary {instance_id} is {instance['LifecycleState']}")
    for arn in pre.target_group_arns:
        health = c.elbv2.describe_target_health(TargetGroupArn=arn, Targets=[{"Id": instance_id}])[
            "TargetHealthDescriptions"
        ][0]["TargetHealth"]
        state = health["State"]
        targets[arn.rsplit("/", 2)[-2]] = state
        if state == "unhealthy":
            raise CanaryUnhealthy(
                f"canary {instance_id} unhealthy in target group {arn.rsplit('/', 2)[-2]}: "
                f"{health.get('Description', health.get('Reason', ''))}"
            )
        if state != "healthy":
            raise not_ready(f"canary {instance_id} is {state} in target group {arn.rsplit('/', 2)[-2]}")
    firing = alarms_in_alarm(c.cloudwatch, request.alarm_names)
    if firing:
        raise CanaryUnhealthy(f"alarm {', '.join(firing)} in ALARM while canary {instance_id} serves")
    evidence = CanaryEvidence(
        lifecycle=instance["LifecycleState"],
        health=instance["HealthStatus"],
        targets=targets,
        alarms={name: "OK" for name in request.alarm_names},
        seconds_since_launch=round(waited),
    )
    return CanaryHealth(instance_id=instance_id, evidence=evidence)


def refresh_preferences(request: RolloutInput, auto_rollback: bool) -> dict:
    preferences = {
        "MinHealthyPercentage": request.min_healthy_percentage,
        "InstanceWarmup": request.instance_warmup_seconds,
        "SkipMatching": True,
        "AutoRollback": auto_rollback,
        "ScaleInProtectedInstances": request.protected_instances,
        "StandbyInstances": request.standby_instances,
    }
    if auto_rollback and request.alarm_names:
        preferences["AlarmSpecification"] = {"Alarms": request.alarm_names}
    return preferences


def start_refresh(c: Clients, request: RolloutInput, pre: Preflight, ver: LaunchVersion) -> Refresh:
    current = latest_refresh(c.autoscaling, pre.group_name)
    if current and _refresh_version(current) == ver.version and current["Status"] in ACTIVE_REFRESH | {"Successful"}:
        return Refresh(refresh_id=current["InstanceRefreshId"], started_at=clock.now(), changed=False)
    # AWS rolls a refresh back to the configuration the group had when it started,
    # and cannot when that names `$Latest`/`$Default`: the group names the old
    # version by number for the length of the refresh.
    if str((describe_group(c.autoscaling, pre.group_name).get("LaunchTemplate") or {}).get("Version")) \
            != pre.original_version:  # `$Default`/`$Latest`: pinned to the same version's number
        c.autoscaling.update_auto_scaling_group(
            AutoScalingGroupName=pre.group_name,
            LaunchTemplate={"LaunchTemplateId": pre.template_id, "Version": pre.original_version},
        )
    refresh_id = c.autoscaling.start_instance_refresh(
        AutoScalingGroupName=pre.group_name,
        Strategy="Rolling",
        DesiredConfiguration={"LaunchTemplate": {"LaunchTemplateId": pre.template_id, "Version": ver.version}},
        Preferences=refresh_preferences(request, auto_rollback=True),
    )["InstanceRefreshId"]
    return Refresh(refresh_id=refresh_id, started_at=clock.now(), changed=True)


def _refresh_version(refresh: dict) -> str | None:
    spec = (refresh.get("DesiredConfiguration") or {}).get("LaunchTemplate") or {}
    return str(spec["Version"]) if "Version" in spec else None


def check_refresh(c: Clients, request: RolloutInput, pre: Preflight, refresh: Refresh) -> RefreshDone:
    current = latest_refresh(c.autoscaling, pre.group_name, refresh.refresh_id)
    status = current["Status"]
    progress = f"{current.get('PercentageComplete', 0)}% of {pre.group_name}, status {status}"
    if status == "Successful":
        return RefreshDone(status=status, percentage=current.get("PercentageComplete", 100))
    if status in ACTIVE_REFRESH:
        if clock.now() - refresh.started_at > request.refresh_deadline_seconds:
            raise DeadlineExceeded(f"instance refresh not done within {request.refresh_deadline_seconds}s: {progress}")
        raise NotReadyYet(progress)
    raise RefreshFailed(f"instance refresh {refresh.refresh_id} {status}: {current.get('StatusReason', '')}".strip())


def release_canary(c: Clients, name: str, execution: str, keep_if_scaled: bool) -> bool:
    """Undo what the canary added, and only that: it leaves the group with
    ShouldDecrementDesiredCapacity while the group's desired capacity is still
    the one the attach set; if others changed it since, the number is theirs and
    stays (after a rollback the group replaces the canary from its own, old,
    template; after success, with `keep_if_scaled`, the canary stays as one of
    their instances). MaxSize and the suspended processes go back only while they
    are what we set. Returns whether the canary was kept."""
    instance = find_canary(c.ec2, execution, name, alive=False)
    if instance is None:
        return False
    marks = _marks(instance) or CanaryMarks(desired=-1)
    group = describe_group(c.autoscaling, name)
    members = {i["InstanceId"] for i in group.get("Instances", [])}
    ours = group["DesiredCapacity"] == marks.desired
    kept = instance["InstanceId"] in members and not ours and keep_if_scaled
    if instance["State"]["Name"] in ("shutting-down", "terminated"):
        pass  # the group's own scaling or health checks took it: nothing to remove
    elif instance["InstanceId"] not in members:
        c.ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])  # launched, never attached
    elif not kept:
        c.autoscaling.terminate_instance_in_auto_scaling_group(
            InstanceId=instance["InstanceId"], ShouldDecrementDesiredCapacity=ours
        )
        if ours:
            group["DesiredCapacity"] -= 1
    if kept:  # no longer the migration's: a later run must not find it as its canary
        c.ec2.delete_tags(Resources=[instance["InstanceId"]], Tags=[{"Key": GROUP_TAG}])
    if (marks.raised_max_to is not None and group["MaxSize"] == marks.raised_max_to
            and group["DesiredCapacity"] <= marks.raised_max_to - 1):
        c.autoscaling.update_auto_scaling_group(AutoScalingGroupName=name, MaxSize=marks.raised_max_to - 1)
    suspended_now = {p["ProcessName"] for p in group.get("SuspendedProcesses", [])}
    resume = [p for p in marks.suspended if p in suspended_now]
    if resume:
        c.autoscaling.resume_processes(AutoScalingGroupName=name, ScalingProcesses=resume)
    return kept


def finalize(c: Clients, pre: Preflight, ver: LaunchVersion, execution: str) -> Finalized:
    kept = release_canary(c, pre.group_name, execution, keep_if_scaled=True)
    group = describe_group(c.autoscaling, pre.group_name)
    # AWS puts the group on the refresh's desired configuration when it succeeds;
    # only the launch template is set here, never a size.
    if str((group.get("LaunchTemplate") or {}).get("Version")) != ver.version:
        c.autoscaling.update_auto_scaling_group(
            AutoScalingGroupName=pre.group_name,
            LaunchTemplate={"LaunchTemplateId": pre.template_id, "Version": ver.version},
        )
    c.ec2.modify_launch_template(LaunchTemplateId=pre.template_id, DefaultVersion=ver.version)
    return Finalized(version=ver.version, image_id=ver.image_id, desired=group["DesiredCapacity"], canary_kept=kept)


def rollback(
    c: Clients,
    request: RolloutInput,
    pre: Preflight,
    refresh: Refresh | None,
    error: CaughtError | None,
    failed_gate: str | None,
    execution: str,
) -> Rollback:
    """Stop our refresh, put the group back on the old version if we moved it,
    remove the canary (only what it added); start a refresh back to the old version
    if new instances remain. Sizes are never written back: they are their owners'."""
    name = pre.group_name
    if refresh is not None:
        current = latest_refresh(c.autoscaling, name, refresh.refresh_id)
        if current["Status"] in ACTIVE_REFRESH:
            # Native rollback replaces what the refresh already replaced with the
            # group's pre-refresh configuration (the old version), and like any
            # refresh it works to the group's desired capacity of the moment.
            c.autoscaling.rollback_instance_refresh(AutoScalingGroupName=name)
            raise NotReadyYet(f"rolling back instance refresh {refresh.refresh_id}")
        if current["Status"] in STOPPING_REFRESH:
            raise NotReadyYet(f"instance refresh {refresh.refresh_id} is {current['Status']}")

    group = describe_group(c.autoscaling, name)
    spec = group.get("LaunchTemplate") or {}
    if str(spec.get("Version")) != pre.restore_version:
        # first, so that a canary replaced for its owners comes up on the old version
        c.autoscaling.update_auto_scaling_group(
            AutoScalingGroupName=name,
            LaunchTemplate={"LaunchTemplateId": pre.template_id, "Version": pre.restore_version},
        )
    release_canary(c, name, execution, keep_if_scaled=False)
    group = describe_group(c.autoscaling, name)
    strays = sorted(i["InstanceId"] for i in group.get("Instances", []) if instance_version(i) != pre.original_version)
    revert_id = None
    if strays:
        current = latest_refresh(c.autoscaling, name)
        if current and current["Status"] in ACTIVE_REFRESH and _refresh_version(current) == pre.original_version:
            revert_id = current["InstanceRefreshId"]
        else:
            revert_id = c.autoscaling.start_instance_refresh(
                AutoScalingGroupName=name,
                Strategy="Rolling",
                DesiredConfiguration={
                    "LaunchTemplate": {"LaunchTemplateId": pre.template_id, "Version": pre.original_version}
                },
                Preferences=refresh_preferences(request, auto_rollback=False),
            )["InstanceRefreshId"]
    error_name, message = explain_failure(error, failed_gate)
    return Rollback(
        error=error_name,
        cause=f"{request.target} rolled back to launch template version {pre.original_version}: {message}",
        reverted_instances=strays,
        revert_refresh_id=revert_id,
    )


def check_rollback(c: Clients, pre: Preflight, result: Rollback) -> RollbackDone:
    name = pre.group_name
    if result.revert_refresh_id:
        current = latest_refresh(c.autoscaling, name, result.revert_refresh_id)
        if current["Status"] in ACTIVE_REFRESH | STOPPING_REFRESH:
            raise NotReadyYet(f"reverting {name}: {current.get('PercentageComplete', 0)}%")
        if current["Status"] != "Successful":
            raise RollbackFailed(
                f"refresh back to version {pre.original_version} of {name} ended {current['Status']}: "
                f"{current.get('StatusReason', '')}; instances on the new version may remain"
            )
    group = describe_group(c.autoscaling, name)
    wrong = [i["InstanceId"] for i in group["Instances"] if instance_version(i) != pre.original_version]
    if wrong:
        raise NotReadyYet(f"{len(wrong)} instance(s) of {name} still on another version")
    in_service = sum(1 for i in group["Instances"] if i["LifecycleState"] == "InService")
    if in_service < group["DesiredCapacity"]:  # the owners' number of the moment, not the recorded one
        raise NotReadyYet(f"{in_service}/{group['DesiredCapacity']} instances of {name} InService")
    return RollbackDone(instances=in_service, version=pre.original_version)
