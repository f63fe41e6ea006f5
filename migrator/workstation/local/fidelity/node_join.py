"""Self-managed nodes: an EC2 instance registers itself with a cluster from its user data, or never does.

Real behaviour reproduced here:

- **AL2 (EKS-optimized AMI)**: the user data's script runs `/etc/eks/bootstrap.sh <cluster> [flags]`; bootstrap.sh
  reads the cluster's endpoint and CA with DescribeCluster (unless given as flags), writes the kubelet's
  configuration (`--kubelet-extra-args`, e.g. `--node-labels`) and starts the kubelet, which registers the node
  under the instance's private DNS name with `providerID aws:///<zone>/<instance id>`. An AL2 AMI has no nodeadm: a
  NodeConfig in its user data is ignored and the node never joins.
- **AL2023 (EKS-optimized AMI)**: there is no bootstrap.sh; nodeadm reads the `application/node.eks.aws` MIME part
  of the user data, a `NodeConfig` whose `spec.cluster` must carry `name`, `apiServerEndpoint`,
  `certificateAuthority` and `cidr` (nodeadm does not call DescribeCluster). A wrong endpoint or CA: the kubelet
  cannot reach or trust the API server; a wrong name: its token is for another cluster; a wrong service `cidr`:
  the kubelet's clusterDNS points outside the service range and no pod resolves names. In each case the node is
  counted as not joined (the last one conservatively: a node that registers but serves no pod is no node).
- A node registers once its instance has booted (`instance_boot`), turns Ready `node_ready` seconds later, and is
  removed when its instance is no longer running (the cloud controller deletes the Node object).
- Fault `unhealthy` at `canary` of a self-managed group: its AL2023 nodes register but their kubelet never turns
  Ready (a broken CNI, say); fault `pdb-blocked` at `drain`: every disruption budget of the cluster allows no
  disruption while one of the group's AL2 nodes is cordoned.
"""

from __future__ import annotations

import base64
import binascii
import shlex

from moto.ec2.models import ec2_backends
from moto.eks import models as eks_models

from migrator.eks.userdata import kubelet_settings, parse_node_config
from migrator.workstation.local.fidelity.context import Context
from migrator.workstation.local.fidelity.ssm import SSM
from migrator.workstation.local.kubernetes import InstanceNode

GROUP_TAG = "aws:autoscaling:groupName"
AL2_OS_IMAGE = "Amazon Linux 2"
AL2023_OS_IMAGE = "Amazon Linux 2023.6.20241010"
RUNTIME = "containerd://1.7.22"


def _text(user_data) -> str:
    """moto keeps user data as the API received it: base64 (a `Base64EncodedString`, or a string)."""
    if isinstance(user_data, list):
        user_data = user_data[0] if user_data else None
    if user_data is None:
        return ""
    if hasattr(user_data, "decode") and not isinstance(user_data, (str, bytes)):
        return user_data.decode()
    try:
        return base64.b64decode(user_data, validate=True).decode(errors="replace")
    except (binascii.Error, ValueError):
        return user_data if isinstance(user_data, str) else user_data.decode(errors="replace")


def _labels(flags: list[str]) -> dict[str, str]:
    labels = {}
    for flag in flags:
        if flag.startswith("--node-labels="):
            for pair in flag.split("=", 1)[1].split(","):
                key, _, value = pair.partition("=")
                labels[key] = value
    return labels


class NodeJoin:
    def __init__(self, ctx: Context, ssm: SSM):
        self.ctx = ctx
        self.ssm = ssm
        self._joins: dict[str, tuple | None] = {}  # instance id -> (cluster identity, labels, AL2023?) or None

    def install(self) -> None:
        """Nothing of moto changes: the simulated API server asks `instance_nodes` who has joined."""

    def _wants(self, instance) -> tuple | None:
        """Which cluster the instance's user data registers it with, read once (user data does not change)."""
        if instance.id in self._joins:
            return self._joins[instance.id]
        found = None
        text = _text(getattr(instance, "user_data", None))
        al2023 = instance.image_id == self.ssm.latest_image(al2023=True)
        al2 = instance.image_id == self.ssm.latest_image(al2023=False)
        if al2 and "bootstrap.sh" in text:
            line = next(line for line in text.replace("\\\n", " ").splitlines() if "bootstrap.sh" in line)
            words = shlex.split(line.split("bootstrap.sh", 1)[1])
            if words and not words[0].startswith("-"):
                found = (("bootstrap", words[0]), _labels(kubelet_settings(text).get("flags", [])), False)
        elif al2023 and "application/node.eks.aws" in text:
            try:
                cluster = parse_node_config(text)["spec"]["cluster"]
                flags = (parse_node_config(text)["spec"].get("kubelet") or {}).get("flags", [])
                found = (("nodeadm", cluster.get("name"), cluster.get("apiServerEndpoint"),
                          cluster.get("certificateAuthority"), cluster.get("cidr")), _labels(flags), True)
            except (ValueError, KeyError, TypeError):
                found = None
        self._joins[instance.id] = found
        return found

    @staticmethod
    def _accepts(cluster, identity: tuple) -> bool:
        if identity[0] == "bootstrap":
            return identity[1] == cluster.name
        network = getattr(cluster, "kubernetes_network_config", None) or {}
        cidr = network.get("serviceIpv4Cidr") or "10.100.0.0/16"
        authority = (cluster.certificate_authority or {}).get("data")
        return identity[1:] == (cluster.name, cluster.endpoint, authority, cidr)

    def instance_nodes(self, cluster_name: str) -> list[InstanceNode]:
        backend = eks_models.eks_backends[self.ctx.account][self.ctx.region]
        cluster = backend.clusters.get(cluster_name)
        if cluster is None:
            return []
        ec2 = ec2_backends[self.ctx.account][self.ctx.region]
        timings, nodes = self.ctx.timings, []
        for instance in ec2.all_instances():
            if instance.state != "running":
                continue
            wanted = self._wants(instance)
            if wanted is None or not self._accepts(cluster, wanted[0]):
                continue
            identity, labels, al2023 = wanted
            group = ec2.tags.get(instance.id, {}).get(GROUP_TAG, "")
            registered = (getattr(instance, "sim_launched_at", None) or 0) + timings.instance_boot
            never = al2023 and self.ctx.has_fault(f"eks/{cluster_name}/{group}", "canary", "unhealthy")
            nodes.append(InstanceNode(
                name=f"ip-{instance.private_ip.replace('.', '-')}.ec2.internal", group=group,
                instance_id=instance.id, labels=labels, os_image=AL2023_OS_IMAGE if al2023 else AL2_OS_IMAGE,
                runtime=RUNTIME, registered_at=registered,
                ready_at=None if never else registered + timings.node_ready))
        return nodes

    def blocked_pdbs(self, sim) -> set[str]:
        """Under a `pdb-blocked` fault of a self-managed group, every budget of the cluster allows no
        disruption while one of the group's AL2 nodes is cordoned (being drained)."""
        for fault in self.ctx.faults:
            if fault.kind != "pdb-blocked" or not fault.target.startswith(f"eks/{sim.name}/"):
                continue
            group = fault.target.rsplit("/", 1)[1]
            if any(n.instance_id and n.nodegroup == group and n.unschedulable and n.os_image == AL2_OS_IMAGE
                   for n in sim.nodes.values()):
                return {w.name for w in sim.workloads.values() if w.pdb_min_available is not None}
        return set()

