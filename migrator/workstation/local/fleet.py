"""Builds a scenario's fleet in the simulated account, as a user's AL2 estate looks."""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass, field

from moto.core import DEFAULT_ACCOUNT_ID as ACCOUNT_ID

from migrator import clock as domain_clock
from migrator.config import AL2_AMI_PARAMETER, AL2023_AMI_PARAMETER
from migrator.fleet.plan import ALARMS_TAG, DNS_TAG
from migrator.workstation.local.kubernetes import SimCluster, Workload
from migrator.workstation.local.scenario import (
    AutoScalingGroupSpec,
    EksClusterSpec,
    KarpenterPoolSpec,
    NodegroupSpec,
    Scenario,
    SelfManagedSpec,
    StandaloneSpec,
)

# A kubelet setting an AL2 launch template typically passes to bootstrap.sh.
AL2_BOOTSTRAP = ("#!/bin/bash\nset -e\n/etc/eks/bootstrap.sh {cluster} "
                 "--kubelet-extra-args '--node-labels=workload=general --max-pods=58'\n")
# A self-managed group's script: bootstrap.sh with kubelet flags over two lines, and work of the team's own.
SELF_MANAGED_BOOTSTRAP = ("#!/bin/bash\nset -o xtrace\n/etc/eks/bootstrap.sh {cluster} \\\n"
                          "  --kubelet-extra-args '--node-labels=workload={group},team=edge --max-pods=29'\n"
                          "echo 'vm.max_map_count=262144' > /etc/sysctl.d/99-ingress.conf\nsysctl --system\n")
FAKE_CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nbG9jYWw=\n-----END CERTIFICATE-----\n").decode()


@dataclass
class BuiltGroup:
    spec: AutoScalingGroupSpec
    template_id: str
    original_version: str
    original_image: str
    instance_ids: list[str]
    target_group_arn: str | None = None


@dataclass
class BuiltInstance:
    spec: StandaloneSpec
    instance_id: str
    original_image: str
    volume_ids: dict[str, str]  # device name -> volume id
    private_ip: str
    tags: dict[str, str]
    allocation_id: str | None = None
    public_ip: str | None = None
    zone_id: str | None = None
    record_name: str | None = None
    record_value: str | None = None  # the IP the A record names at the start

    def cutover(self) -> dict:
        if self.allocation_id:
            return {"mode": "elastic_ip"}
        if self.zone_id:
            return {"mode": "dns", "hosted_zone_id": self.zone_id, "record_name": self.record_name}
        return {"mode": "none"}


@dataclass
class BuiltNodegroup:
    cluster: EksClusterSpec
    spec: NodegroupSpec
    sim: SimCluster

    @property
    def target(self) -> str:
        return self.cluster.target(self.spec)


@dataclass
class BuiltPool:
    """A Karpenter NodePool of a scenario cluster (its objects and nodes live in local/karpenter.py)."""

    cluster: EksClusterSpec
    spec: KarpenterPoolSpec
    sim: SimCluster

    @property
    def target(self) -> str:
        return self.cluster.target(self.spec)


@dataclass
class BuiltSelfManaged:
    """A self-managed node group: an Auto Scaling group whose instances join the cluster (local/fidelity/node_join.py)."""

    cluster: EksClusterSpec
    spec: SelfManagedSpec
    sim: SimCluster
    template_id: str
    original_image: str

    @property
    def target(self) -> str:
        return self.cluster.target(self.spec)


@dataclass
class Fleet:
    al2_image: str
    al2023_image: str
    subnet_id: str
    groups: dict[str, BuiltGroup] = field(default_factory=dict)
    instances: dict[str, BuiltInstance] = field(default_factory=dict)
    nodegroups: dict[str, BuiltNodegroup] = field(default_factory=dict)  # by target
    karpenter: dict[str, BuiltPool] = field(default_factory=dict)  # by target
    self_managed: dict[str, BuiltSelfManaged] = field(default_factory=dict)  # by target
    bystanders: dict[str, str] = field(default_factory=dict)  # instance id -> image, never to be touched

    def instance_count(self, target: str) -> int:
        kind, name = target.split("/", 1)
        if target in self.karpenter:
            return self.karpenter[target].spec.size
        if kind == "eks":
            return (self.self_managed.get(target) or self.nodegroups[target]).spec.size
        return self.groups[name].spec.size if kind == "asg" else 1


def build_fleet(scenario: Scenario, clients, tag: dict, make_cluster=None) -> Fleet:
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
    if scenario.eks_clusters:
        roles = _eks_roles(clients)
        for spec in scenario.eks_clusters:
            sim = make_cluster(spec)
            for group in _build_cluster(spec, clients, fleet, roles, tag, sim):
                fleet.nodegroups[group.target] = group
            fleet.karpenter |= {spec.target(pool): BuiltPool(spec, pool, sim) for pool in spec.karpenter}
            for group in spec.self_managed:
                built = _build_self_managed(spec, group, clients, fleet, tag, sim)
                fleet.self_managed[built.target] = built
    if scenario.standalone:
        shared = _standalone_shared(clients, vpc)
        for spec in scenario.standalone:
            fleet.instances[spec.name] = _build_instance(spec, clients, fleet, shared, tag)
    return fleet


def _standalone_shared(clients, vpc: str) -> dict:
    """What standalone servers usually have: a security group, a key pair, an instance profile."""
    ec2, iam = clients("ec2"), clients("iam")
    group = ec2.create_security_group(GroupName="app-servers", Description="app servers", VpcId=vpc)["GroupId"]
    ec2.create_key_pair(KeyName="ops")
    iam.create_role(RoleName="app-server", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
    profile = iam.create_instance_profile(InstanceProfileName="app-server")["InstanceProfile"]["Arn"]
    iam.add_role_to_instance_profile(InstanceProfileName="app-server", RoleName="app-server")
    return {"vpc": vpc, "security_group": group, "key_name": "ops", "profile": profile, "zones": {}}


def _build_instance(spec: StandaloneSpec, clients, fleet: Fleet, shared: dict, tag: dict) -> BuiltInstance:
    ec2 = clients("ec2")
    image = fleet.al2023_image if spec.os == "al2023" else fleet.al2_image
    root = ec2.describe_images(ImageIds=[image])["Images"][0].get("RootDeviceName", "/dev/xvda")
    devices = [root] + [f"/dev/sd{chr(ord('f') + i)}" for i in range(len(spec.volumes_gib) - 1)]
    tags = {"Name": spec.name, tag["key"]: tag["value"], "team": "platform"}
    instance = ec2.run_instances(
        ImageId=image, InstanceType=spec.instance_type, MinCount=1, MaxCount=1, KeyName=shared["key_name"],
        **({"NetworkInterfaces": [{"DeviceIndex": 0, "SubnetId": fleet.subnet_id, "AssociatePublicIpAddress": True,
                                   "Groups": [shared["security_group"]]}]} if spec.dns_public
           else {"SubnetId": fleet.subnet_id, "SecurityGroupIds": [shared["security_group"]]}),
        IamInstanceProfile={"Arn": shared["profile"]},
        BlockDeviceMappings=[
            {"DeviceName": device, "Ebs": {"VolumeSize": size, "VolumeType": "gp3", "Encrypted": True,
                                           "DeleteOnTermination": device == root}}
            for device, size in zip(devices, spec.volumes_gib)
        ],
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
        **({"UserData": spec.host.user_data} if spec.host and spec.host.user_data else {}),
    )["Instances"][0]
    iid = instance["InstanceId"]
    if spec.host:
        publish_imds_v1_calls(clients("cloudwatch"), iid, spec.host.imds_v1_calls)
    described = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    built = BuiltInstance(
        spec=spec, instance_id=iid, original_image=image, private_ip=described["PrivateIpAddress"], tags=tags,
        volume_ids={m["DeviceName"]: m["Ebs"]["VolumeId"] for m in described["BlockDeviceMappings"]},
    )
    if spec.elastic_ip:
        # Tagged as its instance is opted in: the migration may move only tagged addresses (migrator/preflight_checks.py).
        address = ec2.allocate_address(Domain="vpc", TagSpecifications=[{
            "ResourceType": "elastic-ip", "Tags": [{"Key": tag["key"], "Value": tag["value"]}]}])
        ec2.associate_address(AllocationId=address["AllocationId"], InstanceId=iid)
        built.allocation_id, built.public_ip = address["AllocationId"], address["PublicIp"]
    if spec.dns:
        route53 = clients("route53")
        domain = spec.dns.split(".", 1)[1]
        if domain not in shared["zones"]:
            shared["zones"][domain] = route53.create_hosted_zone(
                Name=domain, CallerReference=f"scenario-{domain}",
                VPC={"VPCRegion": ec2.meta.region_name, "VPCId": shared["vpc"]},
                HostedZoneConfig={"PrivateZone": True, "Comment": "scenario"},
            )["HostedZone"]["Id"].rsplit("/", 1)[-1]
        built.zone_id, built.record_name = shared["zones"][domain], spec.dns
        built.record_value = described.get("PublicIpAddress") if spec.dns_public else built.private_ip
        route53.change_resource_record_sets(HostedZoneId=built.zone_id, ChangeBatch={"Changes": [{
            "Action": "CREATE", "ResourceRecordSet": {"Name": spec.dns, "Type": "A", "TTL": 60,
                                                      "ResourceRecords": [{"Value": built.record_value}]}}]})
        # how discovery learns which record to move (Route 53 cannot be searched by value)
        ec2.create_tags(Resources=[iid], Tags=[{"Key": DNS_TAG, "Value": f"{built.zone_id}/{spec.dns}"}])
    if spec.alarms:
        ec2.create_tags(Resources=[iid], Tags=[{"Key": ALARMS_TAG, "Value": ",".join(spec.alarms)}])
        cloudwatch = clients("cloudwatch")
        for alarm in spec.alarms:
            cloudwatch.put_metric_alarm(
                AlarmName=alarm, Namespace="AWS/EC2", MetricName="StatusCheckFailed", Statistic="Maximum",
                Period=60, EvaluationPeriods=1, Threshold=0, ComparisonOperator="GreaterThanThreshold",
                Dimensions=[{"Name": "InstanceId", "Value": iid}])
            cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="scenario start")
    return built


def publish_imds_v1_calls(cloudwatch, instance_id: str, per_hour: float) -> None:
    """EC2 publishes MetadataNoToken (IMDSv1 calls) per instance; a day of the host's rate."""
    now = dt.datetime.fromtimestamp(domain_clock.now(), dt.UTC)
    cloudwatch.put_metric_data(Namespace="AWS/EC2", MetricData=[
        {"MetricName": "MetadataNoToken", "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
         "Timestamp": now - dt.timedelta(hours=hour), "Value": per_hour, "Unit": "Count"} for hour in range(1, 25)])


def _build_group(spec: AutoScalingGroupSpec, clients, fleet: Fleet, vpc: str, tag: dict) -> BuiltGroup:
    ec2, autoscaling = clients("ec2"), clients("autoscaling")
    image = fleet.al2023_image if spec.os == "al2023" else fleet.al2_image
    opt_in = [{"Key": tag["key"], "Value": tag["value"]}]
    template = ec2.create_launch_template(
        LaunchTemplateName=f"{spec.name}-lt",
        LaunchTemplateData={
            "ImageId": image,
            "InstanceType": spec.instance_type,
            "UserData": base64.b64encode(
                (spec.host.user_data if spec.host and spec.host.user_data else f"#!/bin/bash\necho {spec.name}\n")
                .encode()).decode(),
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
        MinSize=spec.min_size,
        MaxSize=spec.max_size,
        DesiredCapacity=spec.size,
        VPCZoneIdentifier=fleet.subnet_id,
        HealthCheckType="ELB" if spec.target_group else "EC2",
        HealthCheckGracePeriod=60,
        TargetGroupARNs=[target_group_arn] if target_group_arn else [],
        Tags=[{"Key": t["Key"], "Value": t["Value"], "PropagateAtLaunch": True} for t in opt_in]
        + [{"Key": "Name", "Value": spec.name, "PropagateAtLaunch": True}]
        + ([{"Key": ALARMS_TAG, "Value": ",".join(spec.alarms), "PropagateAtLaunch": True}] if spec.alarms else []),
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


def _custom_eks_image(ec2, version: str) -> str:
    """A team's own EKS node AMI built on Amazon Linux 2 (one per Kubernetes version, registered once)."""
    name = f"amzn2-eks-node-{version}-custom-v20251101"
    found = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [name]}])["Images"]
    if found:
        return found[0]["ImageId"]
    return ec2.register_image(Name=name, Description="Amazon Linux 2 EKS node, hardened by the platform team",
                              Architecture="x86_64", RootDeviceName="/dev/xvda")["ImageId"]


def _eks_roles(clients) -> dict:
    iam = clients("iam")
    roles = {}
    for name, service in (("eks-cluster", "eks.amazonaws.com"), ("eks-node", "ec2.amazonaws.com")):
        roles[name] = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    return roles


def _build_cluster(spec: EksClusterSpec, clients, fleet: Fleet, roles: dict, tag: dict,
                   sim: SimCluster) -> list[BuiltNodegroup]:
    eks, ec2 = clients("eks"), clients("ec2")
    eks.create_cluster(name=spec.name, version=spec.version, roleArn=roles["eks-cluster"],
                       resourcesVpcConfig={"subnetIds": [fleet.subnet_id]},
                       kubernetesNetworkConfig={"serviceIpv4Cidr": "172.20.0.0/16"})
    built = []
    for group in spec.nodegroups:
        options = {}
        ami_type = "AL2023_x86_64_STANDARD" if group.os == "al2023" else "AL2_x86_64"
        if group.launch_template == "custom" or group.ami == "custom":
            data = {"UserData": base64.b64encode(
                        (AL2_BOOTSTRAP.format(cluster=spec.name) + group.user_data).encode()).decode(),
                    "MetadataOptions": {"HttpTokens": "optional", "HttpPutResponseHopLimit": 2},
                    "InstanceType": group.instance_type}
            extra = {}
            if group.ami == "custom":  # the team's own AMI, named in the template: EKS's AMI type is CUSTOM
                data["ImageId"] = fleet.al2023_image if group.os == "al2023" else _custom_eks_image(ec2, spec.version)
                ami_type = "CUSTOM"
                if group.opt_in:  # opted in as its group is (the migration adds versions only to tagged templates)
                    extra["TagSpecifications"] = [{"ResourceType": "launch-template",
                                                   "Tags": [{"Key": tag["key"], "Value": tag["value"]}]}]
            template = ec2.create_launch_template(LaunchTemplateName=f"{spec.name}-{group.name}",
                                                  LaunchTemplateData=data, **extra)["LaunchTemplate"]
            options["launchTemplate"] = {"id": template["LaunchTemplateId"], "version": "1"}
        else:
            options["instanceTypes"] = [group.instance_type]
        eks.create_nodegroup(
            clusterName=spec.name, nodegroupName=group.name, subnets=[fleet.subnet_id],
            nodeRole=roles["eks-node"], amiType=ami_type,
            scalingConfig={"minSize": group.size, "maxSize": group.size, "desiredSize": group.size},
            labels={"workload": "general"}, tags={tag["key"]: tag["value"]} if group.opt_in else {"team": "others"},
            capacityType="ON_DEMAND", **options)
        built.append(BuiltNodegroup(spec, group, sim))
    sim.add_workload(Workload("aws-node", "kube-system", daemonset=True, service_account="aws-node", host_network=True))
    sim.add_workload(Workload("kube-proxy", "kube-system", daemonset=True, service_account="kube-proxy",
                              host_network=True))
    for workload in spec.workloads:
        sim.add_workload(Workload(workload.name, workload.namespace, workload.replicas, workload.daemonset,
                                  workload.pdb_min_available, bare=workload.controller == "none",
                                  empty_dir=workload.empty_dir, extra_pdb=workload.extra_pdb,
                                  node_selector=dict(workload.node_selector), service_account=workload.service_account))
        if workload.aws_identity == "irsa":
            sim.service_account_annotations[(workload.namespace, workload.service_account)] = {
                "eks.amazonaws.com/role-arn": f"arn:aws:iam::{ACCOUNT_ID}:role/{workload.service_account}"}
    return built


def _build_self_managed(cluster: EksClusterSpec, spec: SelfManagedSpec, clients, fleet: Fleet, tag: dict,
                        sim: SimCluster) -> BuiltSelfManaged:
    """An Auto Scaling group on the EKS-optimized AL2 AMI whose instances join `cluster` through bootstrap.sh."""
    ec2, autoscaling = clients("ec2"), clients("autoscaling")
    script = SELF_MANAGED_BOOTSTRAP.format(cluster=cluster.name, group=spec.name)
    template = ec2.create_launch_template(
        LaunchTemplateName=f"{cluster.name}-{spec.name}",
        LaunchTemplateData={"ImageId": fleet.al2_image, "InstanceType": spec.instance_type,
                            "UserData": base64.b64encode(script.encode()).decode(),
                            "MetadataOptions": {"HttpTokens": "optional", "HttpPutResponseHopLimit": 2}},
        TagSpecifications=[{"ResourceType": "launch-template", "Tags": [{"Key": tag["key"], "Value": tag["value"]}]}],
    )["LaunchTemplate"]
    tags = {"Name": f"{cluster.name}-{spec.name}", f"kubernetes.io/cluster/{cluster.name}": "owned",
            **({tag["key"]: tag["value"]} if spec.opt_in else {"team": "others"})}
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=spec.name,
        LaunchTemplate={"LaunchTemplateId": template["LaunchTemplateId"], "Version": "$Default"},
        MinSize=spec.size, MaxSize=spec.size, DesiredCapacity=spec.size, VPCZoneIdentifier=fleet.subnet_id,
        Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": True} for k, v in tags.items()],
    )
    return BuiltSelfManaged(cluster, spec, sim, template["LaunchTemplateId"], fleet.al2_image)
