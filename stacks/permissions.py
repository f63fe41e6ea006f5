"""Least-privilege IAM statements for each `Access` bundle of migrator.workflows.

Every statement that needs a wildcard resource or action records why, so the
role gets a cdk-nag AwsSolutions-IAM5 suppression naming exactly that wildcard.
"""

from __future__ import annotations

from collections import defaultdict

from aws_cdk import Aws, aws_iam as iam, aws_secretsmanager as secretsmanager
from cdk_nag import NagPackSuppression, NagSuppressions

from migrator.approvals.core import APPROVAL_KEY_PREFIX
from migrator.config import AMI_PARAMETER_PATHS, CANARY_TAG, EXECUTION_TAG, EXPIRES_TAG, GROUP_TAG
from migrator.fleet.waves import PLAN_KEY_PREFIX
from migrator.workflows import Access
from stacks.encryption import KEY_PUBLISH_ACTIONS, KEY_READ_ACTIONS, KEY_TABLE_ACTIONS, EncryptionKey
from stacks.notifications import Notifications
from stacks.tables import MigrationTables

_TOKENS = {"partition": Aws.PARTITION, "region": Aws.REGION, "account": Aws.ACCOUNT_ID}
_NAG_NAMES = {"partition": "<AWS::Partition>", "region": "<AWS::Region>", "account": "<AWS::AccountId>"}


class Pattern(str):
    """An ARN template such as "arn:{partition}:ec2:{region}:{account}:launch-template/*";
    one with a `*` is a wildcard cdk-nag reports."""

    @property
    def arn(self) -> str:
        return self.format(**_TOKENS)

    @property
    def nag_finding(self) -> str:  # how cdk-nag names the resource in an IAM5 finding
        return "Resource::" + self.format(**_NAG_NAMES)


ANY = Pattern("*")
LAUNCH_TEMPLATES = Pattern("arn:{partition}:ec2:{region}:{account}:launch-template/*")
AUTO_SCALING_GROUPS = Pattern("arn:{partition}:autoscaling:{region}:{account}:autoScalingGroup:*:autoScalingGroupName/*")
# The paths an execution input's ami_ssm_parameter may name (migrator.ami.AmiChoice checks it in the first state):
# AWS's public ones have no account in their ARN, the account's own ones do.
AMI_PARAMETERS = [Pattern("arn:{partition}:ssm:{region}:" + ("" if path.startswith("/aws/") else "{account}")
                          + ":parameter" + path + "*") for path in AMI_PARAMETER_PATHS]
ALARMS = Pattern("arn:{partition}:cloudwatch:{region}:{account}:alarm:*")
ROLES = Pattern("arn:{partition}:iam::{account}:role/*")
EXECUTIONS = Pattern("arn:{partition}:states:{region}:{account}:execution:*")  # the audit records' partition keys
INSTANCES = Pattern("arn:{partition}:ec2:{region}:{account}:instance/*")
VOLUMES = Pattern("arn:{partition}:ec2:{region}:{account}:volume/*")
NETWORK_INTERFACES = Pattern("arn:{partition}:ec2:{region}:{account}:network-interface/*")
SUBNETS = Pattern("arn:{partition}:ec2:{region}:{account}:subnet/*")
SECURITY_GROUPS = Pattern("arn:{partition}:ec2:{region}:{account}:security-group/*")
KEY_PAIRS = Pattern("arn:{partition}:ec2:{region}:{account}:key-pair/*")
ELASTIC_IPS = Pattern("arn:{partition}:ec2:{region}:{account}:elastic-ip/*")
SNAPSHOTS = Pattern("arn:{partition}:ec2:{region}::snapshot/*")  # snapshot and image ARNs have no account
IMAGES = Pattern("arn:{partition}:ec2:{region}::image/*")
HOSTED_ZONES = Pattern("arn:{partition}:route53:::hostedzone/*")
RUN_SHELL_SCRIPT = Pattern("arn:{partition}:ssm:{region}::document/AWS-RunShellScript")
EKS_AMI_PUBLIC_PARAMETERS = Pattern("arn:{partition}:ssm:{region}::parameter/aws/service/eks/optimized-ami/*")


def eks_cluster(name: str) -> Pattern:
    return Pattern("arn:{partition}:eks:{region}:{account}:cluster/" + name)


def eks_nodegroups(cluster: str) -> Pattern:  # nodegroup/<cluster>/<nodegroup>/<uuid>; "*": every cluster
    return Pattern("arn:{partition}:eks:{region}:{account}:nodegroup/" + ("*" if cluster == "*" else cluster + "/*"))


def eks_addons(cluster: str) -> Pattern:  # addon/<cluster>/<addon>/<uuid>
    return Pattern("arn:{partition}:eks:{region}:{account}:addon/" + ("*" if cluster == "*" else cluster + "/*"))


NO_RESOURCE_LEVEL = "the action does not support resource-level permissions"
# What Lambda does with a function's role to put it in a VPC (AWSLambdaVPCAccessExecutionRole, minus Describe*):
# the function's own network interfaces, nothing of the fleet.
VPC_ATTACH_ACTIONS = ("ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses",
                      "ec2:UnassignPrivateIpAddresses")


class TaskPermissions:
    """Turns Access bundles into statements on a role; suppressions follow the statements."""

    def __init__(self, *, key: EncryptionKey, tables: MigrationTables, notifications: Notifications,
                 tag_key: str, tag_value: str, hosted_zone_ids: tuple[str, ...] = (),
                 eks_clusters: tuple[str, ...] = (), approval_secret: secretsmanager.ISecret | None = None,
                 reusable_roles: tuple[str, ...] = ()) -> None:
        self._key, self._tables, self._notifications = key, tables, notifications
        self._approval_secret = approval_secret  # the HMAC key of the approval links (stacks/approvals.py)
        self._tag = lambda condition_key: {"StringEquals": {f"{condition_key}/{tag_key}": tag_value}}
        self._tagged = self._tag("aws:ResourceTag")
        # Without cdk.json dns_hosted_zone_ids, any zone: the cutover's zone comes from the execution input.
        self._zones = [Pattern("arn:{partition}:route53:::hostedzone/" + z) for z in hosted_zone_ids] or [HOSTED_ZONES]
        # With cdk.json eks_clusters, only those clusters (the only ones the tasks get Kubernetes access to);
        # without, any cluster in the account, since the cluster comes from the execution input.
        self._clusters = list(eks_clusters) or ["*"]
        # The roles the workflows may pass on (instance profile and node roles they reuse): cdk.json reusable_roles
        # by name, or else the roles carrying the migration tag.
        self._reusable_roles = reusable_roles
        self._zones_listed = bool(hosted_zone_ids)

    def apply(self, role: iam.Role, accesses: frozenset[Access], wildcards: dict[str, str] | None = None) -> None:
        """Grant `accesses` to `role`; `wildcards` adds reasons for wildcards granted elsewhere."""
        reasons: dict[str, list[str]] = defaultdict(list)
        for finding, why in (wildcards or {}).items():
            reasons[finding].append(why)
        for access in sorted(accesses, key=lambda a: a.value):
            for statement, patterns, why in self._bundle(access):
                role.add_to_policy(statement)
                for pattern in patterns:
                    reasons[pattern].append(f"{', '.join(statement.actions)}: {why}")
        if reasons:
            NagSuppressions.add_resource_suppressions(role, [
                NagPackSuppression(id="AwsSolutions-IAM5", applies_to=[finding], reason="; ".join(whys))
                for finding, whys in sorted(reasons.items())
            ], apply_to_children=True)

    def attach_to_vpc(self, function, role: iam.Role, vpc) -> dict[str, str]:
        """Run `function` in cdk.json `vpc` (a stacks.settings.FunctionVpc): its VpcConfig, and what Lambda does
        with the execution role's credentials to attach it (the AWSLambdaVPCAccessExecutionRole actions, scoped
        to those subnets and security groups). Returns the reasons of its wildcards, for `apply`."""
        function.node.default_child.vpc_config = {
            "subnetIds": list(vpc.subnet_ids), "securityGroupIds": list(vpc.security_group_ids)}
        subnets = [Pattern("arn:{partition}:ec2:{region}:{account}:subnet/" + s).arn for s in vpc.subnet_ids]
        groups = [Pattern("arn:{partition}:ec2:{region}:{account}:security-group/" + g).arn
                  for g in vpc.security_group_ids]
        in_subnets = {"ArnEquals": {"ec2:Subnet": subnets}}
        why_enis = "the network interfaces Lambda creates in the cdk.json vpc subnets; their ids are not known before"
        statements = [
            _stmt(["ec2:CreateNetworkInterface"], [*subnets, *groups]),
            _stmt(VPC_ATTACH_ACTIONS, [NETWORK_INTERFACES], conditions=in_subnets, why=why_enis),
            _stmt(["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"], [ANY], why=NO_RESOURCE_LEVEL),
        ]
        reasons: dict[str, str] = {}
        for statement, findings, why in statements:
            role.add_to_policy(statement)
            for finding in findings:
                reasons[finding] = f"{', '.join(statement.actions)}: {why}"
        # The VpcConfig is checked against the role's policy when the function is created.
        function.node.add_dependency(role)
        return reasons

    def _bundle(self, access: Access):
        """(statement, wildcard findings it causes, why) for one bundle."""
        key_arn = self._key.key.key_arn
        if access is Access.AUDIT_WRITE:
            # Audit records are keyed by the execution's ARN (migrator/audit.py); plans and approvals are not theirs.
            return [_stmt(["dynamodb:PutItem"], [self._tables.audit.table_arn],
                          conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [EXECUTIONS.arn]}}),
                    _stmt(KEY_TABLE_ACTIONS, [key_arn])]
        if access is Access.IDEMPOTENCY:
            return [_stmt(["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
                          [self._tables.idempotency.table_arn]),
                    _stmt(KEY_TABLE_ACTIONS, [key_arn])]
        if access is Access.PLAN_READ:
            # The fleet's LoadWave reads one wave item (pk plan#<id>, sk wave#NNN); the audit table holds
            # other records too, so only items whose partition key is a plan's.
            return [_stmt(["dynamodb:GetItem"], [self._tables.audit.table_arn],
                          conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{PLAN_KEY_PREFIX}*"]}}),
                    _stmt(KEY_READ_ACTIONS, [key_arn])]
        if access is Access.NOTIFY:
            return [_stmt(["sns:Publish"], [self._notifications.topic.topic_arn]),
                    _stmt(KEY_PUBLISH_ACTIONS, [key_arn])]
        if access is Access.APPROVALS:
            return self._approvals(key_arn)

        tagged = self._tagged
        if access is Access.AMI_READ:
            return [
                _stmt(["ssm:GetParameter", "ssm:GetParameters"], AMI_PARAMETERS,
                      why="the AMI parameter is chosen at run time, under the AMI parameter paths only: AWS's public "
                          f"Amazon Linux ones or the account's own under {AMI_PARAMETER_PATHS[-1]}"),
                _stmt(["ec2:DescribeImages"], [ANY], why=NO_RESOURCE_LEVEL),
            ]
        if access is Access.ASG_READ:
            return [
                _stmt(["autoscaling:Describe*"], [ANY],
                      why="read-only; the Auto Scaling Describe actions do not support resource-level permissions",
                      action_finding="Action::autoscaling:Describe*"),
                _stmt(["ec2:DescribeInstances", "ec2:DescribeLaunchTemplates", "ec2:DescribeLaunchTemplateVersions"],
                      [ANY], why=NO_RESOURCE_LEVEL),
            ]
        if access is Access.HEALTH_READ:
            return [
                _stmt(["elasticloadbalancing:DescribeTargetHealth"], [ANY], why=NO_RESOURCE_LEVEL),
                _stmt(["cloudwatch:DescribeAlarms"], [ALARMS], why="the group's alarms are named in the execution input"),
            ]
        if access is Access.LAUNCH_TEMPLATE_WRITE:
            return [_stmt(["ec2:CreateLaunchTemplateVersion", "ec2:ModifyLaunchTemplate"], [LAUNCH_TEMPLATES],
                          conditions=tagged, why="only launch templates carrying the migration tag")]
        if access is Access.ASG_WRITE:
            return [
                _stmt(["autoscaling:UpdateAutoScalingGroup", "autoscaling:SetDesiredCapacity",
                       "autoscaling:TerminateInstanceInAutoScalingGroup"], [AUTO_SCALING_GROUPS],
                      conditions=tagged, why="only Auto Scaling groups carrying the migration tag"),
                *self._launch_through_template(),
            ]
        if access is Access.CANARY_LAUNCH:
            canary = {"Null": {f"aws:ResourceTag/{GROUP_TAG}": "false", f"aws:ResourceTag/{EXECUTION_TAG}": "false"}}
            return [
                _stmt(["autoscaling:AttachInstances", "autoscaling:SuspendProcesses"], [AUTO_SCALING_GROUPS],
                      conditions=tagged, why="only Auto Scaling groups carrying the migration tag"),
                _stmt(["ec2:CreateTags"], [INSTANCES],
                      conditions={**canary, "ForAllValues:StringEquals": {"aws:TagKeys": [CANARY_TAG]}},
                      why="only the canary's capacity mark, only on a canary (it carries group and execution tags)"),
            ]
        if access is Access.CANARY_RELEASE:
            canary = {"Null": {f"aws:ResourceTag/{GROUP_TAG}": "false", f"aws:ResourceTag/{EXECUTION_TAG}": "false"}}
            return [
                _stmt(["autoscaling:ResumeProcesses"], [AUTO_SCALING_GROUPS],
                      conditions=tagged, why="only Auto Scaling groups carrying the migration tag"),
                _stmt(["ec2:TerminateInstances"], [INSTANCES], conditions=canary,
                      why="only a canary the rollout launched (it carries group and execution tags)"),
                _stmt(["ec2:DeleteTags"], [INSTANCES],
                      conditions={**canary, "ForAllValues:StringEquals": {"aws:TagKeys": [GROUP_TAG]}},
                      why="only the group tag of a canary its owners keep"),
            ]
        if access is Access.CAPACITY_MARK:
            # A self-managed node group's canary is capacity, not an instance: what it added is a tag on the group.
            return [_stmt(["autoscaling:CreateOrUpdateTags", "autoscaling:DeleteTags"], [AUTO_SCALING_GROUPS],
                          conditions={**tagged, "ForAllValues:StringEquals": {"aws:TagKeys": [CANARY_TAG]}},
                          why="only the canary's capacity mark, only on Auto Scaling groups carrying the migration tag")]
        if access is Access.REFRESH_WRITE:
            return [
                _stmt(["autoscaling:StartInstanceRefresh", "autoscaling:CancelInstanceRefresh",
                       "autoscaling:RollbackInstanceRefresh"], [AUTO_SCALING_GROUPS],
                      conditions=tagged, why="only Auto Scaling groups carrying the migration tag"),
                # A refresh with a desired launch template is checked like UpdateAutoScalingGroup.
                *self._launch_through_template(),
            ]
        zone_why = "the hosted zone is named in the execution input (cdk.json dns_hosted_zone_ids narrows it)"
        if access is Access.INSTANCE_READ:
            return [_stmt(["ec2:DescribeInstances", "ec2:DescribeInstanceStatus", "ec2:DescribeVolumes",
                           "ec2:DescribeAddresses", "ec2:DescribeSnapshots", "ec2:DescribeImages"],
                          [ANY], why=NO_RESOURCE_LEVEL)]
        if access is Access.SNAPSHOT_WRITE:
            return [
                _stmt(["ec2:CreateSnapshots"], [INSTANCES], conditions=tagged,
                      why="only instances carrying the migration tag"),
                # CreateSnapshots also authorizes each attached volume and each new snapshot; a volume need
                # not carry its instance's tags, and the tagged instance already bounds which volumes these are.
                _stmt(["ec2:CreateSnapshots"], [VOLUMES, SNAPSHOTS],
                      why="only the volumes attached to the tagged instance named in the same call, "
                          "and the snapshots that call creates"),
                _tag_on_create("CreateSnapshots", [SNAPSHOTS]),
                _stmt(["ec2:CreateTags"], [SNAPSHOTS],
                      conditions={"Null": {f"aws:ResourceTag/{EXECUTION_TAG}": "false"},
                                  "ForAllValues:StringEquals": {"aws:TagKeys": [EXPIRES_TAG]}},
                      why="only the expiry tag, only on snapshots a migration created (they carry its execution tag)"),
            ]
        if access is Access.VOLUME_WRITE:
            return [
                _stmt(["ec2:AttachVolume", "ec2:DetachVolume"], [INSTANCES], conditions=tagged,
                      why="only instances carrying the migration tag (the old server and its replacement)"),
                # The old server's data volumes need not carry its tags; the tagged instance in the same call
                # bounds which volumes these are.
                _stmt(["ec2:AttachVolume", "ec2:DetachVolume"], [VOLUMES],
                      why="only the data volumes of the tagged instances named in the same call"),
                _stmt(["ec2:DeleteVolume"], [VOLUMES],
                      conditions={"Null": {f"aws:ResourceTag/{EXECUTION_TAG}": "false"}},
                      why="only volumes a migration created (they carry its execution tag)"),
            ]
        if access is Access.INSTANCE_LAUNCH:
            return [
                # The replacement copies the old instance's tags, opt-in tag included.
                _stmt(["ec2:RunInstances"], [INSTANCES, VOLUMES], conditions=self._tag("aws:RequestTag"),
                      why="only launches that give the instance and its volumes the migration tag"),
                # The network interface is in this list because the launch tags only the instance and volumes:
                # a request-tag condition on it would deny every launch.
                _stmt(["ec2:RunInstances"],
                      [SUBNETS, SECURITY_GROUPS, IMAGES, KEY_PAIRS, SNAPSHOTS, NETWORK_INTERFACES],
                      why="what the launch uses, as the old instance and the migration's snapshots name them, "
                          "and its primary network interface"),
                _tag_on_create("RunInstances", [INSTANCES, VOLUMES]),
                self._pass_role("ec2.amazonaws.com", "the old instance's instance-profile role"),
            ]
        if access is Access.INSTANCE_WRITE:
            return [_stmt(["ec2:StopInstances", "ec2:StartInstances", "ec2:TerminateInstances",
                           "ec2:ModifyInstanceAttribute"], [INSTANCES],
                          conditions=tagged, why="only instances carrying the migration tag")]
        if access is Access.ADDRESS_WRITE:
            return [
                _stmt(["ec2:AssociateAddress"], [INSTANCES], conditions=tagged,
                      why="only to instances carrying the migration tag"),
                # An address's attachment is no IAM condition key: the old instance's Elastic IP carries the opt-in
                # tag as it does (standalone pre-flight refuses one that does not, before any change).
                _stmt(["ec2:AssociateAddress"], [ELASTIC_IPS], conditions=tagged,
                      why="only Elastic IPs carrying the migration tag, as the opted-in instances' addresses do"),
                *([_stmt(["route53:ChangeResourceRecordSets"], self._zones, why=zone_why,
                         conditions={"ForAllValues:StringEquals": {
                             "route53:ChangeResourceRecordSetsActions": ["UPSERT"],
                             "route53:ChangeResourceRecordSetsRecordTypes": ["A"]}})] if self._zones_listed else []),
            ]
        if access is Access.DNS_READ:
            # No zone listed in cdk.json dns_hosted_zone_ids: no DNS cutover (pre-flight names the key to set).
            return [_stmt(["route53:ListResourceRecordSets"], self._zones, why=zone_why)] if self._zones_listed else []
        if access is Access.HEALTH_SCRIPT:
            return [
                _stmt(["ssm:SendCommand"], [RUN_SHELL_SCRIPT]),
                _stmt(["ssm:SendCommand"], [INSTANCES], conditions=self._tag("ssm:resourceTag"),
                      why="only instances carrying the migration tag"),
            ]
        if access is Access.HEALTH_SCRIPT_READ:
            return [_stmt(["ssm:GetCommandInvocation"], [ANY], why=NO_RESOURCE_LEVEL)]
        if access is Access.HOST_SCAN_READ:
            return [
                _stmt(["ec2:DescribeInstanceAttribute"], [INSTANCES], conditions=tagged,
                      why="the user data of instances carrying the migration tag"),
                _stmt(["cloudwatch:GetMetricStatistics"], [ANY],
                      why="the MetadataNoToken metric of the scanned instance (IMDSv1 calls); "
                          "GetMetricStatistics has no resource-level permissions"),
            ]
        clusters, nodegroups = self._eks_clusters(), self._eks_nodegroups()
        # Cluster and node group names come from the execution input; cdk.json eks_clusters narrows the clusters.
        eks_why = "clusters and node groups are named in the execution input; node group ARNs end in an ID"
        if access is Access.EKS_READ:
            return [
                _stmt(["eks:DescribeCluster", "eks:ListPodIdentityAssociations"], clusters, why=eks_why),
                _stmt(["eks:DescribeNodegroup"], nodegroups, why=eks_why),
                _stmt(["eks:DescribeAddon"], [eks_addons(c) for c in self._clusters],
                      why="the vpc-cni add-on of the cluster in the execution input; add-on ARNs end in an ID"),
                _stmt(["ssm:GetParameter"], [EKS_AMI_PUBLIC_PARAMETERS],
                      why="AWS's public EKS-optimized AMI parameters; the path holds the Kubernetes version"),
                # Also what EKS checks on the caller of CreateNodegroup with a launch template; the images: which
                # Amazon Linux a template's AMI is.
                _stmt(["ec2:DescribeLaunchTemplates", "ec2:DescribeLaunchTemplateVersions", "ec2:DescribeImages"],
                      [ANY], why=NO_RESOURCE_LEVEL),
                # A node group's updates (EKS's UpdateNodegroupVersion), read to follow and not repeat them.
                _stmt(["eks:DescribeUpdate"], clusters + nodegroups, why=eks_why),
                _stmt(["eks:ListUpdates"], clusters, why=eks_why),
            ]
        if access is Access.NODEGROUP_WRITE:
            # No ec2:RunInstances: EKS launches the nodes with its service-linked role.
            return [
                # The new group copies the old one's tags, opt-in tag included; only groups carrying it
                # are deleted (the old one after approval, the new one on rollback).
                _stmt(["eks:CreateNodegroup"], clusters + nodegroups, conditions=self._tag("aws:RequestTag"),
                      why=eks_why),
                _stmt(["eks:DeleteNodegroup"], nodegroups, conditions=tagged, why=eks_why),
                # CreateNodegroup with tags is authorized as TagResource too; the new group always gets the
                # execution tag.
                _stmt(["eks:TagResource"], nodegroups,
                      conditions={"Null": {f"aws:RequestTag/{EXECUTION_TAG}": "false"}},
                      why="only tags that come with the execution tag, as CreateNodegroup applies them"),
                self._pass_role("eks.amazonaws.com", "the old node group's node role"),
                _stmt(["ec2:CreateLaunchTemplate"], [LAUNCH_TEMPLATES],
                      why="the new node group's launch template, named after the cluster and group at run time"),
                _tag_on_create("CreateLaunchTemplate", [LAUNCH_TEMPLATES]),
            ]
        if access is Access.NODEGROUP_UPDATE:
            # No ec2:RunInstances: EKS replaces the nodes with its service-linked role.
            return [
                # Only opted-in node groups, and only templates carrying the tag (pre-flight checks both).
                _stmt(["eks:UpdateNodegroupVersion"], nodegroups, conditions=self._tagged, why=eks_why),
                _stmt(["ec2:CreateLaunchTemplateVersion"], [LAUNCH_TEMPLATES], conditions=self._tagged,
                      why="only launch templates carrying the migration tag; their ids come from the node group"),
            ]
        if access is Access.EXECUTION_READ:
            # The child state machines are created after the functions: stacks/state_machines.py grants
            # states:DescribeExecution on their executions to the tasks of the workflow that starts them.
            return []
        if access in (Access.KUBERNETES, Access.KUBERNETES_NODE_PATCH, Access.KUBERNETES_EVICT,
                      Access.KUBERNETES_KARPENTER_READ, Access.KUBERNETES_NODECLASS_PATCH):
            # No IAM statement: the EKS token is a presigned sts:GetCallerIdentity, which needs no permission.
            # Kubernetes access is an EKS access entry per role and cluster (stacks/kubernetes.py).
            return []
        raise ValueError(f"no IAM statements defined for {access}")

    def _approvals(self, key_arn: str):
        """migrator/approvals/core.py: the approval items of the audit table, the link secret, the topic (the
        email, and who else receives it), and the decision sent back to the waiting execution."""
        if self._approval_secret is None:
            raise ValueError("Access.APPROVALS needs the approval secret: TaskPermissions(approval_secret=...)")
        audit, topic = self._tables.audit.table_arn, self._notifications.topic.topic_arn
        return [
            _stmt(["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"], [audit],
                  conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{APPROVAL_KEY_PREFIX}*"]}}),
            # Scan (the reminder's list of pending requests) names no partition key, so dynamodb:LeadingKeys is
            # absent from its request: a ForAllValues condition would then match anyway (an empty set) and only
            # pretend to restrict it, a ForAnyValue one would never match. It reads the table; core.py filters
            # on approval#, and the items hold no secret (links are signed with the secret, never stored).
            _stmt(["dynamodb:Scan"], [audit]),
            _stmt(KEY_TABLE_ACTIONS, [key_arn]),  # the table, the secret and the topic share the key
            _stmt(["secretsmanager:GetSecretValue"], [self._approval_secret.secret_arn]),
            _stmt(["sns:Publish", "sns:ListSubscriptionsByTopic"], [topic]),
            # Heartbeat: asks whether the gate still waits (answers TaskTimedOut once closed), answering nothing.
            _stmt(["states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"], [ANY],
                  why="the Service Authorization Reference lists no resource type for these actions (they act on a "
                      "task token, which names the execution); the tokens are only in the approval items"),
        ]

    def _eks_clusters(self) -> list[Pattern]:
        return [eks_cluster(c) for c in self._clusters]

    def _eks_nodegroups(self) -> list[Pattern]:
        return [eks_nodegroups(c) for c in self._clusters]

    def _launch_through_template(self):
        """Auto Scaling checks that the caller could launch from the launch template it is given: only from
        launch templates carrying the migration tag."""
        return [
            _stmt(["ec2:RunInstances"], [ANY],
                  conditions={"ArnLike": {"ec2:LaunchTemplate": LAUNCH_TEMPLATES.arn},
                              "Bool": {"ec2:IsLaunchTemplateResource": "true"}},
                  why="only through this account's launch templates, with what they define"),
            # Whatever else allows the launch, never from a launch template without the opt-in tag (a missing
            # tag matches StringNotEquals too).
            _stmt(["ec2:RunInstances"], [LAUNCH_TEMPLATES], effect=iam.Effect.DENY,
                  conditions={"StringNotEquals": {k: v for k, v in self._tagged["StringEquals"].items()}},
                  why="denies launches from launch templates without the migration tag"),
            _tag_on_create("RunInstances", [ANY]),
            self._pass_role("ec2.amazonaws.com", "the launch template's instance-profile role"),
        ]

    def _pass_role(self, service: str, what: str):
        """iam:PassRole to `service` only, and only the reusable roles: cdk.json reusable_roles, or else the
        roles carrying the migration tag."""
        passed_to = {"StringEquals": {"iam:PassedToService": service}}
        if self._reusable_roles:
            return _stmt(["iam:PassRole"], [f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/{name}"
                                             for name in self._reusable_roles], conditions=passed_to)
        return _stmt(["iam:PassRole"], [ROLES],
                     conditions={"StringEquals": {**passed_to["StringEquals"], **self._tagged["StringEquals"]}},
                     why=f"{what}, passed to {service.split('.')[0].upper()} only, and only roles carrying the "
                         "migration tag (cdk.json reusable_roles names them instead)")


def _tag_on_create(action: str, resources: list[str]):
    return _stmt(["ec2:CreateTags"], resources, conditions={"StringEquals": {"ec2:CreateAction": action}},
                 why=f"only tags applied by {action} to what it creates")


def _stmt(actions, resources: list[str], *, why: str = "", conditions=None, action_finding: str | None = None,
          effect: iam.Effect = iam.Effect.ALLOW):
    """A statement; Pattern resources with a `*` are wildcards and need `why`."""
    statement = iam.PolicyStatement(
        actions=list(actions), conditions=conditions, effect=effect,
        resources=[r.arn if isinstance(r, Pattern) else r for r in resources],
    )
    findings = [r.nag_finding for r in resources if isinstance(r, Pattern) and "*" in r]
    findings += [action_finding] if action_finding else []
    assert why or not findings, f"say why {actions} needs {findings}"
    return statement, findings, why
