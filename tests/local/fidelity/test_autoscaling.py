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
