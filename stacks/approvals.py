"""Approvals by signed link: the HMAC secret, the approval API (API Gateway + the approvals.api Lambda) and
the scheduled reminder. The gates' own function, approvals.request, is a task of every workflow
(migrator/workflows.py REQUEST_APPROVAL), created once by stacks/functions.py.

Dependencies run one way: the state machines invoke approvals.request, whose APPROVAL_BASE_URL is this API's
stage URL; the API invokes approvals.api, a different function, which calls back the executions by task
token (states:SendTask* takes no resource, so no state machine ARN is needed here).
"""

from __future__ import annotations

from aws_cdk import (Duration, RemovalPolicy, aws_apigateway as apigw, aws_events as events,
                     aws_events_targets as targets, aws_logs as logs,
                     aws_secretsmanager as secretsmanager)
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from migrator import config
from migrator.workflows import APPROVALS_API, APPROVALS_REMINDER
from stacks import checkov
from stacks.encryption import EncryptionKey
from stacks.functions import TaskFunctions

APPROVAL_RESOURCE = ("approvals", "{approval_id}")  # /approvals/{approval_id}, as core.link builds it
METHODS = ("GET", "POST")  # GET: confirmation page, changes nothing; POST: the decision
THROTTLE_RATE, THROTTLE_BURST = 10, 20  # requests per second across the stage: people click links
REMINDER_EVERY = Duration.minutes(15)
# The public API's function may take at most this much of the account's Lambda concurrency, whatever floods the
# links: the stage's 10 requests/s at well under a second each need fewer.
API_CONCURRENCY = 10
REMINDER_CONCURRENCY = 1  # one run at a time, so two overlapping runs never remind twice
STAGE_NAME = "prod"


def approval_secret(scope: Construct, construct_id: str, *, key: EncryptionKey) -> secretsmanager.Secret:
    """The HMAC key the approval links are signed with: 64 generated characters, encrypted with the stack's key."""
    secret = secretsmanager.Secret(
        scope, construct_id,
        description="AL2023 migration: HMAC key of the approval links",
        encryption_key=key.key,
        generate_secret_string=secretsmanager.SecretStringGenerator(password_length=64, exclude_punctuation=True),
        removal_policy=RemovalPolicy.DESTROY,  # nothing to keep: links signed with it die with the stack
    )
    NagSuppressions.add_resource_suppressions(secret, [NagPackSuppression(
        id="AwsSolutions-SMG4",
        reason="Not rotated automatically: every outstanding approval link is an HMAC under this secret, so a "
               "rotation would invalidate the links of every pending gate (they would then time out as rejected). "
               "Rotate by hand between migrations, when no approval is pending.",
    )])
    return secret


class ApprovalsApi(Construct):
    """`api` is the REST API with GET and POST on /approvals/{approval_id}; `function` answers both;
    `reminder` runs every 15 minutes and reminds once before a pending approval expires."""

    def __init__(self, scope: Construct, construct_id: str, *, functions: TaskFunctions, key: EncryptionKey,
                 auth: str, reminder_seconds: int) -> None:
        super().__init__(scope, construct_id)
        self.function = functions.create(self, APPROVALS_API, reserved_concurrency=API_CONCURRENCY)
        access_logs = logs.LogGroup(
            self, "AccessLogs", retention=logs.RetentionDays.THREE_MONTHS, encryption_key=key.key,
            removal_policy=RemovalPolicy.RETAIN,  # who opened and who answered which link: part of the audit
        )
        self.api = apigw.RestApi(
            self, "Api",
            rest_api_name="al2023-migration-approvals",
            description="AL2023 migration: approve or reject a gate from its signed link",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=False,  # the account-wide API Gateway logging role is not this stack's to set
            deploy_options=apigw.StageOptions(
                stage_name=STAGE_NAME,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True, http_method=True, ip=True, protocol=True, request_time=True, resource_path=True,
                    response_length=True, status=True, user=True),
                throttling_rate_limit=THROTTLE_RATE,
                throttling_burst_limit=THROTTLE_BURST,
                tracing_enabled=True,
            ),
        )
        authorization = apigw.AuthorizationType.IAM if auth == "iam" else apigw.AuthorizationType.NONE
        integration = apigw.LambdaIntegration(self.function, proxy=True, allow_test_invoke=False)
        resource = self.api.root
        for part in APPROVAL_RESOURCE:
            resource = resource.add_resource(part)
        self.methods = {m: resource.add_method(m, integration, authorization_type=authorization) for m in METHODS}
        if auth == "none":
            for method in self.methods.values():
                checkov.skip(method, "CKV_AWS_59", "no authorizer on purpose (cdk.json approval_auth none): the "
                                                   "HMAC-signed link is the credential, checked before anything is read")
        checkov.skip(self.api.deployment_stage, "CKV_AWS_120",
                     "no cache: every response is one approval's current state, and a cached confirmation page "
                     "would show a decided approval as pending")
        self.url = self.api.url  # https://<id>.execute-api.<region>.amazonaws.com/prod/
        self._suppress(auth)

        self.reminder = functions.create(
            self, APPROVALS_REMINDER, environment={config.ENV_APPROVAL_REMINDER: str(reminder_seconds)},
            reserved_concurrency=REMINDER_CONCURRENCY,
            asynchronous="invoked asynchronously by its schedule with no retry on purpose: a failed run has nothing "
                         "to replay, the next run 15 minutes later reminds of the same pending approvals")
        self.reminder_rule = events.Rule(
            self, "ReminderSchedule", description="AL2023 migration: remind of approvals that expire soon",
            schedule=events.Schedule.rate(REMINDER_EVERY),
            targets=[targets.LambdaFunction(self.reminder, retry_attempts=0)],  # the next run catches up
        )

    def _suppress(self, auth: str) -> None:
        link = ("the signed link is the credential: each link carries an HMAC-SHA256 (secret in Secrets Manager) "
                "over the approval id, the decision and the expiry; the approver's name is recorded with the "
                "source IP; set cdk.json approval_auth to \"iam\" to require SigV4-signed requests as well")
        suppressions = [
            NagPackSuppression(id="AwsSolutions-APIG2", reason=(
                "The handler validates every request against the link's HMAC signature before reading anything; "
                "the POST body is an HTML form (application/x-www-form-urlencoded), which API Gateway's "
                "JSON-schema request models cannot describe")),
            NagPackSuppression(id="AwsSolutions-APIG3", reason=(
                "No WAF web ACL: the stage is throttled to 10 requests/s (burst 20), every request needs a valid "
                "HMAC-signed link, and a decision is a single conditional write")),
            NagPackSuppression(id="AwsSolutions-APIG6", reason=(
                "Access logging to a KMS-encrypted log group covers every request; execution logging needs the "
                "region-wide API Gateway CloudWatch role (AWS::ApiGateway::Account, one per account and region), "
                "which a single application stack must not overwrite")),
            NagPackSuppression(id="AwsSolutions-COG4", reason=(
                f"No Cognito user pool: {link}" if auth == "none" else
                "IAM authorization (cdk.json approval_auth=iam): approvers are IAM principals of the account, "
                "identified by their SigV4 signature, not Cognito users")),
        ]
        if auth == "none":
            suppressions.append(NagPackSuppression(id="AwsSolutions-APIG4", reason=f"No API authorizer: {link}"))
        NagSuppressions.add_resource_suppressions(self.api, suppressions, apply_to_children=True)
