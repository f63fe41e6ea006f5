"""Run the input's health script on the new instance through SSM Run Command (if there is one)."""

from aws_lambda_powertools.utilities.parser import event_parser

from migrator.observability import task_handler
from migrator.standalone import migration
from migrator.standalone.events import MigrationTask, clients
from migrator.wiring import audit_log, run_once


@task_handler
@event_parser(model=MigrationTask)
def handler(event: MigrationTask, context):
    state = event.state

    def act():
        result = migration.start_health_script(clients(), state.input, state.replacement.instance_id, event.execution)
        out = result.model_dump(mode="json")
        audit_log(event.execution, event.target).record("health-script-sent", phase=event.phase, **out)
        return out

    return run_once(f"ec2-health-script-{event.phase}", event.execution, context, act)
