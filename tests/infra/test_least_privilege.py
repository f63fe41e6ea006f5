"""Issue 13's hardening, on the synthesized template: what a reviewer signs (IAM, KMS, RBAC, the functions' VPC)."""

from __future__ import annotations

import pytest
from aws_cdk import App

from migrator.workflows import WORKFLOWS, Access
from stacks import Settings, SettingsError
from stacks.names import pascal_case

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
