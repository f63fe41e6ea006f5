"""Issue 13 through the workflows: what IAM would refuse half-way is refused in pre-flight or in the first
state, naming what to set, and nothing is changed."""

from __future__ import annotations

import json

import pytest

from tests.workflows.test_standalone_ec2 import DB, WEB, execute, servers, snapshots


def _states(rt, run) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in rt.history(run) if "stateEnteredEventDetails" in e]


def test_a_dns_cutover_in_a_zone_not_listed_in_cdk_json_fails_preflight_naming_the_key():
    with servers(WEB) as rt:
        built, route53 = rt.fleet.instances["web-1"], rt.client("route53")
        other = route53.create_hosted_zone(Name="other.example.com", CallerReference="unlisted")["HostedZone"]
        zone = other["Id"].rsplit("/", 1)[-1]
        route53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [{
            "Action": "CREATE", "ResourceRecordSet": {"Name": "web-1.other.example.com", "Type": "A", "TTL": 60,
                                                      "ResourceRecords": [{"Value": built.private_ip}]}}]})
        run, result = execute(rt, "web-1", cutover={"mode": "dns", "hosted_zone_id": zone,
                                                    "record_name": "web-1.other.example.com"})
        assert result["error"] == "PreflightFailed"
        assert f"hosted zone {zone} is not in cdk.json dns_hosted_zone_ids" in result["cause"]
        assert snapshots(rt, "web-1") == []


def test_the_listed_zone_of_the_scenario_still_cuts_over():
    with servers(WEB) as rt:
        _, result = execute(rt, "web-1")
        assert result["status"] == "SUCCEEDED"


def test_an_elastic_ip_without_the_opt_in_tag_fails_preflight_before_any_change():
    with servers(DB) as rt:
        built, ec2 = rt.fleet.instances["db-1"], rt.client("ec2")
        ec2.delete_tags(Resources=[built.allocation_id], Tags=[{"Key": "al2023-migration"}])
        _, result = execute(rt, "db-1")
        assert result["error"] == "PreflightFailed"
        assert f"Elastic IP {built.public_ip}" in result["cause"] and "not tagged al2023-migration=enabled" in result["cause"]
        assert snapshots(rt, "db-1") == []


def test_an_ami_parameter_outside_the_ami_paths_fails_in_the_first_state_naming_the_field():
    with servers(WEB) as rt:
        run, result = execute(rt, "web-1", ami_ssm_parameter="/team/secrets/db-password")
        assert result["error"] == "InvalidInput"
        assert "ami_ssm_parameter" in json.loads(result["cause"])["errorMessage"]
        assert _states(rt, run) == ["ValidateInput"]


def test_a_gate_retries_a_transient_lambda_error_instead_of_rolling_back():
    from migrator.workflows import REQUEST_APPROVAL
    from migrator.workstation.local.fidelity.awslambda import Lambda

    # What Step Functions reports when the Lambda service fails the invoke itself (not the function).
    service_exception = type("Lambda.ServiceException", (Exception,), {})
    with servers(WEB) as rt:
        (service,) = [s for s in rt.fidelity.services if isinstance(s, Lambda)]
        handler, failures = service.handlers[REQUEST_APPROVAL.local_function_name], []

        def flaky(event, context):
            if len(failures) < 2:  # the first two invokes of each gate's request fail
                failures.append(event["gate"])
                raise service_exception("Lambda was unable to process the request")
            return handler(event, context)

        service.handlers[REQUEST_APPROVAL.local_function_name] = flaky
        run, result = execute(rt, "web-1")
        assert failures and result["status"] == "SUCCEEDED"
        assert "CutoverNotApproved" not in _states(rt, run)


@pytest.mark.parametrize("field, value", [("restore_data_volumes", "off"), ("snapshot_retention_days", "30"),
                                          ("snapshot_deadline_seconds", 600.5)])
def test_execution_inputs_are_strict_and_a_lax_value_fails_in_the_first_state_naming_the_field(field, value):
    with servers(WEB) as rt:
        run, result = execute(rt, "web-1", **{field: value})
        assert result["error"] == "InvalidInput"
        assert field in json.loads(result["cause"])["errorMessage"]
        assert _states(rt, run) == ["ValidateInput"]
        assert snapshots(rt, "web-1") == []
