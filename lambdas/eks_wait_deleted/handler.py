"""NotReadyYet until the old node group is gone."""

from aws_lambda_powertools.utilities.parser import event_parser

from migrator.eks import nodegroup
from migrator.eks.events import NodegroupTask, clients
from migrator.observability import task_handler
from migrator.wiring import audit_log


@task_handler
@event_parser(model=NodegroupTask)
def handler(event: NodegroupTask, context):
    request = event.state.input
    result = nodegroup.wait_deleted(clients(request.cluster_name), request.cluster_name, request.nodegroup_name)
    out = result.model_dump(mode="json")
    audit_log(event.execution, event.target).record("migrated", **out)
    return out
