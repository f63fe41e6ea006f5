"""Health evidence shared by the workflows."""


def alarms_in_alarm(cloudwatch, names: list[str]) -> list[str]:
    """The named alarms that are in ALARM now (OK and INSUFFICIENT_DATA pass)."""
    if not names:
        return []
    alarms = cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"]
    return sorted(a["AlarmName"] for a in alarms if a["StateValue"] == "ALARM")
