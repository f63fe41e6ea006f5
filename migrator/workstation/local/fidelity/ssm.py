"""SSM: Run Command that takes time and can fail, and the public AMI parameters."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from moto.ec2.models import ec2_backends
from moto.ssm import models as ssm_models
from moto.ssm.exceptions import SSMException

from migrator.compat.host import SCAN_MARKER
from migrator.config import GROUP_TAG, SOURCE_INSTANCE_TAG
from migrator.workstation.local.fidelity.context import Context
from migrator.workstation.local.fidelity.ec2 import EC2
from migrator.workstation.local.hosts import SimulatedHost, scan_output
from migrator.workstation.local.scenario import HostSpec

SSM_COMMAND_SECONDS = 30  # how long a health script takes to report
AL2023_IMAGE_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
AL2_IMAGE_PARAMETER = "/aws/service/ami-amazon-linux-latest/amzn2-ami-kernel-5.10-hvm-x86_64-gp2"


@dataclass
class SSM:
    ctx: Context
    ec2: EC2
    hosts: dict[str, SimulatedHost] = field(default_factory=dict)  # by instance id (standalone)
    group_hosts: dict[str, SimulatedHost] = field(default_factory=dict)  # by Auto Scaling group name

    def host_of(self, instance) -> SimulatedHost | None:
        """The scenario's host an instance runs: its own, its source's (a replacement), its group's
        (a member, or the rollout's canary, which carries the group's name in the migration's tag)."""
        tags = instance.ec2_backend.tags.get(instance.id, {})
        return (self.hosts.get(instance.id) or self.hosts.get(tags.get(SOURCE_INSTANCE_TAG, ""))
                or self.group_hosts.get(tags.get("aws:autoscaling:groupName", ""))
                or self.group_hosts.get(tags.get(GROUP_TAG, "")))

    def scan_answer(self, instance) -> str:
        """What the scan script prints there: the AL2 host, or what AL2023 makes of it."""
        host = self.host_of(instance) or SimulatedHost(HostSpec())
        view = host.al2023_view() if instance.image_id == self.latest_image(True) else host.al2_view()
        data_volumes = max(0, len(instance.block_device_mapping) - 1)
        return scan_output(view, ["/"] + [f"/data{i or ''}" for i in range(data_volumes)],
                           al2=instance.image_id != self.latest_image(True))

    def install(self) -> None:
        ctx, ec2 = self.ctx, self.ec2
        original_invocation = ssm_models.Command.get_invocation

        # AWS: a Run Command invocation is InProgress for a while, then Success,
        # or Failed when the health script fails; moto answered Success at once.
        def get_invocation(command, instance_id, plugin_name):
            invocation = dict(original_invocation(command, instance_id, plugin_name))
            ec2_backend = ec2_backends[command.account_id][command.backend_region]
            instance = ec2_backend.get_instance_by_id(instance_id)
            if ctx.clock.now() < getattr(command, "sim_requested_at", 0) + SSM_COMMAND_SECONDS:
                invocation.update(Status="InProgress", StatusDetails="InProgress", ResponseCode=-1)
            elif SCAN_MARKER in "\n".join((command.parameters or {}).get("commands", [])):
                # AWS: the scan's commands print what is on the host (hosts.py models it)
                invocation.update(StandardOutputContent=self.scan_answer(instance))
            elif ec2.fault_unhealthy(instance) or failing_step(command, instance):
                # the health script fails; with a `quiesce` or `verify` fault, those commands do
                invocation.update(Status="Failed", StatusDetails="Failed", ResponseCode=1,
                                  StandardErrorContent="health check failed: app not answering on :8080 (simulated)")
            else:
                invocation.update(StandardOutputContent="app healthy\n")
            return invocation

        def failing_step(command, instance) -> bool:
            target = ec2.target_of_instance(instance)
            if ec2.is_replacement(instance):  # the verification runs once the data is on it
                return ec2.holds_original_data(instance) and ctx.has_fault(target, "verify", "error")
            return "quiesce" in (command.comment or "") and ctx.has_fault(target, "quiesce", "error")

        def requested(command):
            command.sim_requested_at = ctx.clock.now()
            if "quiesce" in (command.comment or ""):
                # the application stops taking writes as the quiesce commands run
                ec2.accrue_writes()
                backend = ec2_backends[command.account_id][command.backend_region]
                for instance_id in command.instance_ids:
                    backend.get_instance_by_id(instance_id).sim_quiesced = True
            if not ctx.clock.in_simulation():  # asked from outside (the CLI on local serve): the
                ctx.clock.call_later(SSM_COMMAND_SECONDS, lambda: None)  # clock must reach the answer

        original_send = ssm_models.SimpleSystemManagerBackend.send_command

        # AWS: Run Command refuses an instance that is not a managed node (no SSM agent, or no
        # instance profile that lets it register) with InvalidInstanceId; moto accepted any id.
        def send_command(backend, *args, **kwargs):
            ec2_backend = ec2_backends[backend.account_id][backend.region_name]
            for instance_id in kwargs.get("instance_ids") or []:
                host = self.host_of(ec2_backend.get_instance_by_id(instance_id))
                if host and not host.spec.ssm:
                    raise SSMException("InvalidInstanceId",
                                       f"Instances [[{instance_id}]] not in a valid state for account {backend.account_id}")
            return original_send(backend, *args, **kwargs)

        ctx.patches.patch(ssm_models.SimpleSystemManagerBackend, "send_command", send_command)
        ctx.patches.after_init(ssm_models.Command, requested)
        ctx.patches.patch(ssm_models.Command, "get_invocation", get_invocation)

    def latest_image(self, al2023: bool) -> str:
        """The latest Amazon Linux AMI, from the public parameter moto publishes."""
        backend = ssm_models.ssm_backends[self.ctx.account][self.ctx.region]
        return backend.get_parameter(AL2023_IMAGE_PARAMETER if al2023 else AL2_IMAGE_PARAMETER).value

    def publish_eks_ami_parameters(self, versions: set[str]) -> None:
        """AWS publishes the EKS-optimized AMI ids as public SSM parameters; moto has none."""
        backend = ssm_models.ssm_backends[self.ctx.account][self.ctx.region]
        al2023, al2 = self.latest_image(True), self.latest_image(False)
        for version in versions:
            for family, image in (("amazon-linux-2023/x86_64/standard", al2023), ("amazon-linux-2", al2)):
                name = f"/aws/service/eks/optimized-ami/{version}/{family}/recommended/image_id"
                backend._parameters[name].append(ssm_models.Parameter(
                    account_id=self.ctx.account, name=name, value=image, parameter_type="String", description="",
                    allowed_pattern=None, keyid=None, version=1,
                    last_modified_date=dt.datetime.fromtimestamp(self.ctx.clock.now(), dt.UTC),
                    data_type="text"))
