"""Every place where the local runtime makes moto behave like AWS, in one module.

Each fix names the AWS behaviour it reproduces; tests/local/test_fidelity.py
checks each one. `Fidelity.install()` patches moto for the life of a runtime and
`uninstall()` puts moto back exactly as it was.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import random
import sys
import threading
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import botocore.handlers
from botocore.awsrequest import AWSResponse
from moto.autoscaling import models as asg_models
from moto.autoscaling.exceptions import AutoscalingClientError, ValidationError
from moto.autoscaling.responses import AutoScalingResponse
from moto.awslambda.models import LambdaFunction
from moto.cloudwatch.models import cloudwatch_backends
from moto.core.responses import ActionResult, EmptyResult
from moto.core.exceptions import ServiceException
from moto.ec2.models import ec2_backends
from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix
from moto.ec2.models import elastic_block_store as ebs_models
from moto.ec2.models import elastic_ip_addresses as eip_models
from moto.ec2.models import instances as ec2_instances
from moto.eks import exceptions as eks_exceptions
from moto.eks import models as eks_models
from moto.eks import urls as eks_urls
from moto.eks.responses import EKSResponse
from moto.route53 import models as route53_models
from moto.ssm import models as ssm_models
from moto.ec2.responses.launch_templates import LaunchTemplates as LaunchTemplateResponses
from moto.elbv2.models import FakeHealthStatus, FakeTargetGroup
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
    StateTaskServiceSfn,
)
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackEndpoint, HeartbeatEndpoint
from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager
from moto.stepfunctions.parser.asl.utils import json_path
from moto.stepfunctions.models import StateMachine
from moto.stepfunctions.responses import StepFunctionResponse

from migrator.config import SOURCE_INSTANCE_TAG
from migrator.eks.nodegroup import SOURCE_NODEGROUP_TAG
from migrator.local import sfn_threads
from migrator.local.clock import SimClock
from migrator.local.kubernetes import NodegroupNodes
from migrator.local.scenario import Fault, Timings

THROTTLE_CODES = {"ec2": "RequestLimitExceeded", "ssm": "ThrottlingException"}
# Services of the fleet's resources; throttling them is what `throttle` rehearses.
THROTTLED_SERVICES = {"ec2", "autoscaling", "elasticloadbalancing", "cloudwatch", "monitoring", "ssm", "route53"}
SSM_COMMAND_SECONDS = 30  # how long a health script takes to report
NO_TIMEOUT_SECONDS = 99_999_999  # moto's TimeoutSeconds when a state sets none
TAINT_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}
_MISSING = object()


class ServiceUnavailable(ServiceException):
    code = "ServiceUnavailable"
    message = "The service is unavailable. Please try again shortly. (simulated cutover fault)"


class InstanceRefreshInProgress(AutoscalingClientError):
    code = "InstanceRefreshInProgress"


class ActiveInstanceRefreshNotFound(AutoscalingClientError):
    code = "ActiveInstanceRefreshNotFound"


class IrreversibleInstanceRefresh(AutoscalingClientError):
    code = "IrreversibleInstanceRefresh"


@dataclass
class LambdaContext:
    """What Powertools reads from the Lambda context object."""

    function_name: str
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = ""
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


@dataclass
class CallStats:
    total: int = 0
    throttled: int = 0
    per_second: dict[int, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def peak_per_second(self) -> int:
        return max(self.per_second.values(), default=0)


# --- instance refresh ------------------------------------------------------------


@dataclass
class InstanceRefresh:
    """An instance refresh as AWS runs one: with max healthy 100 % it terminates up
    to (100 - MinHealthyPercentage) % of the group at a time (at least one), launches
    replacements on the desired configuration, and moves on once they are InService
    and warmed up. It rolls back on failure or alarm when AutoRollback is set."""

    id: str
    group: str
    desired_version: str
    previous_version: str
    preferences: dict
    started_at: float
    status: str = "Pending"
    status_reason: str = ""
    ended_at: float | None = None
    instances_to_update: int = 0
    replaced: int = 0
    launched: list[str] = field(default_factory=list)
    batch: list[str] = field(default_factory=list)
    batch_ready_at: float = 0.0
    rolling_back: bool = False

    @property
    def terminal(self) -> bool:
        return self.status in {"Successful", "Failed", "Cancelled", "RollbackSuccessful", "RollbackFailed"}

    def describe(self) -> dict:
        result = {
            "InstanceRefreshId": self.id,
            "AutoScalingGroupName": self.group,
            "Status": self.status,
            "StartTime": dt.datetime.fromtimestamp(self.started_at, dt.UTC),
            "PercentageComplete": self.percentage,
            "InstancesToUpdate": max(0, self.instances_to_update - self.replaced),
            "Preferences": self.preferences,
            "DesiredConfiguration": {"LaunchTemplate": {"Version": self.desired_version}},
        }
        if self.status_reason:
            result["StatusReason"] = self.status_reason
        if self.ended_at is not None:
            result["EndTime"] = dt.datetime.fromtimestamp(self.ended_at, dt.UTC)
        return result

    @property
    def percentage(self) -> int:
        if self.status == "Successful":
            return 100
        if not self.instances_to_update:
            return 0
        return min(100, math.floor(100 * self.replaced / self.instances_to_update))


# --- the fidelity layer ------------------------------------------------------------


class Fidelity:
    def __init__(
        self,
        clock: SimClock,
        timings: Timings,
        handlers: dict[str, Callable],
        faults: list[Fault] | None = None,
        seed: int = 7,
    ):
        self.clock = clock
        self.timings = timings
        self.handlers = handlers  # function name -> handler(event, context)
        self.faults = faults or []
        self.people_answer = False  # set by `local serve`: approvals come from outside
        self.random = random.Random(seed)
        self.calls = CallStats()
        self.refreshes: dict[str, list[InstanceRefresh]] = defaultdict(list)  # newest first
        self.original_versions: dict[str, str] = {}  # group -> version the scenario built
        self.unhealthy_instances: set[str] = set()
        # instance id -> its Auto Scaling group (or None) for every stop/terminate
        self.changed_instances: dict[str, str | None] = {}
        self.standalone_targets: dict[str, str] = {}  # original instance id -> target name
        self.address_violations: list[str] = []  # moments an address or record served no running instance
        self.snapshot_completed_at: dict[str, float] = {}
        self.fired_alarms: set[str] = set()
        self.address_checks: list[Callable[[], str | None]] = []
        self.handler_output: deque[str] = deque(maxlen=10_000)  # what Lambda would send to CloudWatch Logs
        self._launch_time = threading.local()
        self._handler_thread = threading.local()
        self._lock = threading.RLock()
        self._saved: list[tuple[object, str, object]] = []
        self._saved_items: list[tuple[dict, object, object]] = []
        self.account, self.region = "123456789012", "us-east-1"  # set by the runtime
        self.addons: dict[str, dict[str, str]] = {}  # cluster -> add-on -> version
        self.nodegroup_runtime: dict[tuple[str, str], str] = {}  # (cluster, group) -> containerRuntimeVersion

    # --- install / uninstall ---------------------------------------------------

    def _patch_item(self, mapping: dict, key, value) -> None:
        self._saved_items.append((mapping, key, mapping.get(key, _MISSING)))
        mapping[key] = value

    def _after_init(self, cls, hook: Callable[[object], None]) -> None:
        """Run `hook` on every new object of a moto class (to stamp simulated times)."""
        original = cls.__init__

        def init(obj, *args, **kwargs):
            original(obj, *args, **kwargs)
            hook(obj)

        self._patch(cls, "__init__", init)

    def _patch(self, owner: object, name: str, value: object) -> None:
        self._saved.append((owner, name, owner.__dict__.get(name, getattr(owner, name, None))))
        setattr(owner, name, value)

    def install(self) -> None:
        global _ACTIVE
        _ACTIVE = self
        self._patch_interpreter()
        self._patch_lambda()
        self._patch_ec2()
        self._patch_autoscaling()
        self._patch_elbv2()
        self._patch_standalone()
        self._patch_eks()
        self._patch(sys, "stdout", _HandlerOutput(self, sys.stdout))
        _install_call_hook()

    def uninstall(self) -> None:
        global _ACTIVE
        for owner, name, value in reversed(self._saved):
            setattr(owner, name, value)
        self._saved.clear()
        for mapping, key, value in reversed(self._saved_items):
            if value is _MISSING:
                mapping.pop(key, None)
            else:
                mapping[key] = value
        self._saved_items.clear()
        _ACTIVE = None

    # --- Step Functions interpreter -------------------------------------------

    def _patch_interpreter(self) -> None:
        clock, fidelity = self.clock, self

        # AWS: Wait states, Retry intervals and task timeouts take simulated time.
        def wait_interval(wait_function, env, wait_seconds):
            clock.wait(env.program_state_event, wait_seconds)

        self._patch(WaitFunction, "_wait_interval", wait_interval)
        sfn_threads.install(clock, self._patch, self.random)
        sfn_threads.cache_parsed_definitions(self._patch)

        # With people answering (local serve), the clock must not jump over a
        # gate's timeout while they read the email: the wait is soft then.
        # moto's stand-in for "no TimeoutSeconds" (the listener of every `.sync` task
        # waits with it) must not be a deadline the clock jumps to either.
        def callback_wait(endpoint, timeout=None):
            soft = fidelity.people_answer or (timeout or 0) >= NO_TIMEOUT_SECONDS
            clock.wait(endpoint._notify_event, timeout, soft=soft)
            return endpoint._outcome

        def heartbeat_wait(endpoint):
            endpoint._next_heartbeat_event.clear()
            return clock.wait(endpoint._next_heartbeat_event, endpoint._heartbeat_seconds)

        self._patch(CallbackEndpoint, "wait", callback_wait)
        self._patch(HeartbeatEndpoint, "clear_and_wait", heartbeat_wait)

        # History timestamps on the simulated clock, and every event counts as activity.
        def current_timestamp():
            clock.touch()
            return dt.datetime.fromtimestamp(clock.now(), dt.UTC)

        self._patch(EventManager, "_get_current_timestamp", staticmethod(current_timestamp))

        # AWS: SendTaskFailure's `cause` reaches the Catch (moto dropped it).
        def send_task_failure(response):
            response.stepfunction_backend.send_task_failure(
                response._get_param("taskToken"), error=response._get_param("error"),
                cause=response._get_param("cause"),
            )
            return EmptyResult()

        self._patch(StepFunctionResponse, "send_task_failure", send_task_failure)

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

        self._patch(StateMachine, "__deepcopy__", state_machine_deepcopy)

        # AWS: `states:startExecution(.sync)` takes the ASL's StateMachineArn, Name and
        # Input; moto handed them to botocore unchanged, which wants stateMachineArn,
        # name and input, and failed with KeyError 'StateMachineArn'.
        original_normalise = StateTaskServiceSfn._normalise_parameters

        def normalise_parameters(task, parameters, boto_service_name=None, service_action_name=None):
            original_normalise(task, parameters, boto_service_name, service_action_name)
            if service_action_name is None and task._get_boto_service_action() == "start_execution":
                for key in [k for k in parameters if k[:1].isupper()]:
                    parameters[key[0].lower() + key[1:]] = parameters.pop(key)

        self._patch(StateTaskServiceSfn, "_normalise_parameters", normalise_parameters)

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

        self._patch(StateTaskServiceSfn, "_eval_service_task", eval_service_task)
        self._patch(StateTaskServiceSfn, "_normalise_response",
                    lambda task, response, boto_service_name=None, service_action_name=None: pascal(response))

        # AWS: `$.a[0].b` selects one value; moto returned a one-element list, so a
        # Choice on it never matched.
        original = json_path.extract_json
        fixed = _fixed_extract_json(original)
        self._patch(json_path, "extract_json", fixed)
        for module in list(sys.modules.values()):
            if module is not None and getattr(module, "__name__", "").startswith("moto.stepfunctions.parser"):
                if module.__dict__.get("extract_json") is original:
                    self._patch(module, "extract_json", fixed)

    # --- Lambda ----------------------------------------------------------------

    def _patch_lambda(self) -> None:
        fidelity = self

        # Lambda runs the handler (no Docker): an exception becomes the error
        # name and message Step Functions' Retry and Catch see, as on AWS.
        def invoke(function, event=None):
            handler = fidelity.handlers.get(function.function_name)
            if handler is None:
                return json.dumps({"errorType": "ResourceNotFoundException",
                                   "errorMessage": f"no local handler for {function.function_name}"}), True, ""
            payload = json.loads(event) if isinstance(event, (str, bytes)) and event else (event or {})
            context = LambdaContext(function.function_name, invoked_function_arn=function.function_arn)
            with fidelity.clock.busy():
                fidelity._handler_thread.active = True
                try:
                    return json.dumps(handler(payload, context), default=str), False, ""
                except Exception as error:  # the error reaches the state machine
                    body = {"errorType": type(error).__name__, "errorMessage": str(error)}
                    return json.dumps(body), True, ""
                finally:
                    fidelity._handler_thread.active = False

        self._patch(LambdaFunction, "_invoke_lambda", invoke)

    def in_handler(self) -> bool:
        return getattr(self._handler_thread, "active", False)

    # --- EC2 -------------------------------------------------------------------

    def launch_time(self) -> float:
        return getattr(self._launch_time, "at", None) or self.clock.now()

    @contextmanager
    def launched_at(self, at: float):
        """Instances this thread launches meanwhile count as launched at `at`."""
        self._launch_time.at = at
        try:
            yield
        finally:
            self._launch_time.at = None

    def _recording(self, original):
        fidelity = self

        def change(backend, instance_ids, *args, **kwargs):
            for instance_id in instance_ids:
                instance = backend.get_instance_by_id(instance_id)
                group = getattr(instance, "autoscaling_group", None)
                fidelity.changed_instances[instance_id] = group.name if group is not None else None
            result = original(backend, instance_ids, *args, **kwargs)
            fidelity.observe_addresses(backend)
            return result

        return change

    def _patch_ec2(self) -> None:
        fidelity = self
        self._after_init(ec2_instances.Instance, lambda instance: setattr(instance, "sim_launched_at", fidelity.launch_time()))

        # Speed, not behaviour: moto answered a resource's own tags by scanning every
        # tag of the account with regular expressions, for each resource a filter
        # looked at; the same records come straight from the resource's entry.
        def get_tags(resource):
            resource_id = getattr(resource, "id", None)
            if not resource_id:
                return []
            kind = EC2_PREFIX_TO_RESOURCE.get(get_prefix(resource_id), "")
            return [{"resource_id": resource_id, "key": key, "value": value, "resource_type": kind}
                    for key, value in resource.ec2_backend.tags.get(resource_id, {}).items()]

        self._patch(TaggedEC2Resource, "get_tags", get_tags)

        backend_cls = ec2_instances.InstanceBackend
        for method in ("terminate_instances", "stop_instances"):
            self._patch(backend_cls, method, self._recording(getattr(backend_cls, method)))
        # (stop/terminate then also check the addresses, see observe_addresses)

        # AWS: CreateLaunchTemplateVersion with SourceVersion starts from that
        # version's data; the request's LaunchTemplateData overrides top-level keys.
        def create_launch_template_version(response):
            name = response._get_param("LaunchTemplateName")
            template_id = response._get_param("LaunchTemplateId")
            template = (
                response.ec2_backend.get_launch_template_by_name(name)
                if name
                else response.ec2_backend.get_launch_template(template_id)
            )
            data = response._get_param("LaunchTemplateData", {})
            source = response._get_param("SourceVersion")
            if source:
                data = {**template.get_version(source).data, **data}
            response.error_on_dryrun()
            version = template.create_version(data, response._get_param("VersionDescription"))
            return ActionResult(
                {
                    "LaunchTemplateVersion": {
                        "CreateTime": version.create_time,
                        "DefaultVersion": template.is_default(version),
                        "LaunchTemplateData": version.data,
                        "LaunchTemplateId": template.id,
                        "LaunchTemplateName": template.name,
                        "VersionDescription": version.description,
                        "VersionNumber": version.number,
                    }
                }
            )

        self._patch(LaunchTemplateResponses, "create_launch_template_version", create_launch_template_version)

    # --- Auto Scaling ----------------------------------------------------------

    def booted(self, instance) -> bool:
        launched = getattr(instance, "sim_launched_at", None)
        return launched is None or self.clock.now() >= launched + self.timings.instance_boot

    def _patch_autoscaling(self) -> None:
        fidelity = self
        state_cls = asg_models.InstanceState

        # AWS: each instance reports the launch-template version it was launched
        # from (moto reported the template's default for all).
        def state_created(state):
            group = state.auto_scaling_group
            version = None
            if group is not None and group.ec2_launch_template is not None:
                version = str(group.ec2_launch_template.get_version(group.launch_template_version).number)
            state.launched_version = version
            fidelity._on_instance_launched(group, state)

        def launch_template(state):
            group = state.auto_scaling_group
            if group is None or group.ec2_launch_template is None:
                return None
            return {
                "LaunchTemplateId": group.ec2_launch_template.id,
                "LaunchTemplateName": group.ec2_launch_template.name,
                "Version": getattr(state, "launched_version", None)
                or str(group.ec2_launch_template.default_version_number),
            }

        # AWS: a new instance is Pending until it has booted, then InService.
        def get_lifecycle(state):
            raw = state.__dict__.get("_lifecycle_state", "InService")
            if raw == "InService" and not fidelity.booted(state.instance):
                return "Pending"
            return raw

        def set_lifecycle(state, value):
            state.__dict__["_lifecycle_state"] = value

        def get_health(state):
            raw = state.__dict__.get("_health_status", "Healthy")
            if state.instance.id in fidelity.unhealthy_instances and fidelity.booted(state.instance):
                return "Unhealthy"
            return raw

        def set_health(state, value):
            state.__dict__["_health_status"] = value

        self._after_init(state_cls, state_created)
        self._patch(state_cls, "launch_template", property(launch_template))
        self._patch(state_cls, "lifecycle_state", property(get_lifecycle, set_lifecycle))
        self._patch(state_cls, "health_status", property(get_health, set_health))
        # Capacity counts instances launching too, or moto would launch more.
        self._patch(
            asg_models.FakeAutoScalingGroup,
            "active_instances",
            lambda group: [s for s in group.instance_states if s.__dict__.get("_lifecycle_state") == "InService"],
        )

        original_terminate = asg_models.AutoScalingBackend.terminate_instance

        # AWS: an instance leaving its group is deregistered from the group's
        # target groups (moto left it registered).
        def terminate_instance(backend, instance_id, should_decrement):
            group = backend.ec2_backend.get_instance_by_id(instance_id).autoscaling_group
            fidelity.deregister(backend, group, [instance_id])
            return original_terminate(backend, instance_id, should_decrement)

        self._patch(asg_models.AutoScalingBackend, "terminate_instance", terminate_instance)

        # AWS: StartInstanceRefresh, DescribeInstanceRefreshes, CancelInstanceRefresh
        # and RollbackInstanceRefresh (moto has none of them).
        def start_instance_refresh(response):
            return ActionResult(fidelity.start_refresh(response.autoscaling_backend, response._get_params()))

        def describe_instance_refreshes(response):
            params = response._get_params()
            found = fidelity.describe_refreshes(
                response.autoscaling_backend, params["AutoScalingGroupName"], params.get("InstanceRefreshIds")
            )
            return ActionResult({"InstanceRefreshes": found})

        def cancel_instance_refresh(response):
            return ActionResult(
                fidelity.stop_refresh(response.autoscaling_backend, response._get_param("AutoScalingGroupName"), False)
            )

        def rollback_instance_refresh(response):
            return ActionResult(
                fidelity.stop_refresh(response.autoscaling_backend, response._get_param("AutoScalingGroupName"), True)
            )

        for name, method in {
            "start_instance_refresh": start_instance_refresh,
            "describe_instance_refreshes": describe_instance_refreshes,
            "cancel_instance_refresh": cancel_instance_refresh,
            "rollback_instance_refresh": rollback_instance_refresh,
        }.items():
            self._patch(AutoScalingResponse, name, method)

    def _on_instance_launched(self, group, state) -> None:
        """Faults at the canary step hit the first instance launched on a new version
        outside a refresh."""
        if group is None or group.name not in self.original_versions:
            return
        if state.launched_version == self.original_versions[group.name]:
            return
        if any(not r.terminal for r in self.refreshes[group.name]):
            return
        for fault in self.faults_for(f"asg/{group.name}", "canary"):
            self._apply_instance_fault(fault, group, state.instance.id)

    def faults_for(self, target: str, step: str) -> list[Fault]:
        return [f for f in self.faults if f.target == target and f.at == step]

    def _apply_instance_fault(self, fault: Fault, group, instance_id: str) -> None:
        if fault.kind == "unhealthy":
            self.unhealthy_instances.add(instance_id)
        elif fault.kind == "alarm":
            self.set_alarm(group, fault.alarm, "ALARM", f"simulated fault on {fault.target} at {fault.at}")

    def set_alarm(self, group, name: str, state: str, reason: str) -> None:
        backend = cloudwatch_backends[group.account_id][group.region]
        backend.set_alarm_state(name, reason, json.dumps({"simulated": True}), state)

    # --- instance refresh engine -----------------------------------------------

    def start_refresh(self, backend, params: dict) -> dict:
        name = params["AutoScalingGroupName"]
        group = backend.autoscaling_groups.get(name)
        if group is None:
            raise ValidationError(f"AutoScalingGroup name not found - {name}")
        with self._lock:
            if any(not r.terminal for r in self.refreshes[name]):
                raise InstanceRefreshInProgress("An Instance Refresh is already in progress and blocks the execution of this Instance Refresh.")
            desired = ((params.get("DesiredConfiguration") or {}).get("LaunchTemplate") or {}).get("Version")
            previous = str(group.ec2_launch_template.get_version(group.launch_template_version).number)
            desired = str(group.ec2_launch_template.get_version(desired).number) if desired else previous
            preferences = {"MinHealthyPercentage": 90, "SkipMatching": False, "AutoRollback": False,
                           **(params.get("Preferences") or {})}
            if preferences.get("AutoRollback") and not params.get("DesiredConfiguration"):
                raise ValidationError("AutoRollback requires a DesiredConfiguration")
            refresh = InstanceRefresh(
                id=str(uuid.uuid4()), group=name, desired_version=desired, previous_version=previous,
                preferences=preferences, started_at=self.clock.now(),
            )
            self.refreshes[name].insert(0, refresh)
        return {"InstanceRefreshId": refresh.id}

    def describe_refreshes(self, backend, name: str, ids: list[str] | None) -> list[dict]:
        group = backend.autoscaling_groups.get(name)
        found = []
        with self._lock:
            for refresh in self.refreshes[name]:
                if ids and refresh.id not in ids:
                    continue
                if group is not None:
                    self._advance(backend, group, refresh)
                found.append(refresh.describe())
        return found

    def stop_refresh(self, backend, name: str, roll_back: bool) -> dict:
        with self._lock:
            active = [r for r in self.refreshes[name] if not r.terminal]
            if not active:
                raise ActiveInstanceRefreshNotFound("No in progress or pending Instance Refresh found for Auto Scaling group " + name)
            refresh = active[0]
            if roll_back:
                if refresh.rolling_back:
                    raise IrreversibleInstanceRefresh("The instance refresh is already rolling back")
                self._begin_rollback(refresh, "Rollback requested by user")
            else:
                refresh.status = "Cancelling"
        return {"InstanceRefreshId": refresh.id}

    def _begin_rollback(self, refresh: InstanceRefresh, reason: str) -> None:
        refresh.rolling_back = True
        refresh.launched.extend(refresh.batch)  # a batch still launching goes back too
        refresh.batch = []
        refresh.status = "RollbackInProgress"
        refresh.status_reason = reason
        refresh.instances_to_update = len(refresh.launched) + len(refresh.batch)
        refresh.replaced = 0

    def _advance(self, backend, group, refresh: InstanceRefresh) -> None:
        """Play the refresh forward to the simulated now, batch by batch."""
        now = self.clock.now()
        target = f"asg/{group.name}"
        if refresh.status == "Pending":
            refresh.status = "InProgress"
            refresh.batch_ready_at = refresh.started_at
            refresh.instances_to_update = len(self._outdated(group, refresh))
            errors = [f for f in self.faults_for(target, "refresh") if f.kind == "error"]
            if errors and not refresh.rolling_back:
                self._fail(refresh, refresh.started_at, "Instance launch failed: simulated error (scenario fault)")
        while not refresh.terminal:
            if refresh.status == "Cancelling":
                self._end(refresh, "Cancelled", now)
                return
            if not refresh.rolling_back and refresh.status == "InProgress":
                alarm = self._alarm_firing(group, refresh)
                if alarm:
                    self._fail(refresh, now, f"Alarm {alarm} is in ALARM state")
                    continue
            if refresh.batch:
                if now < refresh.batch_ready_at:
                    return
                if not refresh.rolling_back and any(i in self.unhealthy_instances for i in refresh.batch):
                    self._fail(refresh, refresh.batch_ready_at, "Instances launched by the refresh failed health checks")
                    continue
                refresh.replaced += len(refresh.batch)
                if not refresh.rolling_back:
                    refresh.launched.extend(refresh.batch)
                refresh.batch = []
            outdated = self._outdated(group, refresh)
            if not outdated:
                if refresh.rolling_back:
                    self._end(refresh, "RollbackSuccessful", refresh.batch_ready_at)
                    for fault in self.faults_for(target, "refresh"):
                        if fault.kind == "alarm":
                            self.set_alarm(group, fault.alarm, "OK", "rolled back")
                else:
                    # AWS: a successful refresh leaves the group on the desired configuration.
                    group.launch_template_version = refresh.desired_version
                    group.provided_launch_template_version = refresh.desired_version
                    self._end(refresh, "Successful", refresh.batch_ready_at)
                return
            self._replace_batch(backend, group, refresh, outdated)

    def _outdated(self, group, refresh: InstanceRefresh) -> list[str]:
        members = {s.instance.id: s for s in group.instance_states}
        if refresh.rolling_back:
            # what this refresh launched goes back to the previous configuration
            return sorted(i for i in refresh.launched if i in members)
        skip = refresh.preferences.get("SkipMatching")
        return sorted(
            i for i, s in members.items()
            if i not in refresh.launched and not (skip and s.launched_version == refresh.desired_version)
        )

    def _replace_batch(self, backend, group, refresh: InstanceRefresh, outdated: list[str]) -> None:
        at = refresh.batch_ready_at
        min_healthy = int(refresh.preferences.get("MinHealthyPercentage", 90))
        size = max(1, math.floor(group.desired_capacity * (100 - min_healthy) / 100))
        take = outdated[:size]
        version = refresh.previous_version if refresh.rolling_back else refresh.desired_version
        if refresh.rolling_back:
            refresh.launched = [i for i in refresh.launched if i not in take]
        states = [s for s in group.instance_states if s.instance.id in take]
        group.instance_states = [s for s in group.instance_states if s.instance.id not in take]
        self.deregister(backend, group, take)
        backend.ec2_backend.terminate_instances(take)
        saved = group.launch_template_version
        group.launch_template_version = version
        self._launch_time.at = at
        try:
            before = {s.instance.id for s in group.instance_states}
            group.replace_autoscaling_group_instances(len(states), group.get_propagated_tags())
            new = [s.instance.id for s in group.instance_states if s.instance.id not in before]
        finally:
            self._launch_time.at = None
            group.launch_template_version = saved
        backend.update_attached_target_groups(group.name)
        for fault in self.faults_for(f"asg/{group.name}", "refresh"):
            if not refresh.rolling_back:
                for instance_id in new:
                    self._apply_instance_fault(fault, group, instance_id)
        refresh.batch = new
        warmup = int(refresh.preferences.get("InstanceWarmup") or group.health_check_grace_period or 0)
        refresh.batch_ready_at = at + self.timings.instance_boot + warmup

    @staticmethod
    def deregister(backend, group, instance_ids: list[str]) -> None:
        for arn in group.target_group_arns or []:
            backend.elbv2_backend.deregister_targets(arn, [{"Id": i} for i in instance_ids])

    def _alarm_firing(self, group, refresh: InstanceRefresh) -> str | None:
        names = (refresh.preferences.get("AlarmSpecification") or {}).get("Alarms") or []
        if not names:
            return None
        backend = cloudwatch_backends[group.account_id][group.region]
        for alarm in backend.get_alarms_by_alarm_names(names):
            if alarm.state_value == "ALARM":
                return alarm.name
        return None

    def _fail(self, refresh: InstanceRefresh, at: float, reason: str) -> None:
        if refresh.preferences.get("AutoRollback"):
            self._begin_rollback(refresh, reason)
            refresh.batch_ready_at = max(refresh.batch_ready_at, at)
        else:
            refresh.status_reason = reason
            self._end(refresh, "Failed", at)

    def _end(self, refresh: InstanceRefresh, status: str, at: float) -> None:
        refresh.status = status
        refresh.ended_at = at

    # --- standalone EC2: snapshots, status checks, SSM, client tokens, addresses ----

    def target_of_instance(self, instance) -> str | None:
        """The standalone target an instance is, or replaces (by the workflow's tag)."""
        if instance is None:
            return None
        if instance.id in self.standalone_targets:
            return self.standalone_targets[instance.id]
        source = instance.ec2_backend.tags.get(instance.id, {}).get(SOURCE_INSTANCE_TAG)
        return self.standalone_targets.get(source) if source else None

    def is_replacement(self, instance) -> bool:
        return instance.id not in self.standalone_targets and self.target_of_instance(instance) is not None

    def has_fault(self, target: str | None, step: str, kind: str) -> bool:
        return target is not None and any(f.kind == kind for f in self.faults_for(target, step))

    def _patch_standalone(self) -> None:
        fidelity = self
        snapshot_cls = ebs_models.Snapshot

        # AWS: a snapshot is `pending` with a progress until it completes (or ends
        # in `error`); moto made every snapshot `completed` at once.
        def snapshot_state(snapshot):
            started = getattr(snapshot, "sim_started_at", None)
            if started is None:
                return "completed"
            attachment = getattr(snapshot.volume, "attachment", None)
            instance = getattr(attachment, "instance", None)
            done_at = started + fidelity.timings.snapshot_complete
            if fidelity.clock.now() < done_at:
                return "pending"
            if fidelity.has_fault(fidelity.target_of_instance(instance), "snapshot", "error"):
                return "error"
            fidelity.snapshot_completed_at.setdefault(snapshot.id, done_at)
            return "completed"

        def snapshot_progress(snapshot):
            started = getattr(snapshot, "sim_started_at", None)
            if started is None or snapshot_state(snapshot) != "pending":
                return "100%"
            done = (fidelity.clock.now() - started) / max(1.0, fidelity.timings.snapshot_complete)
            return f"{min(99, int(done * 100))}%"

        def snapshot_message(snapshot):
            return "Snapshot failed: simulated error (scenario fault)" if snapshot_state(snapshot) == "error" else None

        self._after_init(snapshot_cls, lambda snapshot: setattr(snapshot, "sim_started_at", fidelity.clock.now()))
        # `status` feeds DescribeSnapshots, `state` the SnapshotInfo of CreateSnapshots
        self._patch(snapshot_cls, "status", property(snapshot_state, lambda snapshot, value: None))
        self._patch(snapshot_cls, "state", property(snapshot_state))
        self._patch(snapshot_cls, "progress", property(snapshot_progress))
        self._patch(snapshot_cls, "status_message", property(snapshot_message))

        # AWS: status checks are `initializing` after a start until the instance has
        # booted and passed them; `impaired` under an `unhealthy` fault.
        instance_cls = ec2_instances.Instance

        def status(instance):
            if instance.state_code != 16:
                return {"Status": "not-applicable"}
            launched = getattr(instance, "sim_launched_at", None) or 0
            target = fidelity.target_of_instance(instance)
            if fidelity.clock.now() < launched + fidelity.timings.instance_boot + fidelity.timings.health_grace:
                value, detail = "initializing", "initializing"
            elif instance.id in fidelity.unhealthy_instances or (
                    fidelity.is_replacement(instance) and fidelity.has_fault(target, "validate", "unhealthy")):
                value, detail = "impaired", "failed"
            else:
                value, detail = "ok", "passed"
            if value == "ok" and fidelity.is_replacement(instance):
                for fault in fidelity.faults_for(target, "validate"):
                    if fault.kind == "alarm" and fault.alarm not in fidelity.fired_alarms:
                        fidelity.fired_alarms.add(fault.alarm)
                        fidelity.set_alarm_by_name(instance.ec2_backend, fault.alarm, "ALARM")
            return {"Status": value, "Details": [{"Name": "reachability", "Status": detail}]}

        self._patch(instance_cls, "instance_status", property(status))
        self._patch(instance_cls, "system_status", property(status))

        backend_cls = ec2_instances.InstanceBackend
        original_start = backend_cls.start_instances

        def start_instances(backend, instance_ids):
            result = original_start(backend, instance_ids)
            for instance_id in instance_ids:  # a started instance boots again
                backend.get_instance_by_id(instance_id).sim_launched_at = fidelity.clock.now()
            fidelity.observe_addresses(backend)
            return result

        self._patch(backend_cls, "start_instances", start_instances)

        # AWS: RunInstances with a ClientToken already used returns that launch
        # instead of launching again; moto launched again.
        original_run = fidelity._saved_original(backend_cls, "run_instances")

        def run_instances(backend, image_id, count, user_data, security_group_names, **kwargs):
            token = kwargs.get("client_token")
            if token and token != "ABCDE":
                for reservation in backend.reservations.values():
                    if any(getattr(i, "client_token", None) == token for i in reservation.instances):
                        return reservation
            return original_run(backend, image_id, count, user_data, security_group_names, **kwargs)

        self._patch(backend_cls, "run_instances", run_instances)

        # AWS: a Run Command invocation is InProgress for a while, then Success,
        # or Failed when the health script fails; moto answered Success at once.
        original_invocation = ssm_models.Command.get_invocation

        def get_invocation(command, instance_id, plugin_name):
            invocation = dict(original_invocation(command, instance_id, plugin_name))
            ec2_backend = ec2_backends[command.account_id][command.backend_region]
            instance = ec2_backend.get_instance_by_id(instance_id)
            if fidelity.clock.now() < getattr(command, "sim_requested_at", 0) + SSM_COMMAND_SECONDS:
                invocation.update(Status="InProgress", StatusDetails="InProgress", ResponseCode=-1)
            elif instance_id in fidelity.unhealthy_instances or (
                    fidelity.is_replacement(instance)
                    and fidelity.has_fault(fidelity.target_of_instance(instance), "validate", "unhealthy")):
                invocation.update(Status="Failed", StatusDetails="Failed", ResponseCode=1,
                                  StandardErrorContent="health check failed: app not answering on :8080 (simulated)")
            else:
                invocation.update(StandardOutputContent="app healthy\n")
            return invocation

        self._after_init(ssm_models.Command, lambda command: setattr(command, "sim_requested_at", fidelity.clock.now()))
        self._patch(ssm_models.Command, "get_invocation", get_invocation)

        # Faults at the cutover: the API call fails, or the new instance turns
        # unhealthy / the alarm fires once it serves.
        original_associate = eip_models.ElasticAddressBackend.associate_address

        def associate_address(backend, *args, **kwargs):
            instance = kwargs.get("instance") or (args[0] if args else None)
            fidelity.before_cutover_call(backend, instance)
            result = original_associate(backend, *args, **kwargs)
            fidelity.after_cutover_call(backend, instance)
            return result

        self._patch(eip_models.ElasticAddressBackend, "associate_address", associate_address)

        original_change = route53_models.Route53Backend.change_resource_record_sets

        def change_resource_record_sets(backend, zone_id, change_list):
            instances = fidelity.instances_by_ip(change_list)
            for instance in instances:
                fidelity.before_cutover_call(instance.ec2_backend, instance)
            result = original_change(backend, zone_id, change_list)
            for instance in instances:
                fidelity.after_cutover_call(instance.ec2_backend, instance)
            return result

        self._patch(route53_models.Route53Backend, "change_resource_record_sets", change_resource_record_sets)

    def _saved_original(self, owner, name):
        return owner.__dict__[name]

    def instances_by_ip(self, change_list) -> list:
        ips = {record for change in change_list for record in _record_values(change)}
        found = []
        for region_backends in ec2_backends.values():
            for backend in region_backends.values():
                for instance in backend.all_instances():
                    if instance.private_ip in ips:
                        found.append(instance)
        return found

    def before_cutover_call(self, backend, instance) -> None:
        if instance is None or not self.is_replacement(instance):
            return
        if self.has_fault(self.target_of_instance(instance), "cutover", "error"):
            raise ServiceUnavailable()

    def after_cutover_call(self, backend, instance) -> None:
        if instance is not None and self.is_replacement(instance):
            for fault in self.faults_for(self.target_of_instance(instance), "cutover"):
                if fault.kind == "unhealthy":
                    self.unhealthy_instances.add(instance.id)
                elif fault.kind == "alarm":
                    self.set_alarm_by_name(instance.ec2_backend, fault.alarm, "ALARM")
        self.observe_addresses(backend)

    def set_alarm_by_name(self, ec2_backend, name: str, state: str) -> None:
        backend = cloudwatch_backends[ec2_backend.account_id][ec2_backend.region_name]
        backend.set_alarm_state(name, "simulated fault", json.dumps({"simulated": True}), state)

    def observe_addresses(self, _backend=None) -> None:
        """AWS has no such check: this watches our own promise that every Elastic IP
        and record of a standalone target points at a running instance."""
        for check in self.address_checks:
            problem = check()
            if problem:
                self.address_violations.append(f"at {self.clock.elapsed():.0f}s: {problem}")

    # --- EKS: node group lifecycle, add-ons, optimized-AMI parameters ------------------

    def _patch_eks(self) -> None:
        fidelity = self
        group_cls = eks_models.Nodegroup

        def group_created(group):
            group.sim_created_at = fidelity.clock.now()
            group.sim_deleting_at = None
            fidelity.launch_node_instances(group)

        # AWS: a node group is CREATING while its instances launch, then ACTIVE (or
        # CREATE_FAILED with health issues); DELETING, then gone. moto: ACTIVE at once.
        def group_status(group):
            if getattr(group, "sim_deleting_at", None) is not None:
                return "DELETING"
            if fidelity.clock.now() < getattr(group, "sim_created_at", 0) + fidelity.timings.nodegroup_create:
                return "CREATING"
            return "CREATE_FAILED" if fidelity.nodegroup_failed(group) else "ACTIVE"

        def group_health(group):
            if group_status(group) == "CREATE_FAILED":
                return {"issues": [{"code": "AsgInstanceLaunchFailures",
                                    "message": "Instances failed to join the kubernetes cluster (simulated fault)",
                                    "resourceIds": [group.resources["autoScalingGroups"][0]["name"]]}]}
            return {"issues": []}

        self._after_init(group_cls, group_created)
        self._patch(group_cls, "status", property(group_status, lambda group, value: None))
        self._patch(group_cls, "health", property(group_health, lambda group, value: None))

        backend_cls = eks_models.EKSBackend
        original_describe = backend_cls.describe_nodegroup
        original_list = backend_cls.list_nodegroups

        def delete_nodegroup(backend, cluster_name, nodegroup_name):
            group = original_describe(backend, cluster_name, nodegroup_name)  # raises if unknown
            if group.sim_deleting_at is None:
                group.sim_deleting_at = fidelity.clock.now()
            return group

        def describe_nodegroup(backend, cluster_name, nodegroup_name):
            fidelity.purge_deleted(backend, cluster_name)
            return original_describe(backend, cluster_name, nodegroup_name)

        def list_nodegroups(backend, cluster_name, *args, **kwargs):
            fidelity.purge_deleted(backend, cluster_name)
            return original_list(backend, cluster_name, *args, **kwargs)

        self._patch(backend_cls, "delete_nodegroup", delete_nodegroup)
        self._patch(backend_cls, "describe_nodegroup", describe_nodegroup)
        self._patch(backend_cls, "list_nodegroups", list_nodegroups)

        # AWS: ListAddons and DescribeAddon (moto has neither).
        for pattern in ("{0}/clusters/(?P<name>[^/]+)/addons$", "{0}/clusters/(?P<name>[^/]+)/addons/(?P<addonName>[^/]+)$"):
            self._patch_item(eks_urls.url_paths, pattern, eks_urls.response.dispatch)

        def list_addons(response):
            return ActionResult({"addons": sorted(fidelity.addons.get(response._get_param("name"), {}))})

        def describe_addon(response):
            cluster, name = response._get_param("name"), response._get_param("addonName")
            version = fidelity.addons.get(cluster, {}).get(name)
            if version is None:
                raise eks_exceptions.ResourceNotFoundException(
                    clusterName=cluster, nodegroupName=None, fargateProfileName=None, addonName=name,
                    message=f"No addon: {name} found in cluster: {cluster}")
            return ActionResult({"addon": {"addonName": name, "clusterName": cluster, "status": "ACTIVE",
                                           "addonVersion": version, "health": {"issues": []}}})

        self._patch(EKSResponse, "list_addons", list_addons)
        self._patch(EKSResponse, "describe_addon", describe_addon)

    def launch_node_instances(self, group) -> None:
        """A managed node group's instances, tagged as EKS tags them, so discovery
        finds them (the nodes themselves live in the simulated API server)."""
        if self.nodegroup_failed(group):
            return
        ec2 = ec2_backends[self.account][self.region]
        parameter = ("/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
                     if group.ami_type.startswith("AL2023") else
                     "/aws/service/ami-amazon-linux-latest/amzn2-ami-kernel-5.10-hvm-x86_64-gp2")
        from moto.ssm.models import ssm_backends

        image = ssm_backends[self.account][self.region].get_parameter(parameter).value
        tags = {"eks:cluster-name": group.cluster_name, "eks:nodegroup-name": group.nodegroup_name,
                f"kubernetes.io/cluster/{group.cluster_name}": "owned",
                "Name": f"{group.cluster_name}-{group.nodegroup_name}-node"}
        reservation = ec2.run_instances(image, group.scaling_config.get("desiredSize", 0), None, [],
                                        instance_type=(group.instance_types or ["m5.large"])[0],
                                        subnet_id=(group.subnets or [None])[0], tags={"instance": tags},
                                        is_instance_type_default=False)
        group.sim_instance_ids = [i.id for i in reservation.instances]

    def nodegroup_failed(self, group) -> bool:
        source = (group.tags or {}).get(SOURCE_NODEGROUP_TAG)
        return bool(source) and self.has_fault(f"eks/{group.cluster_name}/{source}", "create", "error")

    def purge_deleted(self, backend, cluster_name: str) -> None:
        cluster = backend.clusters.get(cluster_name)
        if cluster is None:
            return
        for name, group in list(cluster.nodegroups.items()):
            deleting = getattr(group, "sim_deleting_at", None)
            if deleting is not None and self.clock.now() >= deleting + self.timings.nodegroup_delete:
                del cluster.nodegroups[name]
                cluster.nodegroup_count -= 1
                ec2 = ec2_backends[self.account][self.region]
                ids = getattr(group, "sim_instance_ids", [])
                if ids:
                    ec2.terminate_instances(ids)

    def publish_eks_ami_parameters(self, versions: set[str]) -> None:
        """AWS publishes the EKS-optimized AMI ids as public SSM parameters; moto has none."""
        from moto.ssm.models import Parameter, ssm_backends

        backend = ssm_backends[self.account][self.region]
        al2023 = backend.get_parameter("/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64").value
        al2 = backend.get_parameter("/aws/service/ami-amazon-linux-latest/amzn2-ami-kernel-5.10-hvm-x86_64-gp2").value
        for version in versions:
            for family, image in (("amazon-linux-2023/x86_64/standard", al2023), ("amazon-linux-2", al2)):
                name = f"/aws/service/eks/optimized-ami/{version}/{family}/recommended/image_id"
                backend._parameters[name].append(Parameter(
                    account_id=self.account, name=name, value=image, parameter_type="String", description="",
                    allowed_pattern=None, keyid=None, version=1,
                    last_modified_date=dt.datetime.fromtimestamp(self.clock.now(), dt.UTC),
                    data_type="text"))

    def nodegroup_nodes(self, cluster_name: str) -> list[NodegroupNodes]:
        """What the simulated API server registers: each group's nodes once its
        instances booted, until the group is deleted."""
        backend = eks_models.eks_backends[self.account][self.region]
        cluster = backend.clusters.get(cluster_name)
        if cluster is None:
            return []
        timings = self.timings
        groups = []
        for group in list(cluster.nodegroups.values()):
            failed = self.nodegroup_failed(group)
            created = getattr(group, "sim_created_at", 0)
            deleting = getattr(group, "sim_deleting_at", None)
            groups.append(NodegroupNodes(
                name=group.nodegroup_name,
                size=group.scaling_config.get("desiredSize", 0),
                labels=dict(group.labels or {}),
                taints=[{"key": t["key"], "value": t.get("value"), "effect": TAINT_EFFECTS[t["effect"]]}
                        for t in (group.taints or [])],
                os_image="Amazon Linux 2023.6.20241010" if group.ami_type.startswith("AL2023") else "Amazon Linux 2",
                runtime=self.nodegroup_runtime.get((cluster_name, group.nodegroup_name), "containerd://1.7.22"),
                registered_at=None if failed else created + timings.nodegroup_create + timings.instance_boot,
                removed_at=None if deleting is None else deleting + min(60.0, timings.nodegroup_delete / 2),
            ))
        return groups

    def blocked_pdbs(self, sim) -> set[str]:
        """Under a `pdb-blocked` fault every budget of the cluster allows no
        disruption while that node group is being drained (cordoned and tainted)."""
        for fault in self.faults:
            if fault.kind != "pdb-blocked" or not fault.target.startswith(f"eks/{sim.name}/"):
                continue
            group = fault.target.rsplit("/", 1)[1]
            if any(n.nodegroup == group and n.unschedulable and any(t.get("key") == "os" for t in n.taints)
                   for n in sim.nodes.values()):
                return {w.name for w in sim.workloads.values() if w.pdb_min_available is not None}
        return set()

    # --- ELBv2 -----------------------------------------------------------------

    def _patch_elbv2(self) -> None:
        fidelity = self
        original = FakeTargetGroup.health_for

        # AWS: a new target is `initial` until it passes the health checks after
        # boot and the grace period; under an `unhealthy` fault it goes `unhealthy`.
        def health_for(group, target, ec2_backend):
            status = original(group, target, ec2_backend)
            if status.status != "healthy" or not target["Id"].startswith("i-"):
                return status
            instance = ec2_backend.get_instance_by_id(target["Id"])
            launched = getattr(instance, "sim_launched_at", None)
            if launched is None:
                return status
            ready_at = launched + fidelity.timings.instance_boot + fidelity.timings.health_grace
            if target["Id"] in fidelity.unhealthy_instances and fidelity.booted(instance):
                return FakeHealthStatus(status.instance_id, status.port, status.health_check_port, "unhealthy",
                                        "Target.FailedHealthChecks", "Health checks failed with these codes: [502]")
            if fidelity.clock.now() < ready_at:
                return FakeHealthStatus(status.instance_id, status.port, status.health_check_port, "initial",
                                        "Elb.RegistrationInProgress", "Target registration is in progress")
            return status

        self._patch(FakeTargetGroup, "health_for", health_for)

    # --- AWS calls: counting and the `throttle` fault ----------------------------

    def throttle_rate(self) -> float:
        return max((f.rate for f in self.faults if f.kind == "throttle"), default=0.0)

    def on_call(self, service: str, operation: str):
        if not self.in_handler():
            return None
        self.clock.touch()
        with self._lock:
            self.calls.total += 1
            self.calls.per_second[int(self.clock.elapsed())] += 1
            rate = self.throttle_rate()
            throttle = rate and service in THROTTLED_SERVICES and self.random.random() < rate
            if throttle:
                self.calls.throttled += 1
        if throttle:
            code = THROTTLE_CODES.get(service, "Throttling")
            response = AWSResponse("https://local", 400, {}, None)
            return response, {"Error": {"Code": code, "Message": "Rate exceeded"},
                              "ResponseMetadata": {"HTTPStatusCode": 400}}
        return None


# --- helpers ------------------------------------------------------------------------

_ACTIVE: Fidelity | None = None
_HOOK_INSTALLED = False


def _call_hook(model=None, **kwargs):
    fidelity = _ACTIVE
    if fidelity is None or model is None:
        return None
    return fidelity.on_call(model.service_model.endpoint_prefix, model.name)


def _install_call_hook() -> None:
    """Every botocore client created from now on reports its calls to the active
    runtime (clients outlive a runtime, so the hook is installed once)."""
    global _HOOK_INSTALLED
    if not _HOOK_INSTALLED:
        botocore.handlers.BUILTIN_HANDLERS.append(("before-call.*.*", _call_hook))
        _HOOK_INSTALLED = True


class _HandlerOutput:
    """stdout: what handlers print (Powertools' EMF metrics, logs) is kept as
    Lambda's log output instead of mixing into the CLI's output."""

    def __init__(self, fidelity: Fidelity, stream):
        self._fidelity = fidelity
        self._stream = stream

    def write(self, text: str) -> int:
        if self._fidelity.in_handler():
            if text.strip():
                self._fidelity.handler_output.append(text)
            return len(text)
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _record_values(change) -> list[str]:
    record_set = change.get("ResourceRecordSet") or {}
    records = record_set.get("ResourceRecords") or []
    return [r.get("Value") if isinstance(r, dict) else r for r in records]


def _fixed_extract_json(original):
    from jsonpath_ng.ext import parse
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
        expression = parse(path)
        if is_plain(expression) and "[" in path:
            matches = expression.find(data)
            if len(matches) == 1:
                return matches[0].value
        return original(path, data)

    return extract_json

