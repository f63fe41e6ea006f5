"""One Step Functions state machine per Workflow, defined by its ASL file."""

from __future__ import annotations

from aws_cdk import (ArnFormat, RemovalPolicy, Stack, aws_iam as iam, aws_lambda as lambda_, aws_logs as logs,
                     aws_stepfunctions as sfn)
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from migrator.workflows import Access, Workflow
from stacks.encryption import EncryptionKey
from stacks.notifications import Notifications
from stacks.permissions import ANY, NO_RESOURCE_LEVEL

TOPIC_SUBSTITUTION = "NotificationTopicArn"
# The managed rule through which Step Functions learns that a `.sync` child execution ended.
SYNC_EVENTS_RULE = "StepFunctionsGetEventsForStepFunctionsExecutionRule"


class WorkflowStateMachine(Construct):
    """`children` maps each child workflow's name to its state machine, created before this one."""

    def __init__(self, scope: Construct, construct_id: str, *, workflow: Workflow,
                 functions: dict[str, lambda_.IFunction], notifications: Notifications,
                 key: EncryptionKey, children: dict[str, sfn.StateMachine] | None = None) -> None:
        super().__init__(scope, construct_id)
        task_functions = [functions[task.name] for task in workflow.tasks]
        child_machines = [(child, (children or {})[child.name]) for child in workflow.children]
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
                **{child.arn_substitution: machine.state_machine_arn for child, machine in child_machines},
                TOPIC_SUBSTITUTION: notifications.topic.topic_arn,
            },
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            tracing_enabled=True,
        )
        # Exactly these functions, unqualified: the ASL invokes them by the substituted ARN.
        self.state_machine.add_to_role_policy(iam.PolicyStatement(
            actions=["lambda:InvokeFunction"], resources=[fn.function_arn for fn in task_functions]))
        notifications.grant_publish(self.state_machine)  # the workflows' own notifications (sns:publish)
        NagSuppressions.add_resource_suppressions(self.state_machine.role, [NagPackSuppression(
            id="AwsSolutions-IAM5", applies_to=[ANY.nag_finding],
            reason="logs:*LogDelivery, logs:PutResourcePolicy, logs:Describe* (log delivery to CloudWatch Logs) and "
                   f"xray:PutTraceSegments, xray:PutTelemetryRecords, xray:GetSampling* (tracing): {NO_RESOURCE_LEVEL}",
        )], apply_to_children=True)
        if child_machines:
            children_only = [machine for _, machine in child_machines]
            self._allow_start_sync(children_only)
            for task, fn in zip(workflow.tasks, task_functions):
                if Access.EXECUTION_READ in task.access:  # e.g. LoadWave skips targets whose execution succeeded
                    _allow_executions(fn.role, ["states:DescribeExecution"], children_only,
                                      "the task looks up a target's execution, named by the plan")

    def _allow_start_sync(self, children: list[sfn.StateMachine]) -> None:
        """What `arn:aws:states:::states:startExecution.sync:2` needs: start exactly the children, follow and
        stop their executions, and manage the Step Functions rule that reports their end."""
        stack = Stack.of(self)
        self.state_machine.add_to_role_policy(iam.PolicyStatement(
            actions=["states:StartExecution"], resources=[m.state_machine_arn for m in children]))
        _allow_executions(self.state_machine.role, ["states:DescribeExecution", "states:StopExecution"], children,
                          "startExecution.sync:2 follows and stops the child executions it starts")
        self.state_machine.add_to_role_policy(iam.PolicyStatement(
            actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
            resources=[stack.format_arn(service="events", resource="rule", resource_name=SYNC_EVENTS_RULE)]))


def _allow_executions(role: iam.IRole, actions: list[str], machines: list[sfn.StateMachine], why: str) -> None:
    """`actions` on every execution of `machines` (arn:...:execution:<name>:*), with an IAM5 suppression each."""
    stack = Stack.of(machines[0])
    role.add_to_principal_policy(iam.PolicyStatement(actions=actions, resources=[
        stack.format_arn(service="states", resource="execution", resource_name=f"{m.state_machine_name}:*",
                         arn_format=ArnFormat.COLON_RESOURCE_NAME) for m in machines]))
    NagSuppressions.add_resource_suppressions(role, [NagPackSuppression(
        id="AwsSolutions-IAM5", applies_to=[_execution_finding(stack, m)],
        reason=f"{', '.join(actions)} on the executions of one child state machine ({why}): execution ARNs end "
               "in the execution name, chosen per target at run time",
    ) for m in machines], apply_to_children=True)


def _execution_finding(stack: Stack, machine: sfn.StateMachine) -> str:
    """How cdk-nag names arn:...:execution:<child name>:* in an IAM5 finding (the name is a GetAtt)."""
    logical_id = stack.resolve(stack.get_logical_id(machine.node.default_child))
    return f"Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:<{logical_id}.Name>:*"
