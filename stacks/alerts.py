"""An EventBridge rule that tells the notification topic when any of the project's executions fails."""

from __future__ import annotations

import jsii
from aws_cdk import aws_events as events, aws_stepfunctions as sfn
from constructs import Construct

from stacks.notifications import Notifications

ENDED_BADLY = ("FAILED", "TIMED_OUT", "ABORTED")
STATUS_CHANGE = "Step Functions Execution Status Change"


class ExecutionFailureAlerts(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, state_machines: list[sfn.IStateMachine],
                 notifications: Notifications) -> None:
        super().__init__(scope, construct_id)
        self.rule = events.Rule(
            self, "Rule",
            description="AL2023 migration: an execution failed, timed out or was aborted",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=[STATUS_CHANGE],
                detail={"status": list(ENDED_BADLY),
                        "stateMachineArn": [m.state_machine_arn for m in state_machines]},
            ),
        )
        # Shaped like the workflows' own notifications: a `kind`, then what to look at.
        message = events.RuleTargetInput.from_object({
            "kind": "execution-failed",
            "status": events.EventField.from_path("$.detail.status"),
            "execution": events.EventField.from_path("$.detail.executionArn"),
            "state_machine": events.EventField.from_path("$.detail.stateMachineArn"),
            "at": events.EventField.time,
        })
        self.rule.add_target(_TopicTarget(notifications, message))
        # Not targets.SnsTopic: its grant gives the key's kms:GenerateDataKey* to EventBridge; this names actions
        # and lets only this rule publish.
        notifications.allow_rule_to_publish(self.rule)


@jsii.implements(events.IRuleTarget)
class _TopicTarget:
    def __init__(self, notifications: Notifications, message: events.RuleTargetInput) -> None:
        self._notifications, self._message = notifications, message

    def bind(self, rule, id=None) -> events.RuleTargetConfig:  # noqa: A002 (the jsii signature)
        return events.RuleTargetConfig(arn=self._notifications.topic.topic_arn, input=self._message,
                                       target_resource=self._notifications.topic)
