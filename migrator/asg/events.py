"""What the ASG rollout's tasks receive: the execution ARN and the state so far."""

from pydantic import BaseModel

from migrator.asg.results import RolloutState
from migrator.asg.rollout import Clients
from migrator.aws import client


class RolloutTask(BaseModel):
    execution: str
    state: RolloutState

    @property
    def target(self) -> str:
        return self.state.target


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
