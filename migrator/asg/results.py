"""What each state of asg_rollout.asl.json returns, and the state they add up to."""

from pydantic import BaseModel

from migrator.asg.models import RolloutInput
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


class Canary(BaseModel):
    desired: int
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
    desired: int


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
    version: LaunchVersion | None = None
    canary: Canary | None = None
    canary_health: CanaryHealth | None = None
    approval: dict | None = None  # the approver's record
    refresh: Refresh | None = None
    refresh_result: RefreshDone | None = None
    result: Finalized | None = None
    rollback: Rollback | None = None
    rollback_result: RollbackDone | None = None
