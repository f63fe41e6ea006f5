"""SSM fidelity: Run Command takes time and reports the health script's result."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.local.fidelity.conftest import DB, servers


def test_run_command_is_in_progress_then_reports_the_result():
    """AWS: an invocation is InProgress until the script ends, then Success (or Failed
    for an unhealthy instance); moto answered Success at once."""
    with servers(DB) as rt:
        ssm, iid = rt.client("ssm"), rt.fleet.instances["db-1"].instance_id
        with rt.clock.busy():  # an idle clock would jump straight to the command's end
            command = ssm.send_command(InstanceIds=[iid], DocumentName="AWS-RunShellScript",
                                       Parameters={"commands": ["true"]})["Command"]["CommandId"]
            assert ssm.get_command_invocation(CommandId=command, InstanceId=iid)["Status"] == "InProgress"
            rt.clock.advance(31)
        assert ssm.get_command_invocation(CommandId=command, InstanceId=iid)["Status"] == "Success"
        rt.fidelity.context.unhealthy_instances.add(iid)
        failed = ssm.get_command_invocation(CommandId=command, InstanceId=iid)
        assert failed["Status"] == "Failed" and failed["StandardErrorContent"]


def test_run_command_refuses_an_instance_that_is_not_a_managed_node():
    """AWS: SendCommand to an instance without a registered SSM agent (none installed, or no instance profile
    that lets it register) answers InvalidInstanceId; moto accepted any id. `host: {ssm: false}` models it."""
    with servers({**DB, "host": {"ssm": False}}, {**DB, "name": "db-2"}) as rt:
        ssm = rt.client("ssm")
        unmanaged, managed = (rt.fleet.instances[n].instance_id for n in ("db-1", "db-2"))
        with pytest.raises(ClientError) as refused:
            ssm.send_command(InstanceIds=[unmanaged], DocumentName="AWS-RunShellScript",
                             Parameters={"commands": ["true"]})
        assert refused.value.response["Error"]["Code"] == "InvalidInstanceId"
        assert ssm.send_command(InstanceIds=[managed], DocumentName="AWS-RunShellScript",
                                Parameters={"commands": ["true"]})["Command"]["CommandId"]
