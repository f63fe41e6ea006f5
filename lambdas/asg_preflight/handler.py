"""Check the group can be migrated; record what a rollback must restore."""

from aws_lambda_powertools.utilities.parser import event_parser

from migrator.asg import rollout
from migrator.asg.events import RolloutTask, clients
from migrator.observability import task_handler
from migrator.settings import settings
from migrator.wiring import audit_log


@task_handler
@event_parser(model=RolloutTask)
def handler(event: RolloutTask, context):
    request = event.state.input
    result = rollout.preflight(clients(), request, settings().tag_key, settings().tag_value)
    audit_log(event.execution, event.state.target).record(
        "already-migrated" if result.already_migrated else "preflight-passed",
        **result.model_dump(mode="json", exclude={"instance_ids"}),
    )
    return result.model_dump(mode="json")
