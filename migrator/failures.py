"""What an operator reads when a run fails: the error name and a plain message."""

import json


def explain_failure(error: dict | None, waiting_gate: str | None = None) -> tuple[str, str]:
    """The name and message of a Catch's {Error, Cause}. A Fail state may not use a
    `States.` name, so those become plain names; a timeout while `waiting_gate`
    was open is that gate timing out."""
    if not error:
        return "Unknown", "unknown failure"
    name = error.get("Error", "Unknown")
    cause = error.get("Cause") or ""
    try:
        cause = json.loads(cause).get("errorMessage", cause)
    except (ValueError, AttributeError):
        pass  # a plain-text cause (an approver's reason) stays as it is
    if name == "States.Timeout" and waiting_gate:
        name, cause = "ApprovalTimedOut", f"the {waiting_gate} approval timed out"
    elif name == "Rejected":
        cause = "the approval was rejected" + (f": {cause}" if cause else "")
    elif name.startswith("States."):
        name = name.removeprefix("States.")
    return name, cause or name
