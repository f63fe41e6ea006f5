"""Kubernetes access for the task roles: an EKS access entry per cluster in cdk.json `eks_clusters`.

The tasks authenticate with a presigned sts:GetCallerIdentity token (migrator/eks/kube.py), so they need
no IAM permission for Kubernetes; what they may do inside the cluster is Kubernetes RBAC. Each access
entry puts its role in the Kubernetes group KUBERNETES_GROUP and attaches no EKS access policy (no
AmazonEKSClusterAdminPolicy): docs/eks-rbac.yaml, applied once per cluster, binds that group to a
ClusterRole with exactly what the workflow calls (nodes get/list/patch, pods get/list, pods/eviction
create, poddisruptionbudgets list, daemonsets get/list).

Access entries need the cluster's authentication mode to be API or API_AND_CONFIG_MAP; a cluster still
in CONFIG_MAP mode rejects them (the deployment fails): switch it first with
`aws eks update-cluster-config --name <cluster> --access-config authenticationMode=API_AND_CONFIG_MAP`.
"""

from __future__ import annotations

from aws_cdk import aws_eks as eks, aws_iam as iam
from constructs import Construct

from stacks.names import pascal_case

KUBERNETES_GROUP = "al2023-migration"  # the group docs/eks-rbac.yaml binds; never a system: group


class KubernetesAccess(Construct):
    """`entries[(cluster, task name)]` is the access entry of that task's role on that cluster."""

    def __init__(self, scope: Construct, construct_id: str, *, clusters: tuple[str, ...],
                 roles: dict[str, iam.IRole]) -> None:
        super().__init__(scope, construct_id)
        self.entries: dict[tuple[str, str], eks.CfnAccessEntry] = {}
        for cluster in clusters:
            cluster_scope = Construct(self, cluster)
            for name, role in sorted(roles.items()):
                self.entries[(cluster, name)] = eks.CfnAccessEntry(
                    cluster_scope, pascal_case(name),
                    cluster_name=cluster,
                    principal_arn=role.role_arn,
                    type="STANDARD",
                    kubernetes_groups=[KUBERNETES_GROUP],
                    # no access_policies: RBAC on KUBERNETES_GROUP is all the role may do
                )
