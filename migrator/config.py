"""One place for the facts the CDK app, the handlers and the local runtime share."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STATE_MACHINES_DIR = PROJECT_ROOT / "state_machines"
LAMBDAS_DIR = PROJECT_ROOT / "lambdas"
SCENARIOS_DIR = PROJECT_ROOT / "scenarios"

# Resources the workflows may change must carry this tag (IAM conditions use it
# too); cdk.json context `migration_tag` overrides it for a deployment.
DEFAULT_MIGRATION_TAG = {"key": "al2023-migration", "value": "enabled"}

# Public SSM parameters AWS maintains for the latest Amazon Linux AMIs.
AL2023_AMI_PARAMETER = {
    "x86_64": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
    "arm64": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64",
}
AL2_AMI_PARAMETER = {
    "x86_64": "/aws/service/ami-amazon-linux-latest/amzn2-ami-kernel-5.10-hvm-x86_64-gp2",
    "arm64": "/aws/service/ami-amazon-linux-latest/amzn2-ami-kernel-5.10-hvm-arm64-gp2",
}

# The SSM parameter paths an AMI may be read from (execution input ami_ssm_parameter; the IAM policy of the
# functions allows these paths only): AWS's public Amazon Linux ones, and the account's own under the second.
AMI_PARAMETER_PATHS = ("/aws/service/ami-amazon-linux-latest/", "/al2023-migration/ami/")

# Tags the standalone workflow puts on what it creates, so a retry finds it
# instead of creating it twice and an audit can tell what was ours.
EXECUTION_TAG = "al2023-migration:execution"
SOURCE_INSTANCE_TAG = "al2023-migration:source-instance"
EXPIRES_TAG = "al2023-migration:expires-at"
# The Auto Scaling canary carries its group and, in CANARY_TAG, the capacity
# changes the rollout made for it (what it may undo while they stand).
GROUP_TAG = "al2023-migration:group"
CANARY_TAG = "al2023-migration:canary"
PURPOSE_TAG = "al2023-migration:purpose"  # which of a run's snapshots: before any change, or the final sync

# AWS error codes that mean "slow down", across the services we call.
THROTTLING_ERROR_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "SlowDown",
    }
)

# Environment variable names the handlers read (see migrator.settings).
ENV_AUDIT_TABLE = "AUDIT_TABLE_NAME"
ENV_IDEMPOTENCY_TABLE = "IDEMPOTENCY_TABLE_NAME"
ENV_NOTIFICATION_TOPIC = "NOTIFICATION_TOPIC_ARN"
ENV_TAG_KEY = "MIGRATION_TAG_KEY"
ENV_TAG_VALUE = "MIGRATION_TAG_VALUE"
ENV_APPROVAL_SECRET = "APPROVAL_SECRET_ARN"
ENV_APPROVAL_BASE_URL = "APPROVAL_BASE_URL"
ENV_APPROVAL_REMINDER = "APPROVAL_REMINDER_SECONDS"
ENV_DNS_HOSTED_ZONES = "DNS_HOSTED_ZONE_IDS"  # cdk.json dns_hosted_zone_ids, comma-separated
