"""nodeadm user data for AL2023 nodes: a MIME multipart document with a NodeConfig."""

from __future__ import annotations

import email
import shlex
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import yaml

BOUNDARY = "//AL2023-MIGRATION//"


def kubelet_settings(old_user_data: str | None) -> dict:
    """The kubelet flags an AL2 template passed to bootstrap.sh: `--kubelet-extra-args`
    and `--use-max-pods false` with `--max-pods`. Returns NodeConfig kubelet settings."""
    if not old_user_data:
        return {}
    flags, config = [], {}
    for line in old_user_data.splitlines():
        if "bootstrap.sh" not in line:
            continue
        words = shlex.split(line.split("bootstrap.sh", 1)[1])
        for index, word in enumerate(words):
            if word == "--kubelet-extra-args" and index + 1 < len(words):
                for flag in shlex.split(words[index + 1]):
                    if flag.startswith("--max-pods="):
                        config["maxPods"] = int(flag.split("=", 1)[1])
                    else:
                        flags.append(flag)
    settings = {}
    if config:
        settings["config"] = config
    if flags:
        settings["flags"] = flags
    return settings


def node_config(cluster: dict, kubelet: dict) -> dict:
    network = cluster.get("kubernetesNetworkConfig") or {}
    spec = {"cluster": {
        "name": cluster["name"],
        "apiServerEndpoint": cluster["endpoint"],
        "certificateAuthority": (cluster.get("certificateAuthority") or {}).get("data", ""),
        "cidr": network.get("serviceIpv4Cidr") or network.get("serviceIpv6Cidr") or "10.100.0.0/16",
    }}
    if kubelet:
        spec["kubelet"] = kubelet
    return {"apiVersion": "node.eks.aws/v1alpha1", "kind": "NodeConfig", "spec": spec}


def nodeadm_user_data(cluster: dict, kubelet: dict) -> str:
    """MIME multipart: what nodeadm reads on AL2023, no DescribeCluster at boot."""
    document = MIMEMultipart(boundary=BOUNDARY)
    part = MIMEText(yaml.safe_dump(node_config(cluster, kubelet), sort_keys=False))
    part.replace_header("Content-Type", "application/node.eks.aws")
    document.attach(part)
    return document.as_string()


def parse_node_config(user_data: str) -> dict:
    """The NodeConfig inside a MIME document (for checks and tests)."""
    message = email.message_from_string(user_data)
    for part in message.walk():
        if part.get_content_type() == "application/node.eks.aws":
            return yaml.safe_load(part.get_payload())
    raise ValueError("no application/node.eks.aws part")
