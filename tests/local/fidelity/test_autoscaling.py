"""Auto Scaling fidelity: instance refreshes, and the version each instance reports."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.conftest import running
from tests.local.fidelity.conftest import STILL, instances, new_version


def start_refresh(rt, min_healthy=80, warmup=100, alarms=None, name="web"):
    version = new_version(rt, name)
    preferences = {"MinHealthyPercentage": min_healthy, "InstanceWarmup": warmup, "SkipMatching": True,
                   "AutoRollback": True}
    if alarms:
        preferences["AlarmSpecification"] = {"Alarms": alarms}
    return rt.client("autoscaling").start_instance_refresh(
        AutoScalingGroupName=name,
        DesiredConfiguration={"LaunchTemplate": {"LaunchTemplateId": rt.fleet.groups[name].template_id,
                                                 "Version": str(version["VersionNumber"])}},
        Preferences=preferences,
    )["InstanceRefreshId"]


def refresh(rt, name="web"):
    return rt.client("autoscaling").describe_instance_refreshes(AutoScalingGroupName=name)["InstanceRefreshes"][0]


def test_instance_refresh_replaces_in_batches_of_the_unhealthy_allowance_after_warmup():
    """AWS: with max healthy 100 %, a refresh replaces at most (100 - MinHealthyPercentage) %
    of the group at a time and moves on once the new instances are InService and warmed up."""
    with running([{"name": "web", "size": 10}], **STILL) as rt:
        originals = {i["InstanceId"] for i in instances(rt)}
        start_refresh(rt, min_healthy=80, warmup=100)
        first = refresh(rt)
        assert first["Status"] == "InProgress" and first["PercentageComplete"] == 0
        assert first["InstancesToUpdate"] == 10
        assert len(originals - {i["InstanceId"] for i in instances(rt)}) == 2  # 20 % of 10 at a time
        rt.clock.advance(139)  # boot 40 s + warm-up 100 s not yet over
        assert refresh(rt)["PercentageComplete"] == 0
        rt.clock.advance(2)
        assert refresh(rt)["PercentageComplete"] == 20
        rt.clock.advance(140 * 4)
        done = refresh(rt)
        assert done["Status"] == "Successful" and done["PercentageComplete"] == 100
        current = instances(rt)
        assert len(current) == 10 and not originals & {i["InstanceId"] for i in current}
        assert {i["LaunchTemplate"]["Version"] for i in current} == {"2"}
        group = rt.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["web"])
        assert group["AutoScalingGroups"][0]["LaunchTemplate"]["Version"] == "2"  # desired config applied


def test_instance_refresh_rolls_back_when_an_alarm_fires():
    """AWS: with AutoRollback and an AlarmSpecification, an alarm in ALARM rolls the
    refresh back: replaced instances go back to the previous configuration."""
    with running([{"name": "web", "size": 4, "alarms": ["web-5xx"]}], **STILL) as rt:
        start_refresh(rt, min_healthy=50, alarms=["web-5xx"])
        rt.clock.advance(141)
        assert refresh(rt)["PercentageComplete"] == 50
        rt.client("cloudwatch").set_alarm_state(AlarmName="web-5xx", StateValue="ALARM", StateReason="test")
        rolling = refresh(rt)
        assert rolling["Status"] == "RollbackInProgress"
        assert "web-5xx" in rolling["StatusReason"]
        rt.clock.advance(1000)
        assert refresh(rt)["Status"] == "RollbackSuccessful"
        assert {i["LaunchTemplate"]["Version"] for i in instances(rt)} == {"1"}
        assert len(instances(rt)) == 4


def test_instance_refresh_cancel_and_rules():
    """AWS: one active refresh per group (InstanceRefreshInProgress); CancelInstanceRefresh
    ends it Cancelled; RollbackInstanceRefresh needs an active refresh."""
    with running([{"name": "web", "size": 4}], **STILL) as rt:
        autoscaling = rt.client("autoscaling")
        start_refresh(rt)
        with pytest.raises(ClientError) as busy:
            start_refresh(rt)
        assert busy.value.response["Error"]["Code"] == "InstanceRefreshInProgress"
        autoscaling.cancel_instance_refresh(AutoScalingGroupName="web")
        assert refresh(rt)["Status"] == "Cancelled"
        with pytest.raises(ClientError) as idle:
            autoscaling.rollback_instance_refresh(AutoScalingGroupName="web")
        assert idle.value.response["Error"]["Code"] == "ActiveInstanceRefreshNotFound"


def test_each_instance_reports_the_version_it_was_launched_from():
    with running([{"name": "web", "size": 2}], **STILL) as rt:
        version = new_version(rt)["VersionNumber"]
        rt.client("autoscaling").update_auto_scaling_group(
            AutoScalingGroupName="web", DesiredCapacity=3, MaxSize=3,
            LaunchTemplate={"LaunchTemplateId": rt.fleet.groups["web"].template_id, "Version": str(version)})
        assert sorted(i["LaunchTemplate"]["Version"] for i in instances(rt)) == ["1", "1", "2"]


# --- capacity changes: attach, scale-out and scale-in as AWS does them ------------------


def group_of(rt, name="web"):
    return rt.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]


def launch_from_new_version(rt, name="web"):
    version = new_version(rt, name)
    return rt.client("ec2").run_instances(
        LaunchTemplate={"LaunchTemplateId": rt.fleet.groups[name].template_id,
                        "Version": str(version["VersionNumber"])},
        MinCount=1, MaxCount=1, SubnetId=rt.fleet.subnet_id)["Instances"][0]["InstanceId"]


def test_attach_raises_desired_by_one_refuses_above_max_and_keeps_the_instance_version():
    """AWS: AttachInstances adds the instances to DesiredCapacity, refuses with a
    ValidationError when that would exceed MaxSize, registers them with the group's
    target groups; each reports the launch-template version it was launched from."""
    with running([{"name": "web", "size": 2, "max_size": 3, "target_group": True}], **STILL) as rt:
        autoscaling = rt.client("autoscaling")
        first, second = launch_from_new_version(rt), launch_from_new_version(rt)
        autoscaling.attach_instances(AutoScalingGroupName="web", InstanceIds=[first])
        group = group_of(rt)
        assert group["DesiredCapacity"] == 3 and len(group["Instances"]) == 3
        attached = next(i for i in group["Instances"] if i["InstanceId"] == first)
        assert attached["LaunchTemplate"]["Version"] == "2"
        targets = rt.client("elbv2").describe_target_health(TargetGroupArn=rt.fleet.groups["web"].target_group_arn)
        assert first in {d["Target"]["Id"] for d in targets["TargetHealthDescriptions"]}
        with pytest.raises(ClientError) as refused:
            autoscaling.attach_instances(AutoScalingGroupName="web", InstanceIds=[second])
        assert refused.value.response["Error"]["Code"] == "ValidationError"
        assert group_of(rt)["DesiredCapacity"] == 3


def test_scale_in_terminates_the_oldest_version_first_and_deregisters_it():
    """AWS default termination policy: instances on the oldest launch template
    (version) go first; a terminated instance leaves the group's target groups."""
    with running([{"name": "web", "size": 3, "max_size": 4, "target_group": True}], **STILL) as rt:
        autoscaling = rt.client("autoscaling")
        canary = launch_from_new_version(rt)
        autoscaling.attach_instances(AutoScalingGroupName="web", InstanceIds=[canary])
        autoscaling.set_desired_capacity(AutoScalingGroupName="web", DesiredCapacity=2)
        members = {i["InstanceId"] for i in group_of(rt)["Instances"]}
        assert len(members) == 2 and canary in members  # the newer version stays
        targets = rt.client("elbv2").describe_target_health(TargetGroupArn=rt.fleet.groups["web"].target_group_arn)
        registered = {d["Target"]["Id"] for d in targets["TargetHealthDescriptions"]}
        assert registered == members


def test_scale_out_launches_the_group_version_and_during_a_refresh_the_desired_one():
    """AWS: a scale-out launches from the group's own launch template version; while
    an instance refresh with a desired configuration runs, from that configuration."""
    with running([{"name": "web", "size": 4, "max_size": 10}], **STILL) as rt:
        autoscaling = rt.client("autoscaling")
        new_version(rt)
        autoscaling.set_desired_capacity(AutoScalingGroupName="web", DesiredCapacity=5)
        assert {i["LaunchTemplate"]["Version"] for i in instances(rt)} == {"1"}
        start_refresh(rt, min_healthy=50)
        before = {i["InstanceId"] for i in instances(rt)}
        autoscaling.set_desired_capacity(AutoScalingGroupName="web", DesiredCapacity=7)
        added = [i for i in instances(rt) if i["InstanceId"] not in before]
        assert len(added) == 2 and {i["LaunchTemplate"]["Version"] for i in added} == {"3"}
