"""Powertools Logger, Tracer and Metrics, set up once, and the decorator every handler wears."""

import functools

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from migrator.aws import error_code, is_throttling
from migrator.errors import Throttled

SERVICE = "al2023-migrate"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
NAMESPACE = "AL2023Migration"


def _count(outcome: str, context) -> None:
    # one EMF line per task call, dimensioned by function, flushed at once
    with single_metric(name=outcome, unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as metric:
        metric.add_dimension(name="function", value=getattr(context, "function_name", "local"))


def task_handler(func):
    """Wrap a Step Functions task handler: the execution ARN is the correlation id,
    a trace segment and a metric per call, and AWS throttling that survived the
    SDK's retries is re-raised as `Throttled` so the ASL's Retry can back off."""

    @functools.wraps(func)
    def call(event, context):
        try:
            result = func(event, context)
        except Exception as error:
            _count("TaskFailed", context)
            if is_throttling(error):
                raise Throttled(f"AWS throttled the call ({error_code(error)}): {error}") from error
            raise
        _count("TaskSucceeded", context)
        return result

    return logger.inject_lambda_context(correlation_id_path="execution", clear_state=True)(
        tracer.capture_lambda_handler(call)
    )
