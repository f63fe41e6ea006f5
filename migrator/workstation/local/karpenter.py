"""Karpenter in a simulated cluster: its NodePool and EC2NodeClass custom resources served as an API server
serves them, and its drift and termination controllers replacing nodes.

What real Karpenter does, and what is reproduced here:

- **The API.** NodePools (`karpenter.sh`) and EC2NodeClasses (`karpenter.k8s.aws`) are cluster-scoped custom
  resources. The API server serves only the versions the installed CRDs declare (v1 from Karpenter 1.0, v1beta1
  from 0.32 to 0.37; another version answers 404), accepts JSON merge patches and JSON patches (a strategic merge
  patch of a custom resource answers 415), bumps `metadata.resourceVersion` on every change and `generation` on
  a spec change, answers **409 Conflict** to a patch carrying a stale `metadata.resourceVersion`, and validates
  against the CRD's schema (422 Invalid: an `amiFamily` outside the CRD's enum, an `alias` beside other
  `amiSelectorTerms`). The CRD itself is readable at `apiextensions.k8s.io/v1`.
- **Which AMIs.** v1 selects them with `amiSelectorTerms: [{alias: al2@latest}]` (the alias names the family;
  `al2023@latest` since 1.0), v1beta1 with `amiFamily` (`AL2023` only in the releases whose CRD enum lists it).
- **Drift.** When the EC2NodeClass's AMI selection no longer selects the AMI a node was launched from, its
  NodeClaim is `Drifted`. The disruption controller replaces drifted nodes within the NodePool's
  `disruption.budgets` (`nodes: "10%"` by default; a percentage of the nodes the pool has at that moment,
  joined replacements included, rounded up; nodes being deleted or not Ready count against it): it taints the candidate `karpenter.sh/disrupted:NoSchedule`
  (v1beta1: `karpenter.sh/disruption=disrupting:NoSchedule`), pre-spins a replacement and waits for it to be
  initialized (Ready); a replacement that does not initialize within 10 minutes is deleted and the candidate
  untainted (the disruption is retried later). Then it deletes the candidate's NodeClaim: the termination
  controller evicts its pods through the Eviction API, honouring PodDisruptionBudgets (a 429 is retried; without
  a `terminationGracePeriod` a budget blocks the node for as long as it allows no disruption), skips DaemonSet
  and mirror pods, and terminates the instance once no other pod is left. A node running a pod annotated
  `karpenter.sh/do-not-disrupt: "true"` is never a drift candidate.
- **Instances.** Each node is an EC2 instance tagged `karpenter.sh/nodepool`, `karpenter.k8s.aws/ec2nodeclass`,
  `eks:cluster-name` and `kubernetes.io/cluster/<cluster>: owned`, as Karpenter tags them.

Simplified: Karpenter reacts when the simulated API server is called (every request first moves the cluster to
the simulated now), not on its own timers; there is no consolidation, expiry or provisioning for pending pods.
Faults: `unhealthy` at `drift` (replacements on AL2023 join but never turn Ready), `pdb-blocked` at `drift`
(every budget of the cluster allows no disruption while the pool drifts to AL2023).
"""

from __future__ import annotations

import copy
import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from migrator.config import DEFAULT_MIGRATION_TAG
from migrator.workstation.local.kubernetes import (
    NodegroupNodes,
    SimCluster,
    _json_patch,
    _merge_patch,
    iso,
    node_name,
    status_body,
    uid,
)

CORE = "karpenter.sh"
AWS = "karpenter.k8s.aws"
NODEPOOL_LABEL = "karpenter.sh/nodepool"
NODECLASS_LABEL = "karpenter.k8s.aws/ec2nodeclass"
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"
REPLACEMENT_TIMEOUT = 600.0  # seconds a pre-spun replacement may take to initialize
AMI_FAMILIES = ["AL2", "AL2023", "Bottlerocket", "Ubuntu", "Custom", "Windows2019", "Windows2022"]
ALIAS_FAMILIES = ["al2", "al2023", "bottlerocket", "windows2019", "windows2022"]
OS_IMAGE = {"AL2": "Amazon Linux 2", "AL2023": "Amazon Linux 2023.6.20241010"}


def disrupted_taint(version: str) -> dict:
    if version == "v1":
        return {"key": "karpenter.sh/disrupted", "effect": "NoSchedule"}
    return {"key": "karpenter.sh/disruption", "value": "disrupting", "effect": "NoSchedule"}


def ami_family(spec: dict) -> str | None:
    """The family an EC2NodeClass spec selects: a v1 alias names it, else amiFamily."""
    for term in spec.get("amiSelectorTerms") or []:
        if term.get("alias"):
            family = term["alias"].split("@", 1)[0]
            return {"al2": "AL2", "al2023": "AL2023"}.get(family, family)
    return spec.get("amiFamily")


def budget_nodes(value: str, total: int) -> int:
    """A budget's `nodes`: a count, or a percentage of the pool's nodes rounded up."""
    if value.endswith("%"):
        return math.ceil(total * int(value[:-1]) / 100)
    return int(value)


@dataclass
class Claim:
    """A NodeClaim and the node and instance it launched."""

    name: str
    pool: str
    nodeclass: str
    family: str
    instance_type: str
    launched_at: float
    instance_id: str
    ready: bool = True  # False: the kubelet joins but never turns Ready
    replacing: str | None = None  # this candidate's pre-spun replacement
    disrupting_since: float | None = None  # tainted as a disruption candidate
    deleted_at: float | None = None  # NodeClaim deleted: the termination controller drains it
    removed_at: float | None = None  # instance terminated, node gone


class SimKarpenter:
    """Karpenter installed in one simulated cluster (a controller of SimCluster)."""

    def __init__(self, cluster: SimCluster, api: str, boot: float, launch: Callable[[Claim], str],
                 terminate: Callable[[str], None], has_fault: Callable[[str, str], bool]):
        self.cluster = cluster
        self.version = "v1" if api == "v1" else "v1beta1"
        self.families = AMI_FAMILIES if api != "v1beta1-no-al2023" else [f for f in AMI_FAMILIES if f != "AL2023"]
        self.boot = boot
        self.launch = launch
        self.terminate = terminate
        self.has_fault = has_fault  # (pool, kind) -> a fault of the scenario at `drift`
        self.objects: dict[tuple[str, str], dict] = {}  # (plural, name) -> the stored object
        self.claims: dict[str, Claim] = {}
        self._resource_version = 1000
        self._sequence = 0
        self._stepping = False

    # --- the world -----------------------------------------------------------------------

    def add_pool(self, name: str, size: int, budget_percent: int, instance_type: str, user_data: str,
                 launched_at: float, tags: dict[str, str]) -> None:
        """A NodePool and its EC2NodeClass (same name) on AL2, tagging its instances with `tags`, and `size`
        nodes it launched."""
        cluster = self.cluster.name
        if self.version == "v1":
            ref = {"group": AWS, "kind": "EC2NodeClass", "name": name}
            selection = {"amiSelectorTerms": [{"alias": "al2@latest"}]}
            disruption = {"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "5m"}
        else:
            ref = {"apiVersion": f"{AWS}/v1beta1", "kind": "EC2NodeClass", "name": name}
            selection = {"amiFamily": "AL2"}
            disruption = {"consolidationPolicy": "WhenUnderutilized"}
        disruption["budgets"] = [{"nodes": f"{budget_percent}%"}]
        self._store("nodepools", CORE, "NodePool", name, {
            "template": {"metadata": {"labels": {"workload": "general"}},
                         "spec": {"nodeClassRef": ref, "requirements": [
                             {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": [instance_type]},
                             {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}]}},
            "disruption": disruption, "limits": {"cpu": "1000"}})
        self._store("ec2nodeclasses", AWS, "EC2NodeClass", name, {
            "role": f"KarpenterNodeRole-{cluster}", **selection,
            "subnetSelectorTerms": [{"tags": {"karpenter.sh/discovery": cluster}}],
            "securityGroupSelectorTerms": [{"tags": {"karpenter.sh/discovery": cluster}}],
            "metadataOptions": {"httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 1},
            "tags": dict(tags), "userData": user_data})
        for _ in range(size):
            self._launch(name, name, "AL2", instance_type, launched_at)

    def _store(self, plural: str, group: str, kind: str, name: str, spec: dict) -> None:
        self.objects[(plural, name)] = {
            "apiVersion": f"{group}/{self.version}", "kind": kind,
            "metadata": {"name": name, "uid": uid(f"{plural}/{name}"), "generation": 1,
                         "resourceVersion": self._next_version(), "creationTimestamp": iso(self.cluster.clock.now()),
                         "labels": {}, "annotations": {}},
            "spec": spec, "status": {}}

    def _next_version(self) -> str:
        self._resource_version += 1
        return str(self._resource_version)

    def _launch(self, pool: str, nodeclass: str, family: str, instance_type: str, at: float) -> Claim:
        self._sequence += 1
        suffix = hashlib.sha256(f"{self.cluster.name}/{pool}/{self._sequence}".encode()).hexdigest()[:5]
        claim = Claim(f"{pool}-{suffix}", pool, nodeclass, family, instance_type, at, "",
                      ready=not (family == "AL2023" and self.has_fault(pool, "unhealthy")))
        claim.instance_id = self.launch(claim)
        self.claims[claim.name] = claim
        return claim

    def node_of(self, claim: Claim) -> str:
        return node_name(self.cluster.name, claim.name, 0)

    def nodes(self) -> list[NodegroupNodes]:
        """What the API server registers: a node per NodeClaim once its instance booted, until terminated."""
        return [NodegroupNodes(
            name=c.name, size=1, taints=[], os_image=OS_IMAGE[c.family], runtime="containerd://1.7.22",
            labels={NODEPOOL_LABEL: c.pool, NODECLASS_LABEL: c.nodeclass, "karpenter.sh/registered": "true",
                    "karpenter.sh/initialized": "true" if c.ready else "false", "workload": "general",
                    "node.kubernetes.io/instance-type": c.instance_type, "karpenter.sh/capacity-type": "on-demand"},
            registered_at=c.launched_at + self.boot, removed_at=c.removed_at, ready=c.ready,
            nodegroup_label=False) for c in self.claims.values()]

    def pool_claims(self, pool: str, now: float) -> list[Claim]:
        return [c for c in self.claims.values() if c.pool == pool and c.removed_at is None]

    def wanted_family(self, pool: str) -> str | None:
        nodepool = self.objects.get(("nodepools", pool))
        if nodepool is None:
            return None
        ref = nodepool["spec"]["template"]["spec"]["nodeClassRef"]["name"]
        nodeclass = self.objects.get(("ec2nodeclasses", ref))
        return ami_family(nodeclass["spec"]) if nodeclass else None

    def drifting_to_al2023(self, pool: str) -> bool:
        return self.wanted_family(pool) == "AL2023" and any(
            c.family != "AL2023" for c in self.pool_claims(pool, self.cluster.clock.now()))

    def blocked_pdbs(self) -> set[str]:
        """Under a `pdb-blocked` fault every budget of the cluster allows no disruption while a pool with the
        fault drifts to AL2023."""
        for pool in {name for plural, name in self.objects if plural == "nodepools"}:
            if self.has_fault(pool, "pdb-blocked") and self.drifting_to_al2023(pool):
                return {w.name for w in self.cluster.workloads.values() if w.pdb_min_available is not None}
        return set()

    # --- the controllers -------------------------------------------------------------------

    def step(self, now: float) -> None:
        if self._stepping:  # an eviction reconciles the cluster again: one pass at a time
            return
        self._stepping = True
        try:
            for (plural, pool) in list(self.objects):
                if plural == "nodepools":
                    self._replace_drifted(pool, now)
            for claim in list(self.claims.values()):
                self._terminate(claim, now)
        finally:
            self._stepping = False

    def _registered(self, claim: Claim, now: float) -> bool:
        return now >= claim.launched_at + self.boot and self.node_of(claim) in self.cluster.nodes

    def _replace_drifted(self, pool: str, now: float) -> None:
        family = self.wanted_family(pool)
        claims = self.pool_claims(pool, now)
        for candidate in [c for c in claims if c.replacing and c.deleted_at is None]:
            replacement = self.claims[candidate.replacing]
            if replacement.ready and self._registered(replacement, now):
                candidate.deleted_at = now  # the NodeClaim is deleted: the termination controller drains it
            elif now - candidate.disrupting_since > REPLACEMENT_TIMEOUT:
                self._set_taint(candidate, False)  # replacement never initialized: the disruption is abandoned
                candidate.replacing, candidate.disrupting_since = None, None
                replacement.deleted_at = now
        if family is None:
            return
        claims = self.pool_claims(pool, now)
        registered = [c for c in claims if self._registered(c, now)]
        disrupting = [c for c in registered if c.disrupting_since is not None or c.deleted_at is not None
                      or not c.ready]
        allowed = min((budget_nodes(b.get("nodes", "10%"), len(registered)) for b in self._budgets(pool)),
                      default=0) - len(disrupting)
        drifted = sorted((c for c in registered if c.family != family and c.disrupting_since is None
                          and c.deleted_at is None and not self._do_not_disrupt(c)), key=lambda c: c.name)
        for candidate in drifted[:max(0, allowed)]:
            self._set_taint(candidate, True)
            candidate.disrupting_since = now
            candidate.replacing = self._launch(pool, candidate.nodeclass, family, candidate.instance_type, now).name

    def _do_not_disrupt(self, claim: Claim) -> bool:
        """A pod annotated karpenter.sh/do-not-disrupt=true keeps its node from voluntary disruption, drift
        included (v1: until the NodePool's terminationGracePeriod, which this pool does not set)."""
        name = self.node_of(claim)
        return any(p.node == name and self.cluster.workloads[p.workload].annotations.get(DO_NOT_DISRUPT) == "true"
                   for p in self.cluster.pods.values())

    def _budgets(self, pool: str) -> list[dict]:
        """The budgets that apply to drift now (no schedule; `reasons`, if any, naming Drifted)."""
        budgets = self.objects[("nodepools", pool)]["spec"].get("disruption", {}).get("budgets")
        if budgets is None:
            budgets = [{"nodes": "10%"}]
        return [b for b in budgets if not b.get("schedule") and "Drifted" in b.get("reasons", ["Drifted"])]

    def _set_taint(self, claim: Claim, on: bool) -> None:
        node = self.cluster.nodes.get(self.node_of(claim))
        if node is None:
            return
        taint = disrupted_taint(self.version)
        node.taints = [t for t in node.taints if t.get("key") != taint["key"]] + ([dict(taint)] if on else [])

    def _terminate(self, claim: Claim, now: float) -> None:
        """The termination controller: evict what a drain evicts, then terminate the instance."""
        if claim.deleted_at is None or claim.removed_at is not None:
            return
        name = self.node_of(claim)
        if name in self.cluster.nodes:
            self._set_taint(claim, True)
            pods = [p for p in self.cluster.pods.values() if p.node == name and not p.daemonset and not p.mirror]
            for pod in pods:
                if pod.deleting_at is None:
                    self.cluster.evict(pod.namespace, pod.name)  # a 429 is retried on the next pass
            if any(p.node == name and not p.daemonset and not p.mirror for p in self.cluster.pods.values()):
                return
        claim.removed_at = now
        self.terminate(claim.instance_id)

    # --- the API --------------------------------------------------------------------------

    ROUTES = [
        ("customresourcedefinitions", r"/apis/apiextensions\.k8s\.io/v1/customresourcedefinitions/(?P<name>[^/]+)"),
        ("nodepools", rf"/apis/{re.escape(CORE)}/(?P<version>[^/]+)/nodepools(/(?P<name>[^/]+))?"),
        ("ec2nodeclasses", rf"/apis/{re.escape(AWS)}/(?P<version>[^/]+)/ec2nodeclasses(/(?P<name>[^/]+))?"),
    ]

    def serve(self, method: str, path: str, body, headers) -> tuple[int, dict] | None:
        for plural, pattern in self.ROUTES:
            found = re.fullmatch(pattern, path)
            if not found:
                continue
            name = found.group("name")
            if plural == "customresourcedefinitions":
                return self._crd(name) if method == "GET" else None
            if found.group("version") != self.version:
                return 404, status_body(404, "NotFound", "the server could not find the requested resource")
            if method == "GET":
                return self._get(plural, name)
            if method == "PATCH" and name:
                return self._patch(plural, name, body, headers.get("Content-Type", ""))
        return None

    def _get(self, plural: str, name: str | None) -> tuple[int, dict]:
        group = CORE if plural == "nodepools" else AWS
        if name is None:
            items = [copy.deepcopy(o) for (p, _), o in sorted(self.objects.items()) if p == plural]
            return 200, {"apiVersion": f"{group}/{self.version}", "kind": items[0]["kind"] + "List" if items else "List",
                         "metadata": {"resourceVersion": str(self._resource_version)}, "items": items}
        stored = self.objects.get((plural, name))
        if stored is None:
            return 404, status_body(404, "NotFound", f'{plural}.{group} "{name}" not found')
        return 200, copy.deepcopy(stored)

    def _patch(self, plural: str, name: str, body, content_type: str) -> tuple[int, dict]:
        group = CORE if plural == "nodepools" else AWS
        stored = self.objects.get((plural, name))
        if stored is None:
            return 404, status_body(404, "NotFound", f'{plural}.{group} "{name}" not found')
        document = copy.deepcopy(stored)
        media = content_type.split(";", 1)[0].strip()
        if media == "application/merge-patch+json" and isinstance(body, dict):
            _merge_patch(document, body)
        elif media == "application/json-patch+json" and isinstance(body, list):
            _json_patch(document, body)
        else:
            return 415, status_body(415, "UnsupportedMediaType",
                                    f"the body of the request was in an unknown format - accepted media types "
                                    f"include: application/json-patch+json, application/merge-patch+json")
        wanted = document["metadata"].get("resourceVersion")
        if wanted and wanted != stored["metadata"]["resourceVersion"]:
            return 409, status_body(409, "Conflict",
                                    f'Operation cannot be fulfilled on {plural}.{group} "{name}": the object has been '
                                    f"modified; please apply your changes to the latest version and try again")
        invalid = self._invalid(plural, document["spec"])
        if invalid:
            kind = stored["kind"]
            return 422, status_body(422, "Invalid", f'{kind}.{group} "{name}" is invalid: {invalid}')
        changed = document["spec"] != stored["spec"] or document["metadata"] != stored["metadata"]
        if document["spec"] != stored["spec"]:
            document["metadata"]["generation"] = stored["metadata"]["generation"] + 1
        document["status"] = stored["status"]
        document["metadata"]["resourceVersion"] = self._next_version() if changed else stored["metadata"]["resourceVersion"]
        self.objects[(plural, name)] = document
        self.cluster.reconcile()
        return 200, copy.deepcopy(document)

    def _invalid(self, plural: str, spec: dict) -> str | None:
        """The CRD schema's checks of the fields the migration changes."""
        if plural != "ec2nodeclasses":
            return None
        family = spec.get("amiFamily")
        if family is not None and family not in self.families:
            supported = ", ".join(f'"{f}"' for f in self.families)
            return f'spec.amiFamily: Unsupported value: "{family}": supported values: {supported}'
        terms = spec.get("amiSelectorTerms") or []
        aliases = [t["alias"] for t in terms if t.get("alias")]
        if aliases and self.version != "v1":
            return 'spec.amiSelectorTerms[0].alias: field not declared in schema'
        if aliases and len(terms) > 1:
            return "spec.amiSelectorTerms: Invalid value: \"array\": 'alias' is mutually exclusive, cannot be set " \
                   "with a combination of other amiSelectorTerms"
        for alias in aliases:
            if alias.split("@", 1)[0] not in ALIAS_FAMILIES or "@" not in alias:
                return f'spec.amiSelectorTerms[0].alias: Invalid value: "{alias}": family is not supported, ' \
                       f"must be one of the following: {', '.join(repr(f) for f in ALIAS_FAMILIES)}"
        if not aliases and family is None:
            return "spec: Invalid value: \"object\": amiFamily is required when amiSelectorTerms has no alias"
        return None

    def _crd(self, name: str) -> tuple[int, dict]:
        plural = name.split(".", 1)[0]
        if name not in (f"nodepools.{CORE}", f"ec2nodeclasses.{AWS}"):
            return 404, status_body(404, "NotFound", f'customresourcedefinitions.apiextensions.k8s.io "{name}" not found')
        group = name.split(".", 1)[1]
        kind = "NodePool" if plural == "nodepools" else "EC2NodeClass"
        spec_schema = {"type": "object", "properties": {}}
        if kind == "EC2NodeClass":
            spec_schema["properties"]["amiFamily"] = {"type": "string", "enum": list(self.families)}
            term = {"type": "object", "properties": {"id": {"type": "string"}, "tags": {"type": "object"}}}
            if self.version == "v1":
                term["properties"]["alias"] = {"type": "string", "maxLength": 30, "x-kubernetes-validations": [
                    {"rule": f"self.split('@')[0] in {ALIAS_FAMILIES}",
                     "message": "family is not supported, must be one of the following: "
                                + ", ".join(repr(f) for f in ALIAS_FAMILIES)}]}
            spec_schema["properties"]["amiSelectorTerms"] = {"type": "array", "items": term}
        return 200, {
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": name, "uid": uid(name), "resourceVersion": "1"},
            "spec": {"group": group, "scope": "Cluster",
                     "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": kind + "List"},
                     "versions": [{"name": self.version, "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": {"type": "object",
                                                                  "properties": {"spec": spec_schema}}}}]},
            "status": {"storedVersions": [self.version], "acceptedNames": {"plural": plural, "kind": kind}}}


def install_karpenter(spec, sim: SimCluster, fidelity, launched_at: float) -> SimKarpenter | None:
    """Karpenter in the scenario cluster `spec` (an EksClusterSpec) if it has pools: its objects, its nodes
    launched at `launched_at` as EC2 instances tagged as Karpenter tags them."""
    if not spec.karpenter:
        return None
    from moto.ec2.models import ec2_backends

    ctx = fidelity.context

    def launch(claim: Claim) -> str:
        ec2 = ec2_backends[ctx.account][ctx.region]
        image = fidelity.ssm.latest_image(al2023=claim.family == "AL2023")
        nodeclass = karpenter.objects.get(("ec2nodeclasses", claim.nodeclass), {}).get("spec", {})
        tags = {**nodeclass.get("tags", {}), NODEPOOL_LABEL: claim.pool, NODECLASS_LABEL: claim.nodeclass,
                "eks:cluster-name": spec.name,
                f"kubernetes.io/cluster/{spec.name}": "owned", "karpenter.sh/nodeclaim": claim.name,
                "Name": f"{spec.name}/{claim.pool}"}
        reservation = ec2.run_instances(image, 1, None, [], instance_type=claim.instance_type, tags={"instance": tags},
                                        is_instance_type_default=False)
        return reservation.instances[0].id

    def terminate(instance_id: str) -> None:
        ec2_backends[ctx.account][ctx.region].terminate_instances([instance_id])

    def has_fault(pool: str, kind: str) -> bool:
        return ctx.has_fault(f"eks/{spec.name}/{pool}", "drift", kind)

    karpenter = SimKarpenter(sim, spec.karpenter_api, ctx.timings.instance_boot, launch, terminate, has_fault)
    for pool in spec.karpenter:
        karpenter.add_pool(pool.nodepool, pool.size, pool.budget_percent, pool.instance_type, pool.user_data,
                           launched_at, {DEFAULT_MIGRATION_TAG["key"]: DEFAULT_MIGRATION_TAG["value"]})
    sim.controllers.append(karpenter)
    return karpenter
