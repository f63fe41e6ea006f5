"""After retention and approval: terminate the old instance, give the snapshots an expiry date."""

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
        log = audit_log(event.execution, event.target)
        log.record("approval-granted", gate="decommission", decision=state.decommission_approval)
        result = migration.decommission(clients(), state.input, state.preflight, state.snapshots)
        out = result.model_dump(mode="json")
        log.record("decommissioned", **out)
        return out

    return run_once("ec2-decommission", event.execution, context, act)
