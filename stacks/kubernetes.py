"""Kubernetes access for the task roles: an EKS access entry per cluster in cdk.json `eks_clusters`.

The tasks authenticate with a presigned sts:GetCallerIdentity token (migrator/eks/kube.py), so they need
no IAM permission for Kubernetes; what they may do inside the cluster is Kubernetes RBAC. Each access
entry puts its role in the Kubernetes groups of its task's Kubernetes bundles (KUBERNETES_GROUPS) and attaches
no EKS access policy (no AmazonEKSClusterAdminPolicy): docs/eks-rbac.yaml, applied once per cluster, binds each
group to a ClusterRole: read-only (nodes, pods, budgets, DaemonSets) for every Kubernetes task, node patch
(taint, cordon) for taint, drain and rollback, pod eviction for the drain only; for the Karpenter workflow,
NodePools and EC2NodeClasses read for its tasks, EC2NodeClass patch for its change and rollback only.

Access entries need the cluster's authentication mode to be API or API_AND_CONFIG_MAP; a cluster still
in CONFIG_MAP mode rejects them (the deployment fails): switch it first with
`aws eks update-cluster-config --name <cluster> --access-config authenticationMode=API_AND_CONFIG_MAP`.
"""

from __future__ import annotations

from aws_cdk import aws_eks as eks, aws_iam as iam
from constructs import Construct

from migrator.workflows import Access
from stacks.names import pascal_case

KUBERNETES_GROUP = "al2023-migration"  # the read-only group docs/eks-rbac.yaml binds; never a system: group
# The group of each Kubernetes bundle (migrator/workflows.py), as docs/eks-rbac.yaml binds them.
KUBERNETES_GROUPS = {Access.KUBERNETES: KUBERNETES_GROUP,
                     Access.KUBERNETES_NODE_PATCH: f"{KUBERNETES_GROUP}-node-patch",
                     Access.KUBERNETES_EVICT: f"{KUBERNETES_GROUP}-evict",
                     Access.KUBERNETES_KARPENTER_READ: f"{KUBERNETES_GROUP}-karpenter-read",
                     Access.KUBERNETES_NODECLASS_PATCH: f"{KUBERNETES_GROUP}-nodeclass-patch"}


def kubernetes_groups(access: frozenset[Access]) -> list[str]:
    return [group for bundle, group in KUBERNETES_GROUPS.items() if bundle in access]


class KubernetesAccess(Construct):
    """`entries[(cluster, task name)]` is the access entry of that task's role on that cluster."""

    def __init__(self, scope: Construct, construct_id: str, *, clusters: tuple[str, ...],
                 roles: dict[str, tuple[iam.IRole, list[str]]]) -> None:
        """`roles[task name]` is the task's role and its Kubernetes groups (kubernetes_groups)."""
        super().__init__(scope, construct_id)
        self.entries: dict[tuple[str, str], eks.CfnAccessEntry] = {}
        for cluster in clusters:
            cluster_scope = Construct(self, cluster)
            for name, (role, groups) in sorted(roles.items()):
                self.entries[(cluster, name)] = eks.CfnAccessEntry(
                    cluster_scope, pascal_case(name),
                    cluster_name=cluster,
                    principal_arn=role.role_arn,
                    type="STANDARD",
                    kubernetes_groups=groups,
                    # no access_policies: RBAC on its groups is all the role may do
                )
