"""The self-managed node group migration's tasks (state_machines/eks_self_managed.asl.json), one Lambda function
each: `eks_self_managed.<task>`."""

from migrator import preflight_checks
from migrator.aws import client
from migrator.eks import self_managed
from migrator.eks.self_managed_events import SelfManagedTask, clients
from migrator.eks.self_managed_models import SelfManagedInput
from migrator.settings import settings
from migrator.wiring import EXECUTION, audit_log, input_validator, task

validate_input = input_validator(SelfManagedInput, names_target=True)  # the first state


@task(SelfManagedTask)
def preflight(event: SelfManagedTask, context):
    """Opt-in tag, launch template, bootstrap.sh, version, VPC CNI, container runtime, disruption budgets, pods a
    drain would refuse: every check, before any change."""
    request = event.state.input
    preflight_checks.require_cluster(client("eks"), request.cluster_name)
    result = self_managed.preflight(clients(request.cluster_name), request, event.execution,
                                    settings().tag_key, settings().tag_value)
    audit_log(event.execution, event.target).record(
        "already-migrated" if result.already_migrated else "preflight-passed",
        checks=result.model_dump(mode="json")["checks"])
    return result


@task(SelfManagedTask, once_per=EXECUTION, records="launch-template-version-created")
def create_version(event: SelfManagedTask, context):
    """New launch-template version: EKS-optimized AL2023 AMI, nodeadm NodeConfig user data, IMDSv2."""
    request = event.state.input
    return self_managed.create_version(clients(request.cluster_name), request, event.state.preflight,
                                       event.execution)


@task(SelfManagedTask, once_per=EXECUTION, records="canary-started")
def start_canary(event: SelfManagedTask, context):
    """The group on the new version with one more instance: the canary node."""
    request, state = event.state.input, event.state
    return self_managed.start_canary(clients(request.cluster_name), request, state.preflight, state.version,
                                     event.execution)


@task(SelfManagedTask, records="canary-ready")
def check_canary(event: SelfManagedTask, context):
    """NotReadyYet until the canary node joined, is Ready and runs every DaemonSet; CanaryUnhealthy at its deadline."""
    request, state = event.state.input, event.state
    return self_managed.check_canary(clients(request.cluster_name), request, state.preflight, state.version,
                                     state.canary)


@task(SelfManagedTask, records="old-node-replaced")
def replace_next(event: SelfManagedTask, context):
    """Cordon and drain the next AL2 node, then terminate its instance without decrementing the capacity."""
    request = event.state.input
    return self_managed.replace_next(clients(request.cluster_name), request, event.state.preflight,
                                     event.execution)


@task(SelfManagedTask)
def wait_settled(event: SelfManagedTask, context):
    """NotReadyYet until the replacement joined and is Ready with its DaemonSets."""
    request = event.state.input
    return self_managed.wait_settled(clients(request.cluster_name), request, event.state.preflight,
                                     event.state.replaced)


@task(SelfManagedTask, records="migrated")
def release_capacity(event: SelfManagedTask, context):
    """Take back the canary's extra instance (drained), make the new version the template's default."""
    request, state = event.state.input, event.state
    return self_managed.release_capacity(clients(request.cluster_name), request, state.preflight, state.version,
                                         event.execution)


@task(SelfManagedTask, records="rolled-back")
def rollback(event: SelfManagedTask, context):
    """The previous version and capacity back, AL2023 nodes replaced the drained way, our cordons lifted."""
    request, state = event.state.input, event.state
    return self_managed.rollback(clients(request.cluster_name), request, state.preflight, event.execution,
                                 state.error, state.failed_gate)
