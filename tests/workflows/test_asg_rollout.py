"""asg_rollout.asl.json executed in the local runtime: success and every failure
path, then the simulated account is checked as an operator would check it."""

from __future__ import annotations

import json

import pytest

from migrator.audit import read_trail
from migrator.workstation.local.demo import rollout_input
from migrator.workstation.local.runtime import AUDIT_TABLE, LocalRuntime, Run
from migrator.workflows import ASG_ROLLOUT
from tests.conftest import running

WEB = {"name": "web", "size": 4, "target_group": True, "alarms": ["web-5xx"]}


def execute(rt: LocalRuntime, group: str = "web", payload: dict | None = None, **overrides):
    spec = next(s for s in rt.scenario.auto_scaling_groups if s.name == group)
    body = payload if payload is not None else {**rollout_input(spec, rt.scenario), **overrides}
    run = rt.start_execution(ASG_ROLLOUT, f"asg/{group}", body)
    return run, rt.wait([run], timeout=300)[run.execution_arn]


def group(rt: LocalRuntime, name: str = "web") -> dict:
    return rt.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]


def images(rt: LocalRuntime, instance_ids) -> set[str]:
    reservations = rt.client("ec2").describe_instances(InstanceIds=sorted(instance_ids))["Reservations"]
    return {i["ImageId"] for r in reservations for i in r["Instances"]}


def versions(rt: LocalRuntime, name: str = "web") -> dict[int, dict]:
    template_id = rt.fleet.groups[name].template_id
    found = rt.client("ec2").describe_launch_template_versions(LaunchTemplateId=template_id)["LaunchTemplateVersions"]
    return {v["VersionNumber"]: v for v in found}


def default_version(rt: LocalRuntime, name: str = "web") -> int:
    template_id = rt.fleet.groups[name].template_id
    return rt.client("ec2").describe_launch_templates(LaunchTemplateIds=[template_id])["LaunchTemplates"][0][
        "DefaultVersionNumber"
    ]


def entered(rt: LocalRuntime, run) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in rt.history(run) if "stateEnteredEventDetails" in e]


def trail(rt: LocalRuntime, run) -> list[str]:
    return [r["action"] for r in read_trail(rt.client("dynamodb"), AUDIT_TABLE, run.execution_arn)]


def assert_restored(rt: LocalRuntime, name: str = "web", version_spec: str = "$Default") -> None:
    """The group serves as before the run: same sizes, AL2 instances, no canary,
    the old version in use and still the default."""
    built = rt.fleet.groups[name]
    current = group(rt, name)
    size = built.spec.size
    assert (current["DesiredCapacity"], current["MinSize"], current["MaxSize"]) == (size, size, size)
    assert len(current["Instances"]) == size
    assert all(i["LifecycleState"] == "InService" for i in current["Instances"])
    assert images(rt, [i["InstanceId"] for i in current["Instances"]]) == {built.original_image}
    assert current["LaunchTemplate"]["Version"] == version_spec
    assert default_version(rt, name) == 1


def test_success_moves_every_instance_to_al2023_and_keeps_the_old_version():
    with running([WEB]) as rt:
        original = set(rt.fleet.groups["web"].instance_ids)
        run, result = execute(rt)

        assert result["status"] == "SUCCEEDED"
        current = group(rt)
        assert (current["DesiredCapacity"], current["MinSize"], current["MaxSize"]) == (4, 4, 4)
        members = {i["InstanceId"] for i in current["Instances"]}
        assert len(members) == 4 and not members & original  # every AL2 instance replaced, no canary left
        assert images(rt, members) == {rt.fleet.al2023_image}
        assert current["LaunchTemplate"]["Version"] == "2"
        assert default_version(rt) == 2

        old, new = versions(rt)[1], versions(rt)[2]
        assert old["LaunchTemplateData"]["ImageId"] == rt.fleet.al2_image  # the old version stays
        data = new["LaunchTemplateData"]
        assert data["ImageId"] == rt.fleet.al2023_image
        assert data["MetadataOptions"]["HttpTokens"] == "required"
        # everything else comes from the old version, the hop limit included
        assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 2
        assert data["InstanceType"] == old["LaunchTemplateData"]["InstanceType"]
        assert data["UserData"] == old["LaunchTemplateData"]["UserData"]

        assert trail(rt, run) == [
            "preflight-passed", "host-scan-sent", "compatibility-checked", "launch-template-version-created",
            "canary-started", "canary-healthy", "canary-baked", "host-scan-sent", "parity-checked", "approval-requested", "approval-approved", "approval-granted", "instance-refresh-started",
            "instance-refresh-succeeded", "migrated",
        ]
        email = next(m for m in rt.bot.messages if m["kind"] == "approval-request")
        assert (email["target"], email["gate"]) == ("asg/web", "before-refresh")
        for words in ('group: "web"', 'from_version: "1"', 'to_version: "2"', 'canary_instance: "i-',
                      '"web-tg": "healthy"', '"web-5xx": "OK"'):
            assert words in email["text"]
        assert "task" not in email["text"].lower().replace("task_token", "")  # no token in the email


def test_canary_health_is_polled_by_retry_not_a_wait_loop():
    with running([WEB]) as rt:
        run, result = execute(rt)
        history = rt.history(run)
        names = entered(rt, run)
        assert names.count("WaitForCanaryHealthy") == 1
        polls = [e for e in history if e["type"] == "LambdaFunctionFailed"
                 and "NotReadyYet" in e["lambdaFunctionFailedEventDetails"]["error"]]
        assert len(polls) >= 2  # Pending, then `initial` in the target group, retried in place
        assert [n for n in names if n.startswith("Bake")] == ["BakeCanary"]


@pytest.mark.parametrize(
    ("fault", "error", "words"),
    [
        ({"at": "canary", "kind": "unhealthy"}, "CanaryUnhealthy", "canary"),
        ({"at": "canary", "kind": "alarm", "alarm": "web-5xx"}, "CanaryUnhealthy", "web-5xx"),
    ],
    ids=["unhealthy", "alarm"],
)
def test_bad_canary_rolls_back_before_any_refresh(fault, error, words):
    with running([WEB], faults=[{"target": "asg/web", **fault}]) as rt:
        original = set(rt.fleet.groups["web"].instance_ids)
        run, result = execute(rt)

        assert result["status"] == "FAILED"
        assert result["error"] == error
        assert words in result["cause"] and "rolled back to launch template version 1" in result["cause"]
        assert_restored(rt)
        assert {i["InstanceId"] for i in group(rt)["Instances"]} == original  # untouched: no refresh ran
        assert "StartInstanceRefresh" not in entered(rt, run)
        assert rt.client("autoscaling").describe_instance_refreshes(AutoScalingGroupName="web")["InstanceRefreshes"] == []
        assert trail(rt, run)[-2:] == ["rollback-started", "rolled-back"]
        assert any(m["kind"] == "rolled-back" and m["target"] == "asg/web" for m in rt.bot.messages)


def test_rejected_approval_rolls_back():
    with running([WEB], approvals={"gates": {"asg/web/before-refresh": "reject"}}) as rt:
        run, result = execute(rt)
        assert result["status"] == "FAILED"
        assert result["error"] == "Rejected"
        assert "approval was rejected" in result["cause"]
        assert_restored(rt)


def test_approval_that_times_out_rolls_back():
    with running([WEB], approvals={"timeout": 3600, "gates": {"asg/web/before-refresh": "ignore"}}) as rt:
        run, result = execute(rt)
        assert result["status"] == "FAILED"
        assert result["error"] == "ApprovalTimedOut"
        assert "timed out" in result["cause"]
        assert_restored(rt)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ({"kind": "alarm", "alarm": "web-5xx"}, "Alarm web-5xx is in ALARM state"),
        ({"kind": "unhealthy"}, "failed health checks"),
        ({"kind": "error"}, "Instance launch failed"),
    ],
    ids=["alarm", "unhealthy", "error"],
)
def test_refresh_failure_rolls_back_every_replaced_instance(fault, reason):
    with running([{**WEB, "size": 6}], faults=[{"target": "asg/web", "at": "refresh", **fault}]) as rt:
        run, result = execute(rt, min_healthy_percentage=50)

        assert result["status"] == "FAILED"
        assert result["error"] == "RefreshFailed"
        assert reason in result["cause"]
        assert_restored(rt)
        refreshes = rt.client("autoscaling").describe_instance_refreshes(AutoScalingGroupName="web")
        assert [r["Status"] for r in refreshes["InstanceRefreshes"]] == ["RollbackSuccessful"]
        alarms = rt.client("cloudwatch").describe_alarms(AlarmNames=["web-5xx"])["MetricAlarms"]
        assert alarms[0]["StateValue"] == "OK"


def test_throttling_is_survived():
    with running([WEB, {"name": "api", "size": 3}], faults=[{"target": "any", "kind": "throttle", "rate": 0.1}]) as rt:
        runs = [execute(rt, name)[1] for name in ("web", "api")]
        assert [r["status"] for r in runs] == ["SUCCEEDED", "SUCCEEDED"]
        assert rt.fidelity.calls.throttled > 0
        assert images(rt, [i["InstanceId"] for i in group(rt)["Instances"]]) == {rt.fleet.al2023_image}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"group_name": "web", "min_healthy_percentage": 150}, "min_healthy_percentage"),
        ({"canary_bake_seconds": 60}, "group_name"),
        ({"group_name": "web", "ami_id": "not-an-ami"}, "ami_id"),
        ({"group_name": "web", "alarm_names": "web-5xx"}, "alarm_names"),
        ({"group_name": "web", "surprise": 1}, "surprise"),
    ],
)
def test_invalid_input_fails_in_the_first_state_naming_the_field(payload, field):
    with running([WEB]) as rt:
        run, result = execute(rt, payload=payload)
        assert result["status"] == "FAILED"
        assert result["error"] == "InvalidInput"
        assert field in json.loads(result["cause"])["errorMessage"]
        assert entered(rt, run) == ["ValidateInput"]
        assert list(versions(rt)) == [1]
        assert_restored(rt)


def test_group_already_on_al2023_ends_as_already_migrated_without_changes():
    with running([{"name": "edge", "size": 2, "os": "al2023"}]) as rt:
        run, result = execute(rt, "edge")
        assert result["status"] == "SUCCEEDED"
        assert entered(rt, run)[-1] == "AlreadyMigrated"
        assert list(versions(rt, "edge")) == [1]
        assert trail(rt, run) == ["already-migrated"]


def test_launch_configuration_group_fails_preflight_with_nothing_changed():
    with running([WEB]) as rt:
        autoscaling = rt.client("autoscaling")
        autoscaling.create_launch_configuration(
            LaunchConfigurationName="legacy-lc", ImageId=rt.fleet.al2_image, InstanceType="t3.micro"
        )
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName="legacy", LaunchConfigurationName="legacy-lc", MinSize=2, MaxSize=2,
            DesiredCapacity=2, VPCZoneIdentifier=rt.fleet.subnet_id,
            Tags=[{"Key": "al2023-migration", "Value": "enabled", "PropagateAtLaunch": True}],
        )
        run = rt.start_execution(ASG_ROLLOUT, "asg/legacy", {"group_name": "legacy"})
        result = rt.wait([run])[run.execution_arn]
        assert result["status"] == "FAILED"
        assert result["error"] == "PreflightFailed"
        assert "launch configuration legacy-lc" in result["cause"]
        assert "Rollback" not in entered(rt, run)
        assert group(rt, "legacy")["DesiredCapacity"] == 2


def test_group_without_the_opt_in_tag_is_refused():
    with running([WEB]) as rt:
        rt.client("autoscaling").delete_tags(Tags=[{
            "ResourceId": "web", "ResourceType": "auto-scaling-group", "Key": "al2023-migration"}])
        run, result = execute(rt)
        assert result["error"] == "PreflightFailed"
        assert "al2023-migration=enabled" in result["cause"]
        assert list(versions(rt)) == [1]


def test_group_on_latest_is_pinned_to_the_old_version_number_on_rollback():
    # `$Latest` would follow the new version, so the rollback pins version 1.
    with running([{**WEB, "version": "$Latest"}], faults=[{"target": "asg/web", "at": "canary", "kind": "unhealthy"}]) as rt:
        run, result = execute(rt)
        assert result["status"] == "FAILED"
        assert_restored(rt, version_spec="1")


# --- the group under live change: others scale it while it migrates ------------------


def launched_outside_the_migration(rt: LocalRuntime, name: str = "web") -> dict[str, str]:
    """Image of every instance the group launched itself during the run (any state):
    not the scenario's, not the migration's canary (which carries the execution tag)."""
    reservations = rt.client("ec2").describe_instances(
        Filters=[{"Name": "tag:aws:autoscaling:groupName", "Values": [name]}])["Reservations"]
    original = set(rt.fleet.groups[name].instance_ids)
    return {i["InstanceId"]: i["ImageId"] for r in reservations for i in r["Instances"]
            if i["InstanceId"] not in original
            and not any(t["Key"] == "al2023-migration:execution" for t in i.get("Tags", []))}


def test_canary_is_attached_and_only_what_it_added_is_given_back():
    # A full group (desired = max): the canary needs MaxSize + 1, given back at the end.
    with running([WEB]) as rt:
        run, result = execute(rt)
        assert result["status"] == "SUCCEEDED"
        current = group(rt)
        assert (current["DesiredCapacity"], current["MinSize"], current["MaxSize"]) == (4, 4, 4)
        assert current["SuspendedProcesses"] == []  # AZRebalance resumed: we suspended it
        canary = next(e for e in read_trail(rt.client("dynamodb"), AUDIT_TABLE, run.execution_arn)
                      if e["action"] == "canary-started")
        assert canary["detail"]["marks"] == {"desired": 5, "raised_max_to": 5, "suspended": ["AZRebalance"]}
        # the group itself never launched: every instance it has came from the refresh
        assert launched_outside_the_migration(rt) == {i["InstanceId"]: rt.fleet.al2023_image
                                                      for i in current["Instances"]}


def test_scale_out_during_the_gate_launches_the_old_ami_and_the_group_ends_at_the_new_desired():
    events = [{"target": "asg/web", "at": "before-refresh", "kind": "scale", "desired": 7}]
    with running([{**WEB, "max_size": 10}], events=events) as rt:
        run, result = execute(rt)

        assert result["status"] == "SUCCEEDED"
        current = group(rt)
        assert (current["DesiredCapacity"], current["MinSize"], current["MaxSize"]) == (7, 4, 10)
        members = [i["InstanceId"] for i in current["Instances"]]
        assert len(members) == 7 and images(rt, members) == {rt.fleet.al2023_image}
        # 4 + the canary -> 7: the two launched for the scale-out at the gate ran AL2
        # (the refresh replaced them after the approval)
        at_the_gate = [i for i, image in launched_outside_the_migration(rt).items() if image == rt.fleet.al2_image]
        assert len(at_the_gate) == 2 and not set(at_the_gate) & set(members)
        # the owners changed the capacity: the AL2023 canary stays as one of their 7
        assert rt.fidelity.autoscaling.applied_events["asg/web"] == [7]


def test_scale_in_during_the_refresh_is_honoured():
    events = [{"target": "asg/web", "at": "refresh", "kind": "scale", "desired": 3}]
    with running([{**WEB, "size": 6, "min_size": 2}], events=events) as rt:
        run, result = execute(rt, min_healthy_percentage=50)

        assert result["status"] == "SUCCEEDED"
        current = group(rt)
        assert (current["DesiredCapacity"], current["MinSize"], current["MaxSize"]) == (3, 2, 6)
        members = [i["InstanceId"] for i in current["Instances"]]
        assert len(members) == 3 and images(rt, members) == {rt.fleet.al2023_image}
        assert all(i["LifecycleState"] == "InService" for i in current["Instances"])


def test_rejected_gate_after_a_scale_out_keeps_that_capacity_and_removes_only_the_canary():
    events = [{"target": "asg/web", "at": "before-refresh", "kind": "scale", "desired": 8}]
    with running([{**WEB, "max_size": 10}], events=events,
                 approvals={"gates": {"asg/web/before-refresh": "reject"}}) as rt:
        run, result = execute(rt)

        assert result["status"] == "FAILED" and result["error"] == "Rejected"
        current = group(rt)
        assert (current["DesiredCapacity"], current["MinSize"], current["MaxSize"]) == (8, 4, 10)
        members = [i["InstanceId"] for i in current["Instances"]]
        assert len(members) == 8 and images(rt, members) == {rt.fleet.al2_image}
        assert all(i["LifecycleState"] == "InService" for i in current["Instances"])
        assert set(rt.fleet.groups["web"].instance_ids) <= set(members)  # nothing of theirs taken
        canaries = rt.client("ec2").describe_instances(
            Filters=[{"Name": "tag:al2023-migration:group", "Values": ["web"]}])["Reservations"]
        assert [i["State"]["Name"] for r in canaries for i in r["Instances"]] == ["terminated"]
        assert current["SuspendedProcesses"] == []


def test_same_execution_name_on_another_state_machine_gets_its_own_launch_template_version():
    with running([WEB], approvals={"gates": {"asg/web/before-refresh": "reject"}}) as rt:
        sfn = rt.client("stepfunctions")
        original = sfn.describe_state_machine(stateMachineArn=rt.state_machines[ASG_ROLLOUT.name])
        copy = sfn.create_state_machine(name="asg-rollout-copy", definition=original["definition"],
                                        roleArn=original["roleArn"])["stateMachineArn"]
        body = json.dumps(rollout_input(rt.scenario.auto_scaling_groups[0], rt.scenario))
        arns = []
        for machine in (rt.state_machines[ASG_ROLLOUT.name], copy):
            arn = sfn.start_execution(stateMachineArn=machine, name="same-name", input=body)["executionArn"]
            run = Run("asg/web", ASG_ROLLOUT, arn, rt.clock.now())
            assert rt.wait([run], timeout=300)[arn]["error"] == "Rejected"
            arns.append(arn)

        found = versions(rt)
        assert sorted(found) == [1, 2, 3]  # the second execution did not reuse the first's version
        assert found[2]["VersionDescription"] != found[3]["VersionDescription"]
        assert all("group=web" in found[n]["VersionDescription"] for n in (2, 3))
        assert_restored(rt)
