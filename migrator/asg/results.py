"""What each state of asg_rollout.asl.json returns, and the state they add up to."""

from pydantic import BaseModel

from migrator.asg.models import RolloutInput
from migrator.compat.checks import Compatibility, Parity, ScanStarted
from migrator.failures import Caught


class Preflight(BaseModel):
    already_migrated: bool
    group_name: str
    template_id: str
    template_name: str
    original_version: str
    # `$Latest` would follow our new version, so a rollback pins the number.
    restore_version: str
    original_image_id: str
    desired: int
    min: int
    max: int
    instance_ids: list[str]
    target_group_arns: list[str]


class LaunchVersion(BaseModel):
    version: str
    image_id: str
    ami_name: str
    ami_source: str
    created: bool


class CanaryMarks(BaseModel):
    """What the rollout changed for its canary, written on the canary as a tag
    before the change, so any later step (or a retry) undoes only that, and only
    while the value is still the one we set."""

    desired: int  # the group's desired capacity right after the attach (+1)
    raised_max_to: int | None = None  # MaxSize raised by one so the attach fits
    suspended: list[str] = []  # scaling processes we suspended (they were running)

    def tag(self) -> str:
        parts = [f"desired={self.desired}"]
        if self.raised_max_to is not None:
            parts.append(f"max={self.raised_max_to}")
        if self.suspended:
            parts.append("suspended=" + "+".join(self.suspended))
        return " ".join(parts)

    @classmethod
    def from_tag(cls, value: str) -> "CanaryMarks":
        fields = dict(part.split("=", 1) for part in value.split())
        return cls(desired=int(fields["desired"]),
                   raised_max_to=int(fields["max"]) if "max" in fields else None,
                   suspended=[p for p in fields.get("suspended", "").split("+") if p])


class Canary(BaseModel):
    instance_id: str
    marks: CanaryMarks
    started_at: float
    changed: bool


class CanaryEvidence(BaseModel):
    lifecycle: str
    health: str
    targets: dict[str, str]  # target group name -> the canary's state in it
    alarms: dict[str, str]
    seconds_since_launch: int


class CanaryHealth(BaseModel):
    instance_id: str
    evidence: CanaryEvidence


class Refresh(BaseModel):
    refresh_id: str
    started_at: float
    changed: bool


class RefreshDone(BaseModel):
    status: str
    percentage: int


class Finalized(BaseModel):
    version: str
    image_id: str
    desired: int  # the group's desired capacity at the end: its owners' decision
    canary_kept: bool  # the owners changed the capacity, so the AL2023 canary is theirs now


class Rollback(BaseModel):
    error: str
    cause: str
    reverted_instances: list[str]
    revert_refresh_id: str | None


class RollbackDone(BaseModel):
    instances: int
    version: str


class RolloutState(Caught):
    """One field per ResultPath of asg_rollout.asl.json."""

    input: RolloutInput
    target: str  # ValidateInput names the target once, for the messages and the audit log
    preflight: Preflight | None = None
    compatibility_scan: ScanStarted | None = None
    compatibility: Compatibility | None = None
    version: LaunchVersion | None = None
    canary: Canary | None = None
    canary_health: CanaryHealth | None = None
    parity_scan: ScanStarted | None = None
    parity: Parity | None = None
    approval: dict | None = None  # the approver's record
    refresh: Refresh | None = None
    refresh_result: RefreshDone | None = None
    result: Finalized | None = None
    rollback: Rollback | None = None
    rollback_result: RollbackDone | None = None
