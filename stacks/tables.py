"""DynamoDB tables: the audit trail, and the Powertools idempotency records."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, aws_dynamodb as dynamodb
from constructs import Construct

from stacks.encryption import EncryptionKey

S = dynamodb.AttributeType.STRING


class MigrationTables(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, key: EncryptionKey) -> None:
        super().__init__(scope, construct_id)
        common = dict(
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=key.key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
        )
        self.audit = dynamodb.Table(
            self, "Audit", partition_key=dynamodb.Attribute(name="pk", type=S),
            sort_key=dynamodb.Attribute(name="sk", type=S), time_to_live_attribute="expires_at",
            removal_policy=RemovalPolicy.RETAIN,  # the audit trail outlives the stack
            **common,
        )
        # Attribute names are the Powertools DynamoDBPersistenceLayer defaults.
        self.idempotency = dynamodb.Table(
            self, "Idempotency", partition_key=dynamodb.Attribute(name="id", type=S),
            time_to_live_attribute="expiration",
            removal_policy=RemovalPolicy.DESTROY,  # short-lived records, nothing to keep
            **common,
        )
