"""The stack: shared key, topic and tables, then functions and state machines for every workflow."""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from migrator import config
from migrator.workflows import WORKFLOWS, Access, Workflow
from stacks.encryption import EncryptionKey
from stacks.functions import TaskFunctions
from stacks.kubernetes import KubernetesAccess
from stacks.notifications import Notifications
from stacks.names import pascal_case
from stacks.permissions import TaskPermissions
from stacks.settings import Settings
from stacks.state_machines import WorkflowStateMachine
from stacks.tables import MigrationTables


class MigrationStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings,
                 workflows: tuple[Workflow, ...] = WORKFLOWS, **kwargs) -> None:
        super().__init__(scope, construct_id, description="Amazon Linux 2 to AL2023 migration workflows", **kwargs)
        key = EncryptionKey(self, "Encryption")
        notifications = Notifications(self, "Notifications", key=key, emails=settings.notification_emails)
        tables = MigrationTables(self, "Tables", key=key)
        permissions = TaskPermissions(key=key, tables=tables, notifications=notifications,
                                      tag_key=settings.tag_key, tag_value=settings.tag_value,
                                      hosted_zone_ids=settings.dns_hosted_zone_ids,
                                      eks_clusters=settings.eks_clusters)
        functions = TaskFunctions(
            self, "Tasks", workflows=workflows, settings=settings, key=key, permissions=permissions,
            environment={
                config.ENV_AUDIT_TABLE: tables.audit.table_name,
                config.ENV_IDEMPOTENCY_TABLE: tables.idempotency.table_name,
                config.ENV_NOTIFICATION_TOPIC: notifications.topic.topic_arn,
            },
        )
        KubernetesAccess(self, "Kubernetes", clusters=settings.eks_clusters, roles={
            task.folder: functions.functions[task.folder].role
            for workflow in workflows for task in workflow.tasks if Access.KUBERNETES in task.access
        })
        # What the CLI needs to start, approve and audit migrations.
        CfnOutput(self, "NotificationTopicArn", value=notifications.topic.topic_arn)
        CfnOutput(self, "AuditTableName", value=tables.audit.table_name)
        CfnOutput(self, "ApprovalTimeoutSeconds", value=str(settings.approval_timeout_seconds),
                  description="default approval timeout for the execution input")
        for workflow in workflows:
            machine = WorkflowStateMachine(
                self, pascal_case(workflow.name), workflow=workflow, functions=functions.functions,
                notifications=notifications, key=key,
            )
            CfnOutput(self, f"{pascal_case(workflow.name)}StateMachineArn", value=machine.state_machine.state_machine_arn)

