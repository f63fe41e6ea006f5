"""The SNS topic for approval requests and notifications."""

from __future__ import annotations

from aws_cdk import aws_events as events, aws_iam as iam, aws_sns as sns, aws_sns_subscriptions as subscriptions
from constructs import Construct

from stacks.encryption import EncryptionKey


class Notifications(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, key: EncryptionKey, emails: tuple[str, ...]) -> None:
        super().__init__(scope, construct_id)
        self._key = key
        self.topic = sns.Topic(
            self, "Topic", display_name="AL2023 migration", master_key=key.key, enforce_ssl=True,
        )
        for email in emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))

    def grant_publish(self, grantee: iam.IGrantable) -> None:
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["sns:Publish"], resources=[self.topic.topic_arn]))
        self._key.grant_topic_publish(grantee)  # the topic is encrypted

    def allow_rule_to_publish(self, rule: events.IRule) -> None:
        """EventBridge publishes with the topic's resource policy (only for `rule`) and the key's policy."""
        self.topic.add_to_resource_policy(iam.PolicyStatement(
            principals=[iam.ServicePrincipal("events.amazonaws.com")], actions=["sns:Publish"],
            resources=[self.topic.topic_arn], conditions={"ArnEquals": {"aws:SourceArn": rule.rule_arn}}))
        self._key.allow_service_to_publish("events.amazonaws.com")
