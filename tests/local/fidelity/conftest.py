"""What the fidelity tests of several services share: a still clock, the web
group's instances and launch template, standalone servers."""

from __future__ import annotations

from tests.conftest import running

# Almost no clock drift: these tests move the clock by hand.
STILL = {"clock": {"speed": 0.001}, "timings": {"instance_boot": 40, "health_grace": 60}}

DB = {"name": "db-1", "volumes_gib": [8, 100], "elastic_ip": True}


def instances(rt, name="web"):
    group = rt.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
    return group["Instances"]


def new_version(rt, name="web"):
    return rt.client("ec2").create_launch_template_version(
        LaunchTemplateId=rt.fleet.groups[name].template_id, SourceVersion="1",
        LaunchTemplateData={"ImageId": rt.fleet.al2023_image},
    )["LaunchTemplateVersion"]


def servers(*specs, **extra):
    """A runtime with these standalone servers, snapshots taking two minutes."""
    return running([], standalone=list(specs), **{**STILL, "timings": {"instance_boot": 40, "health_grace": 60,
                                                                       "snapshot_complete": 120}}, **extra)
