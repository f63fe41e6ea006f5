"""One Step Functions state machine per Workflow, defined by its ASL file."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, aws_iam as iam, aws_lambda as lambda_, aws_logs as logs, aws_stepfunctions as sfn
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from migrator.workflows import Workflow
from stacks.encryption import EncryptionKey
from stacks.notifications import Notifications
from stacks.permissions import ANY, NO_RESOURCE_LEVEL

TOPIC_SUBSTITUTION = "NotificationTopicArn"


class WorkflowStateMachine(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, workflow: Workflow,
                 functions: dict[str, lambda_.IFunction], notifications: Notifications,
                 key: EncryptionKey) -> None:
        super().__init__(scope, construct_id)
        task_functions = [functions[task.folder] for task in workflow.tasks]
        log_group = logs.LogGroup(
            self, "Logs", retention=logs.RetentionDays.THREE_MONTHS, encryption_key=key.key,
            removal_policy=RemovalPolicy.RETAIN,  # execution history outlives the stack
        )
        self.state_machine = sfn.StateMachine(
            self, "StateMachine",
            state_machine_type=sfn.StateMachineType.STANDARD,
            # The ASL file is the workflow's single definition; the local runtime runs it too.
            definition_body=sfn.DefinitionBody.from_file(str(workflow.asl_path)),
            definition_substitutions={
                **{task.substitution: fn.function_arn for task, fn in zip(workflow.tasks, task_functions)},
                TOPIC_SUBSTITUTION: notifications.topic.topic_arn,
            },
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            tracing_enabled=True,
        )
        # Exactly these functions, unqualified: the ASL invokes them by the substituted ARN.
        self.state_machine.add_to_role_policy(iam.PolicyStatement(
            actions=["lambda:InvokeFunction"], resources=[fn.function_arn for fn in task_functions]))
        notifications.grant_publish(self.state_machine)  # approval requests with the task token
        NagSuppressions.add_resource_suppressions(self.state_machine.role, [NagPackSuppression(
            id="AwsSolutions-IAM5", applies_to=[ANY.nag_finding],
            reason="logs:*LogDelivery, logs:PutResourcePolicy, logs:Describe* (log delivery to CloudWatch Logs) and "
                   f"xray:PutTraceSegments, xray:PutTelemetryRecords, xray:GetSampling* (tracing): {NO_RESOURCE_LEVEL}",
        )], apply_to_children=True)
