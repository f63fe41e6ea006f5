"""Simulated EKS clusters behind a Kubernetes API the official client talks to over HTTP.

It answers as ../shared/FACTS.md records a real API server does: an eviction
answers 201, or 429 with a `DisruptionBudget` cause when a PDB allows no
disruption; PDB status is computed; pending, finished and terminating pods skip
the PDB check; an evicted pod terminates for `pod_termination` simulated
seconds; nodes register when their node group's instances have booted; a simple
scheduler places workload replicas on Ready, schedulable, untainted nodes and
DaemonSet pods on every node. The state moves forward on the simulated clock
whenever a request arrives.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

from migrator.workstation.local.clock import SimClock


@dataclass
class Node:
    name: str
    nodegroup: str
    labels: dict
    taints: list
    os_image: str
    runtime: str
    created_at: float
    unschedulable: bool = False
    annotations: dict = field(default_factory=dict)
    instance_id: str | None = None  # a self-managed node names its instance in providerID
    ready_at: float | None = 0.0  # None: the kubelet never reports Ready

    def ready(self, now: float) -> bool:
        return self.ready_at is not None and now >= self.ready_at


@dataclass
class Workload:
    name: str
    namespace: str
    replicas: int = 0
    daemonset: bool = False
    pdb_min_available: int | None = None
    image: str = "public.ecr.aws/docker/library/nginx:1.27"
    bare: bool = False  # pods with no controller: created once, never recreated
    empty_dir: bool = False  # pods with an emptyDir volume
    extra_pdb: bool = False  # a second budget `<name>-extra` selects the same pods
    node_selector: dict = field(default_factory=dict)
    annotations: dict = field(default_factory=dict)  # on every pod (e.g. karpenter.sh/do-not-disrupt)
    service_account: str = "default"
    host_network: bool = False  # as aws-node and kube-proxy run: IMDS's hop limit does not apply to them

    def budgets(self) -> list[str]:
        if self.pdb_min_available is None:
            return []
        return [self.name] + ([f"{self.name}-extra"] if self.extra_pdb else [])


@dataclass
class Pod:
    name: str
    namespace: str
    workload: str
    daemonset: bool
    created_at: float
    node: str | None = None
    ready_at: float | None = None  # scheduled, containers started
    deleting_at: float | None = None  # deletionTimestamp + grace period
    mirror: bool = False

    def ready(self, now: float) -> bool:
        return self.node is not None and self.ready_at is not None and now >= self.ready_at

    def phase(self, now: float) -> str:
        return "Running" if self.ready(now) else "Pending"


@dataclass
class NodegroupNodes:
    """What the EKS side says about a node group: how many nodes, and from when to when."""

    name: str
    size: int
    labels: dict
    taints: list
    os_image: str
    runtime: str
    registered_at: float | None  # instances booted and joined
    removed_at: float | None = None  # instances terminated (group deleted)
    names: list[str] | None = None  # these nodes by name (a group whose nodes are replaced one by one), not `size`
    ready: bool = True  # False: the kubelet joined but never reports Ready
    nodegroup_label: bool = True  # False: not a managed node group's node (e.g. Karpenter's)


@dataclass
class InstanceNode:
    """A node one EC2 instance registered itself (a self-managed node group's): local/fidelity/node_join.py
    says which instances join, when, and whether their kubelet turns Ready."""

    name: str  # the instance's private DNS name, as the kubelet registers it
    group: str  # its Auto Scaling group
    instance_id: str
    labels: dict
    os_image: str
    runtime: str
    registered_at: float
    ready_at: float | None  # None: never Ready


class SimCluster:
    def __init__(self, name: str, version: str, clock: SimClock, pod_termination: float,
                 nodegroups: Callable[[], list[NodegroupNodes]], pod_start: float = 15.0,
                 instance_nodes: Callable[[], list[InstanceNode]] = list):
        self.name = name
        self.version = version
        self.clock = clock
        self.pod_termination = pod_termination
        self.pod_start = pod_start
        self.nodegroups = nodegroups
        self.instance_nodes = instance_nodes
        self.nodes: dict[str, Node] = {}
        self.workloads: dict[str, Workload] = {}
        self.pods: dict[tuple[str, str], Pod] = {}
        self.lost_pods: list[str] = []  # deleted with their node, not evicted
        self.min_available: dict[str, int] = {}  # lowest ready replicas seen per workload
        self.blocked_pdbs: Callable[[], set[str]] = set  # workloads whose PDB the scenario blocks now
        # budgets the disruption controller has not computed yet (status empty): the server answers
        # every eviction they cover 429 "still being processed"
        self.uncomputed_pdbs: set[str] = set()
        self.evicted_bare: list[str] = []  # pods no controller recreates, evicted: gone for good
        self.evicted_empty_dir: list[str] = []  # pods whose emptyDir data went with their eviction
        self._created_bare: set[str] = set()
        self.service_account_annotations: dict[tuple[str, str], dict] = {}  # (namespace, name) -> annotations
        self.daemonset_images = {"aws-node": "602401143452.dkr.ecr.us-east-1.amazonaws.com/amazon-k8s-cni:v1.18.3"}
        self._sequence = 0
        self.lock = threading.RLock()
        # controllers running in the cluster besides the scheduler (Karpenter: local/karpenter.py); each may
        # provide nodes() -> list[NodegroupNodes], step(now), and serve(method, path, body, headers) -> answer | None
        self.controllers: list = []

    # --- the world ---------------------------------------------------------------

    def add_workload(self, workload: Workload) -> None:
        self.workloads[workload.name] = workload

    def settle(self) -> None:
        """The cluster as it is before the scenario: every pod placed and ready."""
        with self.lock:
            self.reconcile()
            for pod in self.pods.values():
                if pod.node:
                    pod.ready_at = min(pod.ready_at or 0, self.clock.now())
            self.min_available.clear()
            self.reconcile()

    def reconcile(self) -> None:
        now = self.clock.now()
        with self.lock:
            for key, pod in list(self.pods.items()):
                if pod.deleting_at is not None and now >= pod.deleting_at:
                    del self.pods[key]  # the kubelet finished the graceful shutdown
            self._sync_nodes(now)
            for controller in self.controllers:
                controller.step(now)
            for workload in self.workloads.values():
                (self._sync_daemonset if workload.daemonset else self._sync_deployment)(workload, now)
            self._schedule(now)
            for workload in self.workloads.values():
                if not workload.daemonset:
                    ready = len(self.ready_pods(workload.name))
                    self.min_available[workload.name] = min(self.min_available.get(workload.name, ready), ready)

    def _sync_nodes(self, now: float) -> None:
        wanted = {}
        extra = [group for controller in self.controllers for group in controller.nodes()]
        for group in [*self.nodegroups(), *extra]:
            if group.registered_at is None or now < group.registered_at:
                continue
            if group.removed_at is not None and now >= group.removed_at:
                continue
            for index, name in enumerate(group.names if group.names is not None
                                         else [node_name(self.name, group.name, i) for i in range(group.size)]):
                wanted[name] = (group, index)
        joined = {n.name: n for n in self.instance_nodes() if now >= n.registered_at}
        wanted |= {name: (None, None) for name in joined}
        for name in set(self.nodes) - set(wanted):
            del self.nodes[name]
            for key, pod in list(self.pods.items()):
                if pod.node == name:
                    if not pod.daemonset and pod.deleting_at is None:
                        self.lost_pods.append(f"{pod.namespace}/{pod.name}")
                    del self.pods[key]
        for name, instance in joined.items():
            if name not in self.nodes:
                labels = {**instance.labels, "kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
                self.nodes[name] = Node(name, instance.group, labels, [], instance.os_image, instance.runtime,
                                        instance.registered_at, instance_id=instance.instance_id)
            self.nodes[name].ready_at = instance.ready_at
        for name, (group, _) in wanted.items():
            if group is not None and name not in self.nodes:
                labels = {**group.labels, "kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
                if group.nodegroup_label:
                    labels["eks.amazonaws.com/nodegroup"] = group.name
                self.nodes[name] = Node(name, group.name, labels, [dict(t) for t in group.taints],
                                        group.os_image, group.runtime, now, ready_at=0.0 if group.ready else None)

    def _new_pod(self, workload: Workload, now: float, node: str | None = None) -> Pod:
        self._sequence += 1
        suffix = hashlib.sha256(f"{workload.name}/{self._sequence}".encode()).hexdigest()[:5]
        pod = Pod(f"{workload.name}-{suffix}", workload.namespace, workload.name, workload.daemonset, now, node,
                  ready_at=now + self.pod_start if node else None)
        self.pods[(pod.namespace, pod.name)] = pod
        return pod

    def _sync_daemonset(self, workload: Workload, now: float) -> None:
        covered = {p.node for p in self.pods.values() if p.workload == workload.name}
        for name, node in self.nodes.items():
            if name not in covered and node.ready(now):  # a NotReady kubelet starts no pod
                self._new_pod(workload, now, node=name)  # DaemonSet pods tolerate every taint

    def _sync_deployment(self, workload: Workload, now: float) -> None:
        if workload.bare:  # kubectl run / a bare manifest: nothing recreates an evicted pod
            if workload.name in self._created_bare:
                return
            self._created_bare.add(workload.name)
        alive = [p for p in self.pods.values() if p.workload == workload.name and p.deleting_at is None]
        for _ in range(workload.replicas - len(alive)):
            self._new_pod(workload, now)

    def fits(self, pod: Pod, node: Node) -> bool:
        """The node selector must match the node's labels, as kube-scheduler requires."""
        wanted = self.workloads[pod.workload].node_selector
        return all(node.labels.get(k) == v for k, v in wanted.items())

    def schedulable(self, node: Node) -> bool:
        return node.ready(self.clock.now()) and not node.unschedulable and not any(
            t.get("effect") in ("NoSchedule", "NoExecute") for t in node.taints)

    def _schedule(self, now: float) -> None:
        candidates = [n for n in self.nodes.values() if self.schedulable(n)]
        if not candidates:
            return
        load = defaultdict(int)
        for pod in self.pods.values():
            if pod.node:
                load[pod.node] += 1
        for pod in sorted(self.pods.values(), key=lambda p: p.created_at):
            fitting = [n for n in candidates if self.fits(pod, n)]
            if pod.node is None and pod.deleting_at is None and fitting:
                node = min(fitting, key=lambda n: (load[n.name], n.name))
                pod.node = node.name
                pod.ready_at = now + self.pod_start
                load[node.name] += 1

    def ready_pods(self, workload: str) -> list[Pod]:
        now = self.clock.now()
        return [p for p in self.pods.values() if p.workload == workload and p.ready(now) and p.deleting_at is None]

    # --- disruption budgets and eviction ----------------------------------------------

    def pdb_status(self, workload: Workload) -> dict:
        healthy = len(self.ready_pods(workload.name))
        desired = workload.replicas if workload.name in self.blocked_pdbs() else workload.pdb_min_available
        return {"currentHealthy": healthy, "desiredHealthy": desired, "expectedPods": workload.replicas,
                "disruptionsAllowed": max(0, healthy - desired), "observedGeneration": 1}

    def evict(self, namespace: str, name: str) -> tuple[int, dict]:
        """The eviction subresource: more than one budget over the pod answers 500 (before
        any budget is read); a budget not computed yet 429 with retryAfterSeconds 10; a budget
        allowing no disruption 429 with the generic message at the top and the budget's
        name and numbers in details.causes."""
        with self.lock:
            pod = self.pods.get((namespace, name))
            if pod is None:
                return 404, status_body(404, "NotFound", f'pods "{name}" not found')
            workload = self.workloads[pod.workload]
            budgets = workload.budgets()
            if pod.deleting_at is not None or not pod.ready(self.clock.now()):
                pass  # pending or already terminating: no budget check, as the API server does
            elif len(budgets) > 1:
                body = status_body(500, "", "This pod has more than one PodDisruptionBudget, which the eviction "
                                            "subresource does not support.")
                del body["reason"]  # the real answer has none
                return 500, body
            elif budgets:
                budget = self.pdb_status(workload)
                cause = None
                if budgets[0] in self.uncomputed_pdbs:
                    cause = f"The disruption budget {budgets[0]} is still being processed by the server."
                elif budget["disruptionsAllowed"] <= 0:
                    cause = (f"The disruption budget {budgets[0]} needs {budget['desiredHealthy']} healthy "
                             f"pods and has {budget['currentHealthy']} currently")
                if cause:
                    body = status_body(429, "TooManyRequests",
                                       "Cannot evict pod as it would violate the pod's disruption budget.")
                    body["details"] = {"causes": [{"reason": "DisruptionBudget", "message": cause}]}
                    if budgets[0] in self.uncomputed_pdbs:
                        body["details"]["retryAfterSeconds"] = 10
                    return 429, body
            if not pod.deleting_at:
                pod.deleting_at = self.clock.now() + self.pod_termination
                if workload.bare:
                    self.evicted_bare.append(f"{pod.namespace}/{pod.name}")
                if workload.empty_dir:
                    self.evicted_empty_dir.append(f"{pod.namespace}/{pod.name}")
            self.reconcile()
            return 201, {"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201, "metadata": {}}

    def delete_pod(self, namespace: str, name: str) -> None:
        """A DELETE of the pod (no budget check), as a forced drain does: it terminates over its grace period."""
        with self.lock:
            pod = self.pods.get((namespace, name))
            if pod is None or pod.deleting_at is not None:
                return
            pod.deleting_at = self.clock.now() + self.pod_termination
            workload = self.workloads[pod.workload]
            if workload.bare:
                self.evicted_bare.append(f"{pod.namespace}/{pod.name}")
            if workload.empty_dir:
                self.evicted_empty_dir.append(f"{pod.namespace}/{pod.name}")
            self.reconcile()

    # --- Kubernetes objects ------------------------------------------------------------

    def node_object(self, node: Node) -> dict:
        return {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node.name, "labels": node.labels, "annotations": node.annotations,
                         "creationTimestamp": iso(node.created_at), "uid": uid(node.name)},
            "spec": {"taints": node.taints or None, "unschedulable": node.unschedulable or None,
                     "providerID": f"aws:///us-east-1a/{node.instance_id or 'i-' + uid(node.name)[:17]}"},
            "status": {
                "conditions": [{"type": "Ready", **({"status": "True", "reason": "KubeletReady"}
                                                   if node.ready(self.clock.now()) else
                                                   {"status": "False", "reason": "KubeletNotReady"}),
                                "lastHeartbeatTime": iso(self.clock.now()), "lastTransitionTime": iso(node.created_at)}],
                "nodeInfo": {"osImage": node.os_image, "containerRuntimeVersion": node.runtime,
                             "kubeletVersion": f"v{self.version}.0-eks", "kubeProxyVersion": f"v{self.version}.0-eks",
                             "architecture": "amd64", "bootID": "", "kernelVersion": "", "machineID": "",
                             "operatingSystem": "linux", "systemUUID": ""},
            },
        }

    def pod_object(self, pod: Pod) -> dict:
        workload = self.workloads[pod.workload]
        owner = {"apiVersion": "apps/v1", "kind": "DaemonSet" if pod.daemonset else "ReplicaSet",
                 "name": workload.name if pod.daemonset else f"{workload.name}-7d9c", "uid": uid(workload.name),
                 "controller": True}
        metadata = {"name": pod.name, "namespace": pod.namespace, "labels": {"app": workload.name},
                    "ownerReferences": [] if workload.bare else [owner], "uid": uid(pod.name),
                    "creationTimestamp": iso(pod.created_at)}
        if workload.bare:
            del metadata["ownerReferences"]  # a bare pod has none at all
        if workload.annotations:
            metadata["annotations"] = dict(workload.annotations)
        if pod.mirror:
            metadata["annotations"] = {"kubernetes.io/config.mirror": uid(pod.name)}
            metadata["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": pod.node,
                                            "uid": uid(pod.node or "")}]
        if pod.deleting_at is not None:
            metadata["deletionTimestamp"] = iso(pod.deleting_at - self.pod_termination)
            metadata["deletionGracePeriodSeconds"] = int(self.pod_termination)
        image = self.daemonset_images.get(workload.name, workload.image)
        spec = {"nodeName": pod.node, "containers": [{"name": workload.name, "image": image}]}
        if workload.empty_dir:
            spec["volumes"] = [{"name": "scratch", "emptyDir": {}}]
        if workload.node_selector:
            spec["nodeSelector"] = dict(workload.node_selector)
        spec["serviceAccountName"] = workload.service_account
        if workload.host_network:
            spec["hostNetwork"] = True
        return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec,
                "status": {"phase": pod.phase(self.clock.now())}}

    def pdb_object(self, workload: Workload, name: str) -> dict:
        """An uncomputed budget has an empty status (no observedGeneration): the disruption
        controller has not processed it yet."""
        status = {} if name in self.uncomputed_pdbs else self.pdb_status(workload)
        return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                "metadata": {"name": name, "namespace": workload.namespace, "uid": uid("pdb" + name),
                             "generation": 1},
                "spec": {"minAvailable": workload.pdb_min_available, "selector": {"matchLabels": {"app": workload.name}}},
                "status": status}

    def daemonset_object(self, workload: Workload) -> dict:
        pods = [p for p in self.pods.values() if p.workload == workload.name]
        image = self.daemonset_images.get(workload.name, workload.image)
        return {"apiVersion": "apps/v1", "kind": "DaemonSet",
                "metadata": {"name": workload.name, "namespace": workload.namespace, "uid": uid(workload.name)},
                "spec": {"selector": {"matchLabels": {"app": workload.name}},
                         "template": {"metadata": {"labels": {"app": workload.name}},
                                      "spec": {"containers": [{"name": workload.name, "image": image}]}}},
                "status": {"currentNumberScheduled": len(pods), "desiredNumberScheduled": len(self.nodes),
                           "numberMisscheduled": 0, "numberReady": len(pods)}}


TAINT_FIELDS = ("key", "value", "effect", "timeAdded")


def node_name(cluster: str, nodegroup: str, index: int) -> str:
    """The name of a node group's `index`th node, as EC2 private DNS names look."""
    digest = hashlib.sha256(f"{cluster}/{nodegroup}/{index}".encode()).hexdigest()
    return f"ip-10-{int(digest[:2], 16)}-{int(digest[2:4], 16)}-{int(digest[4:6], 16)}.ec2.internal"


def _stored_taint(taint: dict) -> dict:
    """As the API server stores a Taint: unknown fields (`time_added`) dropped, and
    `timeAdded` parsed as a metav1.Time and written back as RFC 3339 in UTC (`...Z`)."""
    stored = {k: v for k, v in taint.items() if k in TAINT_FIELDS}
    if stored.get("timeAdded"):
        parsed = dt.datetime.fromisoformat(stored["timeAdded"].replace("Z", "+00:00"))
        stored["timeAdded"] = iso(parsed.timestamp())
    return stored


def node_name(cluster: str, group: str, index: int) -> str:
    """A node's name as EC2 names its private DNS, stable for (cluster, group, index)."""
    digest = hashlib.sha256(f"{cluster}/{group}/{index}".encode()).hexdigest()
    return f"ip-10-{int(digest[:2], 16)}-{int(digest[2:4], 16)}-{int(digest[4:6], 16)}.ec2.internal"


def iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def uid(text: str) -> str:
    digest = hashlib.sha256(text.encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def status_body(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


def token_is_valid(header: str, cluster: str) -> bool:
    """An EKS token: `k8s-aws-v1.` + base64url of a presigned STS GetCallerIdentity URL
    that signs the `x-k8s-aws-id` header naming this cluster."""
    if not header.startswith("Bearer k8s-aws-v1."):
        return False
    encoded = header.removeprefix("Bearer k8s-aws-v1.")
    try:
        url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except ValueError:
        return False
    query = parse_qs(urlparse(url).query)
    return (query.get("Action") == ["GetCallerIdentity"]
            and "x-k8s-aws-id" in query.get("X-Amz-SignedHeaders", [""])[0].split(";")
            and "X-Amz-Signature" in query)


# --- the HTTP API ------------------------------------------------------------------------


def _selector_matches(selector: str | None, labels: dict) -> bool:
    if not selector:
        return True
    for term in selector.split(","):
        key, _, value = term.partition("=")
        if labels.get(key.strip()) != value.strip():
            return False
    return True


def _merge_patch(target: dict, patch: dict) -> dict:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge_patch(target[key], value)
        else:
            target[key] = value
    return target


def _json_patch(document: dict, operations: list) -> dict:
    for op in operations:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].lstrip("/").split("/")]
        parent = document
        for part in parts[:-1]:
            parent = parent.setdefault(part, {}) if isinstance(parent, dict) else parent[int(part)]
        last = parts[-1]
        if op["op"] in ("add", "replace"):
            if isinstance(parent, list):
                parent.insert(len(parent) if last == "-" else int(last), op["value"])
            else:
                parent[last] = op["value"]
        elif op["op"] == "remove":
            if isinstance(parent, list):
                parent.pop(int(last))
            else:
                parent.pop(last, None)
    return document


class KubernetesApi:
    """One HTTP server for every simulated cluster, at /clusters/<name>."""

    def __init__(self):
        self.clusters: dict[str, SimCluster] = {}
        self.requests = 0
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # no access log on the console
                pass

            def do_GET(self):
                api.handle(self, "GET")

            def do_POST(self):
                api.handle(self, "POST")

            def do_PATCH(self):
                api.handle(self, "PATCH")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="kubernetes-api", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def endpoint(self, cluster: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/clusters/{cluster}"

    ROUTES = [
        ("GET", r"/version", "version"),
        ("GET", r"/api/v1/nodes", "list_nodes"),
        ("GET", r"/api/v1/nodes/(?P<name>[^/]+)", "get_node"),
        ("PATCH", r"/api/v1/nodes/(?P<name>[^/]+)", "patch_node"),
        ("GET", r"/api/v1/pods", "list_pods"),
        ("GET", r"/api/v1/namespaces/(?P<ns>[^/]+)/pods", "list_pods"),
        ("GET", r"/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<name>[^/]+)", "get_pod"),
        ("POST", r"/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<name>[^/]+)/eviction", "evict"),
        ("GET", r"/api/v1/namespaces/(?P<ns>[^/]+)/serviceaccounts/(?P<name>[^/]+)", "get_service_account"),
        ("GET", r"/apis/policy/v1/poddisruptionbudgets", "list_pdbs"),
        ("GET", r"/apis/policy/v1/namespaces/(?P<ns>[^/]+)/poddisruptionbudgets", "list_pdbs"),
        ("GET", r"/apis/apps/v1/daemonsets", "list_daemonsets"),
        ("GET", r"/apis/apps/v1/namespaces/(?P<ns>[^/]+)/daemonsets", "list_daemonsets"),
        ("GET", r"/apis/apps/v1/namespaces/(?P<ns>[^/]+)/daemonsets/(?P<name>[^/]+)", "get_daemonset"),
    ]

    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        self.requests += 1
        url = urlparse(request.path)
        match = re.match(r"^/clusters/(?P<cluster>[^/]+)(?P<rest>/.*)$", url.path)
        cluster = self.clusters.get(match.group("cluster")) if match else None
        if cluster is None:
            return self._send(request, 404, status_body(404, "NotFound", "no such cluster"))
        if not token_is_valid(request.headers.get("Authorization", ""), cluster.name):
            return self._send(request, 401, status_body(401, "Unauthorized", "Unauthorized"))
        length = int(request.headers.get("Content-Length") or 0)
        body = json.loads(request.rfile.read(length) or b"null") if length else None
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        for route_method, pattern, name in self.ROUTES:
            found = re.fullmatch(pattern, match.group("rest"))
            if found and route_method == method:
                with cluster.lock:
                    cluster.reconcile()
                    code, payload = getattr(self, "_" + name)(cluster, body=body, query=query,
                                                               **{k: unquote(v) for k, v in found.groupdict().items()})
                return self._send(request, code, payload)
        with cluster.lock:
            cluster.reconcile()
            for controller in cluster.controllers:
                answer = controller.serve(method, match.group("rest"), body, request.headers)
                if answer is not None:
                    return self._send(request, *answer)
        return self._send(request, 404, status_body(404, "NotFound", f"{method} {match.group('rest')} not served"))

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, code: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        request.send_response(code)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    # --- endpoints -----------------------------------------------------------------

    def _version(self, cluster, **_):
        major, minor = cluster.version.split(".")
        return 200, {"major": major, "minor": minor, "gitVersion": f"v{cluster.version}.0-eks"}

    def _list_nodes(self, cluster, query, **_):
        items = [cluster.node_object(n) for n in sorted(cluster.nodes.values(), key=lambda n: n.name)
                 if _selector_matches(query.get("labelSelector"), n.labels)]
        return 200, {"apiVersion": "v1", "kind": "NodeList", "metadata": {}, "items": items}

    def _get_node(self, cluster, name, **_):
        node = cluster.nodes.get(name)
        if node is None:
            return 404, status_body(404, "NotFound", f'nodes "{name}" not found')
        return 200, cluster.node_object(node)

    def _patch_node(self, cluster, name, body, **_):
        node = cluster.nodes.get(name)
        if node is None:
            return 404, status_body(404, "NotFound", f'nodes "{name}" not found')
        document = cluster.node_object(node)
        document = _json_patch(document, body) if isinstance(body, list) else _merge_patch(document, body or {})
        # the server keeps only the fields a Taint has: `time_added` is dropped, `timeAdded` kept
        node.taints = [_stored_taint(t) for t in document["spec"].get("taints") or []]
        node.unschedulable = bool(document["spec"].get("unschedulable"))
        node.annotations = dict(document["metadata"].get("annotations") or {})
        node.labels = dict(document["metadata"].get("labels") or {})
        cluster.reconcile()
        return 200, cluster.node_object(node)

    def _list_pods(self, cluster, query, ns=None, **_):
        field_selector = query.get("fieldSelector", "")
        node = field_selector.removeprefix("spec.nodeName=") if field_selector.startswith("spec.nodeName=") else None
        items = [cluster.pod_object(p) for p in sorted(cluster.pods.values(), key=lambda p: (p.namespace, p.name))
                 if (ns is None or p.namespace == ns) and (node is None or p.node == node)
                 and _selector_matches(query.get("labelSelector"), {"app": p.workload})]
        return 200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}

    def _get_pod(self, cluster, ns, name, **_):
        pod = cluster.pods.get((ns, name))
        if pod is None:
            return 404, status_body(404, "NotFound", f'pods "{name}" not found')
        return 200, cluster.pod_object(pod)

    def _get_service_account(self, cluster, ns, name, **_):
        """Every namespace has `default`; the others exist when a workload uses them. IRSA is the
        `eks.amazonaws.com/role-arn` annotation on the account."""
        used = {(w.namespace, w.service_account) for w in cluster.workloads.values()}
        if name != "default" and (ns, name) not in used:
            return 404, status_body(404, "NotFound", f'serviceaccounts "{name}" not found')
        metadata = {"name": name, "namespace": ns, "uid": uid(f"{ns}/{name}")}
        annotations = cluster.service_account_annotations.get((ns, name))
        if annotations:
            metadata["annotations"] = dict(annotations)
        return 200, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata}

    def _evict(self, cluster, ns, name, **_):
        return cluster.evict(ns, name)

    def _list_pdbs(self, cluster, ns=None, **_):
        items = [cluster.pdb_object(w, name) for w in cluster.workloads.values() for name in w.budgets()
                 if ns is None or w.namespace == ns]
        return 200, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudgetList", "metadata": {}, "items": items}

    def _list_daemonsets(self, cluster, ns=None, **_):
        items = [cluster.daemonset_object(w) for w in cluster.workloads.values()
                 if w.daemonset and (ns is None or w.namespace == ns)]
        return 200, {"apiVersion": "apps/v1", "kind": "DaemonSetList", "metadata": {}, "items": items}

    def _get_daemonset(self, cluster, ns, name, **_):
        workload = cluster.workloads.get(name)
        if workload is None or not workload.daemonset or workload.namespace != ns:
            return 404, status_body(404, "NotFound", f'daemonsets.apps "{name}" not found')
        return 200, cluster.daemonset_object(workload)
