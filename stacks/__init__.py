"""CDK stacks and constructs for the AL2023 migration; `build_stack` is what app.py runs."""

from __future__ import annotations

from aws_cdk import App, Aspects
from cdk_nag import AwsSolutionsChecks

from stacks.settings import Settings, SettingsError
from stacks.stack import MigrationStack

STACK_NAME = "Al2023Migration"

__all__ = ["MigrationStack", "Settings", "SettingsError", "STACK_NAME", "build_stack"]


def build_stack(app: App) -> MigrationStack:
    """The stack from the app's context, checked by cdk-nag at synth. Raises SettingsError."""
    stack = MigrationStack(app, STACK_NAME, settings=Settings.from_context(app.node))
    Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return stack
