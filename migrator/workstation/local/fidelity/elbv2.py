"""ELBv2: a target's health follows its instance's boot, grace period and faults."""

from __future__ import annotations

from dataclasses import dataclass

from moto.elbv2.models import FakeHealthStatus, FakeTargetGroup

from migrator.workstation.local.fidelity.context import Context
from migrator.workstation.local.fidelity.ec2 import EC2


@dataclass
class ELBv2:
    ctx: Context
    ec2: EC2

    def install(self) -> None:
        timings, original = self.ctx.timings, FakeTargetGroup.health_for

        # AWS: a new target is `initial` until it passes the health checks after
        # boot and the grace period; under an `unhealthy` fault it goes `unhealthy`.
        # moto: `healthy` at once.
        def health_for(group, target, ec2_backend):
            status = original(group, target, ec2_backend)
            if status.status != "healthy" or not target["Id"].startswith("i-"):
                return status
            instance = ec2_backend.get_instance_by_id(target["Id"])
            launched = getattr(instance, "sim_launched_at", None)
            if launched is None:
                return status
            ready_at = launched + timings.instance_boot + timings.health_grace
            if target["Id"] in self.ctx.unhealthy_instances and self.ec2.booted(instance):
                return FakeHealthStatus(status.instance_id, status.port, status.health_check_port, "unhealthy",
                                        "Target.FailedHealthChecks", "Health checks failed with these codes: [502]")
            if self.ctx.clock.now() < ready_at:
                return FakeHealthStatus(status.instance_id, status.port, status.health_check_port, "initial",
                                        "Elb.RegistrationInProgress", "Target registration is in progress")
            return status

        self.ctx.patches.patch(FakeTargetGroup, "health_for", health_for)
