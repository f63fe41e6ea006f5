"""The handlers' environment, parsed once into a typed model."""

import os
from functools import lru_cache

from pydantic import BaseModel, Field

from migrator import config
from migrator.fields import ApprovalReminder


class Settings(BaseModel):
    audit_table: str = Field(alias=config.ENV_AUDIT_TABLE)
    idempotency_table: str = Field(alias=config.ENV_IDEMPOTENCY_TABLE)
    notification_topic: str = Field(alias=config.ENV_NOTIFICATION_TOPIC)
    tag_key: str = Field(alias=config.ENV_TAG_KEY, default=config.DEFAULT_MIGRATION_TAG["key"])
    tag_value: str = Field(alias=config.ENV_TAG_VALUE, default=config.DEFAULT_MIGRATION_TAG["value"])
    approval_secret: str = Field(alias=config.ENV_APPROVAL_SECRET, default="")
    approval_base_url: str = Field(alias=config.ENV_APPROVAL_BASE_URL, default="")
    approval_reminder_seconds: ApprovalReminder = Field(alias=config.ENV_APPROVAL_REMINDER)
    dns_hosted_zone_ids: str = Field(alias=config.ENV_DNS_HOSTED_ZONES, default="")  # see migrator.permitted


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.model_validate(dict(os.environ))
