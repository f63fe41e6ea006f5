"""Success: drop the canary's extra capacity, restore sizes, make the new version the default."""

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
        result = rollout.finalize(clients(), state.preflight, state.version, state.canary_health.instance_id)
        out = result.model_dump(mode="json")
        audit_log(event.execution, state.target).record("migrated", **out)
        return out

    return run_once("asg-finalize", event.execution, context, act)
