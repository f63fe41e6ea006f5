"""Deployment settings read from the CDK context (cdk.json, or `cdk synth -c key=value`)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from constructs import Node

from migrator.config import DEFAULT_MIGRATION_TAG, PROJECT_ROOT

DEFAULT_APPROVAL_TIMEOUT_SECONDS = 86400
DEFAULT_LAYER_DIR = "build/layer"
MAX_APPROVAL_TIMEOUT_SECONDS = 365 * 24 * 3600  # a Step Functions task token lives at most a year
EKS_CLUSTER_NAME = re.compile(r"[0-9A-Za-z][A-Za-z0-9\-_]{0,99}")  # as CreateCluster accepts it


class SettingsError(Exception):
    """A context value the app cannot synthesize with; the message is one line for the user."""


@dataclass(frozen=True)
class Settings:
    tag_key: str
    tag_value: str
    approval_timeout_seconds: int
    notification_emails: tuple[str, ...]
    layer_dir: Path  # holds python/, as layers/build.py makes it
    # cdk.json `dns_hosted_zone_ids`, e.g. ["Z0123456789ABCDEFGHIJ"]: the only Route 53 hosted zones the
    # standalone workflow may read and change for a DNS cutover. Empty (the default): any zone in the account,
    # since the zone comes from the execution input.
    dns_hosted_zone_ids: tuple[str, ...] = ()
    # cdk.json `eks_clusters`, e.g. ["prod"]: the EKS clusters (in the stack's account and region) whose
    # node groups the eks-nodegroup workflow migrates. Each gets an access entry per Kubernetes-using task
    # role (stacks/kubernetes.py), and the EKS permissions are limited to them. Empty (the default): no
    # access entries, and EKS permissions on any cluster of the account.
    eks_clusters: tuple[str, ...] = ()

    @classmethod
    def from_context(cls, node: Node) -> Settings:
        def get(key, default):
            value = node.try_get_context(key)
            # `-c key=value` on the command line gives strings; cdk.json gives JSON values.
            if isinstance(value, str) and key != "layer_dir":
                try:
                    value = json.loads(value)
                except json.JSONDecodeError:
                    raise SettingsError(f"context {key} must be JSON, got {value!r}") from None
            return default if value is None else value

        tag = get("migration_tag", DEFAULT_MIGRATION_TAG)
        if not (isinstance(tag, dict) and tag.get("key") and tag.get("value")):
            raise SettingsError(f'context migration_tag must be {{"key": ..., "value": ...}}, got {tag!r}')
        timeout = get("approval_timeout_seconds", DEFAULT_APPROVAL_TIMEOUT_SECONDS)
        if not (isinstance(timeout, int) and 0 < timeout <= MAX_APPROVAL_TIMEOUT_SECONDS):
            raise SettingsError(f"context approval_timeout_seconds must be 1..{MAX_APPROVAL_TIMEOUT_SECONDS}, got {timeout!r}")
        emails = get("notification_emails", [])
        if not (isinstance(emails, list) and all(isinstance(e, str) and "@" in e for e in emails)):
            raise SettingsError(f"context notification_emails must be a list of email addresses, got {emails!r}")
        layer_dir = PROJECT_ROOT / get("layer_dir", DEFAULT_LAYER_DIR)  # relative to the project root
        if not (layer_dir / "python").is_dir():
            raise SettingsError(f"Lambda layer not found in {layer_dir}: run `make layer` first")
        zones = get("dns_hosted_zone_ids", [])
        if not (isinstance(zones, list) and all(isinstance(z, str) and re.fullmatch(r"[A-Z0-9]+", z) for z in zones)):
            raise SettingsError(f'context dns_hosted_zone_ids must be a list of zone IDs like "Z0123ABC", got {zones!r}')
        clusters = get("eks_clusters", [])
        if not (isinstance(clusters, list) and len(set(map(str, clusters))) == len(clusters)
                and all(isinstance(c, str) and EKS_CLUSTER_NAME.fullmatch(c) for c in clusters)):
            raise SettingsError(
                f'context eks_clusters must be a list of distinct EKS cluster names like "prod", got {clusters!r}')
        return cls(str(tag["key"]), str(tag["value"]), timeout, tuple(emails), layer_dir, tuple(zones),
                   tuple(clusters))
