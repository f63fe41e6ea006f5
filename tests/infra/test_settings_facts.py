"""Deployment settings take their limits and defaults from the models that own them."""

import annotated_types
import pytest
from aws_cdk import App

from migrator.fields import ApprovalReminder, default_of
from migrator.fleet.waves import WaveInput
from stacks.settings import Settings, SettingsError
from tests.infra.conftest import cdk_json_context


def settings(fake_layer, **context) -> Settings:
    return Settings.from_context(App(context={"layer_dir": str(fake_layer), **context}).node)


def test_approval_timeout_is_no_deployment_setting(fake_layer):
    assert "approval_timeout_seconds" not in cdk_json_context()
    with pytest.raises(SettingsError, match="context approval_timeout_seconds is not a deployment setting"):
        settings(fake_layer, approval_timeout_seconds=3600)


def test_reminder_default_is_the_handlers_default(fake_layer):
    assert settings(fake_layer).approval_reminder_seconds == default_of(ApprovalReminder)


@pytest.mark.parametrize("field", ["wave", "max_concurrency", "tolerated_failure_percentage"])
def test_schedules_take_the_fleet_inputs_bounds(fake_layer, field):
    base = {"name": "nightly", "expression": "rate(1 day)", "plan_id": "plan-1", "wave": 0}
    highest = next(m.le for m in WaveInput.model_fields[field].metadata if isinstance(m, annotated_types.Le))
    (schedule,) = settings(fake_layer, schedules=[{**base, field: highest}]).schedules
    assert getattr(schedule, field) == highest
    with pytest.raises(SettingsError, match=rf"^context schedules\[0\]\.{field}: "):
        settings(fake_layer, schedules=[{**base, field: highest + 1}])


def test_schedule_defaults_are_the_fleet_inputs(fake_layer):
    base = {"name": "nightly", "expression": "rate(1 day)", "plan_id": "plan-1", "wave": 0}
    (schedule,) = settings(fake_layer, schedules=[base]).schedules
    defaults = WaveInput(plan_id="plan-1", wave=0)
    assert (schedule.max_concurrency, schedule.tolerated_failure_percentage) == (
        defaults.max_concurrency, defaults.tolerated_failure_percentage)
