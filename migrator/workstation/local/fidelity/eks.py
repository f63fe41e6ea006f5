"""EKS: managed node groups that take time to create and delete, their nodes in the
simulated API server, add-ons, and the `pdb-blocked` fault."""

from __future__ import annotations

import hashlib

from moto.core.responses import ActionResult
from moto.ec2.models import ec2_backends
from moto.eks import exceptions as eks_exceptions
from moto.eks import models as eks_models
from moto.eks import urls as eks_urls
from moto.eks.responses import EKSResponse

from migrator.eks.nodegroup import SOURCE_NODEGROUP_TAG
from migrator.workstation.local.fidelity.context import Context
from migrator.workstation.local.fidelity.eks_update import EksUpdates
from migrator.workstation.local.fidelity.ssm import SSM
from migrator.workstation.local.kubernetes import NodegroupNodes

TAINT_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}


class EKS:
    def __init__(self, ctx: Context, ssm: SSM):
        self.ctx = ctx
        self.ssm = ssm
        self.addons: dict[str, dict[str, str]] = {}  # cluster -> add-on -> version
        self.nodegroup_runtime: dict[tuple[str, str], str] = {}  # (cluster, group) -> containerRuntimeVersion
        self.pod_identities: dict[str, set[tuple[str, str]]] = {}  # cluster -> {(namespace, service account)}
        self.updates = EksUpdates(ctx)  # UpdateNodegroupVersion and the update behind it

    def install(self) -> None:
        eks, ctx, patches = self, self.ctx, self.ctx.patches
        group_cls = eks_models.Nodegroup

        def group_created(group):
            group.sim_created_at = ctx.clock.now()
            group.sim_deleting_at = None
            eks.launch_node_instances(group)

        # AWS: a node group is CREATING while its instances launch, then ACTIVE (or
        # CREATE_FAILED with health issues); DELETING, then gone. moto: ACTIVE at once.
        def group_status(group):
            if getattr(group, "sim_deleting_at", None) is not None:
                return "DELETING"
            if eks.updates.updating(group.cluster_name, group.nodegroup_name):
                return "UPDATING"
            if ctx.clock.now() < getattr(group, "sim_created_at", 0) + ctx.timings.nodegroup_create:
                return "CREATING"
            return "CREATE_FAILED" if eks.nodegroup_failed(group) else "ACTIVE"

        def group_health(group):
            if group_status(group) == "CREATE_FAILED":
                return {"issues": [{"code": "AsgInstanceLaunchFailures",
                                    "message": "Instances failed to join the kubernetes cluster (simulated fault)",
                                    "resourceIds": [group.resources["autoScalingGroups"][0]["name"]]}]}
            return {"issues": []}

        patches.after_init(group_cls, group_created)
        patches.patch(group_cls, "status", property(group_status, lambda group, value: None))
        patches.patch(group_cls, "health", property(group_health, lambda group, value: None))

        backend_cls = eks_models.EKSBackend
        original_describe = backend_cls.describe_nodegroup
        original_list = backend_cls.list_nodegroups

        def delete_nodegroup(backend, cluster_name, nodegroup_name):
            group = original_describe(backend, cluster_name, nodegroup_name)  # raises if unknown
            if group.sim_deleting_at is None:
                group.sim_deleting_at = ctx.clock.now()
            return group

        def describe_nodegroup(backend, cluster_name, nodegroup_name):
            eks.purge_deleted(backend, cluster_name)
            return original_describe(backend, cluster_name, nodegroup_name)

        def list_nodegroups(backend, cluster_name, *args, **kwargs):
            eks.purge_deleted(backend, cluster_name)
            return original_list(backend, cluster_name, *args, **kwargs)

        patches.patch(backend_cls, "delete_nodegroup", delete_nodegroup)
        patches.patch(backend_cls, "describe_nodegroup", describe_nodegroup)
        patches.patch(backend_cls, "list_nodegroups", list_nodegroups)

        # AWS: ListAddons and DescribeAddon (moto has neither).
        for pattern in ("{0}/clusters/(?P<name>[^/]+)/addons$", "{0}/clusters/(?P<name>[^/]+)/addons/(?P<addonName>[^/]+)$"):
            patches.patch_item(eks_urls.url_paths, pattern, eks_urls.response.dispatch)

        def list_addons(response):
            return ActionResult({"addons": sorted(eks.addons.get(response._get_param("name"), {}))})

        def describe_addon(response):
            cluster, name = response._get_param("name"), response._get_param("addonName")
            version = eks.addons.get(cluster, {}).get(name)
            if version is None:
                raise eks_exceptions.ResourceNotFoundException(
                    clusterName=cluster, nodegroupName=None, fargateProfileName=None, addonName=name,
                    message=f"No addon: {name} found in cluster: {cluster}")
            return ActionResult({"addon": {"addonName": name, "clusterName": cluster, "status": "ACTIVE",
                                           "addonVersion": version, "health": {"issues": []}}})

        patches.patch(EKSResponse, "list_addons", list_addons)
        patches.patch(EKSResponse, "describe_addon", describe_addon)
        self.updates.install()

        # AWS: ListPodIdentityAssociations, filtered by namespace and service account (moto has none).
        patches.patch_item(eks_urls.url_paths, "{0}/clusters/(?P<name>[^/]+)/pod-identity-associations$",
                           eks_urls.response.dispatch)

        def list_pod_identity_associations(response):
            cluster = response._get_param("name")
            namespace, account = response._get_param("namespace"), response._get_param("serviceAccount")
            found = []
            for ns, sa in sorted(eks.pod_identities.get(cluster, set())):
                if (namespace is None or ns == namespace) and (account is None or sa == account):
                    association = "a-" + hashlib.sha256(f"{cluster}/{ns}/{sa}".encode()).hexdigest()[:17]
                    found.append({"clusterName": cluster, "namespace": ns, "serviceAccount": sa,
                                  "associationId": association,
                                  "associationArn": f"arn:aws:eks:{ctx.region}:{ctx.account}:podidentityassociation/"
                                                    f"{cluster}/{association}"})
            return ActionResult({"associations": found})

        patches.patch(EKSResponse, "list_pod_identity_associations", list_pod_identity_associations)

    def launch_node_instances(self, group) -> None:
        """AWS: a managed node group launches its instances, tagged as EKS tags them,
        so discovery finds them; moto: launches none. (The nodes themselves live in
        the simulated API server.)"""
        if self.nodegroup_failed(group):
            return
        ec2 = ec2_backends[self.ctx.account][self.ctx.region]
        image = self.ssm.latest_image(al2023=group.ami_type.startswith("AL2023"))
        if group.ami_type == "CUSTOM":  # the AMI its launch template names
            template = ec2.describe_launch_templates(template_ids=[group.launch_template["id"]])[0]
            image = template.get_version(group.launch_template["version"]).data.get("ImageId") or image
        tags = {"eks:cluster-name": group.cluster_name, "eks:nodegroup-name": group.nodegroup_name,
                f"kubernetes.io/cluster/{group.cluster_name}": "owned",
                "Name": f"{group.cluster_name}-{group.nodegroup_name}-node"}
        reservation = ec2.run_instances(image, group.scaling_config.get("desiredSize", 0), None, [],
                                        instance_type=(group.instance_types or ["m5.large"])[0],
                                        subnet_id=(group.subnets or [None])[0], tags={"instance": tags},
                                        is_instance_type_default=False)
        group.sim_instance_ids = [i.id for i in reservation.instances]

    def nodegroup_failed(self, group) -> bool:
        source = (group.tags or {}).get(SOURCE_NODEGROUP_TAG)
        return bool(source) and self.ctx.has_fault(f"eks/{group.cluster_name}/{source}", "create", "error")

    def purge_deleted(self, backend, cluster_name: str) -> None:
        cluster = backend.clusters.get(cluster_name)
        if cluster is None:
            return
        for name, group in list(cluster.nodegroups.items()):
            deleting = getattr(group, "sim_deleting_at", None)
            if deleting is not None and self.ctx.clock.now() >= deleting + self.ctx.timings.nodegroup_delete:
                del cluster.nodegroups[name]
                cluster.nodegroup_count -= 1
                ec2 = ec2_backends[self.ctx.account][self.ctx.region]
                ids = getattr(group, "sim_instance_ids", [])
                if ids:
                    ec2.terminate_instances(ids)

    def nodegroup_nodes(self, cluster_name: str) -> list[NodegroupNodes]:
        """What the simulated API server registers: each group's nodes once its
        instances booted, until the group is deleted."""
        backend = eks_models.eks_backends[self.ctx.account][self.ctx.region]
        cluster = backend.clusters.get(cluster_name)
        if cluster is None:
            return []
        timings = self.ctx.timings
        groups = []
        for group in list(cluster.nodegroups.values()):
            labels = dict(group.labels or {})
            taints = [{"key": t["key"], "value": t.get("value"), "effect": TAINT_EFFECTS[t["effect"]]}
                      for t in (group.taints or [])]
            runtime = self.nodegroup_runtime.get((cluster_name, group.nodegroup_name), "containerd://1.7.22")
            replaced = self.updates.nodegroup_nodes(cluster_name, group, labels, taints, runtime)
            if replaced:  # an update took the group's nodes over, one by one
                groups += replaced
                continue
            failed = self.nodegroup_failed(group)
            created = getattr(group, "sim_created_at", 0)
            deleting = getattr(group, "sim_deleting_at", None)
            groups.append(NodegroupNodes(
                name=group.nodegroup_name,
                size=group.scaling_config.get("desiredSize", 0),
                labels=labels,
                taints=taints,
                os_image="Amazon Linux 2023.6.20241010" if group.ami_type.startswith("AL2023") else "Amazon Linux 2",
                runtime=runtime,
                registered_at=None if failed else created + timings.nodegroup_create + timings.instance_boot,
                removed_at=None if deleting is None else deleting + min(60.0, timings.nodegroup_delete / 2),
            ))
        return groups

    def blocked_pdbs(self, sim) -> set[str]:
        """Under a `pdb-blocked` fault every budget of the cluster allows no
        disruption while that node group is being drained (cordoned and tainted),
        or while EKS's own update of it drains (eks_update.py)."""
        in_update = self.updates.blocked_pdbs(sim)
        if in_update:
            return in_update
        for fault in self.ctx.faults:
            if fault.kind != "pdb-blocked" or not fault.target.startswith(f"eks/{sim.name}/"):
                continue
            group = fault.target.rsplit("/", 1)[1]
            if any(n.nodegroup == group and n.unschedulable and any(t.get("key") == "os" for t in n.taints)
                   for n in sim.nodes.values()):
                return {w.name for w in sim.workloads.values() if w.pdb_min_available is not None}
        return set()
