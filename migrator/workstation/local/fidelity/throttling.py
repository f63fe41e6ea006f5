"""Every AWS call a handler makes: counted, and throttled under a `throttle` fault."""

from __future__ import annotations

from dataclasses import dataclass

import botocore.handlers
from botocore.awsrequest import AWSResponse

from migrator.workstation.local.fidelity.context import Context

THROTTLE_CODES = {"ec2": "RequestLimitExceeded", "ssm": "ThrottlingException"}
# Services of the fleet's resources; throttling them is what `throttle` rehearses.
THROTTLED_SERVICES = {"ec2", "autoscaling", "elasticloadbalancing", "cloudwatch", "monitoring", "ssm", "route53"}


@dataclass
class Throttling:
    ctx: Context

    def install(self) -> None:
        global _ACTIVE
        _ACTIVE = self
        _install_call_hook()

    def uninstall(self) -> None:
        global _ACTIVE
        _ACTIVE = None

    def rate(self) -> float:
        return max((f.rate for f in self.ctx.faults if f.kind == "throttle"), default=0.0)

    def on_call(self, service: str, operation: str):
        """AWS: a throttled call fails with the service's own throttling error
        (RequestLimitExceeded for EC2, ThrottlingException for SSM, Throttling
        elsewhere); moto never throttles."""
        ctx = self.ctx
        if not ctx.in_handler():
            return None
        calls = ctx.observations.calls
        with ctx.lock:
            calls.total += 1
            calls.per_second[int(ctx.clock.elapsed())] += 1
            rate = self.rate()
            throttle = rate and service in THROTTLED_SERVICES and ctx.random.random() < rate
            if throttle:
                calls.throttled += 1
        if throttle:
            code = THROTTLE_CODES.get(service, "Throttling")
            response = AWSResponse("https://local", 400, {}, None)
            return response, {"Error": {"Code": code, "Message": "Rate exceeded"},
                              "ResponseMetadata": {"HTTPStatusCode": 400}}
        return None


_ACTIVE: Throttling | None = None
_HOOK_INSTALLED = False


def _call_hook(model=None, **kwargs):
    throttling = _ACTIVE
    if throttling is None or model is None:
        return None
    return throttling.on_call(model.service_model.endpoint_prefix, model.name)


def _install_call_hook() -> None:
    """Every botocore client created from now on reports its calls to the active
    runtime (clients outlive a runtime, so the hook is installed once)."""
    global _HOOK_INSTALLED
    if not _HOOK_INSTALLED:
        botocore.handlers.BUILTIN_HANDLERS.append(("before-call.*.*", _call_hook))
        _HOOK_INSTALLED = True
