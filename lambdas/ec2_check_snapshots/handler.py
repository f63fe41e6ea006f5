"""NotReadyYet until every snapshot is completed; SnapshotFailed if one is in error."""

from aws_lambda_powertools.utilities.parser import event_parser

from migrator.observability import task_handler
from migrator.standalone import migration
from migrator.standalone.events import MigrationTask, clients
from migrator.wiring import audit_log


@task_handler
@event_parser(model=MigrationTask)
def handler(event: MigrationTask, context):
    result = migration.check_snapshots(clients(), event.state.input, event.state.snapshots)
    out = result.model_dump(mode="json")
    audit_log(event.execution, event.target).record("snapshots-completed", **out)
    return out
