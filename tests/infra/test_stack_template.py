"""What the synthesized template promises: wiring, encryption, logging, least privilege."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest
import yaml
from aws_cdk import App, Stack, aws_iam as iam
from aws_cdk.assertions import Annotations, Match, Template

from migrator import config
from migrator.config import DEFAULT_MIGRATION_TAG, PROJECT_ROOT
from migrator.fleet.waves import wave_key
from migrator.workflows import APPROVALS_API, APPROVALS_REMINDER, WORKFLOWS, Access, LambdaTask
from stacks import MigrationStack, Settings, SettingsError, build_stack
from stacks.alerts import ENDED_BADLY
from stacks.encryption import EncryptionKey
from stacks.kubernetes import KUBERNETES_GROUP, KUBERNETES_GROUPS, kubernetes_groups
from stacks.names import pascal_case
from stacks.permissions import VPC_ATTACH_ACTIONS, TaskPermissions

ALL_TASKS = {task.name: task for workflow in WORKFLOWS for task in workflow.tasks}
WRITE_BUNDLES = {Access.LAUNCH_TEMPLATE_WRITE, Access.ASG_WRITE, Access.REFRESH_WRITE, Access.SNAPSHOT_WRITE,
                 Access.INSTANCE_LAUNCH, Access.INSTANCE_WRITE, Access.ADDRESS_WRITE, Access.HEALTH_SCRIPT,
                 Access.NODEGROUP_WRITE, Access.NODEGROUP_UPDATE}
# Changes a role may hold only when one of these bundles of its task asks for them.
GRANTED_ONLY_BY = {
    "eks:CreateNodegroup": {Access.NODEGROUP_WRITE},
    "eks:DeleteNodegroup": {Access.NODEGROUP_WRITE},
    "eks:TagResource": {Access.NODEGROUP_WRITE},
    "ec2:CreateLaunchTemplate": {Access.NODEGROUP_WRITE},
    "ec2:RunInstances": {Access.INSTANCE_LAUNCH, Access.ASG_WRITE, Access.REFRESH_WRITE},
    "ec2:TerminateInstances": {Access.INSTANCE_WRITE, Access.CANARY_RELEASE},
    "ec2:CreateLaunchTemplateVersion": {Access.LAUNCH_TEMPLATE_WRITE, Access.NODEGROUP_UPDATE},
    "eks:UpdateNodegroupVersion": {Access.NODEGROUP_UPDATE},
    "autoscaling:StartInstanceRefresh": {Access.REFRESH_WRITE},
    "ssm:SendCommand": {Access.HEALTH_SCRIPT},
}
# What only a canary of an Auto Scaling rollout carries (migrator/asg/rollout.py canary_tags).
CANARY_CONDITION = {"Null": {f"aws:ResourceTag/{config.GROUP_TAG}": "false",
                             f"aws:ResourceTag/{config.EXECUTION_TAG}": "false"}}
# The service each bundle may pass a role to: the instance profile's role to EC2, the node role to EKS.
PASSES_ROLE_TO = {Access.INSTANCE_LAUNCH: "ec2.amazonaws.com", Access.ASG_WRITE: "ec2.amazonaws.com",
                  Access.REFRESH_WRITE: "ec2.amazonaws.com", Access.NODEGROUP_WRITE: "eks.amazonaws.com"}
RBAC_FILE = PROJECT_ROOT / "docs" / "eks-rbac.yaml"
# Actions on existing instances and launch templates: only on those that carry the migration tag.
TAG_GATED = {"ec2:CreateLaunchTemplateVersion", "ec2:ModifyLaunchTemplate", "ec2:StopInstances", "ec2:StartInstances",
             "ec2:TerminateInstances", "ec2:ModifyInstanceAttribute", "ec2:CreateSnapshots", "ec2:AssociateAddress"}
TAGGED_RESOURCES = (":instance/*", ":launch-template/*", ":autoScalingGroup:")
PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")
APPROVAL_CALLBACKS = {"states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"}
APPROVAL_ITEMS_ONLY = {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["approval#*"]}}
# The approval functions no workflow invokes, with the access they need: the API behind the links, the reminder.
APPROVAL_FUNCTIONS = {APPROVALS_API: {Access.AUDIT_WRITE, Access.APPROVALS},
                      APPROVALS_REMINDER: {Access.APPROVALS}}


def cdk_json_context() -> dict:
    return json.loads((PROJECT_ROOT / "cdk.json").read_text())["context"]


def by_path(resources: dict, suffix: str) -> tuple[str, dict]:
    """The one resource whose construct path ends with `suffix`."""
    found = [(lid, r) for lid, r in resources.items() if r["Metadata"]["aws:cdk:path"].endswith(suffix)]
    assert len(found) == 1, f"{suffix}: {[lid for lid, _ in found]}"
    return found[0]


def function_of(synthesized, name: str) -> tuple[str, dict]:
    return by_path(synthesized.resources("AWS::Lambda::Function"), f"/Tasks/{pascal_case(name)}/Function/Resource")


def state_machine_of(synthesized, workflow) -> tuple[str, dict]:
    return by_path(synthesized.resources("AWS::StepFunctions::StateMachine"),
                   f"/{pascal_case(workflow.name)}/StateMachine/Resource")


def role_of(synthesized, name: str) -> str:
    return function_of(synthesized, name)[1]["Properties"]["Role"]["Fn::GetAtt"][0]


def role_statements(synthesized, role_id: str) -> list[dict]:
    return [
        statement
        for policy in synthesized.resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def actions(statement: dict) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else action


def resources_of(statement: dict) -> list[str]:
    """Each resource as JSON text, so ARNs built with Fn::Join can be matched by substring."""
    resource = statement["Resource"]
    return [json.dumps(r) for r in (resource if isinstance(resource, list) else [resource])]


def all_statements(synthesized) -> list[dict]:
    return [s for p in synthesized.resources("AWS::IAM::Policy").values()
            for s in p["Properties"]["PolicyDocument"]["Statement"]]


# --- state machines -------------------------------------------------------


def test_one_standard_state_machine_per_workflow(synthesized):
    machines = synthesized.resources("AWS::StepFunctions::StateMachine")
    assert len(machines) == len(WORKFLOWS)
    for workflow in WORKFLOWS:
        _, machine = by_path(machines, f"/{pascal_case(workflow.name)}/StateMachine/Resource")
        assert machine["Properties"]["StateMachineType"] == "STANDARD"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_every_placeholder_is_substituted_with_its_function_child_or_the_topic(synthesized, workflow):
    _, machine = state_machine_of(synthesized, workflow)
    props = machine["Properties"]
    # DefinitionBody.from_file ships the ASL file as an asset; read the copy that gets deployed.
    asset_key = props["DefinitionS3Location"]["Key"]
    definition = (synthesized.assembly_dir / f"asset.{asset_key}").read_text()
    assert definition == workflow.asl_path.read_text()
    substitutions = props["DefinitionSubstitutions"]

    resolved = PLACEHOLDER.sub(lambda m: "RESOLVED" if m.group(1) in substitutions else m.group(0), definition)
    assert "${" not in resolved, f"placeholders without a substitution: {PLACEHOLDER.findall(resolved)}"
    json.loads(resolved)  # still valid JSON once CloudFormation substitutes

    for task in workflow.tasks:
        function_id, _ = function_of(synthesized, task.name)
        assert substitutions[task.substitution] == {"Fn::GetAtt": [function_id, "Arn"]}, task.substitution
    for child in workflow.children:  # the child state machine itself, not a copy or another workflow's
        assert substitutions[child.arn_substitution] == {"Ref": state_machine_of(synthesized, child)[0]}, child.name
    (topic_id,) = synthesized.resources("AWS::SNS::Topic")
    assert substitutions["NotificationTopicArn"] == {"Ref": topic_id}
    assert set(substitutions) == ({t.substitution for t in workflow.tasks} | {c.arn_substitution for c in workflow.children}
                                  | {"NotificationTopicArn"})  # timeouts come from the execution input


def test_children_are_the_other_workflows_and_come_first():
    names = [w.name for w in WORKFLOWS]
    parents = [w for w in WORKFLOWS if w.children]
    assert parents  # the fleet
    for parent in parents:
        for child in parent.children:
            assert child in WORKFLOWS and child is not parent and not child.children
            assert names.index(child.name) < names.index(parent.name)


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_state_machine_logs_everything_encrypted_and_traces(synthesized, workflow):
    _, machine = state_machine_of(synthesized, workflow)
    logging = machine["Properties"]["LoggingConfiguration"]
    assert logging["Level"] == "ALL" and logging["IncludeExecutionData"] is True
    log_group_id = logging["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    log_group = synthesized.resources("AWS::Logs::LogGroup")[log_group_id]["Properties"]
    assert "KmsKeyId" in log_group and "RetentionInDays" in log_group
    assert machine["Properties"]["TracingConfiguration"] == {"Enabled": True}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_state_machine_role_invokes_exactly_its_functions_and_publishes(synthesized, workflow):
    _, machine = state_machine_of(synthesized, workflow)
    statements = role_statements(synthesized, machine["Properties"]["RoleArn"]["Fn::GetAtt"][0])
    invoked = [r for s in statements if "lambda:InvokeFunction" in actions(s) for r in s["Resource"]]
    expected = [{"Fn::GetAtt": [function_of(synthesized, t.name)[0], "Arn"]} for t in workflow.tasks]
    assert sorted(map(json.dumps, invoked)) == sorted(map(json.dumps, expected))
    (topic_id,) = synthesized.resources("AWS::SNS::Topic")
    assert any("sns:Publish" in actions(s) and s["Resource"] == {"Ref": topic_id} for s in statements)
    assert any("kms:GenerateDataKey" in actions(s) for s in statements)  # the topic is encrypted


def execution_arns_of(machine_id: str) -> dict:
    """arn:<partition>:states:<region>:<account>:execution:<name of machine_id>:*"""
    return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":states:", {"Ref": "AWS::Region"}, ":",
                              {"Ref": "AWS::AccountId"}, ":execution:", {"Fn::GetAtt": [machine_id, "Name"]}, ":*"]]}


def granted_on(statements: list[dict], action: str) -> list[str]:
    return sorted(r for s in statements if action in actions(s) for r in resources_of(s))


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_state_machine_role_starts_and_follows_exactly_its_children(synthesized, workflow):
    _, machine = state_machine_of(synthesized, workflow)
    statements = role_statements(synthesized, machine["Properties"]["RoleArn"]["Fn::GetAtt"][0])
    child_ids = [state_machine_of(synthesized, child)[0] for child in workflow.children]
    assert granted_on(statements, "states:StartExecution") == sorted(json.dumps({"Ref": c}) for c in child_ids)
    for action in ("states:DescribeExecution", "states:StopExecution"):  # startExecution.sync:2
        assert granted_on(statements, action) == sorted(json.dumps(execution_arns_of(c)) for c in child_ids)
    sync_rule = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":events:", {"Ref": "AWS::Region"}, ":",
                                   {"Ref": "AWS::AccountId"},
                                   ":rule/StepFunctionsGetEventsForStepFunctionsExecutionRule"]]}
    for action in ("events:PutTargets", "events:PutRule", "events:DescribeRule"):
        assert granted_on(statements, action) == ([json.dumps(sync_rule)] if child_ids else [])
    assert not any(a.startswith(("states:", "events:")) and a not in {
        "states:StartExecution", "states:DescribeExecution", "states:StopExecution",
        "events:PutTargets", "events:PutRule", "events:DescribeRule"} for s in statements for a in actions(s))


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_tasks_read_only_the_executions_of_their_workflows_children(synthesized, workflow):
    expected = sorted(json.dumps(execution_arns_of(state_machine_of(synthesized, c)[0])) for c in workflow.children)
    for task in workflow.tasks:
        statements = role_statements(synthesized, role_of(synthesized, task.name))
        granted = {a for s in statements for a in actions(s) if a.startswith("states:")}
        if Access.EXECUTION_READ in task.access:
            assert expected and granted == {"states:DescribeExecution"}, task.name
            assert granted_on(statements, "states:DescribeExecution") == expected, task.name
        elif Access.APPROVALS in task.access:  # the decision reaches the execution by task token
            assert granted == APPROVAL_CALLBACKS, task.name
        else:
            assert not granted, task.name


def test_only_the_workflows_with_children_may_start_executions(synthesized):
    machine_roles = {state_machine_of(synthesized, w)[1]["Properties"]["RoleArn"]["Fn::GetAtt"][0]: w
                     for w in WORKFLOWS}
    schedule_roles = {s["Properties"]["Target"]["RoleArn"]["Fn::GetAtt"][0]
                      for s in synthesized.resources("AWS::Scheduler::Schedule").values()}
    for policy in synthesized.resources("AWS::IAM::Policy").values():
        starts = any("states:StartExecution" in actions(s) for s in policy["Properties"]["PolicyDocument"]["Statement"])
        for role in policy["Properties"]["Roles"]:
            if starts:
                assert role["Ref"] in schedule_roles or machine_roles[role["Ref"]].children, role


def test_a_workflow_listed_before_its_children_is_refused(fake_layer):
    fleet = next(w for w in WORKFLOWS if w.children)
    settings = Settings.from_context(App(context={"layer_dir": str(fake_layer)}).node)
    with pytest.raises(ValueError, match="list them before it"):
        MigrationStack(App(), "Order", settings=settings, workflows=(fleet, *fleet.children))


# --- wave schedules -------------------------------------------------------


def fleet_workflow():
    (fleet,) = [w for w in WORKFLOWS if w.children]
    return fleet


def test_one_schedule_per_context_item_starting_its_wave_on_the_fleet(synthesized):
    fleet_id, _ = state_machine_of(synthesized, fleet_workflow())
    schedules = {s["Properties"]["Name"]: s["Properties"]
                 for s in synthesized.resources("AWS::Scheduler::Schedule").values()}
    assert sorted(schedules) == sorted(item["name"] for item in synthesized.schedules)
    for item in synthesized.schedules:
        props = schedules[item["name"]]
        assert props["ScheduleExpression"] == item["expression"]
        assert props["ScheduleExpressionTimezone"] == item.get("timezone", "UTC")
        assert props["FlexibleTimeWindow"] == {"Mode": "OFF"} and props["State"] == "ENABLED"
        target = props["Target"]
        assert target["Arn"] == {"Ref": fleet_id}
        # No targets in the input: the fleet's LoadWave reads the wave from the plan.
        assert json.loads(target["Input"]) == {
            "plan_id": item["plan_id"], "wave": item["wave"], "max_concurrency": item.get("max_concurrency", 10),
            "tolerated_failure_percentage": item.get("tolerated_failure_percentage", 0)}
        assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
        assert 60 <= target["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 86400
    # The test context covers a time zone and the defaults.
    assert {item.get("timezone", "UTC") for item in synthesized.schedules} > {"UTC"}


def test_schedule_role_may_only_start_the_fleet_state_machine(synthesized):
    fleet_id, _ = state_machine_of(synthesized, fleet_workflow())
    (role_id,) = {s["Properties"]["Target"]["RoleArn"]["Fn::GetAtt"][0]
                  for s in synthesized.resources("AWS::Scheduler::Schedule").values()}
    trust = synthesized.resources("AWS::IAM::Role")[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [(t["Principal"], t["Condition"]) for t in trust] == [
        ({"Service": "scheduler.amazonaws.com"}, {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}})]
    statements = role_statements(synthesized, role_id)
    assert [(actions(s), s["Resource"], s.get("Condition")) for s in statements] == [
        (["states:StartExecution"], {"Ref": fleet_id}, None)]
    assert "ManagedPolicyArns" not in synthesized.resources("AWS::IAM::Role")[role_id]["Properties"]


def test_no_schedule_without_context(fake_layer):
    stack = MigrationStack(App(), "NoSchedules",
                           settings=Settings.from_context(App(context={"layer_dir": str(fake_layer)}).node))
    template = Template.from_stack(stack)
    assert template.find_resources("AWS::Scheduler::Schedule") == {}
    assert not [r for r in template.find_resources("AWS::IAM::Role").values()
                if "scheduler.amazonaws.com" in json.dumps(r["Properties"]["AssumeRolePolicyDocument"])]


# --- failed executions ----------------------------------------------------


def test_failed_timed_out_or_aborted_executions_of_every_state_machine_reach_the_topic(synthesized):
    (topic_id,) = synthesized.resources("AWS::SNS::Topic")
    rule_id, rule = by_path(synthesized.resources("AWS::Events::Rule"), "/FailureAlerts/Rule/Resource")
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.states"]
    assert pattern["detail-type"] == ["Step Functions Execution Status Change"]
    assert sorted(pattern["detail"]["status"]) == sorted(ENDED_BADLY) == ["ABORTED", "FAILED", "TIMED_OUT"]
    assert sorted(map(json.dumps, pattern["detail"]["stateMachineArn"])) == sorted(
        json.dumps({"Ref": state_machine_of(synthesized, w)[0]}) for w in WORKFLOWS)
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Ref": topic_id} and "RoleArn" not in target
    assert target["InputTransformer"]["InputPathsMap"]["detail-executionArn"] == "$.detail.executionArn"

    # The topic lets EventBridge publish for this rule only, and the topic's key lets EventBridge use it.
    (policy,) = synthesized.resources("AWS::SNS::TopicPolicy").values()
    assert [{k: v for k, v in s.items() if k != "Sid"} for s in policy["Properties"]["PolicyDocument"]["Statement"]
            if s["Effect"] == "Allow" and s["Principal"] == {"Service": "events.amazonaws.com"}] == [{
                "Action": "sns:Publish", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                "Resource": {"Ref": topic_id},
                "Condition": {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]}}}}]
    (key,) = synthesized.resources("AWS::KMS::Key").values()
    events_grants = [s for s in key["Properties"]["KeyPolicy"]["Statement"]
                     if s["Principal"] == {"Service": "events.amazonaws.com"}]
    assert [sorted(actions(s)) for s in events_grants] == [["kms:Decrypt", "kms:GenerateDataKey"]]


# --- shared resources -----------------------------------------------------


def test_key_rotates(synthesized):
    (key,) = synthesized.resources("AWS::KMS::Key").values()
    assert key["Properties"]["EnableKeyRotation"] is True


def test_topic_is_encrypted_ssl_only_and_emails_subscribe(synthesized):
    (key_id,) = synthesized.resources("AWS::KMS::Key")
    (topic,) = synthesized.resources("AWS::SNS::Topic").values()
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    (policy,) = synthesized.resources("AWS::SNS::TopicPolicy").values()
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
               for s in policy["Properties"]["PolicyDocument"]["Statement"])
    synthesized.template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": synthesized.email})


@pytest.mark.parametrize(("name", "keys", "ttl"), [
    ("Audit", [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}], "expires_at"),
    ("Idempotency", [{"AttributeName": "id", "KeyType": "HASH"}], "expiration"),
])
def test_tables_are_kms_encrypted_with_pitr_and_ttl(synthesized, name, keys, ttl):
    (key_id,) = synthesized.resources("AWS::KMS::Key")
    _, table = by_path(synthesized.resources("AWS::DynamoDB::Table"), f"/Tables/{name}/Resource")
    props = table["Properties"]
    assert props["KeySchema"] == keys
    assert props["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS",
                                         "KMSMasterKeyId": {"Fn::GetAtt": [key_id, "Arn"]}}
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["TimeToLiveSpecification"] == {"AttributeName": ttl, "Enabled": True}


# --- functions ------------------------------------------------------------


def test_one_function_per_task_and_the_approval_api_and_reminder(synthesized):
    functions = synthesized.resources("AWS::Lambda::Function")
    tasks = [f for f in functions.values() if "/Tasks/" in f["Metadata"]["aws:cdk:path"]]
    assert len(tasks) == len(ALL_TASKS)  # approvals.request, shared by every workflow, counts once
    assert len(functions) == len(ALL_TASKS) + len(APPROVAL_FUNCTIONS)


@pytest.mark.parametrize("name", sorted(ALL_TASKS))
def test_function_runtime_layer_tracing_logs_and_environment(synthesized, name):
    (layer_id,) = synthesized.resources("AWS::Lambda::LayerVersion")
    _, function = function_of(synthesized, name)
    props = function["Properties"]
    assert props["Runtime"] == "python3.12"
    assert props["Handler"] == ALL_TASKS[name].handler
    assert props["Layers"] == [{"Ref": layer_id}]
    assert props["TracingConfig"] == {"Mode": "Active"}
    log_group = synthesized.resources("AWS::Logs::LogGroup")[props["LoggingConfig"]["LogGroup"]["Ref"]]
    assert "RetentionInDays" in log_group["Properties"]
    env = props["Environment"]["Variables"]
    assert {config.ENV_AUDIT_TABLE, config.ENV_IDEMPOTENCY_TABLE, config.ENV_NOTIFICATION_TOPIC} <= set(env)
    assert (env[config.ENV_TAG_KEY], env[config.ENV_TAG_VALUE]) == (synthesized.tag["key"], synthesized.tag["value"])
    assert env["POWERTOOLS_SERVICE_NAME"] == "al2023-migrate"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "AL2023Migration"


def test_each_function_has_its_own_role(synthesized):
    roles = [f["Properties"]["Role"]["Fn::GetAtt"][0] for f in synthesized.resources("AWS::Lambda::Function").values()]
    assert len(set(roles)) == len(roles)


def test_every_function_is_its_handler_string_in_the_one_lambdas_asset(synthesized):
    """One code asset, the lambdas/ folder as Lambda sees it (no package, no __pycache__): each function's
    handler string `<module>.<function>` names a function of a top-level module there."""
    functions = synthesized.resources("AWS::Lambda::Function").values()
    (code,) = {json.dumps(f["Properties"]["Code"], sort_keys=True) for f in functions}
    asset = synthesized.assembly_dir / f"asset.{json.loads(code)['S3Key'].removesuffix('.zip')}"
    assert sorted(p.name for p in asset.iterdir()) == sorted(p.name for p in (PROJECT_ROOT / "lambdas").glob("*.py"))
    modules = {}
    for function in functions:
        module, _, name = function["Properties"]["Handler"].partition(".")
        if module not in modules:  # imported as Lambda does: a top-level module of the asset's root
            spec = importlib.util.spec_from_file_location(module, asset / f"{module}.py")
            modules[module] = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(modules[module])
        assert callable(getattr(modules[module], name)), function["Properties"]["Handler"]


# --- least privilege ------------------------------------------------------


def test_changes_to_tagged_resources_require_the_migration_tag_from_context(synthesized):
    tag = synthesized.tag  # not the default one: the context override must reach the policies
    assert tag["key"] != DEFAULT_MIGRATION_TAG["key"]
    tag_condition = {"StringEquals": {f"aws:ResourceTag/{tag['key']}": tag["value"]}}
    checked = set()
    for statement in all_statements(synthesized):
        changes = {a for a in actions(statement)
                   if a in TAG_GATED or (a.startswith("autoscaling:") and not a.startswith("autoscaling:Describe"))}
        if changes and any(r == '"*"' or any(t in r for t in TAGGED_RESOURCES) for r in resources_of(statement)):
            # the exceptions: an ASG canary, which the rollout launched with its group and execution tags; a
            # self-managed group's capacity mark, on a tagged group and that tag only
            assert statement["Condition"] == tag_condition or (
                changes == {"ec2:TerminateInstances"} and statement["Condition"] == CANARY_CONDITION) or (
                changes == {"autoscaling:CreateOrUpdateTags", "autoscaling:DeleteTags"} and statement["Condition"] == {
                    **tag_condition, "ForAllValues:StringEquals": {"aws:TagKeys": [config.CANARY_TAG]}}), statement
            checked |= changes
    assert TAG_GATED <= checked  # Stop, Terminate, AssociateAddress, ... all seen on instances
    template = synthesized.template.to_json()
    # The access entries' Kubernetes group (docs/eks-rbac.yaml) shares its name with the default tag key.
    text = json.dumps({**template, "Resources": {lid: r for lid, r in template["Resources"].items()
                                                 if r["Type"] != "AWS::EKS::AccessEntry"}})
    assert f'/{DEFAULT_MIGRATION_TAG["key"]}"' not in text and f'"{DEFAULT_MIGRATION_TAG["key"]}"' not in text


def test_instances_launch_through_launch_templates_or_with_the_migration_tag(synthesized):
    request_tagged = {"StringEquals": {f"aws:RequestTag/{synthesized.tag['key']}": synthesized.tag["value"]}}
    statements = all_statements(synthesized)
    launches = [s for s in statements if "ec2:RunInstances" in actions(s)
                and any(r == '"*"' or ":instance/*" in r for r in resources_of(s))]
    assert {json.dumps(s.get("Condition")) for s in launches} >= {json.dumps(request_tagged)}
    for statement in launches:
        condition = statement["Condition"]
        through_template = (condition.get("Bool") == {"ec2:IsLaunchTemplateResource": "true"}
                            and "ec2:LaunchTemplate" in condition.get("ArnLike", {}))
        assert through_template or condition == request_tagged, statement
    for statement in statements:
        if "ec2:CreateTags" in actions(statement):  # at creation, the expiry tag on our snapshots, a canary's mark
            assert "ec2:CreateAction" in statement["Condition"].get("StringEquals", {}) or statement["Condition"] in ({
                "Null": {f"aws:ResourceTag/{config.EXECUTION_TAG}": "false"},
                "ForAllValues:StringEquals": {"aws:TagKeys": [config.EXPIRES_TAG]}},
                {**CANARY_CONDITION, "ForAllValues:StringEquals": {"aws:TagKeys": [config.CANARY_TAG]}}), statement


@pytest.mark.parametrize("name", sorted(ALL_TASKS))
def test_roles_are_passed_only_to_the_service_the_task_launches_with(synthesized, name):
    passes = [s for s in role_statements(synthesized, role_of(synthesized, name)) if "iam:PassRole" in actions(s)]
    for statement in passes:
        assert actions(statement) == ["iam:PassRole"] and set(statement["Condition"]) == {"StringEquals"}, statement
        # Only roles that carry the migration tag (no cdk.json reusable_roles here).
        assert statement["Condition"]["StringEquals"][f"aws:ResourceTag/{synthesized.tag['key']}"] == \
            synthesized.tag["value"], statement
        assert set(statement["Condition"]["StringEquals"]) == {
            "iam:PassedToService", f"aws:ResourceTag/{synthesized.tag['key']}"}, statement
    passed_to = {s["Condition"]["StringEquals"]["iam:PassedToService"] for s in passes}
    assert passed_to == {PASSES_ROLE_TO[a] for a in ALL_TASKS[name].access if a in PASSES_ROLE_TO}


@pytest.mark.parametrize("name", sorted(ALL_TASKS))
def test_changes_only_on_the_roles_whose_bundles_need_them(synthesized, name):
    access = ALL_TASKS[name].access
    granted = {a for s in role_statements(synthesized, role_of(synthesized, name)) for a in actions(s)}
    assert granted & set(GRANTED_ONLY_BY) == {a for a, bundles in GRANTED_ONLY_BY.items() if access & bundles}


def test_every_restricted_change_is_granted_somewhere(synthesized):
    """GRANTED_ONLY_BY is not vacuous: each action appears on some role (node groups: create, delete, rollback)."""
    granted = {a for s in all_statements(synthesized) for a in actions(s)}
    assert set(GRANTED_ONLY_BY) <= granted
    assert {f for f, t in ALL_TASKS.items() if Access.NODEGROUP_WRITE in t.access} == {
        "eks_create_nodegroup", "eks_delete_old", "eks_rollback"}


def eks_arn(resource: str, kind: str, clusters: list[str]) -> bool:
    """Whether the JSON text of a resource is an EKS `kind` ARN of this account and region in `clusters`."""
    arn = json.loads(resource)["Fn::Join"][1]
    tail = arn[-1]
    names = [f":{kind}/*"] if clusters == ["*"] else [
        f":{kind}/{c}" if kind == "cluster" else f":{kind}/{c}/*" for c in clusters]
    return arn[:-1] == ["arn:", {"Ref": "AWS::Partition"}, ":eks:", {"Ref": "AWS::Region"}, ":",
                        {"Ref": "AWS::AccountId"}] and tail in names


def eks_statements(statements: list[dict]) -> dict[str, list[dict]]:
    found = {}
    for statement in statements:
        for action in actions(statement):
            if action.startswith("eks:"):
                found.setdefault(action, []).append(statement)
    return found


EKS_RESOURCE_KINDS = {"eks:DescribeCluster": {"cluster"}, "eks:ListPodIdentityAssociations": {"cluster"},
                      "eks:DescribeNodegroup": {"nodegroup"},
                      "eks:DescribeAddon": {"addon"}, "eks:CreateNodegroup": {"cluster", "nodegroup"},
                      "eks:DeleteNodegroup": {"nodegroup"}, "eks:TagResource": {"nodegroup"},
                      "eks:UpdateNodegroupVersion": {"nodegroup"}, "eks:DescribeUpdate": {"cluster", "nodegroup"},
                      "eks:ListUpdates": {"cluster"}}


def assert_eks_statements_on(statements: list[dict], clusters: list[str], tag: dict) -> None:
    by_action = eks_statements(statements)
    assert set(by_action) == set(EKS_RESOURCE_KINDS)
    for action, found in by_action.items():
        for statement in found:
            kinds = EKS_RESOURCE_KINDS[action]
            resources = resources_of(statement)
            assert all(any(eks_arn(r, k, clusters) for k in kinds) for r in resources), statement
            assert len(resources) == len(kinds) * len(clusters), statement  # each kind in each cluster
            if action == "eks:TagResource":  # only as CreateNodegroup tags the new group
                assert statement["Condition"] == {"Null": {f"aws:RequestTag/{config.EXECUTION_TAG}": "false"}}
            elif action == "eks:CreateNodegroup":  # only groups that get the opt-in tag
                assert statement["Condition"] == {"StringEquals": {f"aws:RequestTag/{tag['key']}": tag["value"]}}
            elif action in ("eks:DeleteNodegroup", "eks:UpdateNodegroupVersion"):  # only groups that carry it
                assert statement["Condition"] == {"StringEquals": {f"aws:ResourceTag/{tag['key']}": tag["value"]}}
            else:
                assert "Condition" not in statement, statement


def test_eks_actions_are_limited_to_the_configured_clusters(synthesized):
    assert_eks_statements_on(all_statements(synthesized), synthesized.eks_clusters, synthesized.tag)


def test_eks_actions_without_configured_clusters_cover_the_accounts_clusters():
    stack = Stack(App(), "Eks")
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    TaskPermissions(key=EncryptionKey(stack, "Key"), tables=None, notifications=None, tag_key="k", tag_value="v",
                    ).apply(role, frozenset({Access.EKS_READ, Access.NODEGROUP_WRITE, Access.NODEGROUP_UPDATE,
                                             Access.KUBERNETES}))
    (policy,) = Template.from_stack(stack).find_resources("AWS::IAM::Policy").values()
    assert_eks_statements_on(policy["Properties"]["PolicyDocument"]["Statement"], ["*"], {"key": "k", "value": "v"})


def test_eks_tasks_read_only_the_eks_optimized_ami_parameters(synthesized):
    for name, task in ALL_TASKS.items():
        if Access.EKS_READ in task.access:
            reads = [s for s in role_statements(synthesized, role_of(synthesized, name))
                     if "ssm:GetParameter" in actions(s)]
            assert reads and all(r.endswith('::parameter/aws/service/eks/optimized-ami/*"]]}')
                                 for s in reads for r in resources_of(s)), name


def test_kubernetes_access_adds_no_iam_statement():
    stack = Stack(App(), "Kube")
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    TaskPermissions(key=EncryptionKey(stack, "Key"), tables=None, notifications=None, tag_key="k", tag_value="v",
                    ).apply(role, frozenset({Access.KUBERNETES}))
    assert Template.from_stack(stack).find_resources("AWS::IAM::Policy") == {}


# --- Kubernetes access ----------------------------------------------------


def test_one_access_entry_per_cluster_and_kubernetes_task_role_in_the_groups_of_its_task(synthesized):
    kube_roles = {role_of(synthesized, f): kubernetes_groups(t.access)
                  for f, t in ALL_TASKS.items() if Access.KUBERNETES in t.access}
    assert kube_roles
    entries = list(synthesized.resources("AWS::EKS::AccessEntry").values())
    assert len(entries) == len(kube_roles) * len(synthesized.eks_clusters)
    pairs = set()
    for entry in entries:
        props = entry["Properties"]
        assert props["Type"] == "STANDARD"
        (role_id, attribute) = props["PrincipalArn"]["Fn::GetAtt"]
        assert props["KubernetesGroups"] == kube_roles[role_id]
        assert "AccessPolicies" not in props  # no cluster-admin or other EKS access policy: RBAC only
        assert "Username" not in props
        assert attribute == "Arn"
        pairs.add((props["ClusterName"], role_id))
    assert pairs == {(c, r) for c in synthesized.eks_clusters for r in kube_roles}
    # RBAC split by task: only the drains evict (a self-managed group's replacement, the canary's capacity
    # taken back and its rollback drain too); only taint, drains and rollbacks patch nodes.
    groups = {name: kubernetes_groups(t.access) for name, t in ALL_TASKS.items() if Access.KUBERNETES in t.access}
    self_managed_drains = {"eks_self_managed_replace_next", "eks_self_managed_release_capacity",
                           "eks_self_managed_rollback"}
    assert {n for n, g in groups.items() if KUBERNETES_GROUPS[Access.KUBERNETES_EVICT] in g} == {
        "eks_drain", *self_managed_drains}
    assert {n for n, g in groups.items() if KUBERNETES_GROUPS[Access.KUBERNETES_NODE_PATCH] in g} == {
        "eks_taint_old", "eks_drain", "eks_rollback", "eks_in_place_rollback",
        *self_managed_drains}
    # Karpenter: every task reads its objects, only the change and its rollback patch the EC2NodeClass
    assert {n for n, g in groups.items() if KUBERNETES_GROUPS[Access.KUBERNETES_KARPENTER_READ] in g} == {
        "eks_karpenter_preflight", "eks_karpenter_change_nodeclass", "eks_karpenter_check_drift",
        "eks_karpenter_rollback"}
    assert {n for n, g in groups.items() if KUBERNETES_GROUPS[Access.KUBERNETES_NODECLASS_PATCH] in g} == {
        "eks_karpenter_change_nodeclass", "eks_karpenter_rollback"}
    assert all(g[0] == KUBERNETES_GROUP for g in groups.values())


def test_rbac_manifest_binds_each_group_to_exactly_what_its_tasks_call():
    documents = list(yaml.safe_load_all(RBAC_FILE.read_text()))
    roles = {d["metadata"]["name"]: d for d in documents if d["kind"] == "ClusterRole"}
    bindings = [d for d in documents if d["kind"] == "ClusterRoleBinding"]
    assert {d["kind"] for d in documents} == {"ClusterRole", "ClusterRoleBinding"}
    by_group = {}
    for binding in bindings:
        (subject,) = binding["subjects"]
        assert subject["kind"] == "Group" and binding["roleRef"]["kind"] == "ClusterRole"
        role = roles[binding["roleRef"]["name"]]
        by_group[subject["name"]] = {(group, resource): sorted(rule["verbs"]) for rule in role["rules"]
                                     for group in rule["apiGroups"] for resource in rule["resources"]}
    assert by_group == {
        KUBERNETES_GROUPS[Access.KUBERNETES]: {
            ("", "nodes"): ["get", "list"],
            ("", "pods"): ["get", "list"],
            ("", "serviceaccounts"): ["get"],
            ("policy", "poddisruptionbudgets"): ["list"],
            ("apps", "daemonsets"): ["get", "list"],
        },
        KUBERNETES_GROUPS[Access.KUBERNETES_NODE_PATCH]: {("", "nodes"): ["patch"]},
        KUBERNETES_GROUPS[Access.KUBERNETES_EVICT]: {("", "pods/eviction"): ["create"]},
        KUBERNETES_GROUPS[Access.KUBERNETES_KARPENTER_READ]: {
            ("karpenter.sh", "nodepools"): ["get", "list"],
            ("karpenter.k8s.aws", "ec2nodeclasses"): ["get"],
            ("apiextensions.k8s.io", "customresourcedefinitions"): ["get"],
        },
        KUBERNETES_GROUPS[Access.KUBERNETES_NODECLASS_PATCH]: {("karpenter.k8s.aws", "ec2nodeclasses"): ["patch"]},
    }
    # the CRD read is of Karpenter's EC2NodeClass CRD only
    (crd_rule,) = [rule for d in documents if d["kind"] == "ClusterRole" for rule in d["rules"]
                   if "customresourcedefinitions" in rule["resources"]]
    assert crd_rule["resourceNames"] == ["ec2nodeclasses.karpenter.k8s.aws"]
    assert not any(group.startswith("system:") for group in by_group)


def test_send_command_runs_only_aws_run_shell_script_on_tagged_instances(synthesized):
    tag_condition = {"StringEquals": {f"ssm:resourceTag/{synthesized.tag['key']}": synthesized.tag["value"]}}
    send = [s for s in all_statements(synthesized) if "ssm:SendCommand" in actions(s)]
    assert send
    for statement in send:
        for resource in resources_of(statement):
            if ":document/" in resource:
                assert resource.endswith('::document/AWS-RunShellScript"]]}'), resource
            else:
                assert ":instance/*" in resource and statement["Condition"] == tag_condition, statement


def test_dns_changes_only_upsert_a_records_in_the_configured_zones(synthesized, fake_layer):
    # Without cdk.json dns_hosted_zone_ids, no Route 53 permission at all (pre-flight names the key to set).
    assert not [s for s in all_statements(synthesized) if any(a.startswith("route53:") for a in actions(s))]

    # With cdk.json dns_hosted_zone_ids, exactly those zones (the DNS bundles use neither tables nor topic).
    zones = Settings.from_context(App(context={"layer_dir": str(fake_layer),
                                               "dns_hosted_zone_ids": ["Z111", "Z222"]}).node).dns_hosted_zone_ids
    stack = Stack(App(), "Zones")
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    TaskPermissions(key=EncryptionKey(stack, "Key"), tables=None, notifications=None, tag_key="k", tag_value="v",
                    hosted_zone_ids=zones).apply(role, frozenset({Access.DNS_READ, Access.ADDRESS_WRITE}))
    (policy,) = Template.from_stack(stack).find_resources("AWS::IAM::Policy").values()
    route53 = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if actions(s)[0].startswith("route53:")]
    assert len(route53) == 2
    assert [s for s in route53 if "route53:ChangeResourceRecordSets" in actions(s)][0]["Condition"] == {
        "ForAllValues:StringEquals": {"route53:ChangeResourceRecordSetsActions": ["UPSERT"],
                                      "route53:ChangeResourceRecordSetsRecordTypes": ["A"]}}
    for statement in route53:
        assert [r.split(":::")[1] for r in resources_of(statement)] == ['hostedzone/Z111"]]}', 'hostedzone/Z222"]]}']


def test_audit_table_reads_are_only_plan_items_for_plan_readers(synthesized):
    (audit_id, _) = by_path(synthesized.resources("AWS::DynamoDB::Table"), "/Tables/Audit/Resource")
    audit = json.dumps({"Fn::GetAtt": [audit_id, "Arn"]})
    readers = set()
    for name, task in ALL_TASKS.items():
        for statement in role_statements(synthesized, role_of(synthesized, name)):
            if audit in resources_of(statement):
                reads = set(actions(statement)) - {"dynamodb:PutItem"}
                if Access.APPROVALS in task.access and statement.get("Condition") == APPROVAL_ITEMS_ONLY:
                    continue  # the approval items (test_approval_roles_reach_only_the_approval_items)
                if reads == {"dynamodb:Scan"} and Access.APPROVALS in task.access:
                    continue  # the reminder's pending list; Scan carries no partition key to condition on
                if reads:
                    assert Access.PLAN_READ in task.access, name
                    assert reads == {"dynamodb:GetItem"} and resources_of(statement) == [audit], statement
                    assert statement["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["plan#*"]}}
                    readers.add(name)
    assert readers == {f for f, t in ALL_TASKS.items() if Access.PLAN_READ in t.access} != set()
    # The plans' key, as the fleet stores them.
    assert wave_key("p", 1)["pk"]["S"].startswith("plan#")


def test_no_statement_allows_all_actions_of_a_service(synthesized):
    for statement in all_statements(synthesized):
        for action in actions(statement):
            assert action != "*" and not action.endswith(":*"), statement


@pytest.mark.parametrize("name", sorted(ALL_TASKS))
def test_read_only_tasks_cannot_mutate_infrastructure(synthesized, name):
    task = ALL_TASKS[name]
    _, function = function_of(synthesized, name)
    granted = {a for s in role_statements(synthesized, function["Properties"]["Role"]["Fn::GetAtt"][0])
               for a in actions(s)}
    mutations = {a for a in granted if a.split(":")[0] in {"ec2", "autoscaling", "iam", "route53", "ssm", "eks"}
                 and not a.split(":")[1].startswith(("Describe", "List", "Get"))}
    mutations -= set(VPC_ATTACH_ACTIONS)  # the function's own network interfaces in cdk.json vpc
    if not task.access & WRITE_BUNDLES:
        assert not mutations
    if not task.access:
        assert {a.split(":")[0] for a in granted} <= {"logs", "xray"}


# --- settings -------------------------------------------------------------


def test_tag_defaults_to_the_config_and_context_overrides_it(fake_layer):
    default = Settings.from_context(App(context={"layer_dir": str(fake_layer)}).node)
    assert (default.tag_key, default.tag_value) == (DEFAULT_MIGRATION_TAG["key"], DEFAULT_MIGRATION_TAG["value"])
    tag = {"key": "owner", "value": "platform"}
    overridden = Settings.from_context(App(context={"layer_dir": str(fake_layer), "migration_tag": tag}).node)
    assert (overridden.tag_key, overridden.tag_value) == ("owner", "platform")


@pytest.mark.parametrize("zones", ['["/hostedzone/Z111"]', '"Z111"', "[1]"])
def test_hosted_zones_must_be_a_list_of_zone_ids(fake_layer, zones):
    with pytest.raises(SettingsError, match="dns_hosted_zone_ids"):
        Settings.from_context(App(context={"layer_dir": str(fake_layer), "dns_hosted_zone_ids": zones}).node)


def test_eks_clusters_default_to_none_and_context_sets_them(fake_layer):
    assert Settings.from_context(App(context={"layer_dir": str(fake_layer)}).node).eks_clusters == ()
    context = {"layer_dir": str(fake_layer), "eks_clusters": '["prod", "dev-2"]'}  # as `-c` gives it
    from_json = Settings.from_context(App(context=context).node)
    assert from_json.eks_clusters == ("prod", "dev-2")


@pytest.mark.parametrize("clusters", ['"prod"', '["prod/x"]', '["-prod"]', '["prod", "prod"]', "[1]"])
def test_eks_clusters_must_be_a_list_of_cluster_names(fake_layer, clusters):
    with pytest.raises(SettingsError, match="eks_clusters"):
        Settings.from_context(App(context={"layer_dir": str(fake_layer), "eks_clusters": clusters}).node)


def test_missing_layer_fails_with_a_hint(tmp_path):
    with pytest.raises(SettingsError, match=r"run `make layer` first"):
        Settings.from_context(App(context={"layer_dir": str(tmp_path / "nope")}).node)


def _schedule(**overrides) -> dict:
    return {"name": "nightly", "expression": "cron(0 22 * * ? *)", "plan_id": "plan-1", "wave": 0, **overrides}


def test_schedules_default_to_none_and_items_take_defaults(fake_layer):
    assert Settings.from_context(App(context={"layer_dir": str(fake_layer)}).node).schedules == ()
    context = {"layer_dir": str(fake_layer), "schedules": json.dumps([_schedule()])}  # as `-c` gives it
    (schedule,) = Settings.from_context(App(context=context).node).schedules
    assert (schedule.timezone, schedule.max_concurrency, schedule.tolerated_failure_percentage) == ("UTC", 10, 0)
    assert schedule.execution_input() == {"plan_id": "plan-1", "wave": 0, "max_concurrency": 10,
                                          "tolerated_failure_percentage": 0}


@pytest.mark.parametrize("expression", ["cron(0 22 * * ? *)", "cron(30 6 ? * MON-FRI *)",
                                        "at(2030-01-15T22:00:00)", "rate(1 hour)", "rate(15 minutes)"])
def test_schedule_expressions_scheduler_accepts(fake_layer, expression):
    context = {"layer_dir": str(fake_layer), "schedules": [_schedule(expression=expression)]}
    assert Settings.from_context(App(context=context).node).schedules[0].expression == expression


@pytest.mark.parametrize(("field", "item"), [
    ("schedules", "not a list"),
    ("schedules[0]", ["not an object"]),
    ("schedules[0].name", [_schedule(name="has space")]),
    ("schedules[0].name", [_schedule(name="x" * 65)]),
    ("schedules[0].expression", [_schedule(expression="0 22 * * ? *")]),
    ("schedules[0].expression", [_schedule(expression="cron(0 22 * * ?)")]),  # five fields: no year
    ("schedules[0].expression", [_schedule(expression="at(2030-01-15 22:00)")]),
    ("schedules[0].expression", [_schedule(expression="rate(1 hours)")]),
    ("schedules[0].timezone", [_schedule(timezone="Mars/Olympus_Mons")]),
    ("schedules[0].timezone", [_schedule(timezone="")]),
    ("schedules[0].plan_id", [{k: v for k, v in _schedule().items() if k != "plan_id"}]),
    ("schedules[0].plan_id", [_schedule(plan_id="plan#1")]),
    ("schedules[0].wave", [_schedule(wave=-1)]),
    ("schedules[0].wave", [_schedule(wave="1")]),
    ("schedules[0].wave", [_schedule(wave=True)]),
    ("schedules[0].max_concurrency", [_schedule(max_concurrency=0)]),
    ("schedules[0].max_concurrency", [_schedule(max_concurrency=41)]),
    ("schedules[0].tolerated_failure_percentage", [_schedule(tolerated_failure_percentage=101)]),
    ("schedules[0] has unknown field(s) timeZone", [_schedule(timeZone="UTC")]),
    ("schedules: names must be distinct, nightly repeated", [_schedule(), _schedule(wave=1)]),
])
def test_invalid_schedules_name_the_field_in_one_line(fake_layer, field, item):
    with pytest.raises(SettingsError) as raised:
        Settings.from_context(App(context={"layer_dir": str(fake_layer), "schedules": item}).node)
    message = str(raised.value)
    assert message.startswith(f"context {field}") and "\n" not in message, message


# --- approvals ------------------------------------------------------------


def approval_function_of(synthesized, task: LambdaTask) -> tuple[str, dict]:
    return by_path(synthesized.resources("AWS::Lambda::Function"), f"/Approvals/{pascal_case(task.name)}/Function/Resource")


def approval_roles(synthesized) -> set[str]:
    """The roles of every function with the APPROVALS bundle: approvals.request, the API's and the reminder's."""
    tasks = {role_of(synthesized, f) for f, t in ALL_TASKS.items() if Access.APPROVALS in t.access}
    others = {approval_function_of(synthesized, f)[1]["Properties"]["Role"]["Fn::GetAtt"][0]
              for f, access in APPROVAL_FUNCTIONS.items() if Access.APPROVALS in access}
    return tasks | others


def only(resources: dict) -> tuple[str, dict]:
    ((lid, resource),) = resources.items()
    return lid, resource


def test_one_approvals_request_function_serves_the_gates_of_every_workflow(synthesized):
    (request,) = {t for w in WORKFLOWS for t in w.tasks if Access.APPROVALS in t.access}
    assert all(request in w.tasks for w in WORKFLOWS)
    function_id, _ = function_of(synthesized, request.name)
    for workflow in WORKFLOWS:
        _, machine = state_machine_of(synthesized, workflow)
        props = machine["Properties"]
        assert props["DefinitionSubstitutions"][request.substitution] == {"Fn::GetAtt": [function_id, "Arn"]}
        definition = workflow.asl_path.read_text()
        # Every gate waits for its token through that function; none publishes the token to the topic any more.
        assert '"arn:aws:states:::lambda:invoke.waitForTaskToken"' in definition
        assert "sns:publish.waitForTaskToken" not in definition
        assert f'"FunctionName": "${{{request.substitution}}}"' in definition
        statements = role_statements(synthesized, props["RoleArn"]["Fn::GetAtt"][0])
        assert json.dumps({"Fn::GetAtt": [function_id, "Arn"]}) in granted_on(statements, "lambda:InvokeFunction")


def test_approval_api_has_get_and_post_on_the_approval_resource_through_its_own_function(synthesized):
    api_id, api = only(synthesized.resources("AWS::ApiGateway::RestApi"))
    assert api["Properties"]["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
    resources = synthesized.resources("AWS::ApiGateway::Resource")
    (approvals_id,) = [lid for lid, r in resources.items() if r["Properties"]["PathPart"] == "approvals"
                       and r["Properties"]["ParentId"] == {"Fn::GetAtt": [api_id, "RootResourceId"]}]
    (item_id,) = [lid for lid, r in resources.items() if r["Properties"]["PathPart"] == "{approval_id}"
                  and r["Properties"]["ParentId"] == {"Ref": approvals_id}]
    function_id, _ = approval_function_of(synthesized, APPROVALS_API)
    methods = {m["Properties"]["HttpMethod"]: m["Properties"]
               for m in synthesized.resources("AWS::ApiGateway::Method").values()}
    assert sorted(methods) == ["GET", "POST"]
    for props in methods.values():
        assert props["ResourceId"] == {"Ref": item_id}
        assert props["AuthorizationType"] == "NONE"  # cdk.json approval_auth "none": the signed link is the credential
        integration = props["Integration"]
        assert (integration["Type"], integration["IntegrationHttpMethod"]) == ("AWS_PROXY", "POST")
        assert {"Fn::GetAtt": [function_id, "Arn"]} in integration["Uri"]["Fn::Join"][1]
    # API Gateway may invoke the API's function, and only that one.
    invoked = {p["Properties"]["FunctionName"]["Fn::GetAtt"][0]
               for p in synthesized.resources("AWS::Lambda::Permission").values()
               if p["Properties"]["Principal"] == "apigateway.amazonaws.com"}
    assert invoked == {function_id}


def test_approval_stage_logs_access_encrypted_throttles_and_traces(synthesized):
    (key_id,) = synthesized.resources("AWS::KMS::Key")
    _, stage = only(synthesized.resources("AWS::ApiGateway::Stage"))
    props = stage["Properties"]
    destination = props["AccessLogSetting"]["DestinationArn"]["Fn::Join"][1]
    (log_group_id,) = [part["Ref"] for part in destination if isinstance(part, dict) and "Ref" in part
                       and not part["Ref"].startswith("AWS::")]
    log_group = synthesized.resources("AWS::Logs::LogGroup")[log_group_id]["Properties"]
    assert log_group["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]} and "RetentionInDays" in log_group
    access_format = json.loads(props["AccessLogSetting"]["Format"])
    assert {"ip", "httpMethod", "status", "requestTime"} <= set(access_format)
    (settings,) = props["MethodSettings"]
    assert (settings["HttpMethod"], settings["ResourcePath"]) == ("*", "/*")
    assert (settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"]) == (10, 20)
    assert settings.get("DataTraceEnabled") is not True  # no request bodies (approver, comment) in logs
    assert props["TracingEnabled"] is True


def test_approval_links_point_at_the_stage_url_and_the_stack_outputs_it(synthesized):
    api_id, _ = only(synthesized.resources("AWS::ApiGateway::RestApi"))
    stage_id, _ = only(synthesized.resources("AWS::ApiGateway::Stage"))
    url = synthesized.template.to_json()["Outputs"]["ApprovalApiUrl"]["Value"]
    parts = url["Fn::Join"][1]
    assert parts[0] == "https://" and {"Ref": api_id} in parts and {"Ref": stage_id} in parts and parts[-1] == "/"
    for name, task in ALL_TASKS.items():
        env = function_of(synthesized, name)[1]["Properties"]["Environment"]["Variables"]
        if Access.APPROVALS in task.access:  # approvals.request writes the links
            assert env[config.ENV_APPROVAL_BASE_URL] == url, name
        else:
            assert config.ENV_APPROVAL_BASE_URL not in env, name


@pytest.mark.parametrize("task", APPROVAL_FUNCTIONS, ids=lambda task: task.handler)
def test_approval_functions_are_built_like_the_task_functions(synthesized, task):
    (layer_id,) = synthesized.resources("AWS::Lambda::LayerVersion")
    _, function = approval_function_of(synthesized, task)
    props = function["Properties"]
    assert task.access == APPROVAL_FUNCTIONS[task]
    assert props["Runtime"] == "python3.12" and props["Handler"] == task.handler
    assert props["Layers"] == [{"Ref": layer_id}] and props["TracingConfig"] == {"Mode": "Active"}
    assert "RetentionInDays" in synthesized.resources("AWS::Logs::LogGroup")[props["LoggingConfig"]["LogGroup"]["Ref"]][
        "Properties"]
    env = props["Environment"]["Variables"]
    assert {config.ENV_AUDIT_TABLE, config.ENV_IDEMPOTENCY_TABLE, config.ENV_NOTIFICATION_TOPIC,
            config.ENV_APPROVAL_SECRET} <= set(env)
    statements = role_statements(synthesized, props["Role"]["Fn::GetAtt"][0])
    granted = {a for s in statements for a in actions(s)}
    # No infrastructure changes, no idempotency table, no executions started: approvals only.
    assert not {a for a in granted if a.split(":")[0] in {"ec2", "autoscaling", "iam", "route53", "ssm", "eks"}}
    assert {a for a in granted if a.startswith("states:")} == APPROVAL_CALLBACKS


def test_reminder_runs_every_15_minutes_with_the_context_threshold(synthesized):
    function_id, function = approval_function_of(synthesized, APPROVALS_REMINDER)
    env = function["Properties"]["Environment"]["Variables"]
    assert env[config.ENV_APPROVAL_REMINDER] == str(cdk_json_context()["approval_reminder_seconds"]) == "3600"
    rule_id, rule = by_path(synthesized.resources("AWS::Events::Rule"), "/Approvals/ReminderSchedule/Resource")
    assert rule["Properties"]["ScheduleExpression"] == "rate(15 minutes)"
    assert [t["Arn"] for t in rule["Properties"]["Targets"]] == [{"Fn::GetAtt": [function_id, "Arn"]}]
    assert any(p["Properties"]["Principal"] == "events.amazonaws.com"
               and p["Properties"]["SourceArn"] == {"Fn::GetAtt": [rule_id, "Arn"]}
               for p in synthesized.resources("AWS::Lambda::Permission").values())


def test_approval_secret_is_generated_encrypted_and_readable_only_by_approval_roles(synthesized):
    (key_id,) = synthesized.resources("AWS::KMS::Key")
    secret_id, secret = only(synthesized.resources("AWS::SecretsManager::Secret"))
    props = secret["Properties"]
    assert props["GenerateSecretString"]["PasswordLength"] == 64 and "SecretString" not in props
    assert props["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    readers = set()
    for policy in synthesized.resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            secret_actions = [a for a in actions(statement) if a.startswith("secretsmanager:")]
            if secret_actions:
                assert secret_actions == ["secretsmanager:GetSecretValue"], statement
                assert statement["Resource"] == {"Ref": secret_id}, statement
                readers |= {r["Ref"] for r in policy["Properties"]["Roles"]}
    assert readers == approval_roles(synthesized) and len(readers) == 3
    # ... and its ARN reaches exactly those functions.
    for function in synthesized.resources("AWS::Lambda::Function").values():
        env = function["Properties"]["Environment"]["Variables"]
        has_secret = env.get(config.ENV_APPROVAL_SECRET) == {"Ref": secret_id}
        assert has_secret == (function["Properties"]["Role"]["Fn::GetAtt"][0] in readers), function["Metadata"]


def test_approval_roles_reach_only_the_approval_items_the_topic_and_the_callbacks(synthesized):
    (audit_id, _) = by_path(synthesized.resources("AWS::DynamoDB::Table"), "/Tables/Audit/Resource")
    (topic_id,) = synthesized.resources("AWS::SNS::Topic")
    for role_id in approval_roles(synthesized):
        statements = role_statements(synthesized, role_id)
        items = [s for s in statements if s.get("Condition") == APPROVAL_ITEMS_ONLY]
        assert [(sorted(actions(s)), s["Resource"]) for s in items] == [
            (["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"], {"Fn::GetAtt": [audit_id, "Arn"]})]
        # Scan has no partition key to condition on: the audit table only, nothing else.
        scans = [s for s in statements if "dynamodb:Scan" in actions(s)]
        # (IAM policy minimization may merge it with the AUDIT_WRITE bundle's PutItem on the same table.)
        assert [(set(actions(s)) - {"dynamodb:PutItem"}, s["Resource"], s.get("Condition")) for s in scans] == [
            ({"dynamodb:Scan"}, {"Fn::GetAtt": [audit_id, "Arn"]}, None)]
        assert granted_on(statements, "sns:ListSubscriptionsByTopic") == [json.dumps({"Ref": topic_id})]
        assert json.dumps({"Ref": topic_id}) in granted_on(statements, "sns:Publish")
        for action in APPROVAL_CALLBACKS:  # no resource-level permissions for these
            assert granted_on(statements, action) == ['"*"']
        assert not any("dynamodb:DeleteItem" in actions(s) and s["Resource"] == {"Fn::GetAtt": [audit_id, "Arn"]}
                       for s in statements)


def test_approval_auth_iam_signs_both_methods_and_stays_nag_clean(fake_layer):
    app = App(context={**cdk_json_context(), "layer_dir": str(fake_layer), "approval_auth": "iam"})
    stack = build_stack(app)
    template = Template.from_stack(stack)
    methods = template.find_resources("AWS::ApiGateway::Method")
    assert sorted(m["Properties"]["HttpMethod"] for m in methods.values()) == ["GET", "POST"]
    assert {m["Properties"]["AuthorizationType"] for m in methods.values()} == {"AWS_IAM"}
    annotations = Annotations.from_stack(stack)
    nag = Match.string_like_regexp("AwsSolutions-.*")
    assert annotations.find_error("*", nag) == [] and annotations.find_warning("*", nag) == []


@pytest.mark.parametrize(("key", "value"), [("approval_auth", "cognito"), ("approval_auth", ""),
                                            ("approval_reminder_seconds", "0"), ("approval_reminder_seconds", '"1h"')])
def test_invalid_approval_settings_are_refused(fake_layer, key, value):
    with pytest.raises(SettingsError, match=key):
        Settings.from_context(App(context={"layer_dir": str(fake_layer), key: value}).node)


def test_approval_settings_default_and_take_command_line_strings(fake_layer):
    default = Settings.from_context(App(context={"layer_dir": str(fake_layer)}).node)
    assert (default.approval_auth, default.approval_reminder_seconds) == ("none", 3600)
    given = Settings.from_context(App(context={"layer_dir": str(fake_layer), "approval_auth": "iam",
                                               "approval_reminder_seconds": "900"}).node)  # as `-c` gives them
    assert (given.approval_auth, given.approval_reminder_seconds) == ("iam", 900)
    context = cdk_json_context()
    assert (context["approval_auth"], context["approval_reminder_seconds"]) == ("none", 3600)
