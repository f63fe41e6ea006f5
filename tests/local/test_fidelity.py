"""Each fidelity fix of the local runtime, stated as the AWS behaviour it reproduces."""

from __future__ import annotations

import json
import threading

import pytest
from botocore.exceptions import ClientError

from tests.conftest import running

# Almost no clock drift: these tests move the clock by hand.
STILL = {"clock": {"speed": 0.001}, "timings": {"instance_boot": 40, "health_grace": 60}}


def instances(rt, name="web"):
    group = rt.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
    return group["Instances"]


def new_version(rt, name="web"):
    return rt.client("ec2").create_launch_template_version(
        LaunchTemplateId=rt.fleet.groups[name].template_id, SourceVersion="1",
        LaunchTemplateData={"ImageId": rt.fleet.al2023_image},
    )["LaunchTemplateVersion"]


def start_refresh(rt, min_healthy=80, warmup=100, alarms=None, name="web"):
    version = new_version(rt, name)
    preferences = {"MinHealthyPercentage": min_healthy, "InstanceWarmup": warmup, "SkipMatching": True,
                   "AutoRollback": True}
    if alarms:
        preferences["AlarmSpecification"] = {"Alarms": alarms}
    return rt.client("autoscaling").start_instance_refresh(
        AutoScalingGroupName=name,
        DesiredConfiguration={"LaunchTemplate": {"LaunchTemplateId": rt.fleet.groups[name].template_id,
                                                 "Version": str(version["VersionNumber"])}},
        Preferences=preferences,
    )["InstanceRefreshId"]


def refresh(rt, name="web"):
    return rt.client("autoscaling").describe_instance_refreshes(AutoScalingGroupName=name)["InstanceRefreshes"][0]


def test_instance_refresh_replaces_in_batches_of_the_unhealthy_allowance_after_warmup():
    """AWS: with max healthy 100 %, a refresh replaces at most (100 - MinHealthyPercentage) %
    of the group at a time and moves on once the new instances are InService and warmed up."""
    with running([{"name": "web", "size": 10}], **STILL) as rt:
        originals = {i["InstanceId"] for i in instances(rt)}
        start_refresh(rt, min_healthy=80, warmup=100)
        first = refresh(rt)
        assert first["Status"] == "InProgress" and first["PercentageComplete"] == 0
        assert first["InstancesToUpdate"] == 10
        assert len(originals - {i["InstanceId"] for i in instances(rt)}) == 2  # 20 % of 10 at a time
        rt.clock.advance(139)  # boot 40 s + warm-up 100 s not yet over
        assert refresh(rt)["PercentageComplete"] == 0
        rt.clock.advance(2)
        assert refresh(rt)["PercentageComplete"] == 20
        rt.clock.advance(140 * 4)
        done = refresh(rt)
        assert done["Status"] == "Successful" and done["PercentageComplete"] == 100
        current = instances(rt)
        assert len(current) == 10 and not originals & {i["InstanceId"] for i in current}
        assert {i["LaunchTemplate"]["Version"] for i in current} == {"2"}
        group = rt.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["web"])
        assert group["AutoScalingGroups"][0]["LaunchTemplate"]["Version"] == "2"  # desired config applied


def test_instance_refresh_rolls_back_when_an_alarm_fires():
    """AWS: with AutoRollback and an AlarmSpecification, an alarm in ALARM rolls the
    refresh back: replaced instances go back to the previous configuration."""
    with running([{"name": "web", "size": 4, "alarms": ["web-5xx"]}], **STILL) as rt:
        start_refresh(rt, min_healthy=50, alarms=["web-5xx"])
        rt.clock.advance(141)
        assert refresh(rt)["PercentageComplete"] == 50
        rt.client("cloudwatch").set_alarm_state(AlarmName="web-5xx", StateValue="ALARM", StateReason="test")
        rolling = refresh(rt)
        assert rolling["Status"] == "RollbackInProgress"
        assert "web-5xx" in rolling["StatusReason"]
        rt.clock.advance(1000)
        assert refresh(rt)["Status"] == "RollbackSuccessful"
        assert {i["LaunchTemplate"]["Version"] for i in instances(rt)} == {"1"}
        assert len(instances(rt)) == 4


def test_instance_refresh_cancel_and_rules():
    """AWS: one active refresh per group (InstanceRefreshInProgress); CancelInstanceRefresh
    ends it Cancelled; RollbackInstanceRefresh needs an active refresh."""
    with running([{"name": "web", "size": 4}], **STILL) as rt:
        autoscaling = rt.client("autoscaling")
        start_refresh(rt)
        with pytest.raises(ClientError) as busy:
            start_refresh(rt)
        assert busy.value.response["Error"]["Code"] == "InstanceRefreshInProgress"
        autoscaling.cancel_instance_refresh(AutoScalingGroupName="web")
        assert refresh(rt)["Status"] == "Cancelled"
        with pytest.raises(ClientError) as idle:
            autoscaling.rollback_instance_refresh(AutoScalingGroupName="web")
        assert idle.value.response["Error"]["Code"] == "ActiveInstanceRefreshNotFound"


def test_new_instances_are_pending_then_initial_then_healthy():
    """AWS: an instance is Pending until booted; its target is `initial` until it passes
    the health checks after the grace period, then `healthy`."""
    with running([{"name": "web", "size": 2, "target_group": True}], **STILL) as rt:
        autoscaling, elbv2 = rt.client("autoscaling"), rt.client("elbv2")
        arn = rt.fleet.groups["web"].target_group_arn
        autoscaling.set_desired_capacity(AutoScalingGroupName="web", DesiredCapacity=3)
        new = next(i for i in instances(rt) if i["InstanceId"] not in rt.fleet.groups["web"].instance_ids)

        def health():
            return elbv2.describe_target_health(TargetGroupArn=arn, Targets=[{"Id": new["InstanceId"]}])[
                "TargetHealthDescriptions"][0]["TargetHealth"]["State"]

        def lifecycle():
            return next(i for i in instances(rt) if i["InstanceId"] == new["InstanceId"])["LifecycleState"]

        assert (lifecycle(), health()) == ("Pending", "initial")
        rt.clock.advance(41)
        assert (lifecycle(), health()) == ("InService", "initial")
        rt.clock.advance(60)
        assert health() == "healthy"


def test_unhealthy_fault_makes_the_canary_target_unhealthy():
    with running([{"name": "web", "size": 2, "target_group": True}], faults=[
            {"target": "asg/web", "at": "canary", "kind": "unhealthy"}], **STILL) as rt:
        version = new_version(rt)
        rt.client("autoscaling").update_auto_scaling_group(
            AutoScalingGroupName="web", DesiredCapacity=3, MaxSize=3,
            LaunchTemplate={"LaunchTemplateId": rt.fleet.groups["web"].template_id,
                            "Version": str(version["VersionNumber"])})
        canary = next(i for i in instances(rt) if i["LaunchTemplate"]["Version"] == "2")
        rt.clock.advance(200)
        health = rt.client("elbv2").describe_target_health(
            TargetGroupArn=rt.fleet.groups["web"].target_group_arn, Targets=[{"Id": canary["InstanceId"]}])
        assert health["TargetHealthDescriptions"][0]["TargetHealth"]["State"] == "unhealthy"


def test_create_launch_template_version_copies_the_source_version():
    """AWS: SourceVersion's data is the base; LaunchTemplateData overrides top-level keys."""
    with running([{"name": "web", "size": 1}], **STILL) as rt:
        data = new_version(rt)["LaunchTemplateData"]
        assert data["ImageId"] == rt.fleet.al2023_image
        assert data["InstanceType"] == "t3.micro"
        assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 2


def test_each_instance_reports_the_version_it_was_launched_from():
    with running([{"name": "web", "size": 2}], **STILL) as rt:
        version = new_version(rt)["VersionNumber"]
        rt.client("autoscaling").update_auto_scaling_group(
            AutoScalingGroupName="web", DesiredCapacity=3, MaxSize=3,
            LaunchTemplate={"LaunchTemplateId": rt.fleet.groups["web"].template_id, "Version": str(version)})
        assert sorted(i["LaunchTemplate"]["Version"] for i in instances(rt)) == ["1", "1", "2"]


def _run_machine(rt, definition: dict, payload: dict, name: str):
    sfn = rt.client("stepfunctions")
    arn = sfn.create_state_machine(name=name, definition=json.dumps(definition),
                                   roleArn=f"arn:aws:iam::123456789012:role/al2023-migration-local")["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, name=f"{name}-1", input=json.dumps(payload))
    run = type("Run", (), {"execution_arn": execution["executionArn"]})()
    return rt.wait([run], timeout=60)[execution["executionArn"]], sfn.get_execution_history(
        executionArn=execution["executionArn"])["events"]


def test_choice_on_an_indexed_path_selects_the_value():
    """AWS: `$.items[0].ready` is one value, so a Choice on it matches."""
    with running([], clock={"speed": 1000}) as rt:
        result, _ = _run_machine(rt, {
            "StartAt": "Check",
            "States": {
                "Check": {"Type": "Choice", "Choices": [
                    {"Variable": "$.items[0].ready", "BooleanEquals": True, "Next": "Yes"}], "Default": "No"},
                "Yes": {"Type": "Succeed"},
                "No": {"Type": "Fail", "Error": "ChoiceMissed"},
            }}, {"items": [{"ready": True}]}, "jsonpath")
        assert result["status"] == "SUCCEEDED"


def test_wait_states_run_on_the_simulated_clock():
    """An hour's Wait takes an hour of simulated time: the history says so."""
    with running([], clock={"speed": 1000}) as rt:
        result, history = _run_machine(rt, {
            "StartAt": "Hour", "States": {"Hour": {"Type": "Wait", "Seconds": 3600, "Next": "Done"},
                                          "Done": {"Type": "Succeed"}}}, {}, "waits")
        assert result["status"] == "SUCCEEDED"
        stamps = [e["timestamp"].timestamp() for e in history]
        assert max(stamps) - min(stamps) >= 3600


def test_send_task_failure_cause_reaches_the_catch():
    """AWS: the Catch's ResultPath receives the Error and the Cause given to SendTaskFailure."""
    with running([], clock={"speed": 1000}) as rt:
        sfn, sqs = rt.client("stepfunctions"), rt.client("sqs")
        queue = sqs.create_queue(QueueName="tokens")["QueueUrl"]
        done = threading.Event()
        outcome = {}

        def run():
            outcome["result"], outcome["history"] = _run_machine(rt, {
                "StartAt": "Ask", "States": {
                    "Ask": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                            "Parameters": {"QueueUrl": queue, "MessageBody": {"token.$": "$$.Task.Token"}},
                            "Catch": [{"ErrorEquals": ["Rejected"], "ResultPath": "$.error", "Next": "Caught"}],
                            "End": True},
                    "Caught": {"Type": "Fail", "Error": "Caught", "CausePath": "$.error.Cause"}}}, {}, "callback")
            done.set()

        threading.Thread(target=run, daemon=True).start()
        token = None
        while token is None:
            messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages", [])
            token = json.loads(messages[0]["Body"])["token"] if messages else None
        sfn.send_task_failure(taskToken=token, error="Rejected", cause="not in business hours")
        assert done.wait(30)
        assert outcome["result"]["cause"] == "not in business hours"


def test_throttle_fault_raises_the_services_own_throttling_error():
    with running([{"name": "web", "size": 1}], faults=[{"target": "any", "kind": "throttle", "rate": 1.0}],
                 **STILL) as rt:
        rt.fidelity._handler_thread.active = True  # as if called from a handler
        try:
            with pytest.raises(ClientError) as ec2_error:
                rt.client("ec2").describe_instances()
            with pytest.raises(ClientError) as asg_error:
                rt.client("autoscaling").describe_auto_scaling_groups()
        finally:
            rt.fidelity._handler_thread.active = False
        assert ec2_error.value.response["Error"]["Code"] == "RequestLimitExceeded"
        assert asg_error.value.response["Error"]["Code"] == "Throttling"
        assert rt.fidelity.calls.throttled == 2
        rt.client("ec2").describe_instances()  # outside a handler nothing is throttled


# --- standalone EC2 ------------------------------------------------------------------

DB = {"name": "db-1", "volumes_gib": [8, 100], "elastic_ip": True}


def _servers(*specs, **extra):
    return running([], standalone=list(specs), **{**STILL, "timings": {"instance_boot": 40, "health_grace": 60,
                                                                       "snapshot_complete": 120}}, **extra)


def test_snapshots_are_pending_with_progress_until_complete_and_create_snapshots_reports_state():
    """AWS: CreateSnapshots answers each snapshot's State; a snapshot is `pending` with a
    Progress until `completed` (moto: `completed` at once, no State in CreateSnapshots)."""
    with _servers(DB) as rt:
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
    with _servers(DB, faults=[{"target": "standalone/db-1", "at": "snapshot", "kind": "error"}]) as rt:
        ec2 = rt.client("ec2")
        created = ec2.create_snapshots(InstanceSpecification={"InstanceId": rt.fleet.instances["db-1"].instance_id})
        rt.clock.advance(200)
        described = ec2.describe_snapshots(SnapshotIds=[s["SnapshotId"] for s in created["Snapshots"]])
        assert {s["State"] for s in described["Snapshots"]} == {"error"}
        assert "simulated" in described["Snapshots"][0]["StateMessage"]


def test_status_checks_initialize_after_launch_and_after_a_start():
    """AWS: both status checks are `initializing` until the instance has booted and
    passed them, again after every start."""
    with _servers(DB) as rt:
        ec2, iid = rt.client("ec2"), rt.fleet.instances["db-1"].instance_id

        def checks():
            status = ec2.describe_instance_status(InstanceIds=[iid])["InstanceStatuses"][0]
            return status["SystemStatus"]["Status"], status["InstanceStatus"]["Status"]

        assert checks() == ("initializing", "initializing")
        rt.clock.advance(101)
        assert checks() == ("ok", "ok")
        ec2.stop_instances(InstanceIds=[iid])
        ec2.start_instances(InstanceIds=[iid])
        assert checks() == ("initializing", "initializing")


def test_run_command_is_in_progress_then_reports_the_result():
    """AWS: an invocation is InProgress until the script ends, then Success (or Failed
    for an unhealthy instance); moto answered Success at once."""
    with _servers(DB) as rt:
        ssm, iid = rt.client("ssm"), rt.fleet.instances["db-1"].instance_id
        command = ssm.send_command(InstanceIds=[iid], DocumentName="AWS-RunShellScript",
                                   Parameters={"commands": ["true"]})["Command"]["CommandId"]
        assert ssm.get_command_invocation(CommandId=command, InstanceId=iid)["Status"] == "InProgress"
        rt.clock.advance(31)
        assert ssm.get_command_invocation(CommandId=command, InstanceId=iid)["Status"] == "Success"
        rt.fidelity.unhealthy_instances.add(iid)
        failed = ssm.get_command_invocation(CommandId=command, InstanceId=iid)
        assert failed["Status"] == "Failed" and failed["StandardErrorContent"]


def test_run_instances_with_a_used_client_token_returns_the_first_launch():
    """AWS: RunInstances is idempotent per ClientToken; moto launched again."""
    with _servers(DB) as rt:
        ec2 = rt.client("ec2")
        first = ec2.run_instances(ImageId=rt.fleet.al2023_image, MinCount=1, MaxCount=1, ClientToken="exec-1")
        again = ec2.run_instances(ImageId=rt.fleet.al2023_image, MinCount=1, MaxCount=1, ClientToken="exec-1")
        assert first["Instances"][0]["InstanceId"] == again["Instances"][0]["InstanceId"]


def test_the_address_watch_reports_an_elastic_ip_on_a_stopped_instance():
    with _servers(DB) as rt:
        rt.client("ec2").stop_instances(InstanceIds=[rt.fleet.instances["db-1"].instance_id])
        assert rt.fidelity.address_violations and "stopped" in rt.fidelity.address_violations[0]


# --- EKS -------------------------------------------------------------------------------

EKS = {"eks_clusters": [{"name": "prod", "version": "1.30", "addons": {"vpc-cni": "v1.18.3-eksbuild.1"},
                         "nodegroups": [{"name": "ng-al2", "size": 2}]}]}


def test_a_new_node_group_is_creating_then_active_and_deleting_then_gone():
    """AWS: CREATING while the instances launch, ACTIVE, then DELETING until gone
    (moto: ACTIVE at once, gone at once)."""
    with running([], **{**STILL, **EKS, "timings": {"nodegroup_create": 240, "nodegroup_delete": 180}}) as rt:
        eks = rt.client("eks")
        group = eks.describe_nodegroup(clusterName="prod", nodegroupName="ng-al2")["nodegroup"]
        eks.create_nodegroup(clusterName="prod", nodegroupName="ng-new", subnets=group["subnets"],
                             nodeRole=group["nodeRole"], amiType="AL2023_x86_64_STANDARD")

        def status():
            return eks.describe_nodegroup(clusterName="prod", nodegroupName="ng-new")["nodegroup"]["status"]

        assert status() == "CREATING"
        rt.clock.advance(241)
        assert status() == "ACTIVE"
        eks.delete_nodegroup(clusterName="prod", nodegroupName="ng-new")
        assert status() == "DELETING"
        rt.clock.advance(181)
        assert eks.list_nodegroups(clusterName="prod")["nodegroups"] == ["ng-al2"]


def test_add_ons_and_the_eks_optimized_ami_parameters_exist():
    with running([], **{**STILL, **EKS}) as rt:
        eks, ssm = rt.client("eks"), rt.client("ssm")
        assert eks.list_addons(clusterName="prod")["addons"] == ["vpc-cni"]
        assert eks.describe_addon(clusterName="prod", addonName="vpc-cni")["addon"]["addonVersion"] == "v1.18.3-eksbuild.1"
        with pytest.raises(ClientError) as missing:
            eks.describe_addon(clusterName="prod", addonName="coredns")
        assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
        value = ssm.get_parameter(
            Name="/aws/service/eks/optimized-ami/1.30/amazon-linux-2023/x86_64/standard/recommended/image_id")
        assert value["Parameter"]["Value"] == rt.fleet.al2023_image


def test_nodes_register_when_the_group_has_booted():
    with running([], **{**STILL, **EKS, "timings": {"nodegroup_create": 240, "instance_boot": 40}}) as rt:
        eks, cluster = rt.client("eks"), rt.kubernetes.clusters["prod"]
        group = eks.describe_nodegroup(clusterName="prod", nodegroupName="ng-al2")["nodegroup"]
        eks.create_nodegroup(clusterName="prod", nodegroupName="ng-new", subnets=group["subnets"],
                             nodeRole=group["nodeRole"], amiType="AL2023_x86_64_STANDARD",
                             scalingConfig={"minSize": 3, "maxSize": 3, "desiredSize": 3})
        rt.clock.advance(270)
        cluster.reconcile()
        assert sum(1 for n in cluster.nodes.values() if n.nodegroup == "ng-new") == 0  # ACTIVE, still booting
        rt.clock.advance(20)
        cluster.reconcile()
        new = [n for n in cluster.nodes.values() if n.nodegroup == "ng-new"]
        assert len(new) == 3 and all(n.os_image.startswith("Amazon Linux 2023") for n in new)
