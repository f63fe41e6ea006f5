"""The rollout's execution input."""

from typing import Literal

from pydantic import Field

from migrator.ami import AmiChoice

RefreshPolicy = Literal["Refresh", "Ignore", "Wait"]


class RolloutInput(AmiChoice):
    group_name: str = Field(min_length=1, max_length=255, pattern=r"^[^:]+$")
    canary_bake_seconds: int = Field(default=600, ge=0, le=86_400)
    canary_deadline_seconds: int = Field(default=1_800, ge=60, le=86_400)
    min_healthy_percentage: int = Field(default=90, ge=0, le=100)
    instance_warmup_seconds: int = Field(default=300, ge=0, le=3_600)
    alarm_names: list[str] = Field(default_factory=list, max_length=10)
    approval_timeout_seconds: int = Field(default=86_400, ge=60, le=31_536_000)
    refresh_deadline_seconds: int = Field(default=14_400, ge=300, le=604_800)
    # Scale-in-protected and standby instances: AWS's default, Ignore, would leave
    # AL2 instances behind silently; Wait makes the refresh wait (and the deadline
    # roll back) until an operator releases them.
    protected_instances: RefreshPolicy = "Wait"
    standby_instances: RefreshPolicy = "Wait"

    @property
    def target(self) -> str:
        return f"asg/{self.group_name}"
