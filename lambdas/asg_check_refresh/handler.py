"""Poll the instance refresh: NotReadyYet while it runs, RefreshFailed if it does not succeed."""

from aws_lambda_powertools.utilities.parser import event_parser

from migrator.asg import rollout
from migrator.asg.events import RolloutTask, clients
from migrator.observability import task_handler
from migrator.wiring import audit_log


@task_handler
@event_parser(model=RolloutTask)
def handler(event: RolloutTask, context):
    state = event.state
    result = rollout.check_refresh(clients(), state.input, state.preflight, state.refresh)
    out = result.model_dump(mode="json")
    audit_log(event.execution, state.target).record("instance-refresh-succeeded", **out)
    return out
