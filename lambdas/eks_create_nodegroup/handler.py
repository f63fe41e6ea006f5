"""Create the AL2023 node group from the old one's configuration (and our launch template)."""

from aws_lambda_powertools.utilities.parser import event_parser

from migrator.eks import nodegroup
from migrator.eks.events import NodegroupTask, clients
from migrator.observability import task_handler
from migrator.wiring import audit_log, run_once


@task_handler
@event_parser(model=NodegroupTask)
def handler(event: NodegroupTask, context):
    request = event.state.input

    def act():
        result = nodegroup.create_nodegroup(clients(request.cluster_name), request, event.state.preflight,
                                            event.execution)
        out = result.model_dump(mode="json")
        audit_log(event.execution, event.target).record("nodegroup-created", **out)
        return out

    return run_once("eks-create-nodegroup", event.execution, context, act)
