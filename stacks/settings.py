"""Deployment settings read from the CDK context (cdk.json, or `cdk synth -c key=value`)."""

from __future__ import annotations

import json
import re
import zoneinfo
from dataclasses import dataclass
from pathlib import Path

from constructs import Node
from pydantic import TypeAdapter, ValidationError

from migrator.config import DEFAULT_MIGRATION_TAG, PROJECT_ROOT
from migrator.fields import ApprovalReminder, default_of
from migrator.fleet.waves import WaveInput

DEFAULT_LAYER_DIR = "build/layer"
EKS_CLUSTER_NAME = re.compile(r"[0-9A-Za-z][A-Za-z0-9\-_]{0,99}")  # as CreateCluster accepts it
# EventBridge Scheduler: schedule names, and its three expression forms (cron has six fields, year included).
SCHEDULE_NAME = re.compile(r"[0-9A-Za-z_.\-]{1,64}")
SCHEDULE_EXPRESSION = re.compile(
    r"cron\(\S+( \S+){5}\)"
    r"|at\(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\)"
    r"|rate\((1 (minute|hour|day)|([2-9]|[1-9]\d+) (minutes|hours|days))\)")
# The fields of a schedule that become the fleet's input, validated as its LoadWave validates them.
WAVE_FIELDS = ("plan_id", "wave", "max_concurrency", "tolerated_failure_percentage")
DEFAULT_SCHEDULE_TIMEZONE = "UTC"
# cdk.json `approval_auth`: how the approval API authenticates. "none": the signed link is the credential;
# "iam": both methods need SigV4-signed requests (AuthorizationType AWS_IAM).
APPROVAL_AUTH_MODES = ("none", "iam")
DEFAULT_APPROVAL_AUTH = "none"
# Context values that are plain strings, not JSON (`-c approval_auth=iam` and cdk.json give the same).
_STRING_KEYS = {"layer_dir", "approval_auth"}


class SettingsError(Exception):
    """A context value the app cannot synthesize with; the message is one line for the user."""


@dataclass(frozen=True)
class WaveSchedule:
    """One item of cdk.json `schedules`: an EventBridge Scheduler schedule that starts a wave of a plan
    on the fleet state machine, which reads the wave's targets from the audit table."""

    name: str  # the schedule's name, unique in the default schedule group
    expression: str  # cron(...) (six fields), at(yyyy-mm-ddThh:mm:ss) or rate(...)
    plan_id: str
    wave: int
    timezone: str  # IANA name, for cron and at
    max_concurrency: int
    tolerated_failure_percentage: float

    def execution_input(self) -> dict:
        """The fleet state machine's input; without `targets`, LoadWave reads them from the plan."""
        return {name: getattr(self, name) for name in WAVE_FIELDS}

    @classmethod
    def from_context_item(cls, index: int, item) -> WaveSchedule:
        where = f"context schedules[{index}]"
        if not isinstance(item, dict):
            raise SettingsError(f"{where} must be an object with name, expression, plan_id and wave, got {item!r}")
        unknown = sorted(set(item) - set(cls.__dataclass_fields__))
        if unknown:
            raise SettingsError(f"{where} has unknown field(s) {', '.join(unknown)}")

        def field(name, valid, expected, default=None):
            value = item.get(name, default)
            if value is None or isinstance(value, bool) or not valid(value):
                raise SettingsError(f"{where}.{name} must be {expected}, got {value!r}")
            return value

        name = field("name", lambda v: isinstance(v, str) and SCHEDULE_NAME.fullmatch(v),
                     "1-64 letters, digits, '.', '-' or '_'")
        expression = field("expression", lambda v: isinstance(v, str) and SCHEDULE_EXPRESSION.fullmatch(v),
                           'cron(<6 fields>), at(yyyy-mm-ddThh:mm:ss) or rate(<n> <minutes|hours|days>)')
        timezone = field("timezone", lambda v: isinstance(v, str) and _is_time_zone(v),
                         'an IANA time zone like "Europe/Paris"', DEFAULT_SCHEDULE_TIMEZONE)
        # Strict: JSON types as given, no "1" for 1.
        wave = _validate(where, WaveInput.model_validate, {k: item[k] for k in WAVE_FIELDS if k in item})
        return cls(name, expression, wave.plan_id, wave.wave, timezone, wave.max_concurrency,
                   wave.tolerated_failure_percentage)


@dataclass(frozen=True)
class FunctionVpc:
    """cdk.json `vpc`: {"subnet_ids": ["subnet-..."], "security_group_ids": ["sg-..."]}. The subnets need a route
    to the AWS APIs the functions call (NAT, or the VPC endpoints the README lists); the security groups need
    egress to the cluster's endpoint on 443."""

    subnet_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]

    @classmethod
    def from_context(cls, value) -> FunctionVpc:
        def ids(name, prefix):
            items = value.get(name) if isinstance(value, dict) else None
            if not (isinstance(items, list) and items and len(set(items)) == len(items)
                    and all(isinstance(i, str) and re.fullmatch(prefix + r"-[0-9a-f]{8,17}", i) for i in items)):
                raise SettingsError(f'context vpc.{name} must be a non-empty list of distinct ids like '
                                    f'"{prefix}-0123456789abcdef0", got {items!r}')
            return tuple(items)

        if not isinstance(value, dict) or set(value) - {"subnet_ids", "security_group_ids"}:
            raise SettingsError('context vpc must be {"subnet_ids": [...], "security_group_ids": [...]}, '
                                f"got {value!r}")
        return cls(ids("subnet_ids", "subnet"), ids("security_group_ids", "sg"))


def _validate(where: str, validate, value):
    """`validate(value, strict=True)`, its first error as a one-line SettingsError naming the field."""
    try:
        return validate(value, strict=True)
    except ValidationError as error:
        first = error.errors()[0]
        path = "".join(f".{part}" for part in first["loc"])
        if first["type"] == "missing":
            raise SettingsError(f"{where}{path} is required") from None
        raise SettingsError(f"{where}{path}: {first['msg'][0].lower()}{first['msg'][1:]}, got {first['input']!r}") from None


def _is_time_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Settings:
    tag_key: str
    tag_value: str
    notification_emails: tuple[str, ...]
    layer_dir: Path  # holds python/, as layers/build.py makes it
    # cdk.json `dns_hosted_zone_ids`, e.g. ["Z0123456789ABCDEFGHIJ"]: the only Route 53 hosted zones the
    # standalone workflow may read and change for a DNS cutover. Empty (the default): any zone in the account,
    # since the zone comes from the execution input.
    dns_hosted_zone_ids: tuple[str, ...] = ()
    # cdk.json `eks_clusters`, e.g. ["prod"]: the EKS clusters (in the stack's account and region) whose
    # node groups the eks-nodegroup workflow migrates. Each gets an access entry per Kubernetes-using task
    # role (stacks/kubernetes.py), and the EKS permissions are limited to them. Empty (the default): no
    # access entries, and EKS permissions on any cluster of the account.
    eks_clusters: tuple[str, ...] = ()
    # cdk.json `schedules`: waves of stored plans started on the fleet state machine by EventBridge
    # Scheduler (stacks/schedules.py). Empty (the default): no schedule; waves start by hand.
    schedules: tuple[WaveSchedule, ...] = ()
    # cdk.json `approval_auth`: "none" (default) or "iam", see APPROVAL_AUTH_MODES.
    approval_auth: str = DEFAULT_APPROVAL_AUTH
    # cdk.json `approval_reminder_seconds`: a pending approval gets one reminder when it expires within this.
    approval_reminder_seconds: int = default_of(ApprovalReminder)
    # cdk.json `vpc`: where the functions that call a cluster's Kubernetes API run, for a private-only endpoint.
    # None (the default): outside any VPC, which reaches public endpoints only.
    vpc: FunctionVpc | None = None
    # cdk.json `reusable_roles`, e.g. ["web-instance-role"]: the IAM roles (names) the workflows may pass to EC2 (the
    # old instance's or launch template's instance profile) and EKS (the old node group's node role). Empty (the
    # default): the roles that carry the migration tag.
    reusable_roles: tuple[str, ...] = ()

    @classmethod
    def from_context(cls, node: Node) -> Settings:
        def get(key, default):
            value = node.try_get_context(key)
            # `-c key=value` on the command line gives strings; cdk.json gives JSON values.
            if isinstance(value, str) and key not in _STRING_KEYS:
                try:
                    value = json.loads(value)
                except json.JSONDecodeError:
                    raise SettingsError(f"context {key} must be JSON, got {value!r}") from None
            return default if value is None else value

        tag = get("migration_tag", DEFAULT_MIGRATION_TAG)
        if not (isinstance(tag, dict) and tag.get("key") and tag.get("value")):
            raise SettingsError(f'context migration_tag must be {{"key": ..., "value": ...}}, got {tag!r}')
        if node.try_get_context("approval_timeout_seconds") is not None:
            # It only fed a stack output; a gate's timeout is its execution input's approval_timeout_seconds.
            raise SettingsError("context approval_timeout_seconds is not a deployment setting: set "
                                "approval_timeout_seconds in the execution inputs instead")
        emails = get("notification_emails", [])
        if not (isinstance(emails, list) and all(isinstance(e, str) and "@" in e for e in emails)):
            raise SettingsError(f"context notification_emails must be a list of email addresses, got {emails!r}")
        layer_dir = PROJECT_ROOT / get("layer_dir", DEFAULT_LAYER_DIR)  # relative to the project root
        if not (layer_dir / "python").is_dir():
            raise SettingsError(f"Lambda layer not found in {layer_dir}: run `make layer` first")
        zones = get("dns_hosted_zone_ids", [])
        if not (isinstance(zones, list) and all(isinstance(z, str) and re.fullmatch(r"[A-Z0-9]+", z) for z in zones)):
            raise SettingsError(f'context dns_hosted_zone_ids must be a list of zone IDs like "Z0123ABC", got {zones!r}')
        clusters = get("eks_clusters", [])
        if not (isinstance(clusters, list) and len(set(map(str, clusters))) == len(clusters)
                and all(isinstance(c, str) and EKS_CLUSTER_NAME.fullmatch(c) for c in clusters)):
            raise SettingsError(
                f'context eks_clusters must be a list of distinct EKS cluster names like "prod", got {clusters!r}')
        items = get("schedules", [])
        if not isinstance(items, list):
            raise SettingsError(f"context schedules must be a list of schedule objects, got {items!r}")
        schedules = tuple(WaveSchedule.from_context_item(i, item) for i, item in enumerate(items))
        names = [s.name for s in schedules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SettingsError(f"context schedules: names must be distinct, {', '.join(duplicates)} repeated")
        auth = get("approval_auth", DEFAULT_APPROVAL_AUTH)
        if auth not in APPROVAL_AUTH_MODES:
            raise SettingsError(f"context approval_auth must be one of {', '.join(APPROVAL_AUTH_MODES)}, got {auth!r}")
        reminder = _validate("context approval_reminder_seconds", TypeAdapter(ApprovalReminder).validate_python,
                             get("approval_reminder_seconds", cls.approval_reminder_seconds))
        vpc = get("vpc", None)
        roles = get("reusable_roles", [])
        if not (isinstance(roles, list) and all(isinstance(r, str) and re.fullmatch(r"[\w+=,.@-]{1,64}", r)
                                                for r in roles)):
            raise SettingsError(f'context reusable_roles must be a list of IAM role names like "web-instance-role", '
                                f"got {roles!r}")
        return cls(str(tag["key"]), str(tag["value"]), tuple(emails), layer_dir, tuple(zones),
                   tuple(clusters), schedules, auth, reminder,
                   vpc=None if vpc is None else FunctionVpc.from_context(vpc), reusable_roles=tuple(roles))
