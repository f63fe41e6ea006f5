"""The compatibility scan and the parity check as workflow steps (standalone and Auto Scaling
group): start the scan on a host, read its findings before anything changes, and compare a
replacement with the host it replaces before it may serve."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel

from migrator import clock
from migrator.aws import launch_template_data
from migrator.compat.host import HostFacts
from migrator.compat.rules import Findings, evaluate, missing_on_replacement
from migrator.compat.scan import decode_user_data, imds_v1_calls, instance_user_data, read_scan, start_scan
from migrator.errors import CompatibilityBlocked, NotReadyYet, ParityMissing
from migrator.fields import CompatibilityMode, ParityAccept

# What SSM answers when it cannot run a command on the instance, and what to do about it. The scan then
# checks the user data only (statically) and the parity check says it could not compare.
SSM_UNREACHABLE = {
    "InvalidInstanceId": "not a managed node (no SSM agent, or no instance profile that lets it register)",
    "UnsupportedPlatformType": "not a Linux managed node",
    # SendCommand is allowed only on instances carrying the opt-in tag: a group's must propagate it at launch
    "AccessDeniedException": "not permitted: the instance lacks the opt-in tag (propagate the group's tag at launch)",
}


@dataclass
class Clients:
    ec2: object
    ssm: object
    cloudwatch: object
    autoscaling: object


class LaunchTemplateRef(BaseModel):
    id: str
    version: str


class ScanRequest(BaseModel):
    """What StartCompatibilityScan / StartParityScan receive (state_machines/*.asl.json)."""

    execution: str
    target: str
    purpose: Literal["compatibility", "parity"]
    instance_id: str | None = None  # the host to scan
    group_name: str | None = None  # or the group's oldest in-service instance


class ScanStarted(BaseModel):
    instance_id: str | None  # None: the group has no in-service instance
    command_id: str | None  # None: SSM cannot reach the host; only the static checks run
    unreachable: str | None = None  # why SSM cannot
    started_at: float


class CompatibilityRequest(BaseModel):
    execution: str
    target: str
    scan: ScanStarted
    mode: CompatibilityMode
    launch_template: LaunchTemplateRef | None = None  # its user data is checked statically


class Compatibility(BaseModel):
    instance_id: str | None
    scanned: bool  # False: SSM could not read the host; the user data was checked statically
    blockers: list[str]
    warnings: list[str]
    mode: CompatibilityMode
    facts: HostFacts | None = None  # the old host as the scan read it, for the parity check


class ParityRequest(BaseModel):
    execution: str
    target: str
    old: Compatibility
    scan: ScanStarted  # of the replacement (standalone) or the canary (group)
    accept: ParityAccept


class Parity(BaseModel):
    old_instance: str | None
    new_instance: str | None
    checked: bool  # False: one of the two hosts could not be read through SSM
    missing: list[str]
    accepted: list[str]
    note: str | None = None


def oldest_in_service(c: Clients, group_name: str) -> str | None:
    """The group's in-service instance that has run longest: what the group has been running."""
    groups = c.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])["AutoScalingGroups"]
    members = [i["InstanceId"] for g in groups for i in g["Instances"] if i["LifecycleState"] == "InService"]
    if not members:
        return None
    launched = {i["InstanceId"]: i["LaunchTime"]
                for r in c.ec2.describe_instances(InstanceIds=members)["Reservations"] for i in r["Instances"]}
    return min(members, key=lambda iid: (launched.get(iid), iid))


def start(c: Clients, request: ScanRequest) -> ScanStarted:
    instance_id = request.instance_id or (oldest_in_service(c, request.group_name) if request.group_name else None)
    if instance_id is None:
        return ScanStarted(instance_id=None, command_id=None, unreachable="no in-service instance to scan",
                           started_at=clock.now())
    try:
        command_id = start_scan(c.ssm, instance_id, f"al2023-migrate {request.purpose} scan (read-only)")
    except ClientError as error:
        if error.response["Error"]["Code"] not in SSM_UNREACHABLE:
            raise
        code = error.response["Error"]["Code"]
        return ScanStarted(instance_id=instance_id, command_id=None, started_at=clock.now(),
                           unreachable=f"SSM Run Command cannot reach {instance_id}: {code}, {SSM_UNREACHABLE[code]}")
    return ScanStarted(instance_id=instance_id, command_id=command_id, started_at=clock.now())


def _read(c: Clients, scan: ScanStarted) -> HostFacts | None:
    """The host's facts, None when SSM could not reach it; NotReadyYet while the command runs."""
    if not scan.command_id:
        return None
    facts = read_scan(c.ssm, scan.command_id, scan.instance_id)
    if facts is None:
        raise NotReadyYet(f"the host scan of {scan.instance_id} is still running")
    return facts


def template_user_data(ec2, template: LaunchTemplateRef) -> str:
    data = launch_template_data(ec2, template.id, template.version)
    return decode_user_data(data.get("UserData", ""))


def host_findings(c: Clients, facts: HostFacts | None, instance_id: str | None, user_data: str | None) -> Findings:
    """The rules on what the scan read (if it could), the user data (always: a static check) and the
    instance's MetadataNoToken metric."""
    facts = facts or HostFacts()
    if user_data is None:
        user_data = instance_user_data(c.ec2, instance_id) if instance_id else ""
    calls = imds_v1_calls(c.cloudwatch, instance_id) if instance_id else None
    return evaluate(facts.model_copy(update={"user_data": user_data, "imds_v1_calls": calls}))


def check(c: Clients, request: CompatibilityRequest) -> Compatibility:
    """The findings of the old host; the caller records them, then `refuse_blockers` decides."""
    facts = _read(c, request.scan)
    user_data = template_user_data(c.ec2, request.launch_template) if request.launch_template else None
    findings = host_findings(c, facts, request.scan.instance_id, user_data)
    return Compatibility(instance_id=request.scan.instance_id, scanned=facts is not None,
                         blockers=findings.names("blocker"), warnings=findings.names("warning"),
                         mode=request.mode, facts=facts)


def refuse_blockers(target: str, result: Compatibility) -> None:
    if result.blockers and result.mode == "block":
        raise CompatibilityBlocked(
            f"{target}: {len(result.blockers)} AL2023 compatibility blocker(s), nothing changed: "
            + "; ".join(result.blockers) + " (fix them, or set `compatibility: warn` in the input to go on)")


def parity(c: Clients, request: ParityRequest) -> Parity:
    """What the old host had that the new one lacks; the caller records it, then `refuse_missing` decides."""
    old, new = request.old.facts, _read(c, request.scan)
    if old is None or new is None:
        why = (f"{request.old.instance_id} was not read through SSM" if old is None
               else request.scan.unreachable or f"{request.scan.instance_id} was not read through SSM")
        return Parity(old_instance=request.old.instance_id, new_instance=request.scan.instance_id, checked=False,
                      missing=[], accepted=[], note=f"parity not checked: {why}")
    every = missing_on_replacement(old, new)
    missing = missing_on_replacement(old, new, request.accept)
    return Parity(old_instance=request.old.instance_id, new_instance=request.scan.instance_id, checked=True,
                  missing=missing, accepted=[item for item in every if item not in missing])


def refuse_missing(target: str, result: Parity) -> None:
    if result.missing:
        raise ParityMissing(
            f"{target}: the new host {result.new_instance} lacks what {result.old_instance} had: "
            + "; ".join(result.missing) + " (list accepted differences in the input's `parity_accept`)")

