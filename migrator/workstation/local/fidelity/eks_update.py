"""EKS: UpdateNodegroupVersion, DescribeUpdate and ListUpdates of managed node groups, which moto lacks, with
the update EKS runs behind them.

What real EKS does (FACTS.md; "Understand each phase of node updates" in the EKS user guide), and how this
module reproduces it:

- **Setup.** The group's Auto Scaling group moves to the requested launch-template version at once
  (DescribeNodegroup then names it); the group is `UPDATING` until the update ends. One update at a time: a
  second one answers `ResourceInUseException`; the same `clientRequestToken` answers the same update.
- **Scale up.** EKS raises the group's desired size by the larger of twice its Availability Zones and its
  `maxUnavailable` (default 1), launches that many nodes from the new version, waits for them to be Ready and
  then cordons every node not on the new version. New nodes come from the new version's AMI (AL2023 or AL2 as
  the image says) and register in the simulated cluster after `instance_boot`. Nodes that never turn Ready
  fail the update with `NodeCreationFailure`; EKS does not document its wait, the simulation gives them 15
  minutes (NODE_JOIN_SECONDS).
- **Upgrade.** Up to `maxUnavailable` outdated nodes at a time: every pod but DaemonSet and mirror pods is
  evicted through the Eviction API, so disruption budgets hold (a 429 is retried); a node whose pods have not
  all left 15 minutes after its drain began fails the update with `PodEvictionFailure`, unless `force`, which
  then deletes them regardless of their budget. A drained node is terminated 60 seconds later and the group,
  still scaled up, launches a replacement from the new version.
- **Scale down.** Once no node is outdated, the group goes back to its size: the newest surplus nodes are
  cordoned, drained the same way and terminated (an update back to a version most nodes still run, a
  rollback, launches no replacement and only scales down).
- **Failure** leaves the group as it is: the new version configured, cordoned nodes cordoned, surge nodes
  running. Only another update moves it.

The simulation advances lazily to the simulated now whenever the group's updates or the group are described
(as the autoscaling module plays an instance refresh forward), so evictions happen at the moments the
workflow looks; the faults are read from the scenario: `unhealthy` at `update` (new nodes never Ready),
`pdb-blocked` at `update` (every budget of the cluster allows no disruption while the migration's update
drains), `error` at `update` (the update fails at once with `NodeCreationFailure`).
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from dataclasses import dataclass, field

from moto.core.responses import ActionResult
from moto.ec2.models import ec2_backends
from moto.eks import exceptions as eks_exceptions
from moto.eks import models as eks_models
from moto.eks import urls as eks_urls
from moto.eks.responses import EKSResponse

from migrator.ami import OsFamily, os_family
from migrator.workstation.local.fidelity.context import Context
from migrator.workstation.local.kubernetes import NodegroupNodes, SimCluster, node_name

NODE_JOIN_SECONDS = 900  # how long EKS waits for surge nodes to turn Ready (assumed: undocumented)
EVICTION_LIMIT_SECONDS = 900  # EKS's own: 15 minutes of blocked evictions per node
TERMINATE_AFTER_DRAIN_SECONDS = 60
AL2023_OS_IMAGE = "Amazon Linux 2023.6.20241010"
AL2_OS_IMAGE = "Amazon Linux 2"


@dataclass
class SimNode:
    name: str
    version: str  # the launch-template version it was launched from
    al2023: bool
    launched_at: float
    ready: bool = True
    instance_id: str | None = None
    removed_at: float | None = None


@dataclass
class GroupNodes:
    """A managed group's nodes once an update touched it: one by one, each from its own template version."""

    nodes: list[SimNode]
    next_index: int


@dataclass
class Update:
    id: str
    cluster: str
    group: str
    template_id: str
    version: str
    force: bool
    token: str | None
    created_at: float
    forward: bool  # to an AL2023 image: the migration's own update (the faults at `update` apply to it)
    max_unavailable: int
    surge: int
    size: int
    status: str = "InProgress"
    phase: str = "scale-up"
    errors: list[dict] = field(default_factory=list)
    surged: list[str] = field(default_factory=list)
    drain_started: dict[str, float] = field(default_factory=dict)
    drained_at: dict[str, float] = field(default_factory=dict)

    def describe(self) -> dict:
        return {"id": self.id, "status": self.status, "type": "VersionUpdate",
                "params": [{"type": "LaunchTemplateId", "value": self.template_id},
                           {"type": "LaunchTemplateVersion", "value": self.version},
                           {"type": "Force", "value": str(self.force).lower()}],
                "createdAt": dt.datetime.fromtimestamp(self.created_at, dt.UTC), "errors": self.errors}


class EksUpdates:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.updates: dict[tuple[str, str], list[Update]] = {}  # (cluster, group) -> oldest first
        self.groups: dict[tuple[str, str], GroupNodes] = {}
        self.clusters: dict[str, SimCluster] = {}  # set by the runtime: the simulated API servers
        self.lock = threading.RLock()

    # --- moto ------------------------------------------------------------------------

    def install(self) -> None:
        updates, patches = self, self.ctx.patches
        for pattern in ("{0}/clusters/(?P<name>[^/]+)/node-groups/(?P<nodegroupName>[^/]+)/update-version$",
                        "{0}/clusters/(?P<name>[^/]+)/updates$",
                        "{0}/clusters/(?P<name>[^/]+)/updates/(?P<updateId>[^/]+)$"):
            patches.patch_item(eks_urls.url_paths, pattern, eks_urls.response.dispatch)

        def update_nodegroup_version(response):
            params = response._get_params() if hasattr(response, "_get_params") else {}
            body = response.body if isinstance(response.body, dict) else {}
            template = response._get_param("launchTemplate") or body.get("launchTemplate") or params.get(
                "launchTemplate") or {}
            update = updates.start(response._get_param("name"), response._get_param("nodegroupName"), template,
                                   bool(response._get_param("force")), response._get_param("clientRequestToken"))
            return ActionResult({"update": update.describe()})

        def describe_update(response):
            cluster, group = response._get_param("name"), response._get_param("nodegroupName")
            update = updates.find(cluster, group, response._get_param("updateId"))
            return ActionResult({"update": update.describe()})

        def list_updates(response):
            cluster, group = response._get_param("name"), response._get_param("nodegroupName")
            with updates.lock:
                found = list(updates.updates.get((cluster, group), []))
                for update in found:
                    updates.advance(update)
            return ActionResult({"updateIds": [u.id for u in reversed(found)]})

        patches.patch(EKSResponse, "update_nodegroup_version", update_nodegroup_version)
        patches.patch(EKSResponse, "describe_update", describe_update)
        patches.patch(EKSResponse, "list_updates", list_updates)

    # --- the API ----------------------------------------------------------------------

    def _group(self, cluster: str, name: str):
        backend = eks_models.eks_backends[self.ctx.account][self.ctx.region]
        return backend.describe_nodegroup(cluster, name)  # raises ResourceNotFoundException

    def start(self, cluster: str, name: str, template: dict, force: bool, token: str | None) -> Update:
        with self.lock:
            group = self._group(cluster, name)
            history = self.updates.setdefault((cluster, name), [])
            for update in history:
                self.advance(update)
            same = next((u for u in history if token and u.token == token), None)
            if same is not None:
                return same
            if any(u.status == "InProgress" for u in history):
                raise eks_exceptions.ResourceInUseException(
                    clusterName=cluster, nodegroupName=name, addonName=None,
                    message=f"Nodegroup {name} is currently being updated")
            current = group.launch_template or {}
            if not current or template.get("id", current.get("id")) != current.get("id"):
                raise eks_exceptions.InvalidParameterException(
                    clusterName=cluster, nodegroupName=name, fargateProfileName=None, addonName=None,
                    message="The launch template must be the node group's own")
            version = str(template.get("version") or current.get("version"))
            image = self._image(current["id"], version)
            azs = max(1, len(set(group.subnets or [])))
            max_unavailable = int((group.update_config or {}).get("maxUnavailable") or 1)
            size = int(group.scaling_config.get("desiredSize", 0))
            self._nodes(cluster, group)  # the nodes as they are, before the version moves
            update = Update(id=str(uuid.UUID(int=self.ctx.random.getrandbits(128))), cluster=cluster, group=name,
                            template_id=current["id"], version=version, force=force, token=token,
                            created_at=self.ctx.clock.now(), forward=image is OsFamily.AL2023,
                            max_unavailable=max_unavailable, surge=max(2 * azs, max_unavailable), size=size)
            group.launch_template = {**current, "version": version}  # the setup phase
            history.append(update)
            if update.forward and self.ctx.has_fault(self.target(update), "update", "error"):
                self._fail(update, "NodeCreationFailure", "Instances failed to join the kubernetes cluster "
                                                          "(simulated fault)", [])
            return update

    def find(self, cluster: str, name: str, update_id: str) -> Update:
        with self.lock:
            for update in self.updates.get((cluster, name), []):
                if update.id == update_id:
                    self.advance(update)
                    return update
        raise eks_exceptions.ResourceNotFoundException(
            clusterName=cluster, nodegroupName=name, fargateProfileName=None, addonName=None,
            message=f"No update found for ID: {update_id}")

    def updating(self, cluster: str, name: str) -> bool:
        with self.lock:
            history = self.updates.get((cluster, name), [])
            for update in history:
                self.advance(update)
            return any(u.status == "InProgress" for u in history)

    @staticmethod
    def target(update: Update) -> str:
        return f"eks/{update.cluster}/{update.group}"

    # --- what the simulated cluster sees -----------------------------------------------------

    def nodegroup_nodes(self, cluster: str, group, labels: dict, taints: list, runtime: str) -> list[NodegroupNodes]:
        """The group's nodes, one entry per node, for the simulated API server; [] before any update."""
        # no lock: the API server asks with its own lock held, and an update holds this one to drain
        nodes = self.groups.get((cluster, group.nodegroup_name))
        if nodes is None:
            return []
        return [NodegroupNodes(name=group.nodegroup_name, size=1, labels=labels, taints=taints,
                               os_image=AL2023_OS_IMAGE if n.al2023 else AL2_OS_IMAGE, runtime=runtime,
                               registered_at=n.launched_at + self.ctx.timings.instance_boot,
                               removed_at=n.removed_at, names=[n.name], ready=n.ready)
                for n in list(nodes.nodes)]

    def blocked_pdbs(self, sim: SimCluster) -> set[str]:
        """`pdb-blocked` at `update`: while the migration's update drains that group, no budget allows a
        disruption."""
        for (cluster, _), history in list(self.updates.items()):
            if cluster != sim.name:
                continue
            for update in list(history):
                if (update.forward and update.status == "InProgress" and update.phase == "upgrade"
                        and self.ctx.has_fault(self.target(update), "update", "pdb-blocked")):
                    return {w.name for w in sim.workloads.values() if w.pdb_min_available is not None}
        return set()

    # --- the update itself --------------------------------------------------------------

    def _image(self, template_id: str, version: str) -> OsFamily:
        ec2 = ec2_backends[self.ctx.account][self.ctx.region]
        template = ec2.describe_launch_templates(template_ids=[template_id])[0]
        data = template.get_version(version).data
        image_id = data.get("ImageId")
        images = ec2.describe_images(ami_ids=[image_id]) if image_id else []
        return os_family({"Name": images[0].name, "Description": images[0].description or ""}) if images else (
            OsFamily.OTHER)

    def _nodes(self, cluster: str, group) -> GroupNodes:
        """The group's nodes, taken over from the node group's index-named ones on first use."""
        key = (cluster, group.nodegroup_name)
        if key not in self.groups:
            size = int(group.scaling_config.get("desiredSize", 0))
            version = str((group.launch_template or {}).get("version", "1"))
            al2023 = self._image(group.launch_template["id"], version) is OsFamily.AL2023
            ids = list(getattr(group, "sim_instance_ids", []))
            launched = getattr(group, "sim_created_at", 0) + self.ctx.timings.nodegroup_create  # as EKS built it
            self.groups[key] = GroupNodes(
                nodes=[SimNode(node_name(cluster, group.nodegroup_name, i), version, al2023, launched,
                               instance_id=ids[i] if i < len(ids) else None) for i in range(size)],
                next_index=size)
        return self.groups[key]

    def _launch(self, update: Update, at: float) -> SimNode:
        group = self._group(update.cluster, update.group)
        nodes = self._nodes(update.cluster, group)
        al2023 = update.forward or self._image(update.template_id, update.version) is OsFamily.AL2023
        never_ready = update.forward and self.ctx.has_fault(self.target(update), "update", "unhealthy")
        node = SimNode(node_name(update.cluster, update.group, nodes.next_index), update.version, al2023, at,
                       ready=not never_ready, instance_id=self._run_instance(update, group))
        nodes.next_index += 1
        nodes.nodes.append(node)
        return node

    def _run_instance(self, update: Update, group) -> str:
        """The node's EC2 instance, from the version's AMI, tagged as EKS tags a managed group's instances."""
        ec2 = ec2_backends[self.ctx.account][self.ctx.region]
        template = ec2.describe_launch_templates(template_ids=[update.template_id])[0]
        data = template.get_version(update.version).data
        tags = {"eks:cluster-name": update.cluster, "eks:nodegroup-name": update.group,
                f"kubernetes.io/cluster/{update.cluster}": "owned",
                "Name": f"{update.cluster}-{update.group}-node"}
        reservation = ec2.run_instances(data["ImageId"], 1, None, [], instance_type=data.get("InstanceType") or (
            group.instance_types or ["m5.large"])[0], subnet_id=(group.subnets or [None])[0],
            tags={"instance": tags}, is_instance_type_default=False)
        return reservation.instances[0].id

    def _remove(self, node: SimNode, at: float) -> None:
        node.removed_at = at
        if node.instance_id:
            ec2_backends[self.ctx.account][self.ctx.region].terminate_instances([node.instance_id])

    def _fail(self, update: Update, code: str, message: str, resources: list[str]) -> None:
        update.status = "Failed"
        update.errors = [{"errorCode": code, "errorMessage": message, "resourceIds": resources}]

    def advance(self, update: Update) -> None:
        """Play the update forward to the simulated now."""
        if update.status != "InProgress":
            return
        now = self.ctx.clock.now()
        group = self._group(update.cluster, update.group)
        nodes = self._nodes(update.cluster, group)
        sim = self.clusters.get(update.cluster)
        boot = self.ctx.timings.instance_boot
        if update.phase == "scale-up":
            if not update.surged:
                update.surged = [self._launch(update, update.created_at).name for _ in range(update.surge)]
            surged = [n for n in nodes.nodes if n.name in update.surged]
            if now < update.created_at + boot:
                return
            if not all(n.ready for n in surged):
                if now >= update.created_at + NODE_JOIN_SECONDS:
                    self._fail(update, "NodeCreationFailure", "Instances failed to join the kubernetes cluster",
                               [n.instance_id for n in surged if not n.ready and n.instance_id])
                return
            update.phase = "upgrade"
            self._cordon(sim, [n.name for n in nodes.nodes if n.removed_at is None and n.version != update.version])
        while update.phase == "upgrade":
            batch = self._victims(update, nodes)[:update.max_unavailable]
            if not batch:
                update.status, update.phase = "Successful", "done"
                return
            self._cordon(sim, [n.name for n in batch])
            waiting = False
            for node in batch:
                if not self._drain(update, sim, node, now):
                    waiting = True
                    continue
                drained = update.drained_at.setdefault(node.name, now)
                if now < drained + TERMINATE_AFTER_DRAIN_SECONDS:
                    waiting = True
                    continue
                self._remove(node, now)
                alive = [n for n in nodes.nodes if n.removed_at is None]
                if node.version != update.version and len(alive) < update.size + update.surge:
                    self._launch(update, now)  # the group, still scaled up, replaces it from the new version
            if update.status != "InProgress" or waiting:
                return

    def _victims(self, update: Update, nodes: GroupNodes) -> list[SimNode]:
        alive = [n for n in nodes.nodes if n.removed_at is None]
        outdated = sorted((n for n in alive if n.version != update.version), key=lambda n: n.name)
        if outdated:
            return outdated
        surplus = len(alive) - update.size  # the scale-down: the newest nodes go
        return sorted(alive, key=lambda n: (-n.launched_at, n.name))[:surplus] if surplus > 0 else []

    @staticmethod
    def _cordon(sim: SimCluster | None, names: list[str]) -> None:
        if sim is None:
            return
        with sim.lock:
            sim.reconcile()
            for name in names:
                if name in sim.nodes:
                    sim.nodes[name].unschedulable = True

    def _drain(self, update: Update, sim: SimCluster | None, node: SimNode, now: float) -> bool:
        """Evict what is left on the node; True once nothing but DaemonSet and mirror pods remains."""
        if sim is None:
            return True
        with sim.lock:
            sim.reconcile()
            pods = [p for p in sim.pods.values() if p.node == node.name and not p.daemonset and not p.mirror]
            if not pods:
                return True
            started = update.drain_started.setdefault(node.name, now)
            blocked = []
            for pod in pods:
                if pod.deleting_at is not None:
                    continue
                code, body = sim.evict(pod.namespace, pod.name)
                if code == 429:
                    blocked.append(f"{pod.namespace}/{pod.name}")
            if blocked and now - started >= EVICTION_LIMIT_SECONDS:
                if update.force:
                    for name in blocked:
                        sim.delete_pod(*name.split("/", 1))
                else:
                    self._fail(update, "PodEvictionFailure",
                               f"Reached max retries while trying to evict pods from nodes in node group "
                               f"{update.group}: {', '.join(blocked[:5])}", [node.instance_id or node.name])
            return False
