"""What an operator reads when a run fails: the error name and a plain message."""

import json

from pydantic import BaseModel


class CaughtError(BaseModel):
    """What a Catch writes at its ResultPath."""

    Error: str = "Unknown"
    Cause: str | None = None


class Caught(BaseModel):
    """The state fields a workflow's Catches write, for its rollback to read."""

    error: CaughtError | None = None
    failed_gate: str | None = None  # written by the Pass after an approval's Catch
    rollback_error: CaughtError | None = None


def explain_failure(error: CaughtError | None, failed_gate: str | None = None) -> tuple[str, str]:
    """The name and message of a Catch's {Error, Cause}. A Fail state may not use a
    `States.` name, so those become plain names; a timeout caught at `failed_gate`
    is that gate's approval timing out."""
    if not error:
        return "Unknown", "unknown failure"
    name = error.Error
    cause = error_message(error.Cause)
    if name == "States.Timeout" and failed_gate:
        name, cause = "ApprovalTimedOut", f"the {failed_gate} approval timed out"
    elif name == "Rejected":
        cause = "the approval was rejected" + (f": {cause}" if cause else "")
    elif name.startswith("States."):
        name = name.removeprefix("States.")
    return name, cause or name


def error_message(cause: str | None) -> str:
    """A Lambda error's message from its JSON cause; a plain-text cause (an
    approver's reason, a Fail state's cause) as it is."""
    cause = cause or ""
    try:
        return json.loads(cause).get("errorMessage", cause)
    except (ValueError, AttributeError):
        return cause
