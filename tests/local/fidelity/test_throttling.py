"""Throttling: a handler's AWS calls fail with each service's own throttling error."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.conftest import running
from tests.local.fidelity.conftest import STILL


def test_throttle_fault_raises_the_services_own_throttling_error():
    with running([{"name": "web", "size": 1}], faults=[{"target": "any", "kind": "throttle", "rate": 1.0}],
                 **STILL) as rt:
        rt.fidelity.context.handler_thread.active = True  # as if called from a handler
        try:
            with pytest.raises(ClientError) as ec2_error:
                rt.client("ec2").describe_instances()
            with pytest.raises(ClientError) as asg_error:
                rt.client("autoscaling").describe_auto_scaling_groups()
        finally:
            rt.fidelity.context.handler_thread.active = False
        assert ec2_error.value.response["Error"]["Code"] == "RequestLimitExceeded"
        assert asg_error.value.response["Error"]["Code"] == "Throttling"
        assert rt.fidelity.calls.throttled == 2
        rt.client("ec2").describe_instances()  # outside a handler nothing is throttled
