"""The fleet wave's tasks (state_machines/fleet.asl.json), one Lambda function each: `fleet.<task>`."""

from migrator.aws import client
from migrator.fleet import waves
from migrator.fleet.waves import WaveInput, WaveResults
from migrator.settings import settings
from migrator.validation import parse_input
from migrator.wiring import audit_log, task


@task()
def load_wave(event, context):
    """First state of a wave: validate the input and load the wave's targets from the plan."""
    request = parse_input(WaveInput, event.get("request"))
    wave = waves.load_wave(client("dynamodb"), client("stepfunctions"), settings().audit_table, request,
                           event["state_machines"])
    return wave.model_dump(mode="json", exclude_unset=True)  # later states add the rest


@task(WaveResults)
def summarize_wave(event: WaveResults, context):
    """Last state of a wave: count outcomes; WaveFailed beyond the tolerated failure percentage."""
    log = audit_log(event.execution, f"wave-{event.wave}")
    try:
        summary = waves.summarize(event.results + event.already_done, event.tolerated_failure_percentage)
    except Exception as error:
        log.record("wave-failed", reason=str(error), results=event.results)
        raise
    log.record("wave-completed", **summary)
    return summary
