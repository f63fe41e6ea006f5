"""First state: the execution input becomes a RolloutInput, or the run fails naming the field."""

from migrator.asg.models import RolloutInput
from migrator.observability import task_handler
from migrator.validation import parse_input


@task_handler
def handler(event, context):
    request = parse_input(RolloutInput, event.get("request"))
    return {"input": request.model_dump(), "target": request.target}
