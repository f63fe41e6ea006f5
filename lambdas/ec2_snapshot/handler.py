"""Snapshot every EBS volume of the instance at once (crash-consistent), tagged with the execution."""

from aws_lambda_powertools.utilities.parser import event_parser

from migrator.observability import task_handler
from migrator.standalone import migration
from migrator.standalone.events import MigrationTask, clients
from migrator.wiring import audit_log, run_once


@task_handler
@event_parser(model=MigrationTask)
def handler(event: MigrationTask, context):
    def act():
        result = migration.snapshot(clients(), event.state.preflight, event.execution)
        out = result.model_dump(mode="json")
        audit_log(event.execution, event.target).record("snapshots-started", **out)
        return out

    return run_once("ec2-snapshot", event.execution, context, act)
