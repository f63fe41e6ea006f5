"""Builds a scenario's fleet in the simulated account, as a user's AL2 estate looks."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from migrator.config import AL2_AMI_PARAMETER, AL2023_AMI_PARAMETER
from migrator.local.scenario import AutoScalingGroupSpec, Scenario


@dataclass
class BuiltGroup:
    spec: AutoScalingGroupSpec
    template_id: str
    original_version: str
    original_image: str
    instance_ids: list[str]
    target_group_arn: str | None = None


@dataclass
class Fleet:
    al2_image: str
    al2023_image: str
    subnet_id: str
    groups: dict[str, BuiltGroup] = field(default_factory=dict)
    bystanders: dict[str, str] = field(default_factory=dict)  # instance id -> image, never to be touched


def build_fleet(scenario: Scenario, clients, tag: dict) -> Fleet:
    ec2, ssm = clients("ec2"), clients("ssm")
    al2 = ssm.get_parameter(Name=AL2_AMI_PARAMETER["x86_64"])["Parameter"]["Value"]
    al2023 = ssm.get_parameter(Name=AL2023_AMI_PARAMETER["x86_64"])["Parameter"]["Value"]
    vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.40.0.0/20", AvailabilityZone=f"{scenario.region}a")
    fleet = Fleet(al2_image=al2, al2023_image=al2023, subnet_id=subnet["Subnet"]["SubnetId"])

    # An instance outside every target: the run must leave it exactly as it is.
    bystander = ec2.run_instances(ImageId=al2, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                  SubnetId=fleet.subnet_id)["Instances"][0]
    fleet.bystanders[bystander["InstanceId"]] = al2

    for spec in scenario.auto_scaling_groups:
        fleet.groups[spec.name] = _build_group(spec, clients, fleet, vpc, tag)
    return fleet


def _build_group(spec: AutoScalingGroupSpec, clients, fleet: Fleet, vpc: str, tag: dict) -> BuiltGroup:
    ec2, autoscaling = clients("ec2"), clients("autoscaling")
    image = fleet.al2023_image if spec.os == "al2023" else fleet.al2_image
    opt_in = [{"Key": tag["key"], "Value": tag["value"]}]
    template = ec2.create_launch_template(
        LaunchTemplateName=f"{spec.name}-lt",
        LaunchTemplateData={
            "ImageId": image,
            "InstanceType": spec.instance_type,
            "UserData": base64.b64encode(f"#!/bin/bash\necho {spec.name}\n".encode()).decode(),
            "MetadataOptions": {"HttpTokens": "optional", "HttpPutResponseHopLimit": 2},
        },
        TagSpecifications=[{"ResourceType": "launch-template", "Tags": opt_in}],
    )["LaunchTemplate"]
    target_group_arn = None
    if spec.target_group:
        target_group_arn = clients("elbv2").create_target_group(
            Name=f"{spec.name}-tg"[:32], Protocol="HTTP", Port=80, VpcId=vpc, TargetType="instance",
            HealthCheckPath="/health",
        )["TargetGroups"][0]["TargetGroupArn"]
    cloudwatch = clients("cloudwatch")
    for alarm in spec.alarms:
        cloudwatch.put_metric_alarm(
            AlarmName=alarm, Namespace="AWS/ApplicationELB", MetricName="HTTPCode_Target_5XX_Count",
            Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=10,
            ComparisonOperator="GreaterThanThreshold",
        )
        cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="scenario start")
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=spec.name,
        LaunchTemplate={"LaunchTemplateId": template["LaunchTemplateId"], "Version": spec.version},
        MinSize=spec.size,
        MaxSize=spec.size,
        DesiredCapacity=spec.size,
        VPCZoneIdentifier=fleet.subnet_id,
        HealthCheckType="ELB" if spec.target_group else "EC2",
        HealthCheckGracePeriod=60,
        TargetGroupARNs=[target_group_arn] if target_group_arn else [],
        Tags=[{"Key": t["Key"], "Value": t["Value"], "PropagateAtLaunch": True} for t in opt_in]
        + [{"Key": "Name", "Value": spec.name, "PropagateAtLaunch": True}],
    )
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[spec.name])["AutoScalingGroups"][0]
    return BuiltGroup(
        spec=spec,
        template_id=template["LaunchTemplateId"],
        original_version="1",
        original_image=image,
        instance_ids=sorted(i["InstanceId"] for i in group["Instances"]),
        target_group_arn=target_group_arn,
    )
