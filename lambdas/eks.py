"""The EKS node group migration's tasks (state_machines/eks_nodegroup.asl.json), one Lambda function each:
`eks.<task>`."""

from migrator import preflight_checks
from migrator.aws import client
from migrator.compat import checks
from migrator.eks import nodegroup
from migrator.eks.events import NodegroupTask, clients
from migrator.eks.models import NodegroupInput
from migrator.settings import settings
from migrator.wiring import EXECUTION, audit_log, input_validator, task

validate_input = input_validator(NodegroupInput, names_target=True)  # the first state


@task(NodegroupTask)
def preflight(event: NodegroupTask, context):
    """Opt-in tag, new name, version, AL2 group, VPC CNI, container runtime, disruption budgets, pods a drain
    would refuse or strand: every check, before any change."""
    request = event.state.input
    preflight_checks.require_cluster(client("eks"), request.cluster_name)
    result = nodegroup.preflight(clients(request.cluster_name), request, event.execution,
                                 settings().tag_key, settings().tag_value)
    log = audit_log(event.execution, event.target)
    if result.compatibility:  # the old user data's own scripts, carried into the nodeadm document
        log.record("compatibility-checked", **result.compatibility.model_dump(mode="json", exclude={"facts"}))
        checks.refuse_blockers(event.target, result.compatibility)
    log.record("already-migrated" if result.already_migrated else "preflight-passed",
               checks=result.model_dump(mode="json")["checks"])
    return result


@task(NodegroupTask, once_per=EXECUTION, records="nodegroup-created")
def create_nodegroup(event: NodegroupTask, context):
    """Create the AL2023 node group from the old one's configuration (and our launch template)."""
    request = event.state.input
    return nodegroup.create_nodegroup(clients(request.cluster_name), request, event.state.preflight, event.execution)


@task(NodegroupTask, records="nodegroup-ready")
def wait_nodegroup(event: NodegroupTask, context):
    """NotReadyYet until the new group is ACTIVE and its nodes are Ready; NodegroupFailed if it failed."""
    request = event.state.input
    return nodegroup.wait_nodegroup(clients(request.cluster_name), request, event.state.created)


@task(NodegroupTask, records="old-nodes-tainted")
def taint_old(event: NodegroupTask, context):
    """Taint (os=al2:NoSchedule) and cordon the AL2 nodes."""
    request = event.state.input
    return nodegroup.taint_old(clients(request.cluster_name), request)


@task(NodegroupTask, records="new-nodes-validated")
def validate_new(event: NodegroupTask, context):
    """DaemonSet pods on every new node, new nodes able to take workloads."""
    request = event.state.input
    return nodegroup.validate_new(clients(request.cluster_name), request, event.state.preflight)


@task(NodegroupTask, records="old-nodes-drained")
def drain(event: NodegroupTask, context):
    """Drain the AL2 nodes in batches through the Eviction API; the state's Retry handles 429s."""
    request = event.state.input
    return nodegroup.drain_old(clients(request.cluster_name), request, event.execution)


@task(NodegroupTask, once_per=EXECUTION, records="old-nodegroup-deleting")
def delete_old(event: NodegroupTask, context):
    """After the before-delete approval: delete the AL2 node group."""
    request = event.state.input
    return nodegroup.delete_nodegroup(clients(request.cluster_name), request.cluster_name, request.nodegroup_name,
                                      settings().tag_key, settings().tag_value)


@task(NodegroupTask, records="migrated")
def wait_deleted(event: NodegroupTask, context):
    """NotReadyYet until the old node group is gone."""
    request = event.state.input
    return nodegroup.wait_deleted(clients(request.cluster_name), request.cluster_name, request.nodegroup_name)


@task(NodegroupTask, records="rolled-back")
def rollback(event: NodegroupTask, context):
    """Any failure before the old group's deletion: AL2 nodes back in service, the new group removed."""
    request = event.state.input
    return nodegroup.rollback(clients(request.cluster_name), request, event.execution, event.state.error,
                              event.state.failed_gate)
