"""nodeadm user data for AL2023 nodes: a MIME multipart document with a NodeConfig."""

from __future__ import annotations

import email
import re
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


def _scripts_of(user_data: str) -> list[str]:
    """The shell scripts of a user data: its text/x-shellscript parts if it is MIME multipart (as EKS
    managed node group templates often are), else the whole text."""
    message = email.message_from_string(user_data)
    if not message.is_multipart():
        return [user_data]
    return [part.get_payload(decode=True).decode(errors="replace") for part in message.walk()
            if part.get_content_type() == "text/x-shellscript"]


def carried_scripts(old_user_data: str | None) -> list[str]:
    """What the old user data did besides calling bootstrap.sh (agents, sysctl, mounts...): each of its
    scripts without the bootstrap.sh call (nodeadm joins the node on AL2023), when anything else is left.
    Nothing is dropped without a word: these go into the nodeadm document as text/x-shellscript parts."""
    carried = []
    for script in _scripts_of(old_user_data or ""):
        logical = re.sub(r"\\\n", " ", script).splitlines()  # a bootstrap.sh call continued over lines is one
        kept = [line for line in logical if "bootstrap.sh" not in line]
        commands = [line.strip() for line in kept if line.strip() and not line.strip().startswith("#")
                    and not re.fullmatch(r"set\s+[-+][a-z]+( [-+][a-z]+)*", line.strip())]
        if commands:
            carried.append("\n".join(kept).strip() + "\n")
    return carried


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


def nodeadm_user_data(cluster: dict, kubelet: dict, scripts: list[str] = ()) -> str:
    """MIME multipart: what nodeadm reads on AL2023, no DescribeCluster at boot; then the old user
    data's own scripts (`carried_scripts`), which cloud-init runs as text/x-shellscript parts."""
    document = MIMEMultipart(boundary=BOUNDARY)
    part = MIMEText(yaml.safe_dump(node_config(cluster, kubelet), sort_keys=False))
    part.replace_header("Content-Type", "application/node.eks.aws")
    document.attach(part)
    for script in scripts:
        document.attach(MIMEText(script, "x-shellscript"))
    return document.as_string()


def shell_scripts(user_data: str) -> list[str]:
    """The text/x-shellscript parts of a MIME document (for checks and tests)."""
    message = email.message_from_string(user_data)
    return [part.get_payload(decode=True).decode() for part in message.walk()
            if part.get_content_type() == "text/x-shellscript"]


def parse_node_config(user_data: str) -> dict:
    """The NodeConfig inside a MIME document (for checks and tests)."""
    message = email.message_from_string(user_data)
    for part in message.walk():
        if part.get_content_type() == "application/node.eks.aws":
            return yaml.safe_load(part.get_payload())
    raise ValueError("no application/node.eks.aws part")
