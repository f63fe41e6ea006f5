"""Every approval gate: store the task token under a random id, email signed links (never the token)."""

from aws_lambda_powertools.utilities.parser import event_parser
from pydantic import BaseModel, Field

from migrator.aws import client
from migrator.observability import task_handler
from migrator.settings import settings
from migrator.wiring import approvals, audit_log


class ApprovalRequest(BaseModel):
    task_token: str = Field(min_length=1)
    gate: str
    target: str
    execution: str
    timeout_seconds: int = Field(ge=60)
    evidence: dict = {}


def email_subscribers(topic: str) -> list[str]:
    """Who else receives the email, for the confirmation page."""
    found = []
    for page in client("sns").get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic):
        found += [s["Endpoint"] for s in page["Subscriptions"] if s["Protocol"] == "email"]
    return sorted(found)


@task_handler
@event_parser(model=ApprovalRequest)
def handler(event: ApprovalRequest, context):
    result = approvals().request(event.task_token, event.gate, event.target, event.execution, event.evidence,
                                 event.timeout_seconds, email_subscribers(settings().notification_topic))
    audit_log(event.execution, event.target).record("approval-requested", gate=event.gate, **result)
    return result
