"""The in-place update of a custom-AMI managed node group (state_machines/eks_in_place.asl.json), one Lambda
function each: `eks_in_place.<task>`."""

from migrator import preflight_checks
from migrator.aws import client
from migrator.eks import in_place
from migrator.eks.events import clients
from migrator.eks.in_place_models import InPlaceInput, InPlaceTask
from migrator.settings import settings
from migrator.wiring import EXECUTION, audit_log, input_validator, task

validate_input = input_validator(InPlaceInput, names_target=True)  # the first state


@task(InPlaceTask)
def preflight(event: InPlaceTask, context):
    """Opt-in tag, the path (a custom AMI in the launch template: in place; otherwise blue/green, refused here),
    the AL2023 AMI of the cluster's version, VPC CNI, container runtime, budgets, pods a drain would destroy."""
    request = event.state.input
    preflight_checks.require_cluster(client("eks"), request.cluster_name)
    result = in_place.preflight(clients(request.cluster_name), request, event.execution,
                                settings().tag_key, settings().tag_value)
    audit_log(event.execution, event.target).record(
        "already-migrated" if result.already_migrated else "preflight-passed",
        path=result.path, reason=result.reason, checks=result.model_dump(mode="json")["checks"])
    return result


@task(InPlaceTask, once_per=EXECUTION, records="launch-template-version-created")
def create_version(event: InPlaceTask, context):
    """New launch-template version: the AL2023 EKS-optimized AMI, nodeadm user data, IMDSv2."""
    request = event.state.input
    return in_place.create_version(clients(request.cluster_name), request, event.state.preflight, event.execution)


@task(InPlaceTask, once_per=EXECUTION, records="update-started")
def start_update(event: InPlaceTask, context):
    """After the before-update approval: UpdateNodegroupVersion to the new version (or the update already there)."""
    request = event.state.input
    return in_place.start_update(clients(request.cluster_name), request, event.state.version, event.execution)


@task(InPlaceTask, records="update-ended")
def follow_update(event: InPlaceTask, context):
    """NotReadyYet while EKS's update is InProgress; UpdateFailed when it failed."""
    request = event.state.input
    return in_place.follow_update(clients(request.cluster_name), request, event.state.update)


@task(InPlaceTask, records="migrated")
def validate(event: InPlaceTask, context):
    """Every node Ready on AL2023, DaemonSets on each, every budget met."""
    request = event.state.input
    return in_place.validate(clients(request.cluster_name), request, event.state.update)


@task(InPlaceTask, records="rolled-back")
def rollback(event: InPlaceTask, context):
    """Any failure or rejection: the group updated back to the previous version, nothing left cordoned."""
    request, state = event.state.input, event.state
    return in_place.rollback(clients(request.cluster_name), request, state.preflight, state.version, event.execution,
                             state.error, state.failed_gate)
