"""The compatibility scan and the parity check, shared by the standalone and the Auto Scaling group
workflows (state_machines/standalone_ec2.asl.json, asg_rollout.asl.json): `compat.<task>`."""

from migrator.aws import client
from migrator.compat import checks
from migrator.compat.checks import CompatibilityRequest, ParityRequest, ScanRequest
from migrator.wiring import EXECUTION, audit_log, task


def clients() -> checks.Clients:
    return checks.Clients(ec2=client("ec2"), ssm=client("ssm"), cloudwatch=client("cloudwatch"),
                          autoscaling=client("autoscaling"))


@task(ScanRequest, once_per=(*EXECUTION, "purpose"), records="host-scan-sent")
def start_scan(event: ScanRequest, context):
    """The read-only scan script on the host through SSM Run Command (an old host, or its replacement)."""
    return checks.start(clients(), event)


@task(CompatibilityRequest)
def check_compatibility(event: CompatibilityRequest, context):
    """The old host's findings (NotReadyYet while the scan runs); CompatibilityBlocked names every
    blocker unless the input says `compatibility: warn`. Recorded either way."""
    result = checks.check(clients(), event)
    audit_log(event.execution, event.target).record(
        "compatibility-checked", **result.model_dump(mode="json", exclude={"facts"}))
    checks.refuse_blockers(event.target, result)
    return result


@task(ParityRequest)
def check_parity(event: ParityRequest, context):
    """The new host against the old one before it may serve (NotReadyYet while the scan runs);
    ParityMissing names what it lacks that the input does not accept. Recorded either way."""
    result = checks.parity(clients(), event)
    audit_log(event.execution, event.target).record("parity-checked", **result.model_dump(mode="json"))
    checks.refuse_missing(event.target, result)
    return result
