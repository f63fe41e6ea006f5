"""The stack: shared key, topic, tables and approval secret, then functions and state machines for every
workflow, the approval API and reminder, the wave schedules of cdk.json and an alert on failed executions."""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack, aws_stepfunctions as sfn
from constructs import Construct

from migrator import config
from migrator.workflows import FLEET, WORKFLOWS, Access, Workflow
from stacks.alerts import ExecutionFailureAlerts
from stacks.approvals import ApprovalsApi, approval_secret
from stacks.encryption import EncryptionKey
from stacks.functions import TaskFunctions
from stacks.kubernetes import KubernetesAccess, kubernetes_groups
from stacks.notifications import Notifications
from stacks.names import pascal_case
from stacks.permissions import TaskPermissions
from stacks.schedules import WaveSchedules
from stacks.settings import Settings, SettingsError
from stacks.state_machines import WorkflowStateMachine
from stacks.tables import MigrationTables


class MigrationStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings,
                 workflows: tuple[Workflow, ...] = WORKFLOWS, **kwargs) -> None:
        super().__init__(scope, construct_id, description="Amazon Linux 2 to AL2023 migration workflows", **kwargs)
        key = EncryptionKey(self, "Encryption")
        notifications = Notifications(self, "Notifications", key=key, emails=settings.notification_emails)
        tables = MigrationTables(self, "Tables", key=key)
        secret = approval_secret(self, "ApprovalSecret", key=key)
        permissions = TaskPermissions(key=key, tables=tables, notifications=notifications,
                                      tag_key=settings.tag_key, tag_value=settings.tag_value,
                                      hosted_zone_ids=settings.dns_hosted_zone_ids,
                                      eks_clusters=settings.eks_clusters, approval_secret=secret,
                                      reusable_roles=settings.reusable_roles)
        functions = TaskFunctions(
            self, "Tasks", workflows=workflows, settings=settings, key=key, permissions=permissions,
            environment={
                config.ENV_AUDIT_TABLE: tables.audit.table_name,
                config.ENV_IDEMPOTENCY_TABLE: tables.idempotency.table_name,
                config.ENV_NOTIFICATION_TOPIC: notifications.topic.topic_arn,
            },
            access_environment={Access.APPROVALS: {config.ENV_APPROVAL_SECRET: secret.secret_arn},
                                # what pre-flight checks a DNS cutover's zone against (migrator/preflight_checks.py)
                                Access.DNS_READ: {config.ENV_DNS_HOSTED_ZONES: ",".join(settings.dns_hosted_zone_ids)}},
        )
        # One approvals_request function serves the gates of every workflow; its links point at the API, whose
        # own function (approvals_api) is a different one, so the URL creates no cycle.
        approvals = ApprovalsApi(self, "Approvals", functions=functions, key=key, auth=settings.approval_auth,
                                 reminder_seconds=settings.approval_reminder_seconds)
        for function in functions.tasks_with(Access.APPROVALS, workflows).values():
            function.add_environment(config.ENV_APPROVAL_BASE_URL, approvals.url)
        KubernetesAccess(self, "Kubernetes", clusters=settings.eks_clusters, roles={
            task.name: (functions.functions[task.name].role, kubernetes_groups(task.access))
            for workflow in workflows for task in workflow.tasks if Access.KUBERNETES in task.access
        })
        # What the CLI needs to start, approve and audit migrations.
        CfnOutput(self, "NotificationTopicArn", value=notifications.topic.topic_arn)
        CfnOutput(self, "AuditTableName", value=tables.audit.table_name)
        CfnOutput(self, "ApprovalApiUrl", value=approvals.url,
                  description="approval links point here: <url>approvals/<id>?d=...&e=...&s=...")
        self.state_machines: dict[str, sfn.StateMachine] = {}  # by workflow name
        for workflow in workflows:  # children first, as WORKFLOWS orders them
            missing = [child.name for child in workflow.children if child.name not in self.state_machines]
            if missing:
                raise ValueError(f"{workflow.name} starts {missing}: list them before it in the workflows")
            machine = WorkflowStateMachine(
                self, pascal_case(workflow.name), workflow=workflow, functions=functions.functions,
                notifications=notifications, key=key, children=self.state_machines,
            ).state_machine
            self.state_machines[workflow.name] = machine
            CfnOutput(self, f"{pascal_case(workflow.name)}StateMachineArn", value=machine.state_machine_arn)
        if settings.schedules:
            if FLEET.name not in self.state_machines:
                raise SettingsError("context schedules need the fleet workflow, which this stack does not deploy")
            WaveSchedules(self, "Schedules", schedules=settings.schedules, state_machine=self.state_machines[FLEET.name])
        ExecutionFailureAlerts(self, "FailureAlerts", state_machines=list(self.state_machines.values()),
                               notifications=notifications)

