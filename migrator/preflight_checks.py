"""Pre-flight checks several workflows share, so that bad input, or a change that IAM would stop half-way
(stacks/permissions.py allows only these), is refused before any change, naming what to fix."""

from __future__ import annotations

from botocore.exceptions import ClientError

from migrator.ami import resolve_al2023_ami
from migrator.aws import error_code
from migrator.errors import PreflightFailed

ZONES_KEY = "dns_hosted_zone_ids"  # the cdk.json key that lists the zones a DNS cutover may change


def listed_zones(value: str) -> frozenset[str]:
    """The environment's comma-separated zone ids (cdk.json dns_hosted_zone_ids, as the stack passes it)."""
    return frozenset(z.strip() for z in value.split(",") if z.strip())


def require_listed_zone(zone_id: str, listed: frozenset[str]) -> None:
    """Route 53 changes are allowed only in the zones listed in cdk.json; another zone would fail at cutover."""
    zone = zone_id.rsplit("/", 1)[-1]  # "/hostedzone/Z123" or "Z123"
    if zone not in listed:
        raise PreflightFailed(f"hosted zone {zone} is not in cdk.json {ZONES_KEY} ({', '.join(sorted(listed)) or 'empty'}): "
                              f"add it to {ZONES_KEY} and deploy, or cut over by Elastic IP")


def require_tagged_address(ec2, instance_id: str, tag_key: str, tag_value: str) -> None:
    """ec2:AssociateAddress is allowed only on Elastic IPs that carry the migration tag (IAM cannot see which
    instance an address is attached to); an untagged one would fail at cutover, after the replacement is built."""
    for address in ec2.describe_addresses(Filters=[{"Name": "instance-id", "Values": [instance_id]}])["Addresses"]:
        tags = {t["Key"]: t["Value"] for t in address.get("Tags", [])}
        if tags.get(tag_key) != tag_value:
            raise PreflightFailed(f"Elastic IP {address['PublicIp']} ({address['AllocationId']}) of instance "
                                  f"{instance_id} is not tagged {tag_key}={tag_value}: tag it as its instance is, "
                                  "so the migration may move it")


def require_existing_alarms(cloudwatch, names: list[str]) -> None:
    """A misspelled alarm name would read as healthy forever: every named alarm must exist."""
    wanted = sorted(set(names))
    found: set[str] = set()
    for start in range(0, len(wanted), 100):  # DescribeAlarms takes at most 100 names
        pages = cloudwatch.get_paginator("describe_alarms").paginate(
            AlarmNames=wanted[start:start + 100], AlarmTypes=["MetricAlarm", "CompositeAlarm"])
        for page in pages:
            found |= {a["AlarmName"] for a in page.get("MetricAlarms", []) + page.get("CompositeAlarms", [])}
    missing = [n for n in wanted if n not in found]
    if missing:
        raise PreflightFailed(f"alarm(s) {', '.join(missing)} do not exist (alarm_names): check the names")


def require_al2023_ami(ssm, ec2, request) -> dict:
    """The AMI a later step will launch (ami_id or ami_ssm_parameter of `request`) resolves now, to an available
    AL2023 image: a wrong one must not be found only after the first change, which then needs a rollback."""
    return resolve_al2023_ami(ssm, ec2, ami_id=request.ami_id, ssm_parameter=request.ami_ssm_parameter)


def require_cluster(eks, name: str) -> None:
    """An unknown cluster is named as such (cluster_name), not as a Kubernetes connection error."""
    try:
        eks.describe_cluster(name=name)
    except ClientError as error:
        if error_code(error) != "ResourceNotFoundException":
            raise
        raise PreflightFailed(f"EKS cluster {name} does not exist in this account and region (cluster_name)") from None
