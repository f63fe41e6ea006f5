"""standalone_ec2.asl.json executed in the local runtime: success and every failure
path, then the simulated account is checked as an operator would check it."""

from __future__ import annotations

import json

import pytest

from migrator.audit import read_trail
from migrator.config import EXECUTION_TAG, EXPIRES_TAG, PURPOSE_TAG, SOURCE_INSTANCE_TAG
from migrator.workstation.local.demo import migration_input
from migrator.workstation.local.runtime import AUDIT_TABLE, LocalRuntime, Run
from migrator.workstation.local.summary import _instance
from migrator.workflows import STANDALONE_EC2
from tests.conftest import running

DB = {"name": "db-1", "volumes_gib": [8, 100, 20], "elastic_ip": True, "health_script": True, "alarms": ["db-1-status"]}
WEB = {"name": "web-1", "dns": "web-1.internal.example.com", "volumes_gib": [8, 30]}
FAST = {"timings": {"retention": 3600}}


def servers(*specs, **extra):
    return running([], standalone=list(specs), **{**FAST, **extra})


def execute(rt: LocalRuntime, name: str, payload: dict | None = None, **overrides):
    built = rt.fleet.instances[name]
    body = payload if payload is not None else {**migration_input(built, rt.scenario), **overrides}
    run = rt.start_execution(STANDALONE_EC2, built.spec.target, body)
    return run, rt.wait([run], timeout=300)[run.execution_arn]


def instance(rt, instance_id):
    return rt.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def replacements(rt, name):
    found = rt.client("ec2").describe_instances(Filters=[
        {"Name": f"tag:{SOURCE_INSTANCE_TAG}", "Values": [rt.fleet.instances[name].instance_id]}])
    return [i for r in found["Reservations"] for i in r["Instances"]]


def snapshots(rt, name, purpose=None):
    filters = [{"Name": f"tag:{SOURCE_INSTANCE_TAG}", "Values": [rt.fleet.instances[name].instance_id]}]
    if purpose:
        filters.append({"Name": f"tag:{PURPOSE_TAG}", "Values": [purpose]})
    return rt.client("ec2").describe_snapshots(OwnerIds=["self"], Filters=filters)["Snapshots"]


def address_instance(rt, name):
    built = rt.fleet.instances[name]
    return rt.client("ec2").describe_addresses(AllocationIds=[built.allocation_id])["Addresses"][0].get("InstanceId")


def record_values(rt, name):
    built = rt.fleet.instances[name]
    sets = rt.client("route53").list_resource_record_sets(HostedZoneId=built.zone_id)["ResourceRecordSets"]
    return next([r["Value"] for r in s["ResourceRecords"]] for s in sets if s["Name"] == built.record_name + ".")


def trail(rt, run):
    return [r["action"] for r in read_trail(rt.client("dynamodb"), AUDIT_TABLE, run.execution_arn)]


def assert_restored(rt, name):
    """The original serves exactly as before: running, same image, volumes, tags,
    address; no replacement left; the address never pointed at a stopped instance."""
    built = rt.fleet.instances[name]
    old = instance(rt, built.instance_id)
    assert old["State"]["Name"] == "running"
    assert old["ImageId"] == built.original_image
    assert {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in old["BlockDeviceMappings"]} == built.volume_ids
    tags = {t["Key"]: t["Value"] for t in old["Tags"]}
    assert all(tags[k] == v for k, v in built.tags.items())
    assert all(r["State"]["Name"] in ("terminated", "shutting-down") for r in replacements(rt, name))
    if built.allocation_id:
        assert address_instance(rt, name) == built.instance_id
    if built.zone_id:
        # a public IP of its own changed with the stop and start (AWS releases it): the record follows
        assert record_values(rt, name) == [old["PublicIpAddress"] if built.spec.dns_public else built.record_value]
    assert rt.fidelity.address_violations == []


def test_success_builds_beside_cuts_over_keeps_then_decommissions():
    with servers(DB) as rt:
        built = rt.fleet.instances["db-1"]
        run, result = execute(rt, "db-1")
        assert result["status"] == "SUCCEEDED"

        [new] = replacements(rt, "db-1")
        assert new["State"]["Name"] == "running" and new["ImageId"] == rt.fleet.al2023_image
        assert new["MetadataOptions"]["HttpTokens"] == "required"
        old = instance(rt, built.instance_id)
        assert old["State"]["Name"] == "terminated"  # after retention and the decommission gate
        # same subnet, security groups, profile, type, key and tags (plus ours)
        for key in ("SubnetId", "InstanceType", "KeyName"):
            assert new[key] == old[key]
        assert [g["GroupId"] for g in new["SecurityGroups"]] == [g["GroupId"] for g in old["SecurityGroups"]]
        assert new["IamInstanceProfile"]["Arn"].endswith(":instance-profile/app-server")  # the scenario's profile
        new_tags = {t["Key"]: t["Value"] for t in new["Tags"]}
        assert {k: new_tags[k] for k in built.tags} == built.tags
        assert new_tags[SOURCE_INSTANCE_TAG] == built.instance_id
        # data volumes restored from the snapshots on their devices; the root from the
        # AMI, at least as large as the old root
        by_device = {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in new["BlockDeviceMappings"]}
        volumes = {v["VolumeId"]: v for v in rt.client("ec2").describe_volumes(VolumeIds=list(by_device.values()))["Volumes"]}
        sizes = {device: volumes[vid]["Size"] for device, vid in by_device.items()}
        assert (sizes["/dev/sdf"], sizes["/dev/sdg"]) == (100, 20)
        assert sizes[new["RootDeviceName"]] >= 8
        assert all(volumes[vid]["Encrypted"] for vid in by_device.values())
        assert address_instance(rt, "db-1") == new["InstanceId"]

        taken = snapshots(rt, "db-1")
        assert {s["VolumeId"] for s in taken} == set(built.volume_ids.values())
        assert all(s["State"] == "completed" for s in taken)
        assert all(EXPIRES_TAG in {t["Key"] for t in s["Tags"]} for s in taken)
        assert rt.fidelity.address_violations == []

        actions = trail(rt, run)
        assert actions[:5] == ["preflight-passed", "host-scan-sent", "compatibility-checked", "snapshots-started",
                               "snapshots-completed"]
        assert actions.index("parity-checked") < actions.index("approval-requested")
        for action in ("replacement-launched", "health-script-sent", "cut-over", "decommissioned"):
            assert action in actions
        assert actions.count("approval-granted") == 2
        gates = [m["gate"] for m in rt.bot.messages if m["kind"] == "approval-request"]
        assert gates == ["cutover", "decommission"]
        cutover = next(m for m in rt.bot.messages if m.get("gate") == "cutover")
        assert '"system": "ok"' in cutover["text"] and '"health_script": "Success"' in cutover["text"]


def test_dns_cutover_moves_the_record_to_the_new_private_address():
    with servers(WEB) as rt:
        run, result = execute(rt, "web-1")
        assert result["status"] == "SUCCEEDED"
        [new] = replacements(rt, "web-1")
        assert record_values(rt, "web-1") == [new["PrivateIpAddress"]]


def test_the_snapshots_complete_before_the_replacement_is_launched():
    with servers(DB) as rt:
        run, _ = execute(rt, "db-1")
        names = [e["stateEnteredEventDetails"]["name"] for e in rt.history(run) if "stateEnteredEventDetails" in e]
        assert names.index("WaitForSnapshots") < names.index("LaunchReplacement")
        [new] = replacements(rt, "db-1")
        # snapshot completion and launch are read on the same simulated clock
        done = max(rt.fidelity.snapshot_completed_at[s["SnapshotId"]] for s in snapshots(rt, "db-1", "before-change"))
        assert done <= _instance(rt, new["InstanceId"]).sim_launched_at


@pytest.mark.parametrize(
    ("fault", "error", "words", "cut_over"),
    [
        ({"at": "snapshot", "kind": "error"}, "SnapshotFailed", "snapshot", False),
        ({"at": "validate", "kind": "unhealthy"}, "InstanceUnhealthy", "impaired", False),
        ({"at": "validate", "kind": "alarm", "alarm": "db-1-status"}, "InstanceUnhealthy", "db-1-status", False),
        ({"at": "cutover", "kind": "error"}, "CutoverFailed", "ServiceUnavailable", False),
        ({"at": "cutover", "kind": "unhealthy"}, "InstanceUnhealthy", "impaired", True),
        ({"at": "cutover", "kind": "alarm", "alarm": "db-1-status"}, "InstanceUnhealthy", "db-1-status", True),
    ],
    ids=["snapshot-error", "validate-unhealthy", "validate-alarm", "cutover-error", "cutover-unhealthy",
         "cutover-alarm"],
)
def test_each_fault_rolls_back_to_the_original(fault, error, words, cut_over):
    with servers(DB, faults=[{"target": "standalone/db-1", **fault}]) as rt:
        run, result = execute(rt, "db-1")
        assert result["status"] == "FAILED"
        assert result["error"] == error
        assert words in result["cause"] and "rolled back to" in result["cause"]
        assert_restored(rt, "db-1")
        names = [e["stateEnteredEventDetails"]["name"] for e in rt.history(run) if "stateEnteredEventDetails" in e]
        assert ("StartHealthScriptAfterCutover" in names) == cut_over  # whether the cutover completed
        if fault["at"] == "snapshot":
            assert replacements(rt, "db-1") == []  # nothing else changed
        assert any(m["kind"] == "rolled-back" for m in rt.bot.messages)


@pytest.mark.parametrize("gate", ["cutover", "decommission"])
def test_a_rejected_gate_rolls_back(gate):
    with servers(DB, WEB, approvals={"gates": {f"standalone/db-1/{gate}": "reject",
                                               f"standalone/web-1/{gate}": "reject"}}) as rt:
        for name in ("db-1", "web-1"):
            run, result = execute(rt, name)
            assert result["status"] == "FAILED" and result["error"] == "Rejected"
            assert_restored(rt, name)


def test_an_unanswered_decommission_gate_keeps_the_replacement_serving():
    """Nobody answers for the whole timeout: no rollback of what the replacement served, no
    termination without consent; the old instance stays stopped with its snapshots, and people are told."""
    with servers(DB, approvals={"timeout": 3600, "gates": {"standalone/db-1/decommission": "ignore"}}) as rt:
        built = rt.fleet.instances["db-1"]
        run, result = execute(rt, "db-1")
        assert result["status"] == "SUCCEEDED"
        [new] = replacements(rt, "db-1")
        assert new["State"]["Name"] == "running" and address_instance(rt, "db-1") == new["InstanceId"]
        assert instance(rt, built.instance_id)["State"]["Name"] == "stopped"
        taken = snapshots(rt, "db-1")
        assert taken and all(EXPIRES_TAG not in {t["Key"] for t in s["Tags"]} for s in taken)
        assert "decommission-not-answered" in trail(rt, run) and "decommissioned" not in trail(rt, run)
        [told] = [m for m in rt.bot.messages if m["kind"] == "decommission-not-answered"]
        assert told["old_instance"] == built.instance_id and told["serving"] == new["InstanceId"]
        assert rt.fidelity.address_violations == []


def test_without_restoring_data_volumes_only_the_root_comes_from_the_ami():
    with servers(DB) as rt:
        # the replacement mounts no data volume: a difference the parity check names, the operator accepts
        _, result = execute(rt, "db-1", restore_data_volumes=False, parity_accept=["mount /data", "mount /data1"])
        assert result["status"] == "SUCCEEDED"
        [new] = replacements(rt, "db-1")
        assert len(new["BlockDeviceMappings"]) == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"cutover": {"mode": "elastic_ip"}}, "instance_id"),
        ({"instance_id": "i-0123456789abcdef0", "cutover": {"mode": "dns"}}, "hosted_zone_id"),
        ({"instance_id": "i-0123456789abcdef0", "cutover": {"mode": "teleport"}}, "cutover.mode"),
        ({"instance_id": "i-0123456789abcdef0", "cutover": {"mode": "none"}, "retention_seconds": -1},
         "retention_seconds"),
    ],
)
def test_invalid_input_fails_in_the_first_state_naming_the_field(payload, field):
    with servers(DB) as rt:
        run, result = execute(rt, "db-1", payload=payload)
        assert result["error"] == "InvalidInput"
        assert field in json.loads(result["cause"])["errorMessage"]
        assert [e["stateEnteredEventDetails"]["name"] for e in rt.history(run)
                if "stateEnteredEventDetails" in e] == ["ValidateInput"]
        assert snapshots(rt, "db-1") == []


def test_preflight_refuses_a_wrong_cutover_mode_and_changes_nothing():
    with servers(WEB) as rt:
        _, result = execute(rt, "web-1", cutover={"mode": "elastic_ip"})
        assert result["error"] == "PreflightFailed" and "no Elastic IP" in result["cause"]
        assert snapshots(rt, "web-1") == []


def test_an_instance_on_al2023_is_already_migrated():
    with servers({"name": "bastion", "os": "al2023"}) as rt:
        run, result = execute(rt, "bastion")
        assert result["status"] == "SUCCEEDED"
        assert trail(rt, run) == ["already-migrated"]
        assert snapshots(rt, "bastion") == []


def test_two_executions_of_one_name_on_different_state_machines_share_nothing():
    """The same execution name on two state machines (two stacks, a copied definition): each run
    finds again only the snapshots and the replacement it made itself, for its own server."""
    with servers(DB, {"name": "db-2", "volumes_gib": [8, 50], "elastic_ip": True}) as rt:
        sfn = rt.client("stepfunctions")
        original = rt.state_machines[STANDALONE_EC2.name]
        described = sfn.describe_state_machine(stateMachineArn=original)
        copy = sfn.create_state_machine(name="standalone-ec2-second-stack", definition=described["definition"],
                                        roleArn=described["roleArn"])["stateMachineArn"]
        runs = []
        for name, machine in (("db-1", original), ("db-2", copy)):
            built = rt.fleet.instances[name]
            arn = sfn.start_execution(stateMachineArn=machine, name="migrate",
                                      input=json.dumps(migration_input(built, rt.scenario)))["executionArn"]
            run = Run(built.spec.target, STANDALONE_EC2, arn, rt.clock.now())
            rt.wait([run], timeout=300)  # one after the other: the second could find the first's resources
            runs.append(run)
        for name, run in zip(("db-1", "db-2"), runs):
            assert rt.status(run)["status"] == "SUCCEEDED"
            built = rt.fleet.instances[name]
            [new] = replacements(rt, name)
            assert {t["Key"]: t["Value"] for t in new["Tags"]}[EXECUTION_TAG] == run.execution_arn
            assert address_instance(rt, name) == new["InstanceId"]
            taken = [s for s in snapshots(rt, name) if {"Key": PURPOSE_TAG, "Value": "before-change"} in s["Tags"]]
            assert {s["VolumeId"] for s in taken} == set(built.volume_ids.values())
            assert all({t["Key"]: t["Value"] for t in s["Tags"]}[EXECUTION_TAG] == run.execution_arn for s in taken)


def states_entered(rt, run):
    return [e["stateEnteredEventDetails"]["name"] for e in rt.history(run) if "stateEnteredEventDetails" in e]


def test_the_old_data_volumes_move_to_the_replacement_after_the_writes_stop():
    """Final sync: after the cutover approval the old server stops (after its quiesce commands), a
    final snapshot is taken, and its own data volumes, as they are at that moment, move onto the
    replacement, which is verified before the address moves. The freeze is measured and audited."""
    with servers(DB) as rt:
        built = rt.fleet.instances["db-1"]
        run, result = execute(rt, "db-1", quiesce_commands="systemctl stop postgresql")
        assert result["status"] == "SUCCEEDED"
        [new] = replacements(rt, "db-1")
        data = {d: v for d, v in built.volume_ids.items() if d != instance(rt, built.instance_id)["RootDeviceName"]}
        on_new = {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in new["BlockDeviceMappings"]}
        assert {d: on_new[d] for d in data} == data  # the very volumes the old server wrote to
        final = snapshots(rt, "db-1", "final-sync")
        assert {s["VolumeId"] for s in final} == set(data.values())
        staging = rt.client("ec2").describe_volumes(Filters=[
            {"Name": f"tag:{SOURCE_INSTANCE_TAG}", "Values": [built.instance_id]},
            {"Name": "status", "Values": ["available"]}])["Volumes"]
        assert staging == []  # the replacement's copies of the first snapshot were deleted
        names = states_entered(rt, run)
        assert names.index("ApproveCutover") < names.index("Quiesce") < names.index("FinalSync") \
            < names.index("VerifySync") < names.index("Cutover")
        commands = rt.client("ssm").list_commands()["Commands"]
        [sent] = [c for c in commands if c["Parameters"]["commands"] == ["systemctl stop postgresql"]]
        assert "quiesce" in sent["Comment"]
        [freeze] = rt.fidelity.observations.write_freezes["standalone/db-1"]
        assert 0 < freeze < 3600  # minutes, not the hours of the gate
        records = read_trail(rt.client("dynamodb"), AUDIT_TABLE, run.execution_arn)
        actions = [r["action"] for r in records]
        assert actions.index("quiesced") < actions.index("data-synced") < actions.index("cut-over")
        cut = next(r for r in records if r["action"] == "cut-over")
        # the workflow counts from the quiesce commands, the simulation from the instance stop
        assert freeze <= cut["detail"]["writes_frozen_seconds"] <= freeze + 120
        gate = next(m for m in rt.bot.messages if m.get("gate") == "cutover")
        assert "write_freeze" in gate["text"]
        assert rt.fidelity.address_violations == []


@pytest.mark.parametrize(
    ("fault", "error"),
    [({"at": "quiesce", "kind": "error"}, "QuiesceFailed"),
     ({"at": "final-sync", "kind": "error"}, "ClientError"),
     ({"at": "verify", "kind": "error"}, "InstanceUnhealthy")],
    ids=["quiesce", "final-sync", "verify"],
)
def test_a_failure_in_the_final_sync_rolls_back_with_the_data(fault, error):
    """Whatever step of the final sync fails, the old server serves again with its own data
    volumes (carried back from the replacement where they had moved)."""
    with servers(DB, faults=[{"target": "standalone/db-1", **fault}]) as rt:
        run, result = execute(rt, "db-1", quiesce_commands="systemctl stop postgresql")
        assert result["status"] == "FAILED"
        assert result["error"] == error, result["cause"]
        assert "rolled back to" in result["cause"]
        assert_restored(rt, "db-1")
        assert "Cutover" not in states_entered(rt, run)
        assert "standalone/db-1" not in rt.fidelity.ec2.frozen  # writes accepted again


def test_a_rejected_decommission_carries_the_replacement_data_back():
    """Rolled back after days of serving: the data volumes the replacement wrote to go back to
    the original (the same volumes, so every write it accepted), then the address."""
    with servers(DB, approvals={"gates": {"standalone/db-1/decommission": "reject"}}) as rt:
        built = rt.fleet.instances["db-1"]
        run, result = execute(rt, "db-1")
        assert result["error"] == "Rejected"
        assert_restored(rt, "db-1")  # the original's volumes, by id, back on their devices
        rollback = next(r for r in read_trail(rt.client("dynamodb"), AUDIT_TABLE, run.execution_arn)
                        if r["action"] == "rolled-back")
        carried = rollback["detail"]["volumes_back"]
        assert carried and set(carried.values()) < set(built.volume_ids.values())


DAY = 86_400


def test_writes_during_a_day_long_cutover_gate_survive_the_cutover():
    """The application writes all through a day-long wait for the cutover approval (and the
    decommission's); after the cutover they are all on the AL2023 replacement that serves."""
    with servers(DB, approvals={"after": DAY, "timeout": 2 * DAY}) as rt:
        _, result = execute(rt, "db-1")
        assert result["status"] == "SUCCEEDED"
        writes = rt.fidelity.writes.report("standalone/db-1")
        assert writes["acknowledged"] > 2 * DAY * 0.9  # about one a second, two days
        assert writes["lost"] == 0 and writes["on_serving_instance"] == writes["acknowledged"]
        [new] = replacements(rt, "db-1")
        assert rt.fidelity.ec2.serving("standalone/db-1").id == new["InstanceId"]


def test_a_day_of_writes_on_the_replacement_goes_back_with_a_rejected_decommission():
    with servers(DB, WEB, approvals={"after": DAY, "timeout": 2 * DAY, "gates": {
            "standalone/db-1/decommission": "reject", "standalone/web-1/decommission": "reject"}}) as rt:
        for name in ("db-1", "web-1"):
            _, result = execute(rt, name)
            assert result["error"] == "Rejected"
            assert_restored(rt, name)
            writes = rt.fidelity.writes.report(f"standalone/{name}")
            assert writes["lost"] == 0 and writes["acknowledged"] > 2 * DAY * 0.9
            assert rt.fidelity.ec2.serving(f"standalone/{name}").id == rt.fleet.instances[name].instance_id


def test_the_rehearsal_sees_writes_lost_when_data_does_not_follow():
    """The audit can fail: a replacement serving without the old data volumes loses the writes."""
    with servers(DB) as rt:
        # the replacement mounts no data volume: a difference the parity check names, the operator accepts
        _, result = execute(rt, "db-1", restore_data_volumes=False, parity_accept=["mount /data", "mount /data1"])
        assert result["status"] == "SUCCEEDED"
        writes = rt.fidelity.writes.report("standalone/db-1")
        assert writes["acknowledged"] > 0 and writes["lost"] > 0


def test_a_dns_record_on_a_public_ip_stays_public_and_comes_back_exactly():
    public = {"name": "api-1", "dns": "api-1.example.com", "dns_public": True, "volumes_gib": [8, 20]}
    with servers(public, {**public, "name": "api-2", "dns": "api-2.example.com"},
                 approvals={"gates": {"standalone/api-2/decommission": "reject"}}) as rt:
        built = rt.fleet.instances["api-1"]
        assert built.record_value and built.record_value != built.private_ip
        _, result = execute(rt, "api-1")
        assert result["status"] == "SUCCEEDED"
        [new] = replacements(rt, "api-1")
        assert record_values(rt, "api-1") == [new["PublicIpAddress"]] != [built.record_value]
        _, result = execute(rt, "api-2")
        assert result["error"] == "Rejected"
        assert_restored(rt, "api-2")  # the public IP of the original, never its private one
        assert rt.fidelity.writes.report("standalone/api-1")["lost"] == 0
