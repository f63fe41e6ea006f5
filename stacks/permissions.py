"""Least-privilege IAM statements for each `Access` bundle of migrator.workflows.

Every statement that needs a wildcard resource or action records why, so the
role gets a cdk-nag AwsSolutions-IAM5 suppression naming exactly that wildcard.
"""

from __future__ import annotations

from collections import defaultdict

from aws_cdk import Aws, aws_iam as iam
from cdk_nag import NagPackSuppression, NagSuppressions

from migrator.workflows import Access
from stacks.encryption import KEY_PUBLISH_ACTIONS, KEY_TABLE_ACTIONS, EncryptionKey
from stacks.notifications import Notifications
from stacks.tables import MigrationTables

_TOKENS = {"partition": Aws.PARTITION, "region": Aws.REGION, "account": Aws.ACCOUNT_ID}
_NAG_NAMES = {"partition": "<AWS::Partition>", "region": "<AWS::Region>", "account": "<AWS::AccountId>"}


class Pattern(str):
    """An ARN template such as "arn:{partition}:ec2:{region}:{account}:launch-template/*"."""

    @property
    def arn(self) -> str:
        return self.format(**_TOKENS)

    @property
    def nag_finding(self) -> str:  # how cdk-nag names the resource in an IAM5 finding
        return "Resource::" + self.format(**_NAG_NAMES)


ANY = Pattern("*")
LAUNCH_TEMPLATES = Pattern("arn:{partition}:ec2:{region}:{account}:launch-template/*")
AUTO_SCALING_GROUPS = Pattern("arn:{partition}:autoscaling:{region}:{account}:autoScalingGroup:*:autoScalingGroupName/*")
AMI_PUBLIC_PARAMETERS = Pattern("arn:{partition}:ssm:{region}::parameter/aws/service/ami-amazon-linux-latest/*")
ACCOUNT_PARAMETERS = Pattern("arn:{partition}:ssm:{region}:{account}:parameter/*")
ALARMS = Pattern("arn:{partition}:cloudwatch:{region}:{account}:alarm:*")
ROLES = Pattern("arn:{partition}:iam::{account}:role/*")

NO_RESOURCE_LEVEL = "the action does not support resource-level permissions"


class TaskPermissions:
    """Turns Access bundles into statements on a role; suppressions follow the statements."""

    def __init__(self, *, key: EncryptionKey, tables: MigrationTables, notifications: Notifications,
                 tag_key: str, tag_value: str) -> None:
        self._key, self._tables, self._notifications = key, tables, notifications
        self._tagged = {"StringEquals": {f"aws:ResourceTag/{tag_key}": tag_value}}

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

    def _bundle(self, access: Access):
        """(statement, wildcard findings it causes, why) for one bundle."""
        key_arn = self._key.key.key_arn
        if access is Access.AUDIT_WRITE:
            return [_stmt(["dynamodb:PutItem"], [self._tables.audit.table_arn]),
                    _stmt(KEY_TABLE_ACTIONS, [key_arn])]
        if access is Access.IDEMPOTENCY:
            return [_stmt(["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
                          [self._tables.idempotency.table_arn]),
                    _stmt(KEY_TABLE_ACTIONS, [key_arn])]
        if access is Access.NOTIFY:
            return [_stmt(["sns:Publish"], [self._notifications.topic.topic_arn]),
                    _stmt(KEY_PUBLISH_ACTIONS, [key_arn])]

        tagged = self._tagged
        if access is Access.AMI_READ:
            return [
                _stmt(["ssm:GetParameter", "ssm:GetParameters"], [AMI_PUBLIC_PARAMETERS, ACCOUNT_PARAMETERS],
                      why="the AMI parameter is chosen at run time: AWS's public Amazon Linux ones or the account's own"),
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
        if access is Access.REFRESH_WRITE:
            return [
                _stmt(["autoscaling:StartInstanceRefresh", "autoscaling:CancelInstanceRefresh",
                       "autoscaling:RollbackInstanceRefresh"], [AUTO_SCALING_GROUPS],
                      conditions=tagged, why="only Auto Scaling groups carrying the migration tag"),
                # A refresh with a desired launch template is checked like UpdateAutoScalingGroup.
                *self._launch_through_template(),
            ]
        raise ValueError(f"no IAM statements defined for {access}")

    @staticmethod
    def _launch_through_template():
        """Auto Scaling checks that the caller could launch from the launch template it is given."""
        return [
            _stmt(["ec2:RunInstances"], [ANY],
                  conditions={"ArnLike": {"ec2:LaunchTemplate": LAUNCH_TEMPLATES.arn},
                              "Bool": {"ec2:IsLaunchTemplateResource": "true"}},
                  why="only through this account's launch templates, with what they define"),
            _stmt(["ec2:CreateTags"], [ANY], conditions={"StringEquals": {"ec2:CreateAction": "RunInstances"}},
                  why="only tags applied by RunInstances at launch"),
            _stmt(["iam:PassRole"], [ROLES], conditions={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
                  why="the launch template's instance profile role, passed to EC2 only"),
        ]


def _stmt(actions, resources: list[str], *, why: str = "", conditions=None, action_finding: str | None = None):
    """A statement; Pattern resources are wildcards and need `why`."""
    statement = iam.PolicyStatement(
        actions=list(actions), conditions=conditions,
        resources=[r.arn if isinstance(r, Pattern) else r for r in resources],
    )
    findings = [r.nag_finding for r in resources if isinstance(r, Pattern)]
    findings += [action_finding] if action_finding else []
    assert why or not findings, f"say why {actions} needs {findings}"
    return statement, findings, why
