"""checkov skips, written where checkov reads them: the resource's template metadata, each with its reason.

checkov (tests/infra/test_checkov.py) scans the synthesized template; a check that does not apply to a resource
is skipped on that resource only, never for the whole run, so a new resource of the same kind is checked again.
"""

from __future__ import annotations

from aws_cdk import CfnResource
from constructs import IConstruct

METADATA_KEY = "checkov"

# Reasons shared by many resources, in one place.
SYNC_INVOKE_NO_DLQ = ("invoked synchronously (Step Functions lambda:invoke, API Gateway proxy): a Lambda "
                      "dead-letter queue only receives failed asynchronous invocations; failures reach the caller")
NO_VPC_RESOURCES = ("calls only AWS service APIs, never a resource inside a VPC, so a VPC would add NAT or endpoints "
                    "and nothing to protect; the functions that call a cluster's Kubernetes API take cdk.json vpc")
NO_VPC_CONFIGURED = ("cdk.json vpc is not set: the clusters' Kubernetes API endpoints are public; set vpc (subnets and "
                     "security groups) for a private-only endpoint")
UNRESERVED_CONCURRENCY = ("a workflow task: Step Functions bounds its concurrency (Map MaxConcurrency, one execution per "
                          "target); reserving concurrency per task would take 35 slices from the account's pool and "
                          "throttle the Map iterations it is meant to serve")


def skip(construct: IConstruct, check_id: str, reason: str) -> None:
    """Skip `check_id` on the CloudFormation resource of `construct` (an L2 construct's default child)."""
    resource = construct if isinstance(construct, CfnResource) else construct.node.default_child
    if not isinstance(resource, CfnResource):
        raise TypeError(f"{construct.node.path}: no CloudFormation resource to skip {check_id} on")
    if len(reason) < 20:
        raise ValueError(f"say why {check_id} does not apply to {construct.node.path}")
    metadata = resource.get_metadata(METADATA_KEY) or {"skip": []}
    metadata["skip"] = [*metadata["skip"], {"id": check_id, "comment": reason}]
    resource.add_metadata(METADATA_KEY, metadata)
