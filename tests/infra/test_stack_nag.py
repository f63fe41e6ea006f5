"""cdk-nag AwsSolutions: nothing left unsuppressed, and every suppression says why."""

from __future__ import annotations

from aws_cdk.assertions import Match

AWS_SOLUTIONS = Match.string_like_regexp("AwsSolutions-.*")


def test_no_unsuppressed_errors(synthesized):
    assert synthesized.annotations.find_error("*", AWS_SOLUTIONS) == []


def test_no_unsuppressed_warnings(synthesized):
    assert synthesized.annotations.find_warning("*", AWS_SOLUTIONS) == []


def test_suppressions_give_reasons_and_iam5_names_its_wildcards(synthesized):
    suppressions = [
        rule
        for resource in synthesized.template.to_json()["Resources"].values()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    ]
    assert suppressions
    for rule in suppressions:
        assert len(rule["reason"]) >= 20, rule
        if rule["id"] == "AwsSolutions-IAM5":
            assert rule.get("applies_to"), rule
