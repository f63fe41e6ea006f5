"""Every place where the local runtime makes moto behave like AWS, one module per
service (DESIGN.md, "The local runtime").

Each fix names the AWS behaviour it reproduces; tests/local/fidelity/ checks each
one, in a file per service. `Fidelity.install()` patches moto for the life of a
runtime and `uninstall()` puts moto back exactly as it was. What the modules
share is in `context.Context`; what the summary reads, in `context.Observations`.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from migrator.workstation.local.clock import SimClock
from migrator.workstation.local.fidelity.autoscaling import AutoScaling
from migrator.workstation.local.fidelity.cloudtrail import CloudTrail
from migrator.workstation.local.fidelity.awslambda import Lambda, LambdaContext
from migrator.workstation.local.fidelity.context import Context
from migrator.workstation.local.fidelity.ec2 import EC2
from migrator.workstation.local.fidelity.eks import EKS
from migrator.workstation.local.fidelity.elbv2 import ELBv2
from migrator.workstation.local.fidelity.node_join import NodeJoin
from migrator.workstation.local.fidelity.route53 import Route53
from migrator.workstation.local.fidelity.ssm import SSM
from migrator.workstation.local.fidelity.stepfunctions import StepFunctions
from migrator.workstation.local.fidelity.throttling import Throttling
from migrator.workstation.local.fidelity.writes import Writes
from migrator.workstation.local.scenario import Fault, Timings

__all__ = ["Fidelity", "LambdaContext"]


def _context_field(name: str) -> property:
    return property(lambda self: getattr(self.context, name), lambda self, value: setattr(self.context, name, value))


class Fidelity:
    """The services together. The runtime configures each service it has facts for
    (`fidelity.eks.addons`, ...); the summary reads the observations."""

    def __init__(
        self,
        clock: SimClock,
        timings: Timings,
        handlers: dict[str, Callable],
        faults: list[Fault] | None = None,
        seed: int = 7,
    ):
        self.context = ctx = Context(clock, timings, faults or [], random.Random(seed))
        self.ec2 = EC2(ctx)
        self.ssm = SSM(ctx, self.ec2)
        self.autoscaling = AutoScaling(ctx, self.ec2)
        self.eks = EKS(ctx, self.ssm)
        self.node_join = NodeJoin(ctx, self.ssm)
        self.throttling = Throttling(ctx)
        self.writes = self.ec2.writes = Writes(ctx, self.ec2)
        self.stepfunctions = StepFunctions(ctx)
        self.cloudtrail = CloudTrail(ctx)  # after Step Functions: it records the calls that module answers
        self.services = [self.stepfunctions, self.cloudtrail, Lambda(ctx, handlers), self.ec2, self.autoscaling, ELBv2(ctx, self.ec2),
                         self.ssm, Route53(ctx, self.ec2), self.eks, self.node_join, self.throttling, self.writes]
        self.observations = ctx.observations
        # what the summary and the workflow tests read, under the names they use
        self.calls = ctx.observations.calls
        self.changed_instances = ctx.observations.changed_instances
        self.address_violations = ctx.observations.address_violations
        self.snapshot_completed_at = ctx.observations.snapshot_completed_at
        self.target_of_instance = self.ec2.target_of_instance

    # set by the runtime (account, region) and by `local serve` (people_answer)
    account = _context_field("account")
    region = _context_field("region")
    people_answer = _context_field("people_answer")

    def install(self) -> None:
        for service in self.services:
            service.install()

    def uninstall(self) -> None:
        self.context.patches.undo()
        self.throttling.uninstall()
