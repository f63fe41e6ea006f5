"""What an operator reads when a run fails: the error name and a plain message."""

import json


def explain_failure(error: dict | None, waiting_gate: str | None = None) -> tuple[str, str]:
    """The name and message of a Catch's {Error, Cause}. A Fail state may not use a
    `States.` name, so those become plain names; a timeout while `waiting_gate`
    was open is that gate timing out."""
    if not error:
        return "Unknown", "unknown failure"
    name = error.get("Error", "Unknown")
    cause = error_message(error.get("Cause"))
    if name == "States.Timeout" and waiting_gate:
        name, cause = "ApprovalTimedOut", f"the {waiting_gate} approval timed out"
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
