"""EC2: instance boot times, launch templates, snapshots, status checks, Elastic IPs,
and the faults of a standalone server's migration."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from contextlib import contextmanager

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.ec2.models import elastic_block_store as ebs_models
from moto.ec2.models import elastic_ip_addresses as eip_models
from moto.ec2.models import instances as ec2_instances
from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.responses.launch_templates import LaunchTemplates as LaunchTemplateResponses
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix, parse_user_data

from migrator.config import SOURCE_INSTANCE_TAG
from migrator.workstation.local.fidelity.context import Context, set_alarm

MOTO_DEFAULT_CLIENT_TOKEN = "ABCDE"  # what moto records when a request has no ClientToken


class ServiceUnavailable(ServiceException):
    code = "ServiceUnavailable"
    message = "The service is unavailable. Please try again shortly. (simulated cutover fault)"


class EC2:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.standalone_targets: dict[str, str] = {}  # original instance id -> target name
        self.original_volumes: set[str] = set()  # the standalone targets' own volumes
        self.fired_alarms: set[str] = set()
        self._launch_time = threading.local()
        # target -> (the stopped instance its address points at, since): writes are frozen meanwhile
        self.frozen: dict[str, tuple[str, float]] = {}
        self.address_holder: Callable[[str], str | None] = lambda target: None  # set by the runtime
        self.writes = None  # fidelity.writes.Writes, set by Fidelity

    # --- instances: when they launched and booted ----------------------------------

    def launch_time(self) -> float:
        return getattr(self._launch_time, "at", None) or self.ctx.clock.now()

    @contextmanager
    def launching_at(self, at: float):
        """Instances launched inside start at `at` (a refresh's batch launches
        when the one before it was ready, however late it is looked at)."""
        self._launch_time.at = at
        try:
            yield
        finally:
            self._launch_time.at = None

    def booted(self, instance) -> bool:
        launched = getattr(instance, "sim_launched_at", None)
        return launched is None or self.ctx.clock.now() >= launched + self.ctx.timings.instance_boot

    # --- standalone targets --------------------------------------------------------

    def target_of_instance(self, instance) -> str | None:
        """The standalone target an instance is, or replaces (by the workflow's tag)."""
        if instance is None:
            return None
        if instance.id in self.standalone_targets:
            return self.standalone_targets[instance.id]
        source = instance.ec2_backend.tags.get(instance.id, {}).get(SOURCE_INSTANCE_TAG)
        return self.standalone_targets.get(source) if source else None

    # --- write freezes: the address names an instance that is stopped ---------------

    def serving(self, target: str):
        """The instance the target's address names. Without an address, clients know the original's
        IP: it serves (or refuses, stopped) until it is terminated; then clients re-pointed to the replacement."""
        holder = self.address_holder(target)
        backend = self._backend()
        if holder:
            return backend.get_instance_by_id(holder)
        alive = [i for i in backend.all_instances() if i.state not in ("terminated", "shutting-down")
                 and self.target_of_instance(i) == target]
        return min(alive, key=self.is_replacement, default=None)

    def _backend(self):
        from moto.ec2.models import ec2_backends

        return ec2_backends[self.ctx.account][self.ctx.region]

    def accrue_writes(self) -> None:
        if self.writes is not None:
            self.writes.accrue()

    def note_stop(self, instance) -> None:
        """The migration (a handler, never anyone else) stops the instance its address names: the
        final sync or a carry-back; the address answers nothing until it moves or that instance starts."""
        target = self.target_of_instance(instance)
        if (self.ctx.in_handler() and target and target not in self.frozen
                and self.address_holder(target) == instance.id):
            self.frozen[target] = (instance.id, self.ctx.clock.now())

    def end_freeze(self, target: str | None, started: str | None = None) -> None:
        """The address moved (or, with `started`, that very instance started again)."""
        frozen = self.frozen.get(target)
        if frozen and (started is None or frozen[0] == started):
            del self.frozen[target]
            self.ctx.observations.write_freezes.setdefault(target, []).append(self.ctx.clock.now() - frozen[1])

    def is_replacement(self, instance) -> bool:
        return instance.id not in self.standalone_targets and self.target_of_instance(instance) is not None

    def fault_unhealthy(self, instance) -> bool:
        """Unhealthy by a fault: on the instance itself, or at `validate` on a replacement."""
        return instance.id in self.ctx.unhealthy_instances or (
            self.is_replacement(instance)
            and self.ctx.has_fault(self.target_of_instance(instance), "validate", "unhealthy"))

    # --- install ---------------------------------------------------------------------

    def holds_original_data(self, instance) -> bool:
        """A replacement with its original's data volumes on it: after the final sync."""
        return self.is_replacement(instance) and any(
            m.volume_id in self.original_volumes for m in instance.block_device_mapping.values())

    def install(self) -> None:
        self._install_instances()
        self._install_volumes()
        self._install_launch_templates()
        self._install_snapshots()
        self._install_status_checks()
        self._install_addresses()

    def _install_instances(self) -> None:
        ec2, ctx, patches = self, self.ctx, self.ctx.patches
        patches.after_init(ec2_instances.Instance,
                           lambda instance: setattr(instance, "sim_launched_at", ec2.launch_time()))

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

        patches.patch(TaggedEC2Resource, "get_tags", get_tags)

        backend_cls = ec2_instances.InstanceBackend
        # Not AWS behaviour but what the summary audits: every instance stopped or
        # terminated, and the addresses right after.
        for method in ("terminate_instances", "stop_instances"):
            patches.patch(backend_cls, method, self._recording(getattr(backend_cls, method)))

        original_start = backend_cls.start_instances

        # AWS: a started instance boots again (see the status checks).
        def start_instances(backend, instance_ids):
            ec2.accrue_writes()
            result = original_start(backend, instance_ids)
            for instance_id in instance_ids:
                instance = backend.get_instance_by_id(instance_id)
                instance.sim_launched_at = ctx.clock.now()
                instance.sim_quiesced = False  # a start brings the application up again
                # AWS: LaunchTime is the last start of an instance that was stopped.
                instance.launch_time = dt.datetime.fromtimestamp(ctx.clock.now(), dt.UTC).replace(tzinfo=None)
                ec2.end_freeze(ec2.target_of_instance(instance), started=instance_id)
            ctx.observations.observe_addresses(ctx.clock)
            return result

        patches.patch(backend_cls, "start_instances", start_instances)

        # AWS: RunInstances with a ClientToken already used returns that launch
        # instead of launching again; moto launched again.
        original_run = backend_cls.run_instances

        def run_instances(backend, image_id, count, user_data, security_group_names, **kwargs):
            token = kwargs.get("client_token")
            if token and token != MOTO_DEFAULT_CLIENT_TOKEN:
                for reservation in backend.reservations.values():
                    if any(getattr(i, "client_token", None) == token for i in reservation.instances):
                        return reservation
            return original_run(backend, image_id, count, user_data, security_group_names, **kwargs)

        patches.patch(backend_cls, "run_instances", run_instances)

    def _recording(self, original):
        ctx, ec2 = self.ctx, self

        def change(backend, instance_ids, *args, **kwargs):
            ec2.accrue_writes()
            for instance_id in instance_ids:
                instance = backend.get_instance_by_id(instance_id)
                if instance.state_code == 16:
                    ec2.note_stop(instance)
                group = getattr(instance, "autoscaling_group", None)
                ctx.observations.changed_instances[instance_id] = group.name if group is not None else None
            result = original(backend, instance_ids, *args, **kwargs)
            ctx.observations.observe_addresses(ctx.clock)
            return result

        return change

    def _install_volumes(self) -> None:
        ec2 = self
        original_attach = ebs_models.EBSBackend.attach_volume

        # Fault `final-sync` `error`: attaching the old server's data volume to its replacement fails
        # the way an EC2 API error does.
        def attach_volume(backend, volume_id, instance_id, device_path, delete_on_termination=False):
            ec2.accrue_writes()
            instance = backend.get_instance(instance_id)
            if (volume_id in ec2.original_volumes and ec2.is_replacement(instance)
                    and ec2.ctx.has_fault(ec2.target_of_instance(instance), "final-sync", "error")):
                raise ServiceUnavailable()
            return original_attach(backend, volume_id, instance_id, device_path, delete_on_termination)

        self.ctx.patches.patch(ebs_models.EBSBackend, "attach_volume", attach_volume)

    def _install_launch_templates(self) -> None:
        # AWS: CreateLaunchTemplateVersion with SourceVersion starts from that
        # version's data; the request's LaunchTemplateData overrides top-level keys.
        # moto: ignored SourceVersion.
        def create_launch_template_version(response):
            name = response._get_param("LaunchTemplateName")
            template_id = response._get_param("LaunchTemplateId")
            template = (
                response.ec2_backend.get_launch_template_by_name(name)
                if name
                else response.ec2_backend.get_launch_template(template_id)
            )
            data = response._get_param("LaunchTemplateData", {})
            if "UserData" in data:  # as CreateLaunchTemplate keeps it (moto's own version call did not)
                data["UserData"] = parse_user_data(response._get_param("LaunchTemplateData.UserData"))
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

        self.ctx.patches.patch(LaunchTemplateResponses, "create_launch_template_version",
                               create_launch_template_version)

    def _install_snapshots(self) -> None:
        ec2, ctx, patches = self, self.ctx, self.ctx.patches
        snapshot_cls = ebs_models.Snapshot

        # AWS: a snapshot is `pending` with a progress until it completes (or ends
        # in `error`); moto made every snapshot `completed` at once.
        def snapshot_state(snapshot):
            started = getattr(snapshot, "sim_started_at", None)
            if started is None:
                return "completed"
            attachment = getattr(snapshot.volume, "attachment", None)
            instance = getattr(attachment, "instance", None)
            done_at = started + ctx.timings.snapshot_complete
            if ctx.clock.now() < done_at:
                return "pending"
            if ctx.has_fault(ec2.target_of_instance(instance), "snapshot", "error"):
                return "error"
            ctx.observations.snapshot_completed_at.setdefault(snapshot.id, done_at)
            return "completed"

        def snapshot_progress(snapshot):
            started = getattr(snapshot, "sim_started_at", None)
            if started is None or snapshot_state(snapshot) != "pending":
                return "100%"
            done = (ctx.clock.now() - started) / max(1.0, ctx.timings.snapshot_complete)
            return f"{min(99, int(done * 100))}%"

        def snapshot_message(snapshot):
            return "Snapshot failed: simulated error (scenario fault)" if snapshot_state(snapshot) == "error" else None

        patches.after_init(snapshot_cls, lambda snapshot: setattr(snapshot, "sim_started_at", ctx.clock.now()))
        # `status` feeds DescribeSnapshots, `state` the SnapshotInfo of CreateSnapshots
        patches.patch(snapshot_cls, "status", property(snapshot_state, lambda snapshot, value: None))
        patches.patch(snapshot_cls, "state", property(snapshot_state))
        patches.patch(snapshot_cls, "progress", property(snapshot_progress))
        patches.patch(snapshot_cls, "status_message", property(snapshot_message))

    def _install_status_checks(self) -> None:
        ec2, ctx = self, self.ctx

        # AWS: status checks are `initializing` after a start until the instance has
        # booted and passed them; `impaired` under an `unhealthy` fault. moto: `ok` at once.
        def status(instance):
            if instance.state_code != 16:
                return {"Status": "not-applicable"}
            launched = getattr(instance, "sim_launched_at", None) or 0
            target = ec2.target_of_instance(instance)
            if ctx.clock.now() < launched + ctx.timings.instance_boot + ctx.timings.health_grace:
                value, detail = "initializing", "initializing"
            elif ec2.fault_unhealthy(instance):
                value, detail = "impaired", "failed"
            else:
                value, detail = "ok", "passed"
            if value == "ok" and ec2.is_replacement(instance):
                for fault in ctx.faults_for(target, "validate"):
                    if fault.kind == "alarm" and fault.alarm not in ec2.fired_alarms:
                        ec2.fired_alarms.add(fault.alarm)
                        ec2.fire_alarm(instance.ec2_backend, fault.alarm)
            return {"Status": value, "Details": [{"Name": "reachability", "Status": detail}]}

        ctx.patches.patch(ec2_instances.Instance, "instance_status", property(status))
        ctx.patches.patch(ec2_instances.Instance, "system_status", property(status))

    # --- the cutover: Elastic IPs (and Route 53 records, see route53.py) ---------------

    def _install_addresses(self) -> None:
        ec2 = self
        original_associate = eip_models.ElasticAddressBackend.associate_address

        # Faults at the cutover: the API call fails, or the new instance turns
        # unhealthy / the alarm fires once it serves.
        def associate_address(backend, *args, **kwargs):
            ec2.accrue_writes()
            instance = kwargs.get("instance") or (args[0] if args else None)
            ec2.before_cutover_call(instance)
            result = original_associate(backend, *args, **kwargs)
            ec2.after_cutover_call(instance)
            return result

        self.ctx.patches.patch(eip_models.ElasticAddressBackend, "associate_address", associate_address)

    def before_cutover_call(self, instance) -> None:
        if instance is None or not self.is_replacement(instance):
            return
        if self.ctx.has_fault(self.target_of_instance(instance), "cutover", "error"):
            raise ServiceUnavailable()

    def after_cutover_call(self, instance) -> None:
        if instance is not None:
            self.end_freeze(self.target_of_instance(instance))
        if instance is not None and self.is_replacement(instance):
            for fault in self.ctx.faults_for(self.target_of_instance(instance), "cutover"):
                if fault.kind == "unhealthy":
                    self.ctx.unhealthy_instances.add(instance.id)
                elif fault.kind == "alarm":
                    self.fire_alarm(instance.ec2_backend, fault.alarm)
        self.ctx.observations.observe_addresses(self.ctx.clock)

    @staticmethod
    def fire_alarm(ec2_backend, name: str) -> None:
        set_alarm(ec2_backend.account_id, ec2_backend.region_name, name, "ALARM")
