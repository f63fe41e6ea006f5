"""Auto Scaling: instances that take time to boot, report their own launch-template
version and leave their target groups; instance refreshes, which moto lacks."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from moto.autoscaling import models as asg_models
from moto.autoscaling.exceptions import AutoscalingClientError, ValidationError
from moto.autoscaling.responses import AutoScalingResponse
from moto.cloudwatch.models import cloudwatch_backends
from moto.core.responses import ActionResult

from migrator.workstation.local.fidelity.context import Context, set_alarm
from migrator.workstation.local.fidelity.ec2 import EC2
from migrator.workstation.local.scenario import AutoScalingGroupSpec, Event, Fault


class InstanceRefreshInProgress(AutoscalingClientError):
    code = "InstanceRefreshInProgress"


class ActiveInstanceRefreshNotFound(AutoscalingClientError):
    code = "ActiveInstanceRefreshNotFound"


class IrreversibleInstanceRefresh(AutoscalingClientError):
    code = "IrreversibleInstanceRefresh"


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


class AutoScaling:
    def __init__(self, ctx: Context, ec2: EC2):
        self.ctx = ctx
        self.ec2 = ec2
        self.refreshes: dict[str, list[InstanceRefresh]] = defaultdict(list)  # newest first
        self.original_versions: dict[str, str] = {}  # group -> version the scenario built
        self.launching_batch = False  # a refresh's batch is launching (its own version)
        self.pending_events: list[Event] = []  # the scenario's scale events, not yet come
        self.group_specs: dict[str, AutoScalingGroupSpec] = {}  # by target
        self.applied_events: dict[str, list[int]] = defaultdict(list)  # target -> desired set by others

    def install(self) -> None:
        asg, ctx, patches = self, self.ctx, self.ctx.patches
        state_cls = asg_models.InstanceState

        # AWS: each instance reports the launch-template version it was launched
        # from (moto reported the template's default for all).
        def state_created(state):
            group = state.auto_scaling_group
            version = None
            if group is not None and group.ec2_launch_template is not None:
                version = str(group.ec2_launch_template.get_version(group.launch_template_version).number)
            state.launched_version = version
            asg._on_instance_launched(group, state)

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

        # AWS: a new instance is Pending until it has booted, then InService, and
        # Unhealthy once booted under an `unhealthy` fault; moto: InService, Healthy.
        def get_lifecycle(state):
            raw = state.__dict__.get("_lifecycle_state", "InService")
            if raw == "InService" and not asg.ec2.booted(state.instance):
                return "Pending"
            return raw

        def set_lifecycle(state, value):
            state.__dict__["_lifecycle_state"] = value

        def get_health(state):
            raw = state.__dict__.get("_health_status", "Healthy")
            if state.instance.id in ctx.unhealthy_instances and asg.ec2.booted(state.instance):
                return "Unhealthy"
            return raw

        def set_health(state, value):
            state.__dict__["_health_status"] = value

        patches.after_init(state_cls, state_created)
        patches.patch(state_cls, "launch_template", property(launch_template))
        patches.patch(state_cls, "lifecycle_state", property(get_lifecycle, set_lifecycle))
        patches.patch(state_cls, "health_status", property(get_health, set_health))
        # Capacity counts instances launching too, or moto would launch more.
        patches.patch(
            asg_models.FakeAutoScalingGroup,
            "active_instances",
            lambda group: [s for s in group.instance_states if s.__dict__.get("_lifecycle_state") == "InService"],
        )

        original_terminate = asg_models.AutoScalingBackend.terminate_instance

        # AWS: an instance leaving its group is deregistered from the group's
        # target groups (moto left it registered).
        def terminate_instance(backend, instance_id, should_decrement):
            group = backend.ec2_backend.get_instance_by_id(instance_id).autoscaling_group
            asg.deregister(backend, group, [instance_id])
            return original_terminate(backend, instance_id, should_decrement)

        patches.patch(asg_models.AutoScalingBackend, "terminate_instance", terminate_instance)

        # AWS: AttachInstances raises DesiredCapacity by the number attached and
        # refuses (ValidationError) when that would exceed MaxSize; the instance
        # keeps the launch-template version it was launched from (EC2's
        # aws:ec2launchtemplate:version tag) and joins the group's target groups.
        # moto: compared the instance count with MaxSize and set desired from it.
        def attach_instances(backend, group_name, instance_ids):
            group = backend.autoscaling_groups[group_name]
            if group.desired_capacity + len(instance_ids) > group.max_size:
                raise ValidationError(
                    f"Desired capacity:{group.desired_capacity + len(instance_ids)} must be between the specified "
                    f"min size:{group.min_size} and max size:{group.max_size}")
            group.desired_capacity += len(instance_ids)
            for instance_id in instance_ids:
                instance = backend.ec2_backend.get_instance(instance_id)
                backend.ec2_backend.create_tags([instance_id], {asg_models.ASG_NAME_TAG: group.name})
                state = asg_models.InstanceState(instance, protected_from_scale_in=group.new_instances_protected_from_scale_in,
                                                 autoscaling_group=group)
                state.launched_version = backend.ec2_backend.tags.get(instance_id, {}).get(
                    "aws:ec2launchtemplate:version", state.launched_version)
                group.instance_states.append(state)
                asg._on_instance_launched(group, state)
            backend.update_attached_target_groups(group.name)

        patches.patch(asg_models.AutoScalingBackend, "attach_instances", attach_instances)

        original_set_desired = asg_models.FakeAutoScalingGroup.set_desired_capacity
        original_replace = asg_models.FakeAutoScalingGroup.replace_autoscaling_group_instances

        # AWS: a scale-in picks instances by the default termination policy: those
        # on the oldest launch template (version) first, then the oldest launched;
        # they leave the group's target groups. moto: the first in its list, left registered.
        def set_desired_capacity(group, new_capacity):
            order = {s.instance.id: (int(getattr(s, "launched_version", None) or 0), s.instance.sim_launched_at or 0)
                     for s in group.instance_states}
            group.instance_states.sort(key=lambda s: order[s.instance.id])
            before = {s.instance.id for s in group.instance_states}
            original_set_desired(group, new_capacity)
            gone = sorted(before - {s.instance.id for s in group.instance_states})
            if gone and group.name in group.autoscaling_backend.autoscaling_groups:
                asg.deregister(group.autoscaling_backend, group, gone)

        # AWS: while an instance refresh with a desired configuration runs, the
        # group launches new capacity from that configuration (from the previous
        # one while it rolls back); the refresh's own batches set theirs.
        def replace_instances(group, count, propagated_tags):
            refresh = next((r for r in asg.refreshes.get(group.name, []) if not r.terminal), None)
            if refresh is None or asg.launching_batch:
                return original_replace(group, count, propagated_tags)
            saved = group.launch_template_version
            group.launch_template_version = refresh.previous_version if refresh.rolling_back else refresh.desired_version
            try:
                return original_replace(group, count, propagated_tags)
            finally:
                group.launch_template_version = saved

        patches.patch(asg_models.FakeAutoScalingGroup, "set_desired_capacity", set_desired_capacity)
        patches.patch(asg_models.FakeAutoScalingGroup, "replace_autoscaling_group_instances", replace_instances)

        # AWS: StartInstanceRefresh, DescribeInstanceRefreshes, CancelInstanceRefresh
        # and RollbackInstanceRefresh (moto has none of them).
        def start_instance_refresh(response):
            return ActionResult(asg.start_refresh(response.autoscaling_backend, response._get_params()))

        def describe_instance_refreshes(response):
            params = response._get_params()
            found = asg.describe_refreshes(
                response.autoscaling_backend, params["AutoScalingGroupName"], params.get("InstanceRefreshIds")
            )
            return ActionResult({"InstanceRefreshes": found})

        def cancel_instance_refresh(response):
            return ActionResult(
                asg.stop_refresh(response.autoscaling_backend, response._get_param("AutoScalingGroupName"), False)
            )

        def rollback_instance_refresh(response):
            return ActionResult(
                asg.stop_refresh(response.autoscaling_backend, response._get_param("AutoScalingGroupName"), True)
            )

        for name, method in {
            "start_instance_refresh": start_instance_refresh,
            "describe_instance_refreshes": describe_instance_refreshes,
            "cancel_instance_refresh": cancel_instance_refresh,
            "rollback_instance_refresh": rollback_instance_refresh,
        }.items():
            patches.patch(AutoScalingResponse, name, method)

    def _on_instance_launched(self, group, state) -> None:
        """Faults at the canary step hit the first instance launched on a new version
        outside a refresh."""
        if group is None or group.name not in self.original_versions:
            return
        if state.launched_version == self.original_versions[group.name]:
            return
        if any(not r.terminal for r in self.refreshes[group.name]):
            return
        for fault in self.ctx.faults_for(f"asg/{group.name}", "canary"):
            self._apply_instance_fault(fault, group, state.instance.id)
        # while the canary boots and is checked, its owners scale the group
        self.events_at(f"asg/{group.name}", "canary", delay=self.ctx.timings.instance_boot)

    # --- changes by others (the scenario's events) ---------------------------------

    def events_at(self, target: str, point: str, delay: float = 0.0) -> None:
        """The step or gate `point` of `target` has come: its scale events happen
        `delay` simulated seconds later, each once."""
        due = [e for e in self.pending_events if e.target == target and e.at == point]
        self.pending_events = [e for e in self.pending_events if e not in due]
        for event in due:
            if delay:
                self.ctx.clock.call_later(delay, lambda event=event: self.scale(event))
            else:
                self.scale(event)

    def scale(self, event: Event) -> None:
        """An owner sets the desired capacity (SetDesiredCapacity): AWS accepts
        values within the group's min and max and launches or terminates to match."""
        spec = self.group_specs[event.target]
        desired = spec.clamp(event.desired)
        backend = asg_models.autoscaling_backends[self.ctx.account][self.ctx.region]
        with self.ctx.lock:
            backend.set_desired_capacity(spec.name, desired)
            backend.update_attached_target_groups(spec.name)
        self.applied_events[event.target].append(desired)

    def _apply_instance_fault(self, fault: Fault, group, instance_id: str) -> None:
        if fault.kind == "unhealthy":
            self.ctx.unhealthy_instances.add(instance_id)
        elif fault.kind == "alarm":
            set_alarm(group.account_id, group.region, fault.alarm, "ALARM",
                      f"simulated fault on {fault.target} at {fault.at}")

    # --- instance refresh engine -----------------------------------------------

    def start_refresh(self, backend, params: dict) -> dict:
        name = params["AutoScalingGroupName"]
        group = backend.autoscaling_groups.get(name)
        if group is None:
            raise ValidationError(f"AutoScalingGroup name not found - {name}")
        with self.ctx.lock:
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
                preferences=preferences, started_at=self.ctx.clock.now(),
            )
            self.refreshes[name].insert(0, refresh)
        if desired != self.original_versions.get(name):  # the migration's refresh, not a revert
            # mid first batch: the refresh and its owners' scaling overlap
            self.events_at(f"asg/{name}", "refresh", delay=self.ctx.timings.instance_boot)
        return {"InstanceRefreshId": refresh.id}

    def describe_refreshes(self, backend, name: str, ids: list[str] | None) -> list[dict]:
        group = backend.autoscaling_groups.get(name)
        found = []
        with self.ctx.lock:
            for refresh in self.refreshes[name]:
                if ids and refresh.id not in ids:
                    continue
                if group is not None:
                    self._advance(backend, group, refresh)
                found.append(refresh.describe())
        return found

    def stop_refresh(self, backend, name: str, roll_back: bool) -> dict:
        with self.ctx.lock:
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
        now = self.ctx.clock.now()
        target = f"asg/{group.name}"
        if refresh.status == "Pending":
            refresh.status = "InProgress"
            refresh.batch_ready_at = refresh.started_at
            refresh.instances_to_update = len(self._outdated(group, refresh))
            errors = [f for f in self.ctx.faults_for(target, "refresh") if f.kind == "error"]
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
                if not refresh.rolling_back and any(i in self.ctx.unhealthy_instances for i in refresh.batch):
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
                    for fault in self.ctx.faults_for(target, "refresh"):
                        if fault.kind == "alarm":
                            set_alarm(group.account_id, group.region, fault.alarm, "OK", "rolled back")
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
        try:
            self.launching_batch = True
            with self.ec2.launching_at(at):
                before = {s.instance.id for s in group.instance_states}
                group.replace_autoscaling_group_instances(len(states), group.get_propagated_tags())
                new = [s.instance.id for s in group.instance_states if s.instance.id not in before]
        finally:
            self.launching_batch = False
            group.launch_template_version = saved
        backend.update_attached_target_groups(group.name)
        for fault in self.ctx.faults_for(f"asg/{group.name}", "refresh"):
            if not refresh.rolling_back:
                for instance_id in new:
                    self._apply_instance_fault(fault, group, instance_id)
        refresh.batch = new
        warmup = int(refresh.preferences.get("InstanceWarmup") or group.health_check_grace_period or 0)
        refresh.batch_ready_at = at + self.ctx.timings.instance_boot + warmup

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

