"""Point the group at the new version number and add one instance: the canary."""

from aws_lambda_powertools.utilities.parser import event_parser

from migrator.asg import rollout
from migrator.asg.events import RolloutTask, clients
from migrator.observability import task_handler
from migrator.wiring import audit_log, run_once


@task_handler
@event_parser(model=RolloutTask)
def handler(event: RolloutTask, context):
    state = event.state

    def act():
        result = rollout.start_canary(clients(), state.preflight, state.version)
        out = result.model_dump(mode="json")
        audit_log(event.execution, state.target).record("canary-started", version=state.version.version, **out)
        return out

    return run_once("asg-start-canary", event.execution, context, act)
