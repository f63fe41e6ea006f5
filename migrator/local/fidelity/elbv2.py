"""ELBv2: a target's health follows its instance's boot, grace period and faults."""

from __future__ import annotations

from moto.elbv2.models import FakeHealthStatus, FakeTargetGroup

from migrator.local.fidelity.context import Context
from migrator.local.fidelity.ec2 import EC2


class ELBv2:
    def __init__(self, ctx: Context, ec2: EC2):
        self.ctx = ctx
        self.ec2 = ec2

    def install(self) -> None:
        ctx, ec2 = self.ctx, self.ec2
        original = FakeTargetGroup.health_for

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
            ready_at = launched + ctx.timings.instance_boot + ctx.timings.health_grace
            if target["Id"] in ctx.unhealthy_instances and ec2.booted(instance):
                return FakeHealthStatus(status.instance_id, status.port, status.health_check_port, "unhealthy",
                                        "Target.FailedHealthChecks", "Health checks failed with these codes: [502]")
            if ctx.clock.now() < ready_at:
                return FakeHealthStatus(status.instance_id, status.port, status.health_check_port, "initial",
                                        "Elb.RegistrationInProgress", "Target registration is in progress")
            return status

        ctx.patches.patch(FakeTargetGroup, "health_for", health_for)
