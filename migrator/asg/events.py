"""What the ASG rollout's tasks receive: the execution ARN and the state so far."""

from pydantic import BaseModel

from migrator.asg.models import RolloutInput
from migrator.asg.rollout import Clients
from migrator.aws import client


class RolloutState(BaseModel):
    input: RolloutInput
    preflight: dict | None = None
    version: dict | None = None
    canary: dict | None = None
    canary_health: dict | None = None
    approval: dict | None = None
    refresh: dict | None = None
    rollback: dict | None = None
    error: dict | None = None


class RolloutTask(BaseModel):
    execution: str
    state: RolloutState


def clients() -> Clients:
    return Clients(
        autoscaling=client("autoscaling"),
        ec2=client("ec2"),
        ssm=client("ssm"),
        elbv2=client("elbv2"),
        cloudwatch=client("cloudwatch"),
    )


class CheckCanaryTask(RolloutTask):
    settled: bool = False  # after the bake: not-ready counts as unhealthy
