"""Last state of a wave: count outcomes; WaveFailed beyond the tolerated failure percentage."""

from aws_lambda_powertools.utilities.parser import event_parser
from pydantic import BaseModel

from migrator.fleet.waves import summarize
from migrator.observability import task_handler
from migrator.wiring import audit_log


class WaveResults(BaseModel):
    execution: str
    wave: int
    tolerated_failure_percentage: float
    results: list[dict]
    already_done: list[dict] = []


@task_handler
@event_parser(model=WaveResults)
def handler(event: WaveResults, context):
    log = audit_log(event.execution, f"wave-{event.wave}")
    try:
        summary = summarize(event.results + event.already_done, event.tolerated_failure_percentage)
    except Exception as error:
        log.record("wave-failed", reason=str(error), results=event.results)
        raise
    log.record("wave-completed", **summary)
    return summary
