"""What the standalone migration's tasks receive: the execution ARN and the state so far."""

from typing import Literal

from pydantic import BaseModel

from migrator.aws import client
from migrator.standalone.migration import Clients
from migrator.standalone.models import MigrationInput


class MigrationState(BaseModel):
    input: MigrationInput
    preflight: dict | None = None
    snapshots: dict | None = None
    replacement: dict | None = None
    health_command: dict | None = None
    health: dict | None = None
    cutover_approval: dict | None = None
    cutover: dict | None = None
    decommission_approval: dict | None = None
    error: dict | None = None


class MigrationTask(BaseModel):
    execution: str
    state: MigrationState
    phase: Literal["before-cutover", "after-cutover"] = "before-cutover"

    @property
    def target(self) -> str:
        pre = self.state.preflight
        return pre["target"] if pre else self.state.input.target


def clients() -> Clients:
    return Clients(ec2=client("ec2"), ssm=client("ssm"), route53=client("route53"), cloudwatch=client("cloudwatch"))
