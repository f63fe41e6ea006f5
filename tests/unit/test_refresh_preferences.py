"""The instance refresh's preferences, from the rollout input."""

from migrator.asg.models import RolloutInput
from migrator.asg.rollout import refresh_preferences


def test_the_forward_refresh_rolls_back_on_its_own_when_an_alarm_fires():
    request = RolloutInput(group_name="web", alarm_names=["web-5xx", "web-latency"],
                           min_healthy_percentage=75, instance_warmup_seconds=120)
    assert refresh_preferences(request, auto_rollback=True) == {
        "MinHealthyPercentage": 75,
        "InstanceWarmup": 120,
        "SkipMatching": True,
        "AutoRollback": True,
        "ScaleInProtectedInstances": "Wait",
        "StandbyInstances": "Wait",
        "AlarmSpecification": {"Alarms": ["web-5xx", "web-latency"]},
    }


def test_without_alarms_there_is_no_alarm_specification():
    assert "AlarmSpecification" not in refresh_preferences(RolloutInput(group_name="web"), auto_rollback=True)


def test_the_refresh_back_to_the_old_version_neither_rolls_back_nor_watches_alarms():
    """The revert must finish even while the alarms that caused it still fire."""
    preferences = refresh_preferences(RolloutInput(group_name="web", alarm_names=["web-5xx"]), auto_rollback=False)
    assert preferences["AutoRollback"] is False and "AlarmSpecification" not in preferences


def test_protected_and_standby_instances_follow_the_input():
    request = RolloutInput(group_name="web", protected_instances="Ignore", standby_instances="Refresh")
    preferences = refresh_preferences(request, auto_rollback=True)
    assert (preferences["ScaleInProtectedInstances"], preferences["StandbyInstances"]) == ("Ignore", "Refresh")


def test_matching_instances_are_skipped_so_a_canary_already_on_the_version_stays():
    assert refresh_preferences(RolloutInput(group_name="web"), auto_rollback=True)["SkipMatching"] is True
