"""The new instance's health: NotReadyYet while initializing, InstanceUnhealthy on a bad sign.
After the cutover it also checks that the old instance stopped and the address moved."""

from aws_lambda_powertools.utilities.parser import event_parser

from migrator.observability import task_handler
from migrator.standalone import migration
from migrator.standalone.events import MigrationTask, clients
from migrator.wiring import audit_log


@task_handler
@event_parser(model=MigrationTask)
def handler(event: MigrationTask, context):
    state, c = event.state, clients()
    if event.phase == "after-cutover":
        migration.check_old_stopped(c, state.preflight)
    result = migration.check_health(c, state.input, state.replacement.instance_id, state.health_command)
    out = result.model_dump(mode="json")
    audit_log(event.execution, event.target).record("replacement-healthy", phase=event.phase, **out)
    return out
