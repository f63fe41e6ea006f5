"""After the before-delete approval: delete the AL2 node group."""

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
        result = nodegroup.delete_nodegroup(clients(request.cluster_name), request.cluster_name,
                                            request.nodegroup_name)
        out = result.model_dump(mode="json")
        audit_log(event.execution, event.target).record("old-nodegroup-deleting", **out)
        return out

    return run_once("eks-delete-old", event.execution, context, act)
