"""Issue 13's hardening, on the synthesized template: what a reviewer signs (IAM, KMS, RBAC, the functions' VPC)."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App, Stack, aws_iam as iam
from aws_cdk.assertions import Template

from migrator.config import AMI_PARAMETER_PATHS
from migrator.workflows import WORKFLOWS, Access
from stacks import Settings, SettingsError
from stacks.encryption import EncryptionKey
from stacks.names import pascal_case
from stacks.permissions import TaskPermissions

KUBERNETES_TASKS = {t.name for w in WORKFLOWS for t in w.tasks if Access.KUBERNETES in t.access}


def _functions(synthesized) -> dict[str, dict]:
    """Task name -> its function's properties (the task functions of the workflows)."""
    by_path = {r["Metadata"]["aws:cdk:path"]: r["Properties"]
               for r in synthesized.resources("AWS::Lambda::Function").values()}
    return {t.name: by_path[f"Al2023Migration/Tasks/{pascal_case(t.name)}/Function/Resource"]
            for w in WORKFLOWS for t in w.tasks}


def test_only_the_kubernetes_functions_run_in_the_configured_vpc(synthesized):
    functions = _functions(synthesized)
    assert KUBERNETES_TASKS
    for name, function in functions.items():
        if name in KUBERNETES_TASKS:
            assert function["VpcConfig"] == {"SubnetIds": synthesized.vpc["subnet_ids"],
                                             "SecurityGroupIds": synthesized.vpc["security_group_ids"]}, name
        else:
            assert "VpcConfig" not in function, name


@pytest.mark.parametrize("vpc, message", [
    ({"subnet_ids": ["subnet-0123456789abcdef0"]}, "vpc.security_group_ids must be a non-empty list"),
    ({"subnet_ids": [], "security_group_ids": ["sg-0123456789abcdef0"]}, "vpc.subnet_ids must be a non-empty list"),
    ({"subnet_ids": ["sg-0123456789abcdef0"], "security_group_ids": ["sg-0123456789abcdef0"]}, "vpc.subnet_ids"),
    (["subnet-0123456789abcdef0"], "context vpc must be"),
])
def test_a_malformed_vpc_setting_is_refused_naming_the_key(fake_layer, vpc, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_context(App(context={"layer_dir": str(fake_layer), "vpc": vpc}).node)


# --- IAM, as a reviewer reads it ---------------------------------------------------------------------------

def _statements(synthesized) -> list[dict]:
    return [s for policy in synthesized.resources("AWS::IAM::Policy").values()
            for s in policy["Properties"]["PolicyDocument"]["Statement"]]


def _list(value) -> list:
    return value if isinstance(value, list) else [value]


def _text(value) -> str:
    return json.dumps(value)


def test_run_instances_is_denied_from_launch_templates_without_the_opt_in_tag(synthesized):
    tag = f"aws:ResourceTag/{synthesized.tag['key']}"
    launching = {json.dumps(p["Roles"]) for p in (r["Properties"] for r in
                 synthesized.resources("AWS::IAM::Policy").values())
                 if any("ec2:RunInstances" in _list(s["Action"]) and s.get("Condition", {}).get("ArnLike")
                        for s in p["PolicyDocument"]["Statement"])}
    assert launching
    for policy in synthesized.resources("AWS::IAM::Policy").values():
        props = policy["Properties"]
        if json.dumps(props["Roles"]) not in launching:
            continue
        denies = [s for s in props["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
        assert [(_list(s["Action"]), s["Condition"]) for s in denies] == [
            (["ec2:RunInstances"], {"StringNotEquals": {tag: synthesized.tag["value"]}})], props["Roles"]
        assert ":launch-template/*" in _text(denies[0]["Resource"])


def test_elastic_ips_are_moved_only_when_they_carry_the_opt_in_tag(synthesized):
    associate = [s for s in _statements(synthesized) if "ec2:AssociateAddress" in _list(s["Action"])]
    assert associate
    for statement in associate:
        assert statement["Condition"] == {"StringEquals": {
            f"aws:ResourceTag/{synthesized.tag['key']}": synthesized.tag["value"]}}, statement


def test_ssm_parameters_are_read_only_on_the_ami_paths(synthesized):
    reads = [s for s in _statements(synthesized) if "ssm:GetParameter" in _list(s["Action"])]
    assert reads
    for statement in reads:
        for resource in _list(statement["Resource"]):
            text = _text(resource)
            assert any(f":parameter{path}*" in text for path in (*AMI_PARAMETER_PATHS, "/aws/service/eks/optimized-ami/")), text


def test_audit_writes_are_limited_to_execution_keys(synthesized):
    (audit_id,) = [i for i, r in synthesized.resources("AWS::DynamoDB::Table").items()
                   if r["Metadata"]["aws:cdk:path"].endswith("/Tables/Audit/Resource")]
    writes = [s for s in _statements(synthesized) if set(_list(s["Action"])) & {"dynamodb:PutItem", "dynamodb:UpdateItem"}
              and s["Resource"] == {"Fn::GetAtt": [audit_id, "Arn"]}]
    assert writes
    for statement in writes:
        (keys,) = statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
        assert ":states:" in _text(keys) and ":execution:*" in _text(keys) or keys == "approval#*", statement


def test_the_key_policy_trusts_services_only_for_this_account(synthesized):
    (key,) = synthesized.resources("AWS::KMS::Key").values()
    services = [s for s in key["Properties"]["KeyPolicy"]["Statement"] if "Service" in s["Principal"]]
    assert services
    for statement in services:
        assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}, statement


def test_roles_passed_are_only_the_listed_ones_when_cdk_json_lists_them(fake_layer):
    stack = Stack(App(), "Roles")
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    TaskPermissions(key=EncryptionKey(stack, "Key"), tables=None, notifications=None, tag_key="k", tag_value="v",
                    reusable_roles=("web-instance-role", "eks-node-role"),
                    ).apply(role, frozenset({Access.INSTANCE_LAUNCH, Access.NODEGROUP_WRITE}))
    (policy,) = Template.from_stack(stack).find_resources("AWS::IAM::Policy").values()
    passes = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Action"] == "iam:PassRole"]
    assert {s["Condition"]["StringEquals"]["iam:PassedToService"] for s in passes} == {
        "ec2.amazonaws.com", "eks.amazonaws.com"}
    for statement in passes:
        assert [_text(r).rsplit(":role/", 1)[1] for r in statement["Resource"]] == [
            'web-instance-role"]]}', 'eks-node-role"]]}'], statement
        assert "*" not in _text(statement["Resource"])
    assert Settings.from_context(App(context={"layer_dir": str(fake_layer), "reusable_roles": ["a-role"]}).node
                                 ).reusable_roles == ("a-role",)
    with pytest.raises(SettingsError, match="reusable_roles"):
        Settings.from_context(App(context={"layer_dir": str(fake_layer), "reusable_roles": "a-role"}).node)
