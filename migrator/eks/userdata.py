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
    for line in old_user_data.replace("\\\n", " ").splitlines():  # a call continued over lines is one line
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


def nodeadm_user_data(cluster: dict, kubelet: dict, script: str | None = None) -> str:
    """MIME multipart: what nodeadm reads on AL2023, no DescribeCluster at boot; with `script`, a
    text/x-shellscript part that cloud-init runs after nodeadm's configuration (the rest of an old script)."""
    document = MIMEMultipart(boundary=BOUNDARY)
    part = MIMEText(yaml.safe_dump(node_config(cluster, kubelet), sort_keys=False))
    part.replace_header("Content-Type", "application/node.eks.aws")
    document.attach(part)
    if script:
        shell = MIMEText(script)
        shell.replace_header("Content-Type", 'text/x-shellscript; charset="us-ascii"')
        document.attach(shell)
    return document.as_string()


def script_without_bootstrap(old_user_data: str | None) -> str | None:
    """An AL2 node's script without its bootstrap.sh call (continuation lines included): what else it
    does, for the AL2023 user data's shell part. None when nothing but the shebang and `set` lines remain."""
    if not old_user_data:
        return None
    kept, continued = [], False
    for line in old_user_data.splitlines():
        if continued or "bootstrap.sh" in line:
            continued = line.rstrip().endswith("\\")
            continue
        kept.append(line)
    meaningful = [line for line in kept if line.strip() and not line.startswith("#!")
                  and not line.strip().startswith("set ")]
    return "\n".join(kept).rstrip() + "\n" if meaningful else None


def shell_parts(user_data: str) -> list[str]:
    """The text/x-shellscript parts of a MIME document (for checks and tests)."""
    message = email.message_from_string(user_data)
    return [part.get_payload() for part in message.walk() if part.get_content_type() == "text/x-shellscript"]


def parse_node_config(user_data: str) -> dict:
    """The NodeConfig inside a MIME document (for checks and tests)."""
    message = email.message_from_string(user_data)
    for part in message.walk():
        if part.get_content_type() == "application/node.eks.aws":
            return yaml.safe_load(part.get_payload())
    raise ValueError("no application/node.eks.aws part")
