"""Canary health: NotReadyYet while launching (the state's Retry polls), CanaryUnhealthy on a bad sign."""

from aws_lambda_powertools.utilities.parser import event_parser
from pydantic import BaseModel

from migrator.asg import rollout
from migrator.asg.events import RolloutState, clients
from migrator.observability import task_handler
from migrator.wiring import audit_log


class CheckCanaryTask(BaseModel):
    execution: str
    state: RolloutState
    settled: bool = False  # after the bake: not-ready counts as unhealthy


@task_handler
@event_parser(model=CheckCanaryTask)
def handler(event: CheckCanaryTask, context):
    state = event.state
    result = rollout.check_canary(clients(), state.input, state.preflight, state.version, state.canary, event.settled)
    out = result.model_dump(mode="json")
    audit_log(event.execution, state.target).record("canary-baked" if event.settled else "canary-healthy", **out)
    return out
