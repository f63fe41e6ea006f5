"""EventBridge Scheduler schedules that start waves of stored plans on the fleet state machine (cdk.json `schedules`)."""

from __future__ import annotations

import json

from aws_cdk import Aws, aws_iam as iam, aws_scheduler as scheduler, aws_stepfunctions as sfn
from constructs import Construct

from stacks.settings import WaveSchedule

# A start that fails (throttling, the state machine unavailable) is retried for an hour at most, then dropped:
# the wave is then started by hand, and a late start of a wave is worse than none.
RETRY_POLICY = scheduler.CfnSchedule.RetryPolicyProperty(maximum_event_age_in_seconds=3600, maximum_retry_attempts=3)


class WaveSchedules(Construct):
    """`schedules[name]` is the schedule of that cdk.json item; `role` is what they all start the fleet with."""

    def __init__(self, scope: Construct, construct_id: str, *, schedules: tuple[WaveSchedule, ...],
                 state_machine: sfn.IStateMachine) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self, "Role", description="EventBridge Scheduler: start waves on the fleet state machine",
            # Only schedules of this account (confused deputy).
            assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com",
                                            conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}}),
        )
        self.role.add_to_policy(iam.PolicyStatement(
            actions=["states:StartExecution"], resources=[state_machine.state_machine_arn]))
        self.schedules: dict[str, scheduler.CfnSchedule] = {}
        for item in schedules:
            self.schedules[item.name] = scheduler.CfnSchedule(
                self, item.name,
                name=item.name,
                description=f"Start wave {item.wave} of plan {item.plan_id} on the fleet state machine",
                schedule_expression=item.expression,
                schedule_expression_timezone=item.timezone,
                flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
                state="ENABLED",
                target=scheduler.CfnSchedule.TargetProperty(
                    arn=state_machine.state_machine_arn,
                    role_arn=self.role.role_arn,
                    # No targets: the fleet's LoadWave reads the wave from the plan in the audit table.
                    input=json.dumps(item.execution_input()),
                    retry_policy=RETRY_POLICY,
                ),
            )
            # The role's policy must exist before the first start.
            self.schedules[item.name].node.add_dependency(self.role)
