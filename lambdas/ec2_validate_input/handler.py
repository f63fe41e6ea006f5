"""First state: the execution input becomes a MigrationInput, or the run fails naming the field."""

from migrator.observability import task_handler
from migrator.standalone.models import MigrationInput
from migrator.validation import parse_input


@task_handler
def handler(event, context):
    request = parse_input(MigrationInput, event.get("request"))
    return {"input": request.model_dump()}
