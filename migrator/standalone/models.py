"""The standalone migration's execution input."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from migrator.ami import AmiChoice
from migrator.fields import AlarmNames, ApprovalTimeout, CompatibilityMode, ParityAccept


class Cutover(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["elastic_ip", "dns", "none"] = Field(
        description="move the Elastic IP, point the A record at the new private address, or neither")
    hosted_zone_id: str | None = Field(default=None, pattern=r"^(/hostedzone/)?[A-Z0-9]{1,32}$",
                                       description="with mode `dns`: the record's hosted zone")
    record_name: str | None = Field(default=None, min_length=1, max_length=1024,
                                    description="with mode `dns`: the A record, e.g. `db.internal.example.com`")

    @model_validator(mode="after")
    def _dns_names_its_record(self):
        if self.mode == "dns" and not (self.hosted_zone_id and self.record_name):
            raise ValueError("mode dns needs hosted_zone_id and record_name")
        if self.mode != "dns" and (self.hosted_zone_id or self.record_name):
            raise ValueError(f"hosted_zone_id and record_name go with mode dns, not {self.mode}")
        return self


class MigrationInput(AmiChoice):
    instance_id: str = Field(pattern=r"^i-[0-9a-f]{8,17}$", description="the AL2 instance")
    cutover: Cutover = Field(description="how traffic moves to the new instance")
    restore_data_volumes: bool = Field(
        default=True, description="data volumes from the snapshots onto the new instance "
                                  "(the root volume always comes from the AL2023 AMI)")
    health_script: str | None = Field(
        default=None, min_length=1, max_length=4096,
        description="shell commands run on the new instance through SSM Run Command (`AWS-RunShellScript`); "
                    "exit code 0 means healthy")
    quiesce_commands: str | None = Field(
        default=None, min_length=1, max_length=4096,
        description="shell commands (SSM `AWS-RunShellScript`) that stop the old server's writes after the cutover "
                    "approval, e.g. `systemctl stop postgresql`; the instance is then stopped in any case, so its "
                    "data volumes move to the replacement exactly as they are")
    verify_commands: str | None = Field(
        default=None, min_length=1, max_length=4096,
        description="shell commands run on the replacement once the data volumes are on it, before the address "
                    "moves (exit code 0: the data is good); without them the health script runs there")
    alarm_names: AlarmNames
    compatibility: CompatibilityMode
    parity_accept: ParityAccept
    snapshot_deadline_seconds: int = Field(default=7_200, ge=60, le=86_400,
                                           description="how long the snapshots may take to complete")
    health_deadline_seconds: int = Field(default=1_800, ge=60, le=86_400,
                                         description="how long the new instance may take to become healthy")
    approval_timeout_seconds: ApprovalTimeout
    retention_seconds: int = Field(
        default=7 * 86_400, ge=0, le=90 * 86_400,
        description="how long the stopped old instance and the snapshots are kept before the decommission gate")
    snapshot_retention_days: int = Field(default=30, ge=1, le=3_650,
                                         description="how long the snapshots live after the decommission (their "
                                                     "expiry tag)")
