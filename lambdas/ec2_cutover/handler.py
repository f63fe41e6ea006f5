"""Move the Elastic IP or DNS record to the new instance, then stop (never terminate) the old one."""

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
        log.record("approval-granted", gate="cutover", decision=state.cutover_approval)
        result = migration.cutover(clients(), state.preflight, state.replacement)
        out = result.model_dump(mode="json")
        log.record("cut-over", **out)
        return out

    return run_once("ec2-cutover", event.execution, context, act)
