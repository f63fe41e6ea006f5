"""Reading a host without changing it: the scan through SSM Run Command, the
MetadataNoToken metric, and the user data of instances and launch templates."""

from __future__ import annotations

import base64
import datetime as dt

from migrator import clock
from migrator.compat.host import SCAN_SCRIPT, HostFacts, parse_scan
from migrator.errors import MigrationError

SCAN_TIMEOUT_SECONDS = 300
IMDS_WINDOW = dt.timedelta(days=1)


class ScanFailed(MigrationError):
    """The scan command failed on the host; the message says how."""


def start_scan(ssm, instance_id: str, comment: str = "al2023-migrate host scan (read-only)") -> str:
    return ssm.send_command(InstanceIds=[instance_id], DocumentName="AWS-RunShellScript",
                            Parameters={"commands": SCAN_SCRIPT.splitlines()}, TimeoutSeconds=SCAN_TIMEOUT_SECONDS,
                            Comment=comment[:100])["Command"]["CommandId"]


def read_scan(ssm, command_id: str, instance_id: str) -> HostFacts | None:
    """The host's facts, or None while the command still runs."""
    invocation = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
    status = invocation["Status"]
    if status in ("Pending", "InProgress", "Delayed"):
        return None
    if status != "Success":
        raise ScanFailed(f"the host scan on {instance_id} ended {status}: "
                         f"{invocation.get('StandardErrorContent', '')[:200]}")
    try:
        return parse_scan(invocation["StandardOutputContent"])
    except ValueError as error:
        raise ScanFailed(f"{instance_id}: {error}") from None


def imds_v1_calls(cloudwatch, instance_id: str) -> float:
    """Calls to the metadata service without a token over the last day (EC2's MetadataNoToken)."""
    end = dt.datetime.fromtimestamp(clock.now(), dt.UTC)
    datapoints = cloudwatch.get_metric_statistics(
        Namespace="AWS/EC2", MetricName="MetadataNoToken", Dimensions=[{"Name": "InstanceId", "Value": instance_id}],
        StartTime=end - IMDS_WINDOW, EndTime=end, Period=int(IMDS_WINDOW.total_seconds()), Statistics=["Sum"],
    )["Datapoints"]
    return sum(point["Sum"] for point in datapoints)


def instance_user_data(ec2, instance_id: str) -> str:
    value = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData").get("UserData", {})
    return decode_user_data(value.get("Value", ""))


def decode_user_data(value: str) -> str:
    try:
        return base64.b64decode(value).decode("utf-8", "replace") if value else ""
    except ValueError:
        return value

