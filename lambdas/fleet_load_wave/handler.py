"""First state of a wave: validate the input and load the wave's targets from the plan."""

from migrator.aws import client
from migrator.fleet.waves import WaveInput, load_wave
from migrator.observability import task_handler
from migrator.settings import settings
from migrator.validation import parse_input


@task_handler
def handler(event, context):
    request = parse_input(WaveInput, event.get("request"))
    return load_wave(client("dynamodb"), client("stepfunctions"), settings().audit_table, request,
                     event["state_machines"]).model_dump(mode="json", exclude_unset=True)  # later states add the rest
