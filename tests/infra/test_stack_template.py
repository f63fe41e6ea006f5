"""What the synthesized template promises: wiring, encryption, logging, least privilege."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from aws_cdk import App, Stack, aws_iam as iam
from aws_cdk.assertions import Template

from migrator import config
from migrator.config import DEFAULT_MIGRATION_TAG, PROJECT_ROOT
from migrator.workflows import WORKFLOWS, Access
from stacks import Settings, SettingsError
from stacks.encryption import EncryptionKey
from stacks.kubernetes import KUBERNETES_GROUP
from stacks.names import pascal_case
from stacks.permissions import TaskPermissions

ALL_TASKS = {task.folder: task for workflow in WORKFLOWS for task in workflow.tasks}
WRITE_BUNDLES = {Access.LAUNCH_TEMPLATE_WRITE, Access.ASG_WRITE, Access.REFRESH_WRITE, Access.SNAPSHOT_WRITE,
                 Access.INSTANCE_LAUNCH, Access.INSTANCE_WRITE, Access.ADDRESS_WRITE, Access.HEALTH_SCRIPT,
                 Access.NODEGROUP_WRITE}
# Changes a role may hold only when one of these bundles of its task asks for them.
GRANTED_ONLY_BY = {
    "eks:CreateNodegroup": {Access.NODEGROUP_WRITE},
    "eks:DeleteNodegroup": {Access.NODEGROUP_WRITE},
    "eks:TagResource": {Access.NODEGROUP_WRITE},
    "ec2:CreateLaunchTemplate": {Access.NODEGROUP_WRITE},
    "ec2:RunInstances": {Access.INSTANCE_LAUNCH, Access.ASG_WRITE, Access.REFRESH_WRITE},
    "ec2:TerminateInstances": {Access.INSTANCE_WRITE},
    "ec2:CreateLaunchTemplateVersion": {Access.LAUNCH_TEMPLATE_WRITE},
    "autoscaling:StartInstanceRefresh": {Access.REFRESH_WRITE},
    "ssm:SendCommand": {Access.HEALTH_SCRIPT},
}
# The service each bundle may pass a role to: the instance profile's role to EC2, the node role to EKS.
PASSES_ROLE_TO = {Access.INSTANCE_LAUNCH: "ec2.amazonaws.com", Access.ASG_WRITE: "ec2.amazonaws.com",
                  Access.REFRESH_WRITE: "ec2.amazonaws.com", Access.NODEGROUP_WRITE: "eks.amazonaws.com"}
RBAC_FILE = PROJECT_ROOT / "docs" / "eks-rbac.yaml"
# Actions on existing instances and launch templates: only on those that carry the migration tag.
TAG_GATED = {"ec2:CreateLaunchTemplateVersion", "ec2:ModifyLaunchTemplate", "ec2:StopInstances", "ec2:StartInstances",
             "ec2:TerminateInstances", "ec2:ModifyInstanceAttribute", "ec2:CreateSnapshots", "ec2:AssociateAddress"}
TAGGED_RESOURCES = (":instance/*", ":launch-template/*", ":autoScalingGroup:")
PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")


def by_path(resources: dict, suffix: str) -> tuple[str, dict]:
    """The one resource whose construct path ends with `suffix`."""
    found = [(lid, r) for lid, r in resources.items() if r["Metadata"]["aws:cdk:path"].endswith(suffix)]
    assert len(found) == 1, f"{suffix}: {[lid for lid, _ in found]}"
    return found[0]


def function_of(synthesized, folder: str) -> tuple[str, dict]:
    return by_path(synthesized.resources("AWS::Lambda::Function"), f"/Tasks/{pascal_case(folder)}/Function/Resource")


def role_of(synthesized, folder: str) -> str:
    return function_of(synthesized, folder)[1]["Properties"]["Role"]["Fn::GetAtt"][0]


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
def test_every_placeholder_is_substituted_with_its_function_or_the_topic(synthesized, workflow):
    _, machine = by_path(synthesized.resources("AWS::StepFunctions::StateMachine"),
                         f"/{pascal_case(workflow.name)}/StateMachine/Resource")
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
        function_id, _ = function_of(synthesized, task.folder)
        assert substitutions[task.substitution] == {"Fn::GetAtt": [function_id, "Arn"]}, task.substitution
    (topic_id,) = synthesized.resources("AWS::SNS::Topic")
    assert substitutions["NotificationTopicArn"] == {"Ref": topic_id}
    assert "ApprovalTimeoutSeconds" not in substitutions  # timeouts come from the execution input


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_state_machine_logs_everything_encrypted_and_traces(synthesized, workflow):
    _, machine = by_path(synthesized.resources("AWS::StepFunctions::StateMachine"),
                         f"/{pascal_case(workflow.name)}/StateMachine/Resource")
    logging = machine["Properties"]["LoggingConfiguration"]
    assert logging["Level"] == "ALL" and logging["IncludeExecutionData"] is True
    log_group_id = logging["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    log_group = synthesized.resources("AWS::Logs::LogGroup")[log_group_id]["Properties"]
    assert "KmsKeyId" in log_group and "RetentionInDays" in log_group
    assert machine["Properties"]["TracingConfiguration"] == {"Enabled": True}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_state_machine_role_invokes_exactly_its_functions_and_publishes(synthesized, workflow):
    _, machine = by_path(synthesized.resources("AWS::StepFunctions::StateMachine"),
                         f"/{pascal_case(workflow.name)}/StateMachine/Resource")
    statements = role_statements(synthesized, machine["Properties"]["RoleArn"]["Fn::GetAtt"][0])
    invoked = [r for s in statements if "lambda:InvokeFunction" in actions(s) for r in s["Resource"]]
    expected = [{"Fn::GetAtt": [function_of(synthesized, t.folder)[0], "Arn"]} for t in workflow.tasks]
    assert sorted(map(json.dumps, invoked)) == sorted(map(json.dumps, expected))
    (topic_id,) = synthesized.resources("AWS::SNS::Topic")
    assert any("sns:Publish" in actions(s) and s["Resource"] == {"Ref": topic_id} for s in statements)
    assert any("kms:GenerateDataKey" in actions(s) for s in statements)  # the topic is encrypted


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


def test_one_function_per_task(synthesized):
    assert len(synthesized.resources("AWS::Lambda::Function")) == len(ALL_TASKS)


@pytest.mark.parametrize("folder", sorted(ALL_TASKS))
def test_function_runtime_layer_tracing_logs_and_environment(synthesized, folder):
    (layer_id,) = synthesized.resources("AWS::Lambda::LayerVersion")
    _, function = function_of(synthesized, folder)
    props = function["Properties"]
    assert props["Runtime"] == "python3.12"
    assert props["Handler"] == "handler.handler"
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
            assert statement["Condition"] == tag_condition, statement
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
        if "ec2:CreateTags" in actions(statement):  # tags at creation, or the expiry tag on our snapshots
            assert "ec2:CreateAction" in statement["Condition"].get("StringEquals", {}) or statement["Condition"] == {
                "Null": {f"aws:ResourceTag/{config.EXECUTION_TAG}": "false"},
                "ForAllValues:StringEquals": {"aws:TagKeys": [config.EXPIRES_TAG]}}, statement


@pytest.mark.parametrize("folder", sorted(ALL_TASKS))
def test_roles_are_passed_only_to_the_service_the_task_launches_with(synthesized, folder):
    passes = [s for s in role_statements(synthesized, role_of(synthesized, folder)) if "iam:PassRole" in actions(s)]
    for statement in passes:
        assert actions(statement) == ["iam:PassRole"] and set(statement["Condition"]) == {"StringEquals"}, statement
        assert list(statement["Condition"]["StringEquals"]) == ["iam:PassedToService"], statement
    passed_to = {s["Condition"]["StringEquals"]["iam:PassedToService"] for s in passes}
    assert passed_to == {PASSES_ROLE_TO[a] for a in ALL_TASKS[folder].access if a in PASSES_ROLE_TO}


@pytest.mark.parametrize("folder", sorted(ALL_TASKS))
def test_changes_only_on_the_roles_whose_bundles_need_them(synthesized, folder):
    access = ALL_TASKS[folder].access
    granted = {a for s in role_statements(synthesized, role_of(synthesized, folder)) for a in actions(s)}
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


EKS_RESOURCE_KINDS = {"eks:DescribeCluster": {"cluster"}, "eks:DescribeNodegroup": {"nodegroup"},
                      "eks:DescribeAddon": {"addon"}, "eks:CreateNodegroup": {"cluster", "nodegroup"},
                      "eks:DeleteNodegroup": {"nodegroup"}, "eks:TagResource": {"nodegroup"}}


def assert_eks_statements_on(statements: list[dict], clusters: list[str]) -> None:
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
            else:
                assert "Condition" not in statement, statement


def test_eks_actions_are_limited_to_the_configured_clusters(synthesized):
    assert_eks_statements_on(all_statements(synthesized), synthesized.eks_clusters)


def test_eks_actions_without_configured_clusters_cover_the_accounts_clusters():
    stack = Stack(App(), "Eks")
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    TaskPermissions(key=EncryptionKey(stack, "Key"), tables=None, notifications=None, tag_key="k", tag_value="v",
                    ).apply(role, frozenset({Access.EKS_READ, Access.NODEGROUP_WRITE, Access.KUBERNETES}))
    (policy,) = Template.from_stack(stack).find_resources("AWS::IAM::Policy").values()
    assert_eks_statements_on(policy["Properties"]["PolicyDocument"]["Statement"], ["*"])


def test_eks_tasks_read_only_the_eks_optimized_ami_parameters(synthesized):
    for folder, task in ALL_TASKS.items():
        if Access.EKS_READ in task.access:
            reads = [s for s in role_statements(synthesized, role_of(synthesized, folder))
                     if "ssm:GetParameter" in actions(s)]
            assert reads and all(r.endswith('::parameter/aws/service/eks/optimized-ami/*"]]}')
                                 for s in reads for r in resources_of(s)), folder


def test_kubernetes_access_adds_no_iam_statement():
    stack = Stack(App(), "Kube")
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    TaskPermissions(key=EncryptionKey(stack, "Key"), tables=None, notifications=None, tag_key="k", tag_value="v",
                    ).apply(role, frozenset({Access.KUBERNETES}))
    assert Template.from_stack(stack).find_resources("AWS::IAM::Policy") == {}


# --- Kubernetes access ----------------------------------------------------


def test_one_access_entry_per_cluster_and_kubernetes_task_role_in_the_rbac_group(synthesized):
    kube_roles = {role_of(synthesized, f) for f, t in ALL_TASKS.items() if Access.KUBERNETES in t.access}
    assert kube_roles
    entries = list(synthesized.resources("AWS::EKS::AccessEntry").values())
    assert len(entries) == len(kube_roles) * len(synthesized.eks_clusters)
    pairs = set()
    for entry in entries:
        props = entry["Properties"]
        assert props["Type"] == "STANDARD"
        assert props["KubernetesGroups"] == [KUBERNETES_GROUP]
        assert "AccessPolicies" not in props  # no cluster-admin or other EKS access policy: RBAC only
        assert "Username" not in props
        (role_id, attribute) = props["PrincipalArn"]["Fn::GetAtt"]
        assert attribute == "Arn"
        pairs.add((props["ClusterName"], role_id))
    assert pairs == {(c, r) for c in synthesized.eks_clusters for r in kube_roles}


def test_rbac_manifest_binds_the_group_to_exactly_what_the_workflow_calls():
    documents = {d["kind"]: d for d in yaml.safe_load_all(RBAC_FILE.read_text())}
    assert set(documents) == {"ClusterRole", "ClusterRoleBinding"}
    role, binding = documents["ClusterRole"], documents["ClusterRoleBinding"]
    rules = {(group, resource): sorted(rule["verbs"])
             for rule in role["rules"] for group in rule["apiGroups"] for resource in rule["resources"]}
    assert rules == {
        ("", "nodes"): ["get", "list", "patch"],
        ("", "pods"): ["get", "list"],
        ("", "pods/eviction"): ["create"],
        ("policy", "poddisruptionbudgets"): ["list"],
        ("apps", "daemonsets"): ["get", "list"],
    }
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                                    "name": KUBERNETES_GROUP}]
    assert not KUBERNETES_GROUP.startswith("system:")


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
    changes = [s for s in all_statements(synthesized) if "route53:ChangeResourceRecordSets" in actions(s)]
    assert changes
    for statement in changes:
        assert statement["Condition"] == {"ForAllValues:StringEquals": {
            "route53:ChangeResourceRecordSetsActions": ["UPSERT"],
            "route53:ChangeResourceRecordSetsRecordTypes": ["A"]}}
        (zone,) = resources_of(statement)
        assert zone.endswith(':route53:::hostedzone/*"]]}'), zone

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
    for statement in route53:
        assert [r.split(":::")[1] for r in resources_of(statement)] == ['hostedzone/Z111"]]}', 'hostedzone/Z222"]]}']


def test_no_statement_allows_all_actions_of_a_service(synthesized):
    for statement in all_statements(synthesized):
        for action in actions(statement):
            assert action != "*" and not action.endswith(":*"), statement


@pytest.mark.parametrize("folder", sorted(ALL_TASKS))
def test_read_only_tasks_cannot_mutate_infrastructure(synthesized, folder):
    task = ALL_TASKS[folder]
    _, function = function_of(synthesized, folder)
    granted = {a for s in role_statements(synthesized, function["Properties"]["Role"]["Fn::GetAtt"][0])
               for a in actions(s)}
    mutations = {a for a in granted if a.split(":")[0] in {"ec2", "autoscaling", "iam", "route53", "ssm", "eks"}
                 and not a.split(":")[1].startswith(("Describe", "List", "Get"))}
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
