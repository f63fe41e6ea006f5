"""Static checks of the ASL files against the registry both CDK and the runtime use."""

import json
import re

from migrator.asg.results import RolloutState
from migrator.eks.in_place_models import InPlaceState
from migrator.eks.karpenter_models import KarpenterState
from migrator.eks.results import NodegroupState
from migrator.eks.self_managed_models import SelfManagedState
from migrator.fleet.waves import TargetRun, WaveState
from migrator.standalone.results import MigrationState
from migrator.workflows import (
    ASG_ROLLOUT,
    EKS_IN_PLACE,
    EKS_KARPENTER,
    EKS_NODEGROUP,
    EKS_SELF_MANAGED,
    FLEET,
    STANDALONE_EC2,
    WORKFLOWS,
)

STATE_MODELS = {ASG_ROLLOUT.name: RolloutState, STANDALONE_EC2.name: MigrationState,
                EKS_NODEGROUP.name: NodegroupState, EKS_IN_PLACE.name: InPlaceState,
                EKS_KARPENTER.name: KarpenterState, EKS_SELF_MANAGED.name: SelfManagedState, FLEET.name: WaveState}
# A Map's iterations have their own state: what its ItemSelector builds.
ITERATION_MODELS = {(FLEET.name, "RunTargets"): TargetRun}


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


def _result_paths(workflow, states: dict, model):
    """(state, ResultPath, model) for every state and Catch, nested Map and Parallel states included."""
    for name, state in states.items():
        paths = [state.get("ResultPath")] + [catch.get("ResultPath") for catch in state.get("Catch", [])]
        for path in paths:
            if path not in (None, "$"):  # null discards the result, "$" replaces the whole state
                yield name, path, model
        if state["Type"] == "Map":
            inner = ITERATION_MODELS.get((workflow.name, name))
            assert inner, f"{workflow.asl_file}: no state model for the iterations of Map {name}"
            processor = state.get("ItemProcessor") or state["Iterator"]
            yield from _result_paths(workflow, processor["States"], inner)
        if state["Type"] == "Parallel":
            # each branch starts from the Parallel's own input, unless Parameters reshape it
            inner = ITERATION_MODELS.get((workflow.name, name)) or (None if "Parameters" in state else model)
            assert inner, f"{workflow.asl_file}: no state model for the branches of Parallel {name}"
            for branch in state["Branches"]:
                yield from _result_paths(workflow, branch["States"], inner)


def test_every_result_path_is_a_field_of_the_workflows_state_model():
    """A task's event model drops what it does not declare: a result written anywhere
    else would be invisible to every later task."""
    assert set(STATE_MODELS) == {w.name for w in WORKFLOWS}
    missing = []
    for workflow in WORKFLOWS:
        states = json.loads(workflow.asl_path.read_text())["States"]
        for name, path, model in _result_paths(workflow, states, STATE_MODELS[workflow.name]):
            field = re.match(r"\$\.(\w+)", path)
            if not field or field.group(1) not in model.model_fields:
                missing.append(f"{workflow.asl_file} {name}: {path} is not a field of {model.__name__}")
    assert missing == []


def test_a_failed_gate_tells_the_rollback_which_gate_it_was():
    """Rejected or timed out, an approval's Catch that rolls back goes through a Pass that records its
    gate (an unanswered standalone decommission keeps the replacement instead: no rollback)."""
    for workflow in WORKFLOWS:
        states = json.loads(workflow.asl_path.read_text())["States"]
        if "Rollback" not in states:
            continue
        for name, state in states.items():
            if not state.get("Resource", "").endswith(".waitForTaskToken"):
                continue
            for catch in state["Catch"]:
                if catch["ErrorEquals"] == ["States.Timeout"] and catch["Next"] == "KeepOldInstance":
                    continue
                recorder = states[catch["Next"]]
                assert (recorder["Type"], recorder["ResultPath"], recorder["Next"]) == (
                    "Pass", "$.failed_gate", "Rollback"), name
                assert recorder["Result"] == state["Parameters"]["Payload"]["gate"], name


def test_the_workflows_of_one_target_take_its_name_from_the_state_never_format_it():
    for workflow in (ASG_ROLLOUT, STANDALONE_EC2, EKS_NODEGROUP, EKS_KARPENTER, EKS_SELF_MANAGED):
        named = re.findall(r'"target\.\$": "([^"]+)"', workflow.asl_path.read_text())
        assert named and set(named) <= {"$.target", "$.preflight.target"}, workflow.asl_file
