"""checkov, the infrastructure-as-code scanner, finds nothing on the synthesized template (next to cdk-nag and
cfn-lint); what it skips is skipped on one resource, in that resource's metadata, with the reason."""

from __future__ import annotations

import json
import os
import subprocess

from migrator.config import PROJECT_ROOT

# Its own virtualenv (`make checkov`, which `make test` runs): checkov pins packages the project pins differently.
CHECKOV = os.environ.get("CHECKOV", str(PROJECT_ROOT / "build" / "tools" / "checkov" / "bin" / "checkov"))


def _scan(template) -> dict:
    assert os.path.exists(CHECKOV), f"checkov not installed at {CHECKOV}: run `make checkov` (make test does)"
    result = subprocess.run(
        [CHECKOV, "--file", str(template), "--framework", "cloudformation", "--output", "json", "--quiet",
         "--compact", "--skip-download"],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},  # offline: no guideline download from the vendor's API
    )
    assert result.stdout.strip(), result.stderr
    report = json.loads(result.stdout)
    return report[0] if isinstance(report, list) else report


def test_checkov_finds_no_failed_check(synthesized):
    report = _scan(synthesized.template_file)
    failed = [f"{f['check_id']} {f['resource']}: {f['check_name']}"
              for f in report.get("results", {}).get("failed_checks", [])]
    assert failed == [], "checkov failed checks:\n" + "\n".join(sorted(failed))
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 0  # it did scan the resources


def test_every_checkov_skip_is_on_a_resource_with_its_reason(synthesized):
    skips = [(logical_id, skip)
             for logical_id, resource in synthesized.template.to_json()["Resources"].items()
             for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])]
    assert skips
    for logical_id, skip in skips:
        assert skip["id"].startswith("CKV_") and len(skip.get("comment", "")) >= 20, (logical_id, skip)


def test_the_public_approval_api_function_has_reserved_concurrency(synthesized):
    api = next(r for r in synthesized.resources("AWS::Lambda::Function").values()
               if r["Properties"]["Handler"] == "approvals.api")
    assert api["Properties"]["ReservedConcurrentExecutions"] > 0


def test_every_function_environment_is_encrypted_with_the_stack_key(synthesized):
    (key_id,) = synthesized.resources("AWS::KMS::Key")
    for logical_id, function in synthesized.resources("AWS::Lambda::Function").items():
        assert function["Properties"].get("KmsKeyArn") == {"Fn::GetAtt": [key_id, "Arn"]}, logical_id
