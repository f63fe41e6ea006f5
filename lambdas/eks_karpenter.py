"""The Karpenter pool migration's tasks (state_machines/eks_karpenter.asl.json), one Lambda function each:
`eks_karpenter.<task>`."""

from migrator import preflight_checks
from migrator.aws import client
from migrator.eks import karpenter
from migrator.eks.karpenter_models import KarpenterInput, KarpenterTask
from migrator.eks.kube import Kube, connect
from migrator.settings import settings
from migrator.wiring import EXECUTION, audit_log, input_validator, task

validate_input = input_validator(KarpenterInput, names_target=True)  # the first state


def _kube(cluster: str) -> Kube:
    return connect(client("eks"), client("sts"), cluster)


@task(KarpenterTask)
def preflight(event: KarpenterTask, context):
    """Karpenter's version supports AL2023, the pool's budgets allow progress, VPC CNI and container runtime,
    no PDB or pod blocks the drift: every check, before any change."""
    request = event.state.input
    preflight_checks.require_cluster(client("eks"), request.cluster_name)
    result = karpenter.preflight(client("eks"), _kube(request.cluster_name), request, event.execution,
                                 settings().tag_key, settings().tag_value)
    audit_log(event.execution, event.target).record(
        "already-migrated" if result.already_migrated else "preflight-passed",
        checks=result.model_dump(mode="json")["checks"])
    return result


@task(KarpenterTask, once_per=EXECUTION, records="nodeclass-changed")
def change_nodeclass(event: KarpenterTask, context):
    """After the before-change approval: the EC2NodeClass to AL2023, the previous values recorded on it."""
    request = event.state.input
    return karpenter.change_nodeclass(_kube(request.cluster_name), request, event.state.preflight, event.execution)


@task(KarpenterTask, records="drifted")
def check_drift(event: KarpenterTask, context):
    """NotReadyYet until Karpenter has replaced every AL2 node of the pool; DeadlineExceeded naming the rest."""
    request = event.state.input
    return karpenter.check_drift(_kube(request.cluster_name), request, event.state.changed)


@task(KarpenterTask, records="rolled-back")
def rollback(event: KarpenterTask, context):
    """The EC2NodeClass's previous values back (only fields still ours), then Karpenter drifts back to AL2."""
    request = event.state.input
    return karpenter.rollback(_kube(request.cluster_name), request, event.state.preflight, event.execution,
                              event.state.error, event.state.failed_gate)
