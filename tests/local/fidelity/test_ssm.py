"""SSM fidelity: Run Command takes time and reports the health script's result."""

from __future__ import annotations

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
