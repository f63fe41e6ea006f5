"""The customer managed KMS key for the topic, the tables and the log groups."""

from __future__ import annotations

from aws_cdk import Aws, aws_iam as iam, aws_kms as kms
from constructs import Construct

# Named actions only: the CDK grant helpers add wildcards such as kms:GenerateDataKey*.
KEY_TABLE_ACTIONS = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey")
KEY_READ_ACTIONS = ("kms:Decrypt", "kms:DescribeKey")
KEY_PUBLISH_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")
# Every service principal of the key policy acts only for this account's resources (confused deputy).
FROM_THIS_ACCOUNT = {"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}}


class EncryptionKey(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self, "Key", enable_key_rotation=True,
            description="AL2023 migration: topic, tables and logs",
        )
        # CloudWatch Logs encrypts with the key itself, so the key policy (not IAM)
        # must allow it, limited to this account's log groups in this region.
        self.key.add_to_resource_policy(iam.PolicyStatement(
            principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
            actions=["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo",
                     "kms:GenerateDataKey", "kms:DescribeKey"],
            resources=["*"],  # in a key policy, "*" means this key
            conditions={"ArnLike": {
                "kms:EncryptionContext:aws:logs:arn":
                    f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:*",
            }, **FROM_THIS_ACCOUNT},
        ))

    def grant_topic_publish(self, grantee: iam.IGrantable) -> None:
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=list(KEY_PUBLISH_ACTIONS), resources=[self.key.key_arn]))

    def allow_service_to_publish(self, service: str) -> None:
        """The key policy lets an AWS service (EventBridge) publish to the encrypted topic, as CDK's
        Topic.grantPublish does for a service principal, with named actions only."""
        self.key.add_to_resource_policy(iam.PolicyStatement(
            principals=[iam.ServicePrincipal(service)], actions=list(KEY_PUBLISH_ACTIONS),
            resources=["*"],  # in a key policy, "*" means this key
            conditions=FROM_THIS_ACCOUNT,
        ))
