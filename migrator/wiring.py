"""What every handler needs besides its event: clients, the audit log, run-once."""

from collections.abc import Callable
from functools import lru_cache

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from aws_lambda_powertools.utilities.parameters import get_secret

from migrator.approvals.core import Approvals
from migrator.audit import AuditLog
from migrator.aws import client
from migrator.settings import settings


def audit_log(execution: str, target: str) -> AuditLog:
    return AuditLog(client("dynamodb"), settings().audit_table, execution, target)


_IDEMPOTENCY = IdempotencyConfig(expires_after_seconds=7 * 24 * 3600)


@lru_cache(maxsize=1)
def _once_runner():
    store = DynamoDBPersistenceLayer(table_name=settings().idempotency_table)

    @idempotent_function(data_keyword_argument="key", persistence_store=store, config=_IDEMPOTENCY)
    def run(*, key: dict, action: Callable[[], dict]) -> dict:
        return action()

    return run


def run_once(task: str, execution: str, context, action: Callable[[], dict]) -> dict:
    """Powertools idempotency for a mutating task: a second call for the same
    execution returns the first result instead of acting again. (The domain
    functions also check state first, so this guards retries after a timeout.)"""
    _IDEMPOTENCY.register_lambda_context(context)
    return _once_runner()(key={"task": task, "execution": execution}, action=action)


def approvals() -> Approvals:
    """The approval store; the HMAC secret comes from Secrets Manager, cached by Powertools."""
    s = settings()
    return Approvals(
        dynamodb=client("dynamodb"), sfn=client("stepfunctions"), sns=client("sns"), table=s.audit_table,
        topic=s.notification_topic, secret=get_secret(s.approval_secret, max_age=300).encode(),
        base_url=s.approval_base_url,
    )
