"""Step Functions fidelity: the interpreter on the simulated clock, and its gaps."""

from __future__ import annotations

import json
import threading

from tests.conftest import running


def _run_machine(rt, definition: dict, payload: dict, name: str):
    sfn = rt.client("stepfunctions")
    arn = sfn.create_state_machine(name=name, definition=json.dumps(definition),
                                   roleArn=f"arn:aws:iam::123456789012:role/al2023-migration-local")["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, name=f"{name}-1", input=json.dumps(payload))
    run = type("Run", (), {"execution_arn": execution["executionArn"]})()
    return rt.wait([run], timeout=60)[execution["executionArn"]], sfn.get_execution_history(
        executionArn=execution["executionArn"])["events"]


def test_choice_on_an_indexed_path_selects_the_value():
    """AWS: `$.items[0].ready` is one value, so a Choice on it matches."""
    with running([], clock={"speed": 1000}) as rt:
        result, _ = _run_machine(rt, {
            "StartAt": "Check",
            "States": {
                "Check": {"Type": "Choice", "Choices": [
                    {"Variable": "$.items[0].ready", "BooleanEquals": True, "Next": "Yes"}], "Default": "No"},
                "Yes": {"Type": "Succeed"},
                "No": {"Type": "Fail", "Error": "ChoiceMissed"},
            }}, {"items": [{"ready": True}]}, "jsonpath")
        assert result["status"] == "SUCCEEDED"


def test_wait_states_run_on_the_simulated_clock():
    """An hour's Wait takes an hour of simulated time: the history says so."""
    with running([], clock={"speed": 1000}) as rt:
        result, history = _run_machine(rt, {
            "StartAt": "Hour", "States": {"Hour": {"Type": "Wait", "Seconds": 3600, "Next": "Done"},
                                          "Done": {"Type": "Succeed"}}}, {}, "waits")
        assert result["status"] == "SUCCEEDED"
        stamps = [e["timestamp"].timestamp() for e in history]
        assert max(stamps) - min(stamps) >= 3600


def test_send_task_failure_cause_reaches_the_catch():
    """AWS: the Catch's ResultPath receives the Error and the Cause given to SendTaskFailure."""
    with running([], clock={"speed": 1000}) as rt:
        sfn, sqs = rt.client("stepfunctions"), rt.client("sqs")
        queue = sqs.create_queue(QueueName="tokens")["QueueUrl"]
        done = threading.Event()
        outcome = {}

        def run():
            outcome["result"], outcome["history"] = _run_machine(rt, {
                "StartAt": "Ask", "States": {
                    "Ask": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                            "Parameters": {"QueueUrl": queue, "MessageBody": {"token.$": "$$.Task.Token"}},
                            "Catch": [{"ErrorEquals": ["Rejected"], "ResultPath": "$.error", "Next": "Caught"}],
                            "End": True},
                    "Caught": {"Type": "Fail", "Error": "Caught", "CausePath": "$.error.Cause"}}}, {}, "callback")
            done.set()

        threading.Thread(target=run, daemon=True).start()
        token = None
        while token is None:
            messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages", [])
            token = json.loads(messages[0]["Body"])["token"] if messages else None
        sfn.send_task_failure(taskToken=token, error="Rejected", cause="not in business hours")
        assert done.wait(30)
        assert outcome["result"]["cause"] == "not in business hours"


def _passes(count: int) -> dict:
    """A machine of `count` Pass states: 2 history events each, plus start and end."""
    states = {f"P{i}": {"Type": "Pass", "Result": {"step": i}, "Next": f"P{i + 1}"} for i in range(count)}
    states[f"P{count - 1}"] = {"Type": "Pass", "Result": {"step": count - 1}, "End": True}
    return {"StartAt": "P0", "States": states}


def test_history_pages_reverses_and_leaves_out_data_as_aws_does():
    """AWS: pages of at most maxResults with a nextToken; reverseOrder gives the newest
    first; includeExecutionData=false drops every input and output."""
    import pytest
    from botocore.exceptions import ClientError

    with running([]) as rt:
        result, _ = _run_machine(rt, _passes(60), {"secret": "input"}, "history")
        sfn, execution_arn = rt.client("stepfunctions"), result["executionArn"]
        first = sfn.get_execution_history(executionArn=execution_arn)
        assert len(first["events"]) == 100 and first["nextToken"]  # 122 events: AWS's default page is 100
        rest = sfn.get_execution_history(executionArn=execution_arn, nextToken=first["nextToken"])
        everything = first["events"] + rest["events"]
        assert "nextToken" not in rest and [e["id"] for e in everything] == list(range(1, len(everything) + 1))
        newest = sfn.get_execution_history(executionArn=execution_arn, reverseOrder=True, maxResults=3)["events"]
        assert [e["id"] for e in newest] == [len(everything), len(everything) - 1, len(everything) - 2]
        assert newest[0]["type"] == "ExecutionSucceeded"
        bare = sfn.get_execution_history(executionArn=execution_arn, includeExecutionData=False, maxResults=1000)
        assert "secret" not in json.dumps(bare, default=str) and "secret" in json.dumps(everything, default=str)
        with pytest.raises(ClientError) as error:
            sfn.list_executions()
        assert error.value.response["Error"]["Code"] == "ValidationException"


def test_an_execution_s_dates_are_those_of_its_history():
    """AWS: startDate is the ExecutionStarted event's time and stopDate the last event's;
    moto stamped them with the real clock while the history ran on the simulated one."""
    with running([]) as rt:
        result, history = _run_machine(rt, {
            "StartAt": "Day", "States": {"Day": {"Type": "Wait", "Seconds": 86400, "End": True}}}, {}, "dates")
        described = rt.client("stepfunctions").describe_execution(executionArn=result["executionArn"])
        assert described["startDate"] == history[0]["timestamp"]
        assert described["stopDate"] == history[-1]["timestamp"]
        assert (described["stopDate"] - described["startDate"]).total_seconds() == 86400
