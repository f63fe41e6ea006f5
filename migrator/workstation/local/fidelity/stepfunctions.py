"""Step Functions: moto's ASL interpreter on the simulated clock, and its gaps."""

from __future__ import annotations

import copy
import importlib
import datetime as dt
import sys
from dataclasses import dataclass

from moto.core.responses import ActionResult, EmptyResult
from moto.stepfunctions.exceptions import InvalidToken, ResourceNotFound, ValidationException
from moto.stepfunctions.models import StateMachine
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
    StateTaskServiceSfn,
)
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackEndpoint, HeartbeatEndpoint
from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager
from moto.stepfunctions.parser.asl.utils import json_path
from moto.stepfunctions.responses import StepFunctionResponse

from migrator.workstation.local.fidelity import interpreter_threads, speed
from migrator.workstation.local.fidelity.context import Context

NO_TIMEOUT_SECONDS = 99_999_999  # moto's TimeoutSeconds when a state sets none


@dataclass
class StepFunctions:
    ctx: Context

    def install(self) -> None:
        self._install_clock()
        self._install_api()
        self._install_sfn_integration()
        self._install_json_path()

    def _install_clock(self) -> None:
        ctx, clock, patch = self.ctx, self.ctx.clock, self.ctx.patches.patch

        # AWS: Wait states, Retry intervals and task timeouts take (simulated) time;
        # moto: they slept in real time.
        def wait_interval(wait_function, env, wait_seconds):
            clock.wait(env.program_state_event, wait_seconds)

        patch(WaitFunction, "_wait_interval", wait_interval)
        # The interpreter's threads take turns on the clock's scheduler (determinism),
        # and what moto rebuilds on every call is built once (speed).
        self.execution_ended = interpreter_threads.install(clock, patch, ctx.random)
        speed.install(patch)

        # With people answering (local serve), the clock must not jump over a
        # gate's timeout while they read the email: the wait is soft then.
        # moto's stand-in for "no TimeoutSeconds" (the listener of every `.sync` task
        # waits with it) must not be a deadline the clock jumps to either.
        def callback_wait(endpoint, timeout=None):
            soft = ctx.people_answer or (timeout or 0) >= NO_TIMEOUT_SECONDS
            clock.wait(endpoint._notify_event, timeout, soft=soft)
            return endpoint._outcome

        def heartbeat_wait(endpoint):
            endpoint._next_heartbeat_event.clear()
            return clock.wait(endpoint._next_heartbeat_event, endpoint._heartbeat_seconds)

        patch(CallbackEndpoint, "wait", callback_wait)
        patch(HeartbeatEndpoint, "clear_and_wait", heartbeat_wait)

        # AWS: a history event is stamped with the time it happened; moto: the real
        # time, here the simulated one. Every event also counts as activity.
        def current_timestamp():
            return dt.datetime.fromtimestamp(clock.now(), dt.UTC)

        patch(EventManager, "_get_current_timestamp", staticmethod(current_timestamp))

        # AWS: an execution's startDate and stopDate, $$.State.EnteredTime and a Wait
        # state's Timestamp are on the same clock as its history; moto read the real
        # one there, so describe-execution disagreed with the history by hours.
        sim_datetime = _datetime_on(clock)
        for name in _MODULES_READING_NOW:
            patch(importlib.import_module(name), "datetime", sim_datetime)
        patch(sys.modules["moto.stepfunctions.models"], "utcnow", lambda: current_timestamp().replace(tzinfo=None))

    def _install_api(self) -> None:
        patch = self.ctx.patches.patch

        # AWS: SendTaskFailure's `cause` reaches the Catch (moto dropped it).
        def send_task_failure(response):
            response.stepfunction_backend.send_task_failure(
                response._get_param("taskToken"), error=response._get_param("error"),
                cause=response._get_param("cause"),
            )
            return EmptyResult()

        patch(StepFunctionResponse, "send_task_failure", send_task_failure)

        # AWS: SendTaskHeartbeat on a callback task that still waits succeeds, with or
        # without HeartbeatSeconds; once the task is answered it fails (TaskTimedOut).
        # moto refused every task without HeartbeatSeconds (InvalidToken).
        def notify_heartbeat(endpoint) -> bool:
            if endpoint._outcome is not None:
                return False
            if endpoint._heartbeat_endpoint:
                endpoint._heartbeat_endpoint.notify()
            return True

        patch(CallbackEndpoint, "notify_heartbeat", notify_heartbeat)

        # AWS: GetExecutionHistory pages (maxResults, default 100, at most 1000; nextToken),
        # honours reverseOrder, and leaves out every event's input and output when
        # includeExecutionData is false. moto returned everything, oldest first.
        def get_execution_history(response):
            events = response.stepfunction_backend.get_execution_history(response._get_param("executionArn"))["events"]
            if response._get_param("reverseOrder"):
                events = events[::-1]
            if response._get_param("includeExecutionData") is False:
                events = [_without_data(event) for event in events]
            page, token = _page(events, response._get_param("nextToken"), response._get_int_param("maxResults"))
            return ActionResult({"events": page, **({"nextToken": token} if token else {})})

        patch(StepFunctionResponse, "get_execution_history", get_execution_history)

        # AWS: ListExecutions needs a state machine ARN or a Map Run ARN (ValidationException
        # without either); this runtime's Maps are inline, so no Map Run exists
        # (ResourceNotFound). moto fell over with a 500 without an ARN.
        original_list_executions = StepFunctionResponse.list_executions

        def list_executions(response):
            machine, map_run = response._get_param("stateMachineArn"), response._get_param("mapRunArn")
            if machine and map_run:
                raise ValidationException("Specify either a state machine ARN or a Map Run ARN, not both")
            if map_run:
                raise ResourceNotFound(map_run)
            if not machine:
                raise ValidationException("Must provide a StateMachine ARN or MapRun ARN")
            return original_list_executions(response)

        patch(StepFunctionResponse, "list_executions", list_executions)

        # AWS: a state machine starts any number of executions. moto deep-copies
        # the machine per start, its past executions (with their locks) included,
        # and failed once an execution had run; the copy now shares them.
        def state_machine_deepcopy(machine, memo):
            clone = copy.copy(machine)
            clone.__dict__ = {
                key: value if key == "executions" else copy.deepcopy(value, memo)
                for key, value in machine.__dict__.items()
            }
            return clone

        patch(StateMachine, "__deepcopy__", state_machine_deepcopy)

    def _install_sfn_integration(self) -> None:
        patch = self.ctx.patches.patch

        # AWS: `states:startExecution(.sync)` takes the ASL's StateMachineArn, Name and
        # Input; moto handed them to botocore unchanged, which wants stateMachineArn,
        # name and input, and failed with KeyError 'StateMachineArn'.
        original_normalise = StateTaskServiceSfn._normalise_parameters

        def normalise_parameters(task, parameters, boto_service_name=None, service_action_name=None):
            original_normalise(task, parameters, boto_service_name, service_action_name)
            if service_action_name is None and task._get_boto_service_action() == "start_execution":
                for key in [k for k in parameters if k[:1].isupper()]:
                    parameters[key[0].lower() + key[1:]] = parameters.pop(key)

        patch(StateTaskServiceSfn, "_normalise_parameters", normalise_parameters)

        # ... and answered in botocore's camelCase where the integration answers
        # ExecutionArn, StartDate, Status, Output: the .sync:2 poll then failed.
        def pascal(response):
            if isinstance(response, dict):
                for key in [k for k in response if k[:1].islower()]:
                    response[key[0].upper() + key[1:]] = response.pop(key)

        original_eval = StateTaskServiceSfn._eval_service_task

        def eval_service_task(task, env, *args, **kwargs):
            original_eval(task, env, *args, **kwargs)
            pascal(env.stack[-1])

        patch(StateTaskServiceSfn, "_eval_service_task", eval_service_task)
        patch(StateTaskServiceSfn, "_normalise_response",
              lambda task, response, boto_service_name=None, service_action_name=None: pascal(response))

    def _install_json_path(self) -> None:
        patch = self.ctx.patches.patch

        # AWS: `$.a[0].b` selects one value; moto returned a one-element list, so a
        # Choice on it never matched.
        original = json_path.extract_json
        fixed = _fixed_extract_json(original)
        patch(json_path, "extract_json", fixed)
        for module in list(sys.modules.values()):
            if module is not None and getattr(module, "__name__", "").startswith("moto.stepfunctions.parser"):
                if module.__dict__.get("extract_json") is original:
                    patch(module, "extract_json", fixed)


HISTORY_PAGE, HISTORY_PAGE_MAX = 100, 1000
_MODULES_READING_NOW = [f"moto.stepfunctions.parser.{name}" for name in (
    "models", "backend.execution", "asl.component.state.state", "asl.component.state.wait.wait_function.timestamp",
    "asl.component.state.exec.state_parallel.branches_decl")]


def _datetime_on(clock):
    """The `datetime` module as those modules see it, its `now()` on the simulated clock."""
    import types

    class SimulatedDatetime(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls.fromtimestamp(clock.now(), tz)

    return types.SimpleNamespace(datetime=SimulatedDatetime, timezone=dt.timezone, timedelta=dt.timedelta,
                                 date=dt.date, UTC=dt.UTC)


def _page(events: list, token: str | None, max_results: int | None) -> tuple[list, str | None]:
    """One page of a history and the opaque token of the next (here, its offset)."""
    if token is not None and not token.isdigit():
        raise InvalidToken(f"Invalid token: {token}")
    start = int(token or 0)
    size = min(max_results or HISTORY_PAGE, HISTORY_PAGE_MAX)
    end = start + size
    return events[start:end], (str(end) if end < len(events) else None)


def _without_data(event: dict) -> dict:
    """An event as includeExecutionData=false shows it: no input, no output."""
    event = dict(event)
    for key, details in list(event.items()):
        if key.endswith("EventDetails") and isinstance(details, dict):
            event[key] = {k: v for k, v in details.items() if k not in ("input", "output")}
    return event


def _fixed_extract_json(original):
    from jsonpath_ng import ext
    from jsonpath_ng.jsonpath import Fields, Index

    def is_plain(path) -> bool:
        # A path of fields and literal indexes selects at most one value.
        node = path
        while hasattr(node, "left"):
            if not isinstance(node.right, (Fields, Index)):
                return False
            node = node.left
        return True

    def extract_json(path: str, data):
        expression = ext.parse(path)  # looked up per call: speed.py caches it
        if is_plain(expression) and "[" in path:
            matches = expression.find(data)
            if len(matches) == 1:
                return matches[0].value
        return original(path, data)

    return extract_json

