"""Static checks of the ASL files against the registry both CDK and the runtime use."""

import json
import re

from migrator.workflows import WORKFLOWS


def test_every_substitution_is_a_registered_task_or_the_topic():
    for workflow in WORKFLOWS:
        text = workflow.asl_path.read_text()
        used = set(re.findall(r"\$\{(\w+)\}", text))
        assert used == ({t.substitution for t in workflow.tasks} | {"NotificationTopicArn"}
                        | {child.arn_substitution for child in workflow.children})


def test_gates_are_named_in_the_approval_messages_and_have_timeouts():
    for workflow in WORKFLOWS:
        states = json.loads(workflow.asl_path.read_text())["States"]
        gates = {s["Parameters"]["Payload"]["gate"]: s for s in states.values()
                 if s.get("Resource", "").endswith(".waitForTaskToken")}
        assert set(gates) == set(workflow.gates)
        assert all("TimeoutSecondsPath" in s or "TimeoutSeconds" in s for s in gates.values())


def test_no_task_token_ever_goes_out_in_a_message():
    """The token goes to the approval task only; emails carry signed links."""
    for workflow in WORKFLOWS:
        for state in json.loads(workflow.asl_path.read_text())["States"].values():
            if "Task.Token" in json.dumps(state):
                assert state["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
                assert state["Parameters"]["FunctionName"] == "${RequestApprovalFunctionArn}"


def test_polling_states_back_off_with_jitter_instead_of_wait_loops():
    for workflow in WORKFLOWS:
        states = json.loads(workflow.asl_path.read_text())["States"]
        for name, state in states.items():
            for retry in state.get("Retry", []):
                if "NotReadyYet" in retry["ErrorEquals"]:
                    assert retry["BackoffRate"] > 1 and retry["JitterStrategy"] == "FULL", name
                    assert retry["MaxDelaySeconds"] <= 300, name
            if state["Type"] == "Wait":
                assert state["Next"] not in {n for n, s in states.items() if s["Type"] == "Choice"}, name
