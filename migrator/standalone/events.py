"""What the standalone migration's tasks receive: the execution ARN and the state so far."""

from typing import Literal

from pydantic import BaseModel

from migrator.aws import client
from migrator.standalone.migration import Clients
from migrator.standalone.results import MigrationState


class MigrationTask(BaseModel):
    execution: str
    state: MigrationState
    phase: Literal["before-cutover", "after-sync", "after-cutover"] = "before-cutover"

    @property
    def target(self) -> str:
        """The target's name comes from its Name tag, which only the pre-flight reads."""
        return self.state.preflight.target


def clients() -> Clients:
    return Clients(ec2=client("ec2"), ssm=client("ssm"), route53=client("route53"), cloudwatch=client("cloudwatch"))
