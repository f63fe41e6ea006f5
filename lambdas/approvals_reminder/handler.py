"""Scheduled: one reminder for each pending approval that expires soon."""

from migrator.observability import logger
from migrator.settings import settings
from migrator.wiring import approvals


@logger.inject_lambda_context(clear_state=True)
def handler(event, context):
    return {"reminded": approvals().remind(settings().approval_reminder_seconds)}
