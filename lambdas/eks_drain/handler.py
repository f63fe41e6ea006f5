"""Drain the AL2 nodes in batches through the Eviction API; the state's Retry handles 429s."""

from aws_lambda_powertools.utilities.parser import event_parser

from migrator.eks import nodegroup
from migrator.eks.events import NodegroupTask, clients
from migrator.observability import task_handler
from migrator.wiring import audit_log


@task_handler
@event_parser(model=NodegroupTask)
def handler(event: NodegroupTask, context):
    request = event.state.input
    result = nodegroup.drain_old(clients(request.cluster_name), request)
    out = result.model_dump(mode="json")
    audit_log(event.execution, event.target).record("old-nodes-drained", **out)
    return out
