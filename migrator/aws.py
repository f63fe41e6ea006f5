"""boto3 clients shared by every task of a Lambda container (and the local runtime)."""

import hashlib
import threading
from functools import lru_cache

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from migrator.config import THROTTLING_ERROR_CODES

# The SDK's standard retry mode already backs off with jitter on throttling;
# what still fails after it becomes `Throttled` for the state machine's Retry.
_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 4},
    user_agent_extra="al2023-migrate",
)
_session_lock = threading.Lock()


@lru_cache(maxsize=None)
def client(service: str, region: str | None = None, endpoint_url: str | None = None):
    with _session_lock:  # boto3 sessions are not thread-safe; clients are
        return boto3.session.Session().client(
            service, region_name=region, endpoint_url=endpoint_url, config=_CLIENT_CONFIG
        )


def launch_template_data(ec2, template_id: str, version: str) -> dict:
    """One launch-template version's LaunchTemplateData (`version` a number, `$Default` or `$Latest`)."""
    return ec2.describe_launch_template_versions(
        LaunchTemplateId=template_id, Versions=[str(version)])["LaunchTemplateVersions"][0]["LaunchTemplateData"]


def error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def is_throttling(error: BaseException) -> bool:
    return isinstance(error, ClientError) and error_code(error) in THROTTLING_ERROR_CODES


def execution_name(execution: str) -> str:
    """The name part of an execution ARN: what our tags and descriptions carry."""
    return execution.rsplit(":", 1)[-1]


def execution_digest(execution: str) -> str:
    """A digest of the full execution ARN: names repeat across state machines and
    after 90 days, the ARN (state machine included) does not."""
    return hashlib.sha256(execution.encode()).hexdigest()[:32]


def client_token(execution: str, purpose: str) -> str:
    """The idempotency token of a create call: the same execution never creates twice."""
    return hashlib.sha256(f"{execution}/{purpose}".encode()).hexdigest()[:64]
