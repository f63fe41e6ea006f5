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
from migrator.aws import execution_name
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


def version_description(execution: str) -> str:
    """Marks the version this execution created, so a retry finds it."""
    return f"al2023-migration {execution_name(execution)}"[:255]


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
    data = c.ec2.describe_launch_template_versions(LaunchTemplateId=template_id, Versions=[version])[
        "LaunchTemplateVersions"
    ][0]["LaunchTemplateData"]
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
    description = version_description(execution)
    paginator = c.ec2.get_paginator("describe_launch_template_versions")
    for page in paginator.paginate(LaunchTemplateId=pre.template_id):
        for existing in page["LaunchTemplateVersions"]:
            if existing.get("VersionDescription") == description:
                return _version_result(existing, ami, created=False)

    source = c.ec2.describe_launch_template_versions(
        LaunchTemplateId=pre.template_id, Versions=[pre.original_version]
    )["LaunchTemplateVersions"][0]["LaunchTemplateData"]
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


def start_canary(c: Clients, pre: Preflight, ver: LaunchVersion) -> Canary:
    group = describe_group(c.autoscaling, pre.group_name)
    desired = pre.desired + 1
    current = str((group.get("LaunchTemplate") or {}).get("Version"))
    changed = not (current == ver.version and group["DesiredCapacity"] == desired)
    if changed:
        c.autoscaling.update_auto_scaling_group(
            AutoScalingGroupName=pre.group_name,
            # a version number, never $Latest/$Default: refresh rollback needs it
            LaunchTemplate={"LaunchTemplateId": pre.template_id, "Version": ver.version},
            DesiredCapacity=desired,
            MaxSize=max(pre.max, desired),
        )
    return Canary(desired=desired, started_at=clock.now(), changed=changed)


def find_canary(group: dict, pre: Preflight, ver: LaunchVersion) -> dict | None:
    before = set(pre.instance_ids)
    candidates = [
        i for i in group.get("Instances", []) if i["InstanceId"] not in before and instance_version(i) == ver.version
    ]
    return sorted(candidates, key=lambda i: i["InstanceId"])[0] if candidates else None


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
    instance = find_canary(group, pre, ver)
    if instance is None:
        raise not_ready(f"no canary instance on version {ver.version} in {pre.group_name} yet")
    instance_id = instance["InstanceId"]
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
    # The group goes back to the old version for the length of the refresh: AWS
    # rolls a refresh back to the configuration the group had when it started,
    # so that configuration must be the old one for AutoRollback to mean anything.
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


def finalize(c: Clients, pre: Preflight, ver: LaunchVersion, canary_id: str) -> Finalized:
    group = describe_group(c.autoscaling, pre.group_name)
    members = {i["InstanceId"] for i in group.get("Instances", [])}
    if canary_id in members and group["DesiredCapacity"] > pre.desired:
        c.autoscaling.terminate_instance_in_auto_scaling_group(
            InstanceId=canary_id, ShouldDecrementDesiredCapacity=True
        )
    c.autoscaling.update_auto_scaling_group(
        AutoScalingGroupName=pre.group_name,
        LaunchTemplate={"LaunchTemplateId": pre.template_id, "Version": ver.version},
        MinSize=pre.min,
        MaxSize=pre.max,
        DesiredCapacity=pre.desired,
    )
    c.ec2.modify_launch_template(LaunchTemplateId=pre.template_id, DefaultVersion=ver.version)
    return Finalized(version=ver.version, image_id=ver.image_id, desired=pre.desired)


def rollback(
    c: Clients,
    request: RolloutInput,
    pre: Preflight,
    refresh: Refresh | None,
    error: CaughtError | None,
    failed_gate: str | None,
) -> Rollback:
    """Stop our refresh, drop the canary, put the group back on the old version and
    sizes; start a refresh back to the old version if new instances remain."""
    name = pre.group_name
    if refresh is not None:
        current = latest_refresh(c.autoscaling, name, refresh.refresh_id)
        if current["Status"] in ACTIVE_REFRESH:
            # Native rollback replaces what the refresh already replaced with the
            # group's pre-refresh configuration, which start_refresh made the old one.
            c.autoscaling.rollback_instance_refresh(AutoScalingGroupName=name)
            raise NotReadyYet(f"rolling back instance refresh {refresh.refresh_id}")
        if current["Status"] in STOPPING_REFRESH:
            raise NotReadyYet(f"instance refresh {refresh.refresh_id} is {current['Status']}")

    group = describe_group(c.autoscaling, name)
    members = {i["InstanceId"]: i for i in group.get("Instances", [])}
    for instance in list(members.values()):
        is_canary = instance["InstanceId"] not in pre.instance_ids and instance_version(instance) != pre.original_version
        if is_canary and group["DesiredCapacity"] > pre.desired:
            c.autoscaling.terminate_instance_in_auto_scaling_group(
                InstanceId=instance["InstanceId"], ShouldDecrementDesiredCapacity=True
            )
            group["DesiredCapacity"] -= 1
            del members[instance["InstanceId"]]
    c.autoscaling.update_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateId": pre.template_id, "Version": pre.restore_version},
        MinSize=pre.min,
        MaxSize=pre.max,
        DesiredCapacity=pre.desired,
    )
    strays = sorted(i for i, inst in members.items() if instance_version(inst) != pre.original_version)
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
    if in_service < pre.desired:
        raise NotReadyYet(f"{in_service}/{pre.desired} instances of {name} InService")
    return RollbackDone(instances=in_service, version=pre.original_version)
