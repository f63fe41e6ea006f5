"""One synthesis of the CDK app, shared by every infra test (jsii synthesis is slow)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from migrator.config import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT))  # app.py and stacks/ live at the root, outside the installed package
# jsii's banner about Node 20's end of life would print on every run; `make synth` still shows it.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App, assertions  # noqa: E402

from stacks import build_stack  # noqa: E402

# Not the default tag, so the tests see the context override reach the policies.
TEST_TAG = {"key": "team:al2023", "value": "go"}
TEST_EMAIL = "platform-team@example.com"
TEST_EKS_CLUSTERS = ["prod"]  # so the access entries are synthesized, linted and nag-checked too
# So the Kubernetes functions' VPC configuration and its permissions are synthesized, linted and checked too.
TEST_VPC = {"subnet_ids": ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"],
            "security_group_ids": ["sg-0123456789abcdef0"]}
# So the schedules and their role are synthesized, linted and nag-checked too: one with every field,
# one with the defaults (UTC, max_concurrency 10, no tolerated failure).
TEST_SCHEDULES = [
    {"name": "wave-1-weekdays", "expression": "cron(30 21 ? * MON-FRI *)", "timezone": "Europe/Paris",
     "plan_id": "reference-200", "wave": 1, "max_concurrency": 5, "tolerated_failure_percentage": 12.5},
    {"name": "wave-2.once", "expression": "at(2030-01-15T22:00:00)", "plan_id": "reference-200", "wave": 2},
]


@dataclass
class Synthesized:
    stack: object
    template: assertions.Template
    annotations: assertions.Annotations
    template_file: Path
    assembly_dir: Path
    tag: dict  # the migration_tag context it was synthesized with
    email: str  # its one notification email
    eks_clusters: list[str]  # its eks_clusters context
    schedules: list[dict]  # its schedules context
    vpc: dict  # its vpc context

    def resources(self, cfn_type: str) -> dict[str, dict]:
        return self.template.find_resources(cfn_type)


def cdk_json_context() -> dict:
    return json.loads((PROJECT_ROOT / "cdk.json").read_text())["context"]


@pytest.fixture(scope="session")
def fake_layer(tmp_path_factory) -> Path:
    """A tiny layer dir, so synthesis does not depend on (or hash) the real layer build."""
    layer = tmp_path_factory.mktemp("layer")
    (layer / "python" / "migrator").mkdir(parents=True)
    (layer / "python" / "migrator" / "__init__.py").write_text("")
    return layer


@pytest.fixture(scope="session")
def synthesized(fake_layer) -> Synthesized:
    app = App(context={
        **cdk_json_context(),
        "layer_dir": str(fake_layer),
        "migration_tag": TEST_TAG,
        "notification_emails": [TEST_EMAIL],
        "eks_clusters": TEST_EKS_CLUSTERS,
        "schedules": TEST_SCHEDULES,
        "vpc": TEST_VPC,
        "aws:cdk:enable-path-metadata": True,  # as the CDK CLI sets it; tests find resources by path
    })
    stack = build_stack(app)  # with the cdk-nag aspect, as app.py does
    annotations = assertions.Annotations.from_stack(stack)  # forces the one synthesis ...
    assembly = app.synth()  # ... which this returns from cache
    artifact = assembly.get_stack_by_name(stack.stack_name)
    return Synthesized(
        stack=stack,
        template=assertions.Template.from_stack(stack),
        annotations=annotations,
        template_file=Path(artifact.template_full_path),
        assembly_dir=Path(assembly.directory),
        tag=TEST_TAG,
        email=TEST_EMAIL,
        eks_clusters=TEST_EKS_CLUSTERS,
        schedules=TEST_SCHEDULES,
        vpc=TEST_VPC,
    )
