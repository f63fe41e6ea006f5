"""Version, AL2 group, VPC CNI, container runtime, disruption budgets: every check, before any change."""

from aws_lambda_powertools.utilities.parser import event_parser

from migrator.eks import nodegroup
from migrator.eks.events import NodegroupTask, clients
from migrator.observability import task_handler
from migrator.wiring import audit_log


@task_handler
@event_parser(model=NodegroupTask)
def handler(event: NodegroupTask, context):
    request = event.state.input
    result = nodegroup.preflight(clients(request.cluster_name), request)
    out = result.model_dump(mode="json")
    audit_log(event.execution, event.target).record(
        "already-migrated" if result.already_migrated else "preflight-passed", checks=out["checks"])
    return out
