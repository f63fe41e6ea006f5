"""The standalone migration's execution input."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from migrator.ami import AmiChoice


class Cutover(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["elastic_ip", "dns", "none"]
    hosted_zone_id: str | None = Field(default=None, pattern=r"^(/hostedzone/)?[A-Z0-9]{1,32}$")
    record_name: str | None = Field(default=None, min_length=1, max_length=1024)

    @model_validator(mode="after")
    def _dns_names_its_record(self):
        if self.mode == "dns" and not (self.hosted_zone_id and self.record_name):
            raise ValueError("mode dns needs hosted_zone_id and record_name")
        if self.mode != "dns" and (self.hosted_zone_id or self.record_name):
            raise ValueError(f"hosted_zone_id and record_name go with mode dns, not {self.mode}")
        return self


class MigrationInput(AmiChoice):
    instance_id: str = Field(pattern=r"^i-[0-9a-f]{8,17}$")
    cutover: Cutover
    # Data volumes come from the snapshots onto the new instance (the root
    # volume always comes from the AL2023 AMI).
    restore_data_volumes: bool = True
    # Shell commands run on the new instance through SSM Run Command
    # (AWS-RunShellScript); exit code 0 means healthy.
    health_script: str | None = Field(default=None, min_length=1, max_length=4096)
    alarm_names: list[str] = Field(default_factory=list, max_length=10)
    snapshot_deadline_seconds: int = Field(default=7_200, ge=60, le=86_400)
    health_deadline_seconds: int = Field(default=1_800, ge=60, le=86_400)
    approval_timeout_seconds: int = Field(default=86_400, ge=60, le=31_536_000)
    # How long the stopped old instance and the snapshots are kept before the
    # decommission gate, and how long the snapshots live after it.
    retention_seconds: int = Field(default=7 * 86_400, ge=0, le=90 * 86_400)
    snapshot_retention_days: int = Field(default=30, ge=1, le=3_650)
