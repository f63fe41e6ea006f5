"""The rollout's execution input."""

from typing import Literal

from pydantic import Field

from migrator.ami import AmiChoice
from migrator.fields import AlarmNames, ApprovalTimeout, CompatibilityMode, ParityAccept

RefreshPolicy = Literal["Refresh", "Ignore", "Wait"]


class RolloutInput(AmiChoice):
    group_name: str = Field(min_length=1, max_length=255, pattern=r"^[^:]+$",
                            description="the Auto Scaling group")
    canary_bake_seconds: int = Field(default=600, ge=0, le=86_400,
                                     description="how long the canary must stay healthy")
    canary_deadline_seconds: int = Field(default=1_800, ge=60, le=86_400,
                                         description="how long the canary may take to become healthy")
    min_healthy_percentage: int = Field(default=90, ge=0, le=100,
                                        description="instance refresh `MinHealthyPercentage`")
    instance_warmup_seconds: int = Field(default=300, ge=0, le=3_600,
                                         description="instance refresh `InstanceWarmup`")
    alarm_names: AlarmNames = Field(description="alarms that must not be in ALARM "
                                                "(canary check and refresh `AlarmSpecification`)")
    approval_timeout_seconds: ApprovalTimeout
    compatibility: CompatibilityMode
    parity_accept: ParityAccept
    refresh_deadline_seconds: int = Field(default=14_400, ge=300, le=604_800,
                                          description="how long the refresh may run")
    protected_instances: RefreshPolicy = Field(
        default="Wait", description="refresh policy for scale-in-protected instances: AWS's default `Ignore` would "
                                    "silently leave AL2 instances behind; `Wait` makes the refresh wait (and the "
                                    "deadline roll back) until an operator releases them")
    standby_instances: RefreshPolicy = Field(default="Wait", description="the same for standby instances")

    @property
    def target(self) -> str:
        return f"asg/{self.group_name}"
