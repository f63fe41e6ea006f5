"""Issue 13 through the workflows: what IAM would refuse half-way is refused in pre-flight or in the first
state, naming what to set, and nothing is changed."""

from __future__ import annotations

import json

import pytest

from tests.conftest import running
from tests.workflows.test_standalone_ec2 import DB, FAST, WEB, execute, servers, snapshots


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


# --- bad input is refused before any change -------------------------------------------------------------------

def test_an_alarm_name_that_does_not_exist_is_named_in_preflight_before_any_change():
    from tests.workflows.test_asg_rollout import WEB as WEB_GROUP, execute as rollout, versions

    with running([WEB_GROUP], **FAST) as rt:
        before = versions(rt)
        run, result = rollout(rt, alarm_names=["web-5xx", "web-5xxx"])
        assert result["error"] == "PreflightFailed" and "web-5xxx" in result["cause"]
        assert "web-5xx," not in result["cause"]  # only the missing one is named
        assert versions(rt) == before and "CreateVersion" not in _states(rt, run)


def test_a_misspelled_standalone_alarm_is_named_in_preflight():
    with servers(DB) as rt:
        _, result = execute(rt, "db-1", alarm_names=["db-1-stauts"])
        assert result["error"] == "PreflightFailed" and "db-1-stauts" in result["cause"]
        assert snapshots(rt, "db-1") == []


def test_an_ami_that_is_not_al2023_fails_preflight_not_after_the_first_change():
    with servers(WEB) as rt:
        run, result = execute(rt, "web-1", ami_id=rt.fleet.al2_image)
        assert result["error"] == "AmiNotAl2023" and rt.fleet.al2_image in result["cause"]
        assert "Preflight" in _states(rt, run) and "Snapshot" not in _states(rt, run)
        assert snapshots(rt, "web-1") == []


def test_an_ami_parameter_that_does_not_exist_fails_the_rollout_in_preflight():
    from tests.workflows.test_asg_rollout import WEB as WEB_GROUP, execute as rollout, versions

    with running([WEB_GROUP], **FAST) as rt:
        before = versions(rt)
        run, result = rollout(rt, ami_ssm_parameter="/al2023-migration/ami/web-typo")
        assert result["error"] == "PreflightFailed" and "/al2023-migration/ami/web-typo" in result["cause"]
        assert versions(rt) == before and "CreateVersion" not in _states(rt, run)


def test_an_unknown_eks_cluster_is_named_as_such():
    from tests.workflows.test_eks_nodegroup import eks, execute as migrate

    with eks({"name": "ng-general", "size": 2}) as rt:
        _, result = migrate(rt, "eks/prod/ng-general", cluster_name="prodd")
        assert result["error"] == "PreflightFailed"
        assert "EKS cluster prodd does not exist" in result["cause"]
