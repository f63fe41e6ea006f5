"""EC2 fidelity: launch templates, snapshots, status checks, client tokens, addresses."""

from __future__ import annotations

from tests.conftest import running
from tests.local.fidelity.conftest import DB, STILL, new_version, servers


def test_create_launch_template_version_copies_the_source_version():
    """AWS: SourceVersion's data is the base; LaunchTemplateData overrides top-level keys."""
    with running([{"name": "web", "size": 1}], **STILL) as rt:
        data = new_version(rt)["LaunchTemplateData"]
        assert data["ImageId"] == rt.fleet.al2023_image
        assert data["InstanceType"] == "t3.micro"
        assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 2


def test_a_version_with_new_user_data_launches_as_a_first_version_does():
    """AWS: UserData given to CreateLaunchTemplateVersion is kept as CreateLaunchTemplate keeps it (moto kept it
    raw, and a group launching from that version failed)."""
    import base64

    with running([{"name": "web", "size": 1}], **STILL) as rt:
        template = rt.fleet.groups["web"].template_id
        script = base64.b64encode(b"#!/bin/bash\necho v2\n").decode()
        version = rt.client("ec2").create_launch_template_version(
            LaunchTemplateId=template, SourceVersion="1", LaunchTemplateData={"UserData": script})["LaunchTemplateVersion"]
        autoscaling = rt.client("autoscaling")
        autoscaling.update_auto_scaling_group(AutoScalingGroupName="web", MaxSize=2, LaunchTemplate={
            "LaunchTemplateId": template, "Version": str(version["VersionNumber"])})
        autoscaling.set_desired_capacity(AutoScalingGroupName="web", DesiredCapacity=2)
        launched = rt.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["web"])[
            "AutoScalingGroups"][0]["Instances"]
        assert len(launched) == 2


def test_snapshots_are_pending_with_progress_until_complete_and_create_snapshots_reports_state():
    """AWS: CreateSnapshots answers each snapshot's State; a snapshot is `pending` with a
    Progress until `completed` (moto: `completed` at once, no State in CreateSnapshots)."""
    with servers(DB) as rt:
        ec2 = rt.client("ec2")
        created = ec2.create_snapshots(InstanceSpecification={"InstanceId": rt.fleet.instances["db-1"].instance_id})
        assert [s["State"] for s in created["Snapshots"]] == ["pending", "pending"]
        ids = [s["SnapshotId"] for s in created["Snapshots"]]
        rt.clock.advance(60)
        halfway = ec2.describe_snapshots(SnapshotIds=ids)["Snapshots"]
        assert {(s["State"], s["Progress"]) for s in halfway} == {("pending", "50%")}
        rt.clock.advance(61)
        assert {s["State"] for s in ec2.describe_snapshots(SnapshotIds=ids)["Snapshots"]} == {"completed"}


def test_a_snapshot_fault_ends_in_error():
    with servers(DB, faults=[{"target": "standalone/db-1", "at": "snapshot", "kind": "error"}]) as rt:
        ec2 = rt.client("ec2")
        created = ec2.create_snapshots(InstanceSpecification={"InstanceId": rt.fleet.instances["db-1"].instance_id})
        rt.clock.advance(200)
        described = ec2.describe_snapshots(SnapshotIds=[s["SnapshotId"] for s in created["Snapshots"]])
        assert {s["State"] for s in described["Snapshots"]} == {"error"}
        assert "simulated" in described["Snapshots"][0]["StateMessage"]


def test_status_checks_initialize_after_launch_and_after_a_start():
    """AWS: both status checks are `initializing` until the instance has booted and
    passed them, again after every start."""
    with servers(DB) as rt:
        ec2 = rt.client("ec2")
        # the scenario's own server has run for long; a new one is launched now
        iid = ec2.run_instances(ImageId=rt.fleet.al2023_image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]

        def checks():
            status = ec2.describe_instance_status(InstanceIds=[iid])["InstanceStatuses"][0]
            return status["SystemStatus"]["Status"], status["InstanceStatus"]["Status"]

        assert checks() == ("initializing", "initializing")
        rt.clock.advance(101)
        assert checks() == ("ok", "ok")
        ec2.stop_instances(InstanceIds=[iid])
        ec2.start_instances(InstanceIds=[iid])
        assert checks() == ("initializing", "initializing")


def test_run_instances_with_a_used_client_token_returns_the_first_launch():
    """AWS: RunInstances is idempotent per ClientToken; moto launched again."""
    with servers(DB) as rt:
        ec2 = rt.client("ec2")
        first = ec2.run_instances(ImageId=rt.fleet.al2023_image, MinCount=1, MaxCount=1, ClientToken="exec-1")
        again = ec2.run_instances(ImageId=rt.fleet.al2023_image, MinCount=1, MaxCount=1, ClientToken="exec-1")
        assert first["Instances"][0]["InstanceId"] == again["Instances"][0]["InstanceId"]


def test_the_address_watch_reports_an_elastic_ip_on_a_stopped_instance():
    with servers(DB) as rt:
        rt.client("ec2").stop_instances(InstanceIds=[rt.fleet.instances["db-1"].instance_id])
        assert rt.fidelity.address_violations and "stopped" in rt.fidelity.address_violations[0]
