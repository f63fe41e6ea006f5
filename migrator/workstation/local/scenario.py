"""Scenario files (docs/scenarios.md, version 1): the fleet, faults and approvals."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from migrator.fields import ApprovalTimeout, MaxConcurrency, ToleratedFailurePercentage
from migrator.fleet.plan import DEFAULT_MAX_INSTANCES_PER_WAVE
from migrator.validation import describe_validation_error

NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
ASG_STEPS = {"canary": {"unhealthy", "alarm"}, "refresh": {"unhealthy", "alarm", "error"}}
ASG_EVENT_POINTS = ("canary", "before-refresh", "refresh")  # a group's steps and its gate
EKS_STEPS = {"create": {"error"}, "drain": {"pdb-blocked"}}
# a group updated in place (`ami: custom`): EKS's own update (new nodes never Ready, a budget blocks its drain,
# the update fails at once)
IN_PLACE_STEPS = {"update": {"unhealthy", "pdb-blocked", "error"}}
# a Karpenter pool's drift: budgets allow no eviction while it runs, or the replacement nodes never turn Ready
KARPENTER_STEPS = {"drift": {"pdb-blocked", "unhealthy"}}
# a self-managed group: its canary node never turns Ready; a PDB blocks the drain of its old nodes
SELF_MANAGED_STEPS = {"canary": {"unhealthy"}, "drain": {"pdb-blocked"}}
STANDALONE_STEPS = {"snapshot": {"error"}, "validate": {"unhealthy", "alarm"}, "cutover": {"error", "unhealthy", "alarm"},
                    # the final sync at the cutover: quiesce commands fail, moving the data volumes
                    # fails, the verification on the replacement fails
                    "quiesce": {"error"}, "final-sync": {"error"}, "verify": {"error"}}
Decision = Literal["approve", "reject", "ignore"]  # ignore: never answered, the gate times out
Outcome = Literal["migrated", "rolled_back", "failed"]


# Every random choice of a run (throttling faults, Retry jitter, moto's ids) comes from
# one seed, so the same scenario and seed give the same summary.
DEFAULT_SEED = 7

class ScenarioError(Exception):
    """The scenario file is invalid; the message names the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _known_input_fields(given: dict, model: type[BaseModel], what: str) -> None:
    """A target's `input:` names fields of its workflow's input; their values are the workflow's to judge
    (a rehearsed mistake fails in its first state)."""
    unknown = sorted(set(given) - set(model.model_fields))
    if unknown:
        raise ValueError(f"input: {unknown[0]} is not a field of the {what}'s input")


class Clock(_Strict):
    """Kept so version-1 scenarios still load: simulated time no longer follows real
    time (docs/scenarios.md), so `speed` has no effect."""

    speed: float = Field(default=200.0, gt=0)


class Timings(_Strict):
    """Simulated seconds."""

    instance_boot: float = Field(default=40, ge=0)
    health_grace: float = Field(default=60, ge=0)
    snapshot_complete: float = Field(default=120, ge=0)
    nodegroup_create: float = Field(default=240, ge=0)
    nodegroup_delete: float = Field(default=180, ge=0)
    pod_start: float = Field(default=15, ge=0)
    node_ready: float = Field(default=20, ge=0)  # a self-managed node: registered to Ready
    refresh_warmup: float = Field(default=120, ge=0)
    pod_termination: float = Field(default=10, ge=0)
    retention: float = Field(default=3600, ge=0)
    canary_bake: float = Field(default=300, ge=0)


class Approvals(_Strict):
    default: Decision = "approve"
    after: float = Field(default=300, ge=0)
    timeout: ApprovalTimeout  # each gate's, as the execution inputs get it
    gates: dict[str, Decision] = Field(default_factory=dict)

    def decision(self, gate: str) -> Decision:
        return self.gates.get(gate, self.default)


class HostSpec(_Strict):
    """What runs on an AL2 host (docs/scenarios.md, "Host facts"): the simulated SSM
    answers the project's scan from it, and an AL2023 replacement comes up with what
    AL2023 can provide of it."""

    user_data: str = ""
    packages: list[str] = Field(default_factory=list)  # installed by the team (not the AMI's own)
    services: list[str] = Field(default_factory=list)  # enabled and active
    ports: list[int] = Field(default_factory=list)  # listening TCP
    cron: list[str] = Field(default_factory=list)
    imds_v1_calls: float = Field(default=0, ge=0)  # MetadataNoToken per hour
    ssm: bool = True  # false: no SSM agent or no instance profile for it, Run Command cannot reach the host


class AutoScalingGroupSpec(_Strict):
    name: str = Field(pattern=NAME)
    size: int = Field(ge=1, le=1000)
    target_group: bool = False
    alarms: list[str] = Field(default_factory=list, max_length=10)
    instance_type: str = "t3.micro"
    # How the group names its launch-template version: "$Default", "$Latest" or "1".
    version: str = Field(default="$Default", pattern=r"^(\$Default|\$Latest|1)$")
    os: Literal["al2", "al2023"] = "al2"  # al2023: rehearses "already migrated"
    host: HostSpec | None = None  # what each instance runs
    expect: Outcome | None = None  # overrides the default rule of expected_outcome
    min_size: int | None = Field(default=None, ge=0, le=1000)  # default: size
    max_size: int | None = Field(default=None, ge=1, le=1000)  # default: size
    input: dict[str, Any] = Field(default_factory=dict)  # merged into the execution input the runtime sends

    @model_validator(mode="after")
    def _bounds(self):
        from migrator.asg.models import RolloutInput

        _known_input_fields(self.input, RolloutInput, "group rollout")
        self.min_size = self.size if self.min_size is None else self.min_size
        self.max_size = self.size if self.max_size is None else self.max_size
        if self.min_size > self.size:
            raise ValueError(f"min_size: {self.min_size} is above size {self.size}")
        if self.max_size < self.size:
            raise ValueError(f"max_size: {self.max_size} is below size {self.size}")
        return self

    def clamp(self, desired: int) -> int:
        """What AWS lets an owner set: the group's own min and max bound it."""
        return max(self.min_size, min(self.max_size, desired))

    @property
    def target(self) -> str:
        return f"asg/{self.name}"


class StandaloneSpec(_Strict):
    name: str = Field(pattern=NAME)
    instance_type: str = "t3.micro"
    volumes_gib: list[int] = Field(default_factory=lambda: [8], min_length=1, max_length=8)  # root first
    elastic_ip: bool = False
    dns: str | None = Field(default=None, pattern=r"^([a-z0-9-]+\.)+[a-z]{2,}$")  # an A record, private zone
    dns_public: bool = False  # the A record names the server's public IP (it gets one), not its private IP
    alarms: list[str] = Field(default_factory=list, max_length=10)
    health_script: bool = False  # run a health script through SSM Run Command
    # the application's writes to its first data volume (0: off; a server without data volumes keeps none)
    writes_per_second: float = Field(default=1.0, ge=0, le=10_000)
    os: Literal["al2", "al2023"] = "al2"
    host: HostSpec | None = None
    expect: Outcome | None = None  # overrides the default rule of expected_outcome
    input: dict[str, Any] = Field(default_factory=dict)  # merged into the execution input the runtime sends

    @model_validator(mode="after")
    def _one_address(self):
        from migrator.standalone.models import MigrationInput

        _known_input_fields(self.input, MigrationInput, "standalone migration")
        if self.elastic_ip and self.dns:
            raise ValueError("an instance is cut over by elastic_ip or by dns, not both")
        if self.dns_public and not self.dns:
            raise ValueError("dns_public goes with dns")
        if any(size < 1 or size > 16_384 for size in self.volumes_gib):
            raise ValueError("volumes_gib: each size is 1 to 16384 GiB")
        return self

    @property
    def target(self) -> str:
        return f"standalone/{self.name}"


class NodegroupSpec(_Strict):
    name: str = Field(pattern=NAME)
    size: int = Field(ge=1, le=450)
    launch_template: Literal["custom", "none"] = "none"
    # custom: its launch template names a custom AL2 AMI (AMI type CUSTOM), so it is updated in place
    ami: Literal["eks", "custom"] = "eks"
    container_runtime: Literal["containerd", "docker"] = "containerd"  # docker: rehearses a failed pre-flight
    os: Literal["al2", "al2023"] = "al2"
    instance_type: str = "m5.large"
    expect: Outcome | None = None  # overrides the default rule of expected_outcome
    opt_in: bool = True  # false: no opt-in tag (someone else's group); it must end exactly as it began
    input: dict[str, Any] = Field(default_factory=dict)  # merged into the execution input the runtime sends
    # with launch_template custom: what the old user data runs after bootstrap.sh (agents, sysctl, mounts)
    user_data: str = Field(default="", max_length=16_384)

    @model_validator(mode="after")
    def _input_fields_exist(self):
        from migrator.eks.in_place_models import InPlaceInput
        from migrator.eks.models import NodegroupInput

        model = InPlaceInput if self.ami == "custom" else NodegroupInput
        _known_input_fields(self.input, model, "node group migration")
        return self


class SelfManagedSpec(_Strict):
    """An Auto Scaling group whose AL2 instances join the cluster through bootstrap.sh
    (docs/scenarios.md, "More kinds of Kubernetes nodes")."""

    name: str = Field(pattern=NAME)
    size: int = Field(ge=1, le=450)
    instance_type: str = "m5.large"
    expect: Outcome | None = None  # overrides the default rule of expected_outcome
    opt_in: bool = True  # false: no opt-in tag on the group (someone else's)
    input: dict[str, Any] = Field(default_factory=dict)  # merged into the execution input the runtime sends

    @model_validator(mode="after")
    def _input_fields_exist(self):
        from migrator.eks.self_managed_models import SelfManagedInput

        _known_input_fields(self.input, SelfManagedInput, "self-managed group migration")
        return self


class KarpenterPoolSpec(_Strict):
    """A Karpenter NodePool and its EC2NodeClass (same name) on AL2, with `size` nodes it launched and one
    disruption budget of `budget_percent` of its nodes (0: Karpenter may disrupt none)."""

    nodepool: str = Field(pattern=NAME)
    size: int = Field(ge=1, le=1000)
    budget_percent: int = Field(default=10, ge=0, le=100)
    instance_type: str = "m5.large"
    user_data: str = "#!/bin/bash\necho 'vm.max_map_count=262144' > /etc/sysctl.d/99-app.conf\n"
    expect: Outcome | None = None  # overrides the default rule of expected_outcome
    input: dict[str, Any] = Field(default_factory=dict)  # merged into the execution input the runtime sends

    @model_validator(mode="after")
    def _input_fields_exist(self):
        from migrator.eks.karpenter_models import KarpenterInput

        _known_input_fields(self.input, KarpenterInput, "Karpenter pool migration")
        return self

    @property
    def name(self) -> str:
        return self.nodepool


class WorkloadSpec(_Strict):
    name: str = Field(pattern=NAME)
    namespace: str = Field(default="default", pattern=NAME)
    replicas: int = Field(default=2, ge=0, le=1000)
    pdb_min_available: int | None = Field(default=None, ge=0)
    daemonset: bool = False
    controller: Literal["deployment", "none"] = "deployment"  # none: bare pods, nothing recreates them
    empty_dir: bool = False  # the pods have an emptyDir volume
    extra_pdb: bool = False  # a second PodDisruptionBudget selects the same pods
    node_selector: dict[str, str] = Field(default_factory=dict)  # e.g. pins pods to one node group
    service_account: str = Field(default="default", pattern=NAME)
    # how its service account gets AWS credentials: IRSA (the role-arn annotation), an EKS Pod Identity
    # association, or neither (it would use the node role's through IMDS)
    aws_identity: Literal["irsa", "pod_identity", "none"] = "none"

    @model_validator(mode="after")
    def _budget_fits(self):
        if self.extra_pdb and self.pdb_min_available is None:
            raise ValueError("extra_pdb needs pdb_min_available (the second budget is a copy of the first)")
        if self.daemonset and self.pdb_min_available is not None:
            raise ValueError("a DaemonSet gets no disruption budget here (a drain never evicts its pods)")
        if self.pdb_min_available is not None and self.pdb_min_available > self.replicas:
            raise ValueError("pdb_min_available is more than replicas")
        return self


class EksClusterSpec(_Strict):
    name: str = Field(pattern=NAME)
    version: str = Field(default="1.30", pattern=r"^1\.\d{2}$")
    addons: dict[str, str] = Field(default_factory=lambda: {"vpc-cni": "v1.18.3-eksbuild.1"})
    nodegroups: list[NodegroupSpec] = Field(default_factory=list)
    self_managed: list[SelfManagedSpec] = Field(default_factory=list)
    workloads: list[WorkloadSpec] = Field(default_factory=list)
    karpenter: list[KarpenterPoolSpec] = Field(default_factory=list)
    # the Karpenter API the cluster serves: v1 (amiSelectorTerms alias al2023@latest), v1beta1 (amiFamily AL2023),
    # or v1beta1 from a release whose EC2NodeClass knows no AL2023 (the pre-flight refuses it)
    karpenter_api: Literal["v1", "v1beta1", "v1beta1-no-al2023"] = "v1"

    @model_validator(mode="after")
    def _names_unique(self):
        names = [g.name for g in self.nodegroups] + [p.nodepool for p in self.karpenter]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"karpenter: {duplicates[0]} names a node group or another pool of the cluster")
        return self

    @model_validator(mode="after")
    def _has_nodes(self):
        if not self.nodegroups and not self.self_managed:
            raise ValueError("nodegroups: a cluster needs nodegroups or self_managed groups")
        names = [g.name for g in [*self.nodegroups, *self.self_managed]]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"self_managed: {duplicates[0]} names a node group of the cluster too")
        return self

    def target(self, nodegroup: NodegroupSpec | SelfManagedSpec) -> str:
        return f"eks/{self.name}/{nodegroup.name}"


class Fault(_Strict):
    target: str
    at: str | None = None
    kind: Literal["unhealthy", "alarm", "pdb-blocked", "error", "throttle"]
    alarm: str | None = None
    rate: float = Field(default=0.0, ge=0, le=1)


class Event(_Strict):
    """A change made by others while the run goes on: `scale` sets the group's
    desired capacity (clamped to its min_size/max_size) at a step or gate."""

    target: str
    at: str
    kind: Literal["scale"]
    desired: int = Field(ge=0, le=1000)


class Waves(_Strict):
    """Present: the run goes as a team would run it, discovery -> plan -> waves on the
    fleet state machine, each wave behind its `wave-N/start` approval."""

    max_instances: int = Field(default=DEFAULT_MAX_INSTANCES_PER_WAVE, ge=1, le=10_000)
    max_concurrency: MaxConcurrency
    tolerated_failure_percentage: ToleratedFailurePercentage


class Scenario(_Strict):
    version: Literal[1]
    name: str = Field(pattern=NAME)
    region: str = Field(default="us-east-1", pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    clock: Clock = Field(default_factory=Clock)
    timings: Timings = Field(default_factory=Timings)
    approvals: Approvals = Field(default_factory=Approvals)
    standalone: list[StandaloneSpec] = Field(default_factory=list)
    auto_scaling_groups: list[AutoScalingGroupSpec] = Field(default_factory=list)
    eks_clusters: list[EksClusterSpec] = Field(default_factory=list)
    faults: list[Fault] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)
    waves: Waves | None = None

    @model_validator(mode="after")
    def _consistent(self):
        for kind, specs in (("auto_scaling_groups", self.auto_scaling_groups), ("standalone", self.standalone)):
            names = [spec.name for spec in specs]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"{kind}: duplicate name {duplicates[0]}")
        targets = self.targets()
        for index, fault in enumerate(self.faults):
            where = f"faults.{index}"
            if fault.kind == "throttle":
                if fault.target != "any" and fault.target not in targets:
                    raise ValueError(f"{where}.target: {fault.target} is not a target of this scenario")
                if fault.rate <= 0:
                    raise ValueError(f"{where}.rate: a throttle fault needs a rate above 0")
                continue
            spec = targets.get(fault.target)
            if spec is None:
                raise ValueError(f"{where}.target: {fault.target} is not a target of this scenario")
            steps = {StandaloneSpec: STANDALONE_STEPS, NodegroupSpec: EKS_STEPS,
                     KarpenterPoolSpec: KARPENTER_STEPS, SelfManagedSpec: SELF_MANAGED_STEPS}.get(type(spec), ASG_STEPS)
            if isinstance(spec, NodegroupSpec) and spec.ami == "custom":
                steps = IN_PLACE_STEPS  # EKS's own update, not our drain
            allowed = steps.get(fault.at or "")
            if allowed is None:
                raise ValueError(f"{where}.at: a fault of {fault.target} is at one of {sorted(steps)}")
            if fault.kind not in allowed:
                raise ValueError(f"{where}.kind: {fault.kind} cannot happen at {fault.at} (one of {sorted(allowed)})")
            if fault.kind == "pdb-blocked" and not any(
                    w.pdb_min_available is not None for c in self.eks_clusters for w in c.workloads):
                raise ValueError(f"{where}: pdb-blocked needs a workload with pdb_min_available")
            if fault.kind == "alarm" and fault.alarm not in spec.alarms:
                raise ValueError(f"{where}.alarm: {fault.alarm!r} is not one of {spec.name}'s alarms")
        groups = {spec.target for spec in self.auto_scaling_groups}
        for index, event in enumerate(self.events):
            if event.target not in groups:
                raise ValueError(f"events.{index}.target: {event.target} is not an Auto Scaling group of this scenario")
            if event.at not in ASG_EVENT_POINTS:
                raise ValueError(f"events.{index}.at: a scale event is at one of {list(ASG_EVENT_POINTS)}")
        for gate in self.approvals.gates:
            target = gate.rsplit("/", 1)[0]
            if target not in targets and not re.fullmatch(r"wave-\d+", target):
                raise ValueError(f"approvals.gates: {gate} names no target of this scenario")
        return self

    def targets(self) -> dict[str, AutoScalingGroupSpec | StandaloneSpec | NodegroupSpec | KarpenterPoolSpec
                                  | SelfManagedSpec]:
        specs = {spec.target: spec for spec in [*self.auto_scaling_groups, *self.standalone]}
        for cluster in self.eks_clusters:
            specs |= {cluster.target(group): group
                      for group in [*cluster.nodegroups, *cluster.karpenter, *cluster.self_managed]}
        return specs

    def expected_outcome(self, target: str, gates: tuple[str, ...], wave: int | None = None) -> str:
        """The target's own `expect:` if it has one; else `rolled_back` where a fault
        other than throttling hits the target or one of its approvals is not given;
        `failed` for a node group whose pre-flight must refuse it (see `_preflight_refuses`);
        `migrated` otherwise."""
        spec = self.targets().get(target)
        if spec is not None and spec.expect is not None:
            return spec.expect
        for cluster in self.eks_clusters:
            if any(cluster.target(g) == target and _preflight_refuses(cluster, g) for g in cluster.nodegroups):
                return "failed"
            if any(cluster.target(p) == target and _karpenter_preflight_refuses(cluster, p) for p in cluster.karpenter):
                return "failed"
            if any(cluster.target(g) == target and _self_managed_refused(cluster, g) for g in cluster.self_managed):
                return "failed"
        faulted = any(f.target == target and f.kind != "throttle" for f in self.faults)
        # An unanswered standalone `decommission` keeps the replacement serving: migrated.
        refused = any(self.approvals.decision(f"{target}/{gate}") not in ("approve", *_unanswered_ok(target, gate))
                      for gate in gates)
        refused |= wave is not None and self.approvals.decision(f"wave-{wave}/start") != "approve"
        return "rolled_back" if faulted or refused else "migrated"


def _version(text: str) -> tuple[int, ...]:
    found = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(x) for x in found.groups()) if found else (0, 0, 0)


def _preflight_refuses(cluster: EksClusterSpec, group: NodegroupSpec) -> bool:
    """What the node group pre-flight must refuse, from the scenario alone: no opt-in tag,
    Docker, a VPC CNI below 1.16.2, or pods a drain may not evict without consent. Only
    an AL2 group's pre-flight looks further than the opt-in tag."""
    if not group.opt_in:
        return True
    if group.os == "al2023":
        return False
    pods = [w for w in cluster.workloads if not w.daemonset and w.replicas > 0]
    blue_green = group.ami != "custom"  # an update in place keeps the group: no new name, pinned pods follow
    return (group.container_runtime == "docker"
            or _cluster_refused(cluster, group.input)
            or blue_green and group.input.get("new_nodegroup_name") in {g.name for g in cluster.nodegroups}
            or blue_green and any(w.node_selector.get("eks.amazonaws.com/nodegroup") == group.name for w in pods))


def _drain_refused(pods: list, consent: dict) -> bool:
    """What any drain of these pods must refuse: two budgets over a pod, bare or emptyDir pods without the
    input's consent."""
    return (any(w.extra_pdb for w in pods)
            or any(w.controller == "none" for w in pods) and not consent.get("delete_bare_pods")
            or any(w.empty_dir for w in pods) and not consent.get("delete_empty_dir_data"))


def _cluster_refused(cluster: EksClusterSpec, consent: dict) -> bool:
    """What any drain of the cluster's nodes must refuse: a VPC CNI below 1.16.2, and `_drain_refused`."""
    pods = [w for w in cluster.workloads if not w.daemonset and w.replicas > 0]
    return _version(cluster.addons.get("vpc-cni", "v1.18.3")) < (1, 16, 2) or _drain_refused(pods, consent)


def _karpenter_preflight_refuses(cluster: EksClusterSpec, pool: KarpenterPoolSpec) -> bool:
    """What the Karpenter pool pre-flight must refuse: a Karpenter that knows no AL2023, a budget of 0 %
    (drift could never progress), a VPC CNI below 1.16.2, or pods a drift would destroy without consent."""
    pods = [w for w in cluster.workloads if not w.daemonset and w.replicas > 0
            and w.node_selector.get("karpenter.sh/nodepool") == pool.nodepool]
    return (cluster.karpenter_api == "v1beta1-no-al2023" or pool.budget_percent == 0
            or _version(cluster.addons.get("vpc-cni", "v1.18.3")) < (1, 16, 2) or _drain_refused(pods, pool.input))


def _self_managed_refused(cluster: EksClusterSpec, group: SelfManagedSpec) -> bool:
    """The self-managed pre-flight refuses what the node group one does (but Docker: the
    scenario's self-managed nodes run containerd), and a group without the opt-in tag."""
    return not group.opt_in or _cluster_refused(cluster, group.input)


def _unanswered_ok(target: str, gate: str) -> tuple[str, ...]:
    return ("ignore",) if target.startswith("standalone/") and gate == "decommission" else ()


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ScenarioError(f"{path}: cannot read: {error.strerror}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)  # where the parser stopped (0-based)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        what = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ScenarioError(f"{path}{where}: not valid YAML: {what}") from None
    return parse_scenario(data, source=str(path))


def parse_scenario(data: object, source: str = "scenario") -> Scenario:
    try:
        return Scenario.model_validate(data)
    except ValidationError as error:
        raise ScenarioError(f"{source}: {describe_validation_error(error)}") from None
