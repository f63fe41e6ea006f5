"""What an operator reads when a run fails, straight from the Catch's {Error, Cause}."""

import json

from migrator.failures import CaughtError, explain_failure


def lambda_error(name: str, message: str) -> CaughtError:
    """A Lambda error as Step Functions catches it: the message inside a JSON cause."""
    return CaughtError(Error=name, Cause=json.dumps({"errorType": name, "errorMessage": message}))


def test_a_task_error_keeps_its_name_and_reads_the_message_from_the_json_cause():
    error = lambda_error("CanaryUnhealthy", "canary i-1 is Unhealthy in web")
    assert explain_failure(error) == ("CanaryUnhealthy", "canary i-1 is Unhealthy in web")


def test_a_plain_text_cause_is_the_message_as_it_is():
    assert explain_failure(CaughtError(Error="CutoverFailed", Cause="not json")) == ("CutoverFailed", "not json")


def test_a_timeout_at_a_gate_is_that_gates_approval_timing_out():
    error = CaughtError(Error="States.Timeout", Cause="")
    assert explain_failure(error, "before-refresh") == ("ApprovalTimedOut", "the before-refresh approval timed out")


def test_a_timeout_elsewhere_loses_the_states_prefix_a_fail_state_may_not_use():
    assert explain_failure(CaughtError(Error="States.Timeout")) == ("Timeout", "Timeout")
    assert explain_failure(CaughtError(Error="States.TaskFailed", Cause="boom")) == ("TaskFailed", "boom")


def test_a_rejection_says_the_approval_was_rejected_and_keeps_the_approvers_reason():
    rejected = CaughtError(Error="Rejected", Cause="rejected by ops@example.com: not tonight")
    assert explain_failure(rejected, "cutover") == (
        "Rejected", "the approval was rejected: rejected by ops@example.com: not tonight")
    assert explain_failure(CaughtError(Error="Rejected")) == ("Rejected", "the approval was rejected")


def test_a_gate_does_not_change_an_error_that_is_not_a_timeout():
    error = lambda_error("InstanceUnhealthy", "alarm db-1-status in ALARM")
    assert explain_failure(error, "decommission") == ("InstanceUnhealthy", "alarm db-1-status in ALARM")


def test_no_error_at_all_is_an_unknown_failure():
    assert explain_failure(None) == ("Unknown", "unknown failure")


def test_an_error_without_a_cause_is_explained_by_its_name():
    assert explain_failure(CaughtError(Error="RefreshFailed")) == ("RefreshFailed", "RefreshFailed")
