"""Any failure before the old group's deletion: AL2 nodes back in service, the new group removed."""

from aws_lambda_powertools.utilities.parser import event_parser

from migrator.eks import nodegroup
from migrator.eks.events import NodegroupTask, clients
from migrator.observability import task_handler
from migrator.wiring import audit_log


@task_handler
@event_parser(model=NodegroupTask)
def handler(event: NodegroupTask, context):
    request = event.state.input
    result = nodegroup.rollback(clients(request.cluster_name), request, event.state.error,
                                event.state.failed_gate)
    out = result.model_dump(mode="json")
    audit_log(event.execution, event.target).record("rolled-back", **out)
    return out
