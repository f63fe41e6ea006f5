"""NotReadyYet until the new group is ACTIVE and its nodes are Ready; NodegroupFailed if it failed."""

from aws_lambda_powertools.utilities.parser import event_parser

from migrator.eks import nodegroup
from migrator.eks.events import NodegroupTask, clients
from migrator.observability import task_handler
from migrator.wiring import audit_log


@task_handler
@event_parser(model=NodegroupTask)
def handler(event: NodegroupTask, context):
    request = event.state.input
    result = nodegroup.wait_nodegroup(clients(request.cluster_name), request, event.state.created)
    out = result.model_dump(mode="json")
    audit_log(event.execution, event.target).record("nodegroup-ready", **out)
    return out
