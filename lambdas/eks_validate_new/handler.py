"""DaemonSet pods on every new node, new nodes able to take workloads."""

from aws_lambda_powertools.utilities.parser import event_parser

from migrator.eks import nodegroup
from migrator.eks.events import NodegroupTask, clients
from migrator.observability import task_handler
from migrator.wiring import audit_log


@task_handler
@event_parser(model=NodegroupTask)
def handler(event: NodegroupTask, context):
    request = event.state.input
    result = nodegroup.validate_new(clients(request.cluster_name), request, event.state.preflight)
    out = result.model_dump(mode="json")
    audit_log(event.execution, event.target).record("new-nodes-validated", **out)
    return out
