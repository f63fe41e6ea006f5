"""The ASG rollout's tasks (state_machines/asg_rollout.asl.json), one Lambda function each: `asg.<task>`."""

from migrator import preflight_checks
from migrator.approvals import gates
from migrator.asg import rollout
from migrator.asg.events import CheckCanaryTask, RolloutTask, clients
from migrator.asg.models import RolloutInput
from migrator.settings import settings
from migrator.wiring import EXECUTION, audit_log, input_validator, task

validate_input = input_validator(RolloutInput, names_target=True)  # the first state


@task(RolloutTask)
def preflight(event: RolloutTask, context):
    """Check the group can be migrated; record what a rollback must restore."""
    request = event.state.input
    result = rollout.preflight(clients(), request, settings().tag_key, settings().tag_value)
    if not result.already_migrated:  # checked before any change (migrator/preflight_checks.py)
        preflight_checks.require_al2023_ami(clients().ssm, clients().ec2, request)
        preflight_checks.require_existing_alarms(clients().cloudwatch, request.alarm_names)
    audit_log(event.execution, event.state.target).record(
        "already-migrated" if result.already_migrated else "preflight-passed",
        **result.model_dump(mode="json", exclude={"instance_ids"}),
    )
    return result


@task(RolloutTask, once_per=EXECUTION)
def create_version(event: RolloutTask, context):
    """New launch-template version from the current one: AL2023 AMI, IMDSv2 required."""
    state = event.state
    result = rollout.create_version(clients(), state.input, state.preflight, event.execution)
    audit_log(event.execution, state.target).record(
        "launch-template-version-created", template_id=state.preflight.template_id,
        source_version=state.preflight.original_version, **result.model_dump(mode="json"),
    )
    return result


@task(RolloutTask, once_per=EXECUTION)
def start_canary(event: RolloutTask, context):
    """Launch one instance from the new version and attach it to the group: the canary."""
    state = event.state
    result = rollout.start_canary(clients(), state.preflight, state.version, event.execution)
    audit_log(event.execution, state.target).record(
        "canary-started", version=state.version.version, **result.model_dump(mode="json")
    )
    return result


@task(CheckCanaryTask)
def check_canary(event: CheckCanaryTask, context):
    """Canary health: NotReadyYet while launching (the state's Retry polls), CanaryUnhealthy on a bad sign."""
    state = event.state
    result = rollout.check_canary(clients(), state.input, state.preflight, state.version, state.canary, event.settled)
    audit_log(event.execution, state.target).record(
        "canary-baked" if event.settled else "canary-healthy", **result.model_dump(mode="json")
    )
    return result


@task(RolloutTask, once_per=EXECUTION)
def start_refresh(event: RolloutTask, context):
    """Start the instance refresh pinned to the new version (approval was granted)."""
    state = event.state
    log = audit_log(event.execution, state.target)
    log.record("approval-granted", gate=gates.BEFORE_REFRESH, decision=state.approval)
    result = rollout.start_refresh(clients(), state.input, state.preflight, state.version)
    log.record("instance-refresh-started", version=state.version.version, **result.model_dump(mode="json"))
    return result


@task(RolloutTask, records="instance-refresh-succeeded")
def check_refresh(event: RolloutTask, context):
    """Poll the instance refresh: NotReadyYet while it runs, RefreshFailed if it does not succeed."""
    state = event.state
    return rollout.check_refresh(clients(), state.input, state.preflight, state.refresh)


@task(RolloutTask, once_per=EXECUTION, records="migrated")
def finalize(event: RolloutTask, context):
    """Success: drop the canary's extra capacity (if still ours), make the new version the default."""
    state = event.state
    return rollout.finalize(clients(), state.preflight, state.version, event.execution)


@task(RolloutTask, records="rollback-started")
def rollback(event: RolloutTask, context):
    """Any failure after the first change: stop the refresh, revert the group, say what happened."""
    state = event.state
    return rollout.rollback(clients(), state.input, state.preflight, state.refresh, state.error, state.failed_gate,
                            event.execution)


@task(RolloutTask)
def check_rollback(event: RolloutTask, context):
    """Wait until every instance of the group runs the old version again."""
    state = event.state
    result = rollout.check_rollback(clients(), state.preflight, state.rollback)
    audit_log(event.execution, state.target).record(
        "rolled-back", **result.model_dump(mode="json"), cause=state.rollback.cause
    )
    return result
