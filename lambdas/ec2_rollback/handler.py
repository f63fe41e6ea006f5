"""Any failure: old instance running, address or record back to it, new instance terminated."""

from aws_lambda_powertools.utilities.parser import event_parser

from migrator.observability import task_handler
from migrator.standalone import migration
from migrator.standalone.events import MigrationTask, clients
from migrator.wiring import audit_log


@task_handler
@event_parser(model=MigrationTask)
def handler(event: MigrationTask, context):
    state = event.state
    result = migration.rollback(clients(), state.preflight, state.replacement, state.error, state.failed_gate)
    out = result.model_dump(mode="json")
    audit_log(event.execution, event.target).record("rolled-back", **out)
    return out
