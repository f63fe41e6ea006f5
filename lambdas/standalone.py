"""The standalone EC2 migration's tasks (state_machines/standalone_ec2.asl.json), one Lambda function each:
`standalone.<task>`."""

from migrator import preflight_checks as permitted
from migrator.approvals import gates
from migrator.settings import settings
from migrator.standalone import migration
from migrator.standalone.events import MigrationTask, clients
from migrator.standalone.models import MigrationInput
from migrator.wiring import EXECUTION, audit_log, input_validator, task

validate_input = input_validator(MigrationInput)  # the first state


@task(MigrationTask)
def preflight(event: MigrationTask, context):
    """Check the instance can be migrated; record everything needed to rebuild and to restore it."""
    request, env = event.state.input, settings()
    result = migration.preflight(clients(), request, env.tag_key, env.tag_value)
    if not result.already_migrated:  # checked before any change: the AMI, the alarms, what IAM allows the cutover
        permitted.require_al2023_ami(clients().ssm, clients().ec2, request)
        permitted.require_existing_alarms(clients().cloudwatch, request.alarm_names)
        if request.cutover.mode == "dns":
            permitted.require_listed_zone(request.cutover.hosted_zone_id, permitted.listed_zones(env.dns_hosted_zone_ids))
        if request.cutover.mode == "elastic_ip":
            permitted.require_tagged_address(clients().ec2, request.instance_id, env.tag_key, env.tag_value)
    audit_log(event.execution, result.target).record(
        "already-migrated" if result.already_migrated else "preflight-passed", **result.model_dump(mode="json"))
    return result


@task(MigrationTask, once_per=EXECUTION, records="snapshots-started")
def snapshot(event: MigrationTask, context):
    """Snapshot every EBS volume of the instance at once (crash-consistent), tagged with the execution."""
    return migration.snapshot(clients(), event.state.preflight, event.execution)


@task(MigrationTask, records="snapshots-completed")
def check_snapshots(event: MigrationTask, context):
    """NotReadyYet until every snapshot is completed; SnapshotFailed if one is in error."""
    return migration.check_snapshots(clients(), event.state.input, event.state.snapshots)


@task(MigrationTask, once_per=EXECUTION, records="replacement-launched")
def launch(event: MigrationTask, context):
    """Launch the AL2023 instance beside the old one: same subnet, groups, profile, type, key, tags; IMDSv2."""
    state = event.state
    return migration.launch(clients(), state.input, state.preflight, state.snapshots, event.execution)


@task(MigrationTask, once_per=(*EXECUTION, "phase"))  # it runs before and after the cutover
def start_health_script(event: MigrationTask, context):
    """Run the input's health script on the new instance through SSM Run Command (if there is one)."""
    state = event.state
    commands = state.input.verify_commands if event.phase == "after-sync" else None
    result = migration.start_health_script(clients(), state.input, state.replacement.instance_id, event.execution,
                                           commands)
    audit_log(event.execution, event.target).record(
        "health-script-sent", phase=event.phase, **result.model_dump(mode="json"))
    return result


@task(MigrationTask)
def check_health(event: MigrationTask, context):
    """The new instance's health: NotReadyYet while initializing, InstanceUnhealthy on a bad sign.
    After the cutover it also checks that the old instance stopped and the address moved."""
    state, c = event.state, clients()
    if event.phase == "after-cutover":
        migration.check_old_stopped(c, state.preflight)
    if event.phase == "after-sync":
        migration.check_synced(c, state.preflight, state.replacement, state.final_sync)
    result = migration.check_health(c, state.input, state.replacement.instance_id, state.health_command)
    audit_log(event.execution, event.target).record(
        "replacement-healthy", phase=event.phase, **result.model_dump(mode="json"))
    return result


@task(MigrationTask, once_per=EXECUTION, records="quiesced")
def quiesce(event: MigrationTask, context):
    """After the cutover approval: the old server's writes stop (its quiesce commands, if any)."""
    state = event.state
    audit_log(event.execution, event.target).record("approval-granted", gate=gates.CUTOVER,
                                                    decision=state.cutover_approval)
    return migration.quiesce(clients(), state.input, state.preflight, event.execution)


@task(MigrationTask, records="data-synced")
def final_sync(event: MigrationTask, context):
    """Old server stopped, final snapshot, its data volumes moved onto the stopped replacement, which
    starts again; NotReadyYet while any of it is under way."""
    state = event.state
    return migration.final_sync(clients(), state.input, state.preflight, state.replacement, state.quiesce,
                                event.execution)


@task(MigrationTask, once_per=EXECUTION, records="cut-over")
def cutover(event: MigrationTask, context):
    """Move the Elastic IP or DNS record to the new instance, then stop (never terminate) the old one."""
    state = event.state
    return migration.cutover(clients(), state.preflight, state.replacement, state.quiesce)


@task(MigrationTask, records="rolled-back")
def rollback(event: MigrationTask, context):
    """Any failure: old instance running, address or record back to it, new instance terminated."""
    state = event.state
    return migration.rollback(clients(), state.input, state.preflight, state.replacement, state.error,
                              state.failed_gate, state.quiesce)


@task(MigrationTask, once_per=EXECUTION, records="decommissioned")
def decommission(event: MigrationTask, context):
    """After retention and approval: terminate the old instance, give the snapshots an expiry date."""
    state = event.state
    audit_log(event.execution, event.target).record("approval-granted", gate=gates.DECOMMISSION,
                                                    decision=state.decommission_approval)
    return migration.decommission(clients(), state.input, state.preflight, state.snapshots, state.final_sync)


@task(MigrationTask, once_per=EXECUTION, records="decommission-not-answered")
def keep_old_instance(event: MigrationTask, context):
    """The decommission gate timed out: the replacement keeps serving, the old instance stays stopped
    with its snapshots, and an operator decides (never a silent rollback of the replacement's writes)."""
    state = event.state
    return migration.keep_old_instance(clients(), state.preflight, state.replacement, state.snapshots)
