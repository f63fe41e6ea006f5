"""First state: the execution input becomes a NodegroupInput, or the run fails naming the field."""

from migrator.eks.models import NodegroupInput
from migrator.observability import task_handler
from migrator.validation import parse_input


@task_handler
def handler(event, context):
    request = parse_input(NodegroupInput, event.get("request"))
    return {"input": request.model_dump(), "target": request.target}
