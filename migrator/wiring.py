"""What every handler needs besides its event: the `task` decorator, clients, the audit log, run-once."""

import functools
from collections.abc import Callable
from functools import lru_cache

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.parameters import get_secret
from aws_lambda_powertools.utilities.parser import parse
from pydantic import BaseModel

from migrator.approvals.core import Approvals
from migrator.audit import AuditLog
from migrator.aws import client
from migrator.observability import task_handler
from migrator.settings import settings
from migrator.validation import parse_input


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


def run_once(task: str, key: dict, context, action: Callable[[], dict]) -> dict:
    """Powertools idempotency for a mutating task: a second call with the same key
    (the execution, and what else tells one action from another) returns the first
    result instead of acting again. (The domain functions also check state first,
    so this guards retries after a timeout.)"""
    _IDEMPOTENCY.register_lambda_context(context)
    return _once_runner()(key={"task": task, **key}, action=action)


def _as_json(result):
    # Step Functions and the idempotency record both take JSON, not models.
    return result.model_dump(mode="json") if isinstance(result, BaseModel) else result


EXECUTION = ("execution",)  # `once_per=EXECUTION`: a mutating task acts once per execution


def task(model: type[BaseModel] | None = None, *, once_per: tuple[str, ...] = (), records: str | None = None):
    """The one decorator of every Step Functions task in lambdas/: Powertools logging, tracing and metrics
    (`task_handler`), the event parsed into `model` (the raw event without one), a model result returned as
    JSON; and for a mutating task, run-once keyed by the function's own name (`asg.start_refresh`, its
    handler string) and by the event fields `once_per` names (EXECUTION, or more). With `records`, the
    result goes to the audit trail under that action, once (inside run-once, like the action itself)."""

    def decorate(func: Callable) -> Callable:
        name = f"{func.__module__.rpartition('.')[2]}.{func.__name__}"  # lambdas.asg locally, asg in Lambda

        @functools.wraps(func)
        def handler(event, context):
            parsed = parse(event=event, model=model) if model else event

            def act():
                result = _as_json(func(parsed, context))
                if records:
                    audit_log(parsed.execution, parsed.target).record(records, **result)
                return result

            if not once_per:
                return act()
            return run_once(name, {field: getattr(parsed, field) for field in once_per}, context, act)

        return task_handler(handler)

    return decorate


def approvals() -> Approvals:
    """The approval store; the HMAC secret comes from Secrets Manager, cached by Powertools."""
    s = settings()
    return Approvals(
        dynamodb=client("dynamodb"), sfn=client("stepfunctions"), sns=client("sns"), table=s.audit_table,
        topic=s.notification_topic, secret=get_secret(s.approval_secret, max_age=300).encode(),
        base_url=s.approval_base_url,
    )


def input_validator(model: type[BaseModel], *, names_target: bool = False) -> Callable:
    """The first task of a workflow: the execution input becomes `model`, or the run fails naming the field.
    With `names_target` (the input names its target: ASG, node group) the state's `target` is set here once,
    for the messages and the audit log; the standalone migration's target comes from its pre-flight."""

    @task()
    def validate_input(event, context):
        request = parse_input(model, event.get("request"))
        state = {"input": request.model_dump()}
        if names_target:
            state["target"] = request.target
        return state

    return validate_input
