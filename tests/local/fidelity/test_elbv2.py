"""ELBv2 fidelity: a target's health follows boot, grace period and faults."""

from __future__ import annotations

from tests.conftest import running
from tests.local.fidelity.conftest import STILL, instances, new_version


def test_new_instances_are_pending_then_initial_then_healthy():
    """AWS: an instance is Pending until booted; its target is `initial` until it passes
    the health checks after the grace period, then `healthy`."""
    with running([{"name": "web", "size": 2, "target_group": True}], **STILL) as rt:
        autoscaling, elbv2 = rt.client("autoscaling"), rt.client("elbv2")
        arn = rt.fleet.groups["web"].target_group_arn
        autoscaling.set_desired_capacity(AutoScalingGroupName="web", DesiredCapacity=3)
        new = next(i for i in instances(rt) if i["InstanceId"] not in rt.fleet.groups["web"].instance_ids)

        def health():
            return elbv2.describe_target_health(TargetGroupArn=arn, Targets=[{"Id": new["InstanceId"]}])[
                "TargetHealthDescriptions"][0]["TargetHealth"]["State"]

        def lifecycle():
            return next(i for i in instances(rt) if i["InstanceId"] == new["InstanceId"])["LifecycleState"]

        assert (lifecycle(), health()) == ("Pending", "initial")
        rt.clock.advance(41)
        assert (lifecycle(), health()) == ("InService", "initial")
        rt.clock.advance(60)
        assert health() == "healthy"


def test_unhealthy_fault_makes_the_canary_target_unhealthy():
    with running([{"name": "web", "size": 2, "target_group": True}], faults=[
            {"target": "asg/web", "at": "canary", "kind": "unhealthy"}], **STILL) as rt:
        version = new_version(rt)
        rt.client("autoscaling").update_auto_scaling_group(
            AutoScalingGroupName="web", DesiredCapacity=3, MaxSize=3,
            LaunchTemplate={"LaunchTemplateId": rt.fleet.groups["web"].template_id,
                            "Version": str(version["VersionNumber"])})
        canary = next(i for i in instances(rt) if i["LaunchTemplate"]["Version"] == "2")
        rt.clock.advance(200)
        health = rt.client("elbv2").describe_target_health(
            TargetGroupArn=rt.fleet.groups["web"].target_group_arn, Targets=[{"Id": canary["InstanceId"]}])
        assert health["TargetHealthDescriptions"][0]["TargetHealth"]["State"] == "unhealthy"
