"""New launch-template version from the current one: AL2023 AMI, IMDSv2 required."""

from aws_lambda_powertools.utilities.parser import event_parser

from migrator.asg import rollout
from migrator.asg.events import RolloutTask, clients
from migrator.observability import task_handler
from migrator.wiring import audit_log, run_once


@task_handler
@event_parser(model=RolloutTask)
def handler(event: RolloutTask, context):
    state = event.state

    def act():
        result = rollout.create_version(clients(), state.input, state.preflight, event.execution)
        out = result.model_dump(mode="json")
        audit_log(event.execution, state.target).record(
            "launch-template-version-created", template_id=state.preflight.template_id,
            source_version=state.preflight.original_version, **out,
        )
        return out

    return run_once("asg-create-version", event.execution, context, act)
