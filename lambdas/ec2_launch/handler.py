"""Launch the AL2023 instance beside the old one: same subnet, groups, profile, type, key, tags; IMDSv2."""

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
        result = migration.launch(clients(), state.input, state.preflight, state.snapshots, event.execution)
        out = result.model_dump(mode="json")
        audit_log(event.execution, event.target).record("replacement-launched", **out)
        return out

    return run_once("ec2-launch", event.execution, context, act)
