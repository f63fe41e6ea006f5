"""The rollout's execution input."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from migrator.config import AL2023_AMI_PARAMETER

RefreshPolicy = Literal["Refresh", "Ignore", "Wait"]


class RolloutInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    group_name: str = Field(min_length=1, max_length=255, pattern=r"^[^:]+$")
    # The AMI: an explicit id, or an SSM parameter (default: AWS's public AL2023 one).
    ami_id: str | None = Field(default=None, pattern=r"^ami-[0-9a-f]{8,17}$")
    ami_ssm_parameter: str = Field(default=AL2023_AMI_PARAMETER["x86_64"], min_length=1, max_length=2048)
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

    @model_validator(mode="after")
    def _one_ami_source(self):
        if self.ami_id and self.ami_ssm_parameter != AL2023_AMI_PARAMETER["x86_64"]:
            raise ValueError("give ami_id or ami_ssm_parameter, not both")
        return self

    @property
    def target(self) -> str:
        return f"asg/{self.group_name}"
