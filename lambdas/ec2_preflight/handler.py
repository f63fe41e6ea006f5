"""Check the instance can be migrated; record everything needed to rebuild and to restore it."""

from aws_lambda_powertools.utilities.parser import event_parser

from migrator.observability import task_handler
from migrator.settings import settings
from migrator.standalone import migration
from migrator.standalone.events import MigrationTask, clients
from migrator.wiring import audit_log


@task_handler
@event_parser(model=MigrationTask)
def handler(event: MigrationTask, context):
    result = migration.preflight(clients(), event.state.input, settings().tag_key, settings().tag_value)
    out = result.model_dump(mode="json")
    audit_log(event.execution, result.target).record(
        "already-migrated" if result.already_migrated else "preflight-passed", **out)
    return out
