"""Any failure after the first change: stop the refresh, revert the group, say what happened."""

from aws_lambda_powertools.utilities.parser import event_parser

from migrator.asg import rollout
from migrator.asg.events import RolloutTask, clients
from migrator.observability import task_handler
from migrator.wiring import audit_log


@task_handler
@event_parser(model=RolloutTask)
def handler(event: RolloutTask, context):
    state = event.state
    result = rollout.rollback(clients(), state.input, state.preflight, state.refresh, state.error, state.failed_gate)
    out = result.model_dump(mode="json")
    audit_log(event.execution, state.target).record("rollback-started", **out)
    return out
