"""Start the instance refresh pinned to the new version (approval was granted)."""

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
        log = audit_log(event.execution, state.target)
        log.record("approval-granted", gate="before-refresh", decision=state.approval)
        result = rollout.start_refresh(clients(), state.input, state.preflight, state.version)
        out = result.model_dump(mode="json")
        log.record("instance-refresh-started", version=state.version.version, **out)
        return out

    return run_once("asg-start-refresh", event.execution, context, act)
