"""Discovery and planning: every AL2 instance of an account, classified into the
targets the workflows migrate, grouped into waves.

Describe calls are filtered and paginated, images are described 100 at a time
and cached, so an account of 10,000 instances costs a few dozen calls.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from migrator import clock
from migrator.ami import OsFamily, describe_images, os_family
from migrator.config import AL2023_AMI_PARAMETER, DEFAULT_MIGRATION_TAG
from migrator.tables import format_table
from migrator.workflows import EKS_IN_PLACE, EKS_KARPENTER, EKS_NODEGROUP, EKS_SELF_MANAGED, FLEET

WAVE_TAG = "al2023-migration:wave"  # an explicit wave number (0 is the canary wave)
CRITICALITY_TAG = "al2023-migration:criticality"  # low | medium | high
DNS_TAG = "al2023-migration:dns"  # "<hosted zone id>/<record name>" for a DNS cutover
ALARMS_TAG = "al2023-migration:alarms"  # comma-separated CloudWatch alarms that must stay OK
EXCLUDE_VALUE = "exclude"  # the migration tag's value that keeps an instance out of every plan
# Each kind of target and its state machine, in the canary wave's and the plan table's order: the fleet's children.
KIND_WORKFLOW = {child.kind: child.name for child in FLEET.children}
KIND_ORDER = tuple(KIND_WORKFLOW)
CRITICALITY_RANK = {"low": 0, "medium": 1, "high": 2}
DEFAULT_MAX_INSTANCES_PER_WAVE = 50


@dataclass
class Target:
    target: str
    kind: str
    instances: int
    input: dict
    criticality: str = "medium"
    wave_tag: int | None = None
    criticality_tagged: bool = False  # False: the default, no tag says so
    instance_ids: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # the instances' Name tags
    images: dict[str, str] = field(default_factory=dict)  # current AMI id -> name
    wave_reason: str = ""  # set by make_waves
    architecture: str = "x86_64"
    path_reason: str = ""  # a node group's: why it takes its workflow (in place or blue/green)

    def as_dict(self, plan_id: str, wave: int) -> dict:
        slug = re.sub(r"[^A-Za-z0-9-]", "-", self.target)
        digest = hashlib.sha256(f"{plan_id}/{self.target}".encode()).hexdigest()[:6]
        return {
            "target": self.target,
            "kind": self.kind,
            "state_machine": KIND_WORKFLOW[self.kind],
            "instances": self.instances,
            "criticality": self.criticality,
            # deterministic: a retried wave starts the same execution, never a second one
            "execution_name": f"{plan_id}-w{wave}-{slug}"[:73] + f"-{digest}",
            "input": self.input,
            "name": ", ".join(sorted(set(self.names))[:5]) or None,
            "instance_ids": sorted(self.instance_ids),
            "current_ami": [{"id": i, "name": n} for i, n in sorted(self.images.items())],
            "criticality_from": f"tag {CRITICALITY_TAG}" if self.criticality_tagged else "default (no tag)",
            "wave_reason": self.wave_reason,
            **({"path_reason": self.path_reason} if self.path_reason else {}),
        }


@dataclass
class Seen:
    """One instance as discovery saw it: what a reviewer needs to recognise it."""

    instance_id: str
    name: str | None
    image_id: str
    image_name: str
    architecture: str


@dataclass
class Inventory:
    targets: dict[str, Target] = field(default_factory=dict)
    already_al2023: int = 0
    excluded: list[str] = field(default_factory=list)
    karpenter: list[dict] = field(default_factory=list)
    self_managed: list[dict] = field(default_factory=list)
    not_opted_in: list[dict] = field(default_factory=list)  # {instance_id, name}
    other_os: int = 0
    instances_seen: int = 0
    api_calls: Counter = field(default_factory=Counter)


def _paginate(client, operation: str, key: str, inventory: Inventory, **kwargs):
    for page in client.get_paginator(operation).paginate(**kwargs):
        inventory.api_calls[operation] += 1
        yield from page[key]


def discover(ec2, eks=None, tag_key: str = DEFAULT_MIGRATION_TAG["key"]) -> Inventory:
    inventory = Inventory()
    instances = [i for r in _paginate(ec2, "describe_instances", "Reservations", inventory,
                                      Filters=[{"Name": "instance-state-name", "Values": ["pending", "running", "stopped"]}],
                                      PaginationConfig={"PageSize": 1000})
                 for i in r["Instances"]]
    inventory.instances_seen = len(instances)
    image_ids = sorted({i["ImageId"] for i in instances})
    images = describe_images(ec2, image_ids)
    inventory.api_calls["describe_images"] += -(-len(image_ids) // 100)
    addresses = {a["InstanceId"]: a for a in ec2.describe_addresses()["Addresses"] if a.get("InstanceId")}
    inventory.api_calls["describe_addresses"] += 1
    for instance in instances:
        _classify(instance, images, addresses, inventory, tag_key)
    if eks is not None:
        _route_nodegroups(ec2, eks, inventory)
    return inventory


def _route_nodegroups(ec2, eks, inventory: Inventory) -> None:
    """A managed node group whose launch template names a custom AMI is updated in place (eks-in-place);
    any other takes the blue/green workflow. Each target says why."""
    from migrator.eks.paths import IN_PLACE, update_path

    for target in inventory.targets.values():
        if target.kind != "eks":
            continue
        group = eks.describe_nodegroup(clusterName=target.input["cluster_name"],
                                       nodegroupName=target.input["nodegroup_name"])["nodegroup"]
        inventory.api_calls["describe_nodegroup"] += 1
        path, target.path_reason, _ = update_path(ec2, group)
        if path == IN_PLACE:
            target.kind = EKS_IN_PLACE.kind


def _classify(instance: dict, images: dict, addresses: dict, inventory: Inventory, tag_key: str) -> None:
    tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
    iid = instance["InstanceId"]
    if tags.get(tag_key) == EXCLUDE_VALUE:
        inventory.excluded.append(iid)
        return
    image = images.get(instance["ImageId"]) or {"PlatformDetails": instance.get("PlatformDetails", "")}
    family = os_family(image)
    if family is OsFamily.AL2023:
        inventory.already_al2023 += 1
        return
    if family is not OsFamily.AL2:
        inventory.other_os += 1
        return
    criticality = tags.get(CRITICALITY_TAG, "medium")
    seen = Seen(iid, tags.get("Name"), instance["ImageId"], image.get("Name", ""),
                image.get("Architecture") or instance.get("Architecture") or "x86_64")
    tagged = CRITICALITY_TAG in tags
    alarms = {"alarm_names": tags[ALARMS_TAG].split(",")} if tags.get(ALARMS_TAG) else {}
    wave = int(tags[WAVE_TAG]) if tags.get(WAVE_TAG, "").isdigit() else None
    cluster = tags.get("eks:cluster-name") or next(
        (k.rsplit("/", 1)[1] for k in tags if k.startswith("kubernetes.io/cluster/")), None)
    if "karpenter.sh/nodepool" in tags and tags.get(tag_key) is not None and cluster:
        # Karpenter tags its instances with the EC2NodeClass's spec.tags: the opt-in tag there opts the pool in
        pool = tags["karpenter.sh/nodepool"]
        _add(inventory, f"eks/{cluster}/{pool}", "eks-karpenter", {"cluster_name": cluster, "nodepool_name": pool},
             criticality, wave, seen, tagged)
        return
    if "karpenter.sh/nodepool" in tags or "karpenter.sh/provisioner-name" in tags:
        # not opted in (no opt-in tag in the EC2NodeClass's spec.tags), or a v1alpha5 Provisioner
        pool = tags.get("karpenter.sh/nodepool") or tags.get("karpenter.sh/provisioner-name")
        inventory.karpenter.append({
            "instance_id": iid, "cluster": cluster, "nodepool": pool,
            "change": f"in the EC2NodeClass of node pool {pool}, set amiSelectorTerms to [{{alias: al2023@latest}}]; "
                      "Karpenter's drift replaces the nodes (or add the opt-in tag to its spec.tags and the "
                      "eks-karpenter workflow does it)",
        })
        return
    if "eks:nodegroup-name" in tags:
        name = f"eks/{cluster}/{tags['eks:nodegroup-name']}"
        _add(inventory, name, "eks", {"cluster_name": cluster, "nodegroup_name": tags["eks:nodegroup-name"]},
             criticality, wave, seen, tagged)
        return
    group = tags.get("aws:autoscaling:groupName")
    if tags.get(tag_key) is None and not (group and cluster):
        # The workflows change only what carries the opt-in tag (IAM enforces it too).
        inventory.not_opted_in.append({"instance_id": iid, "name": tags.get("Name")})
        return
    if group and cluster and tags.get(tag_key) is None:
        inventory.self_managed.append({"instance_id": iid, "cluster": cluster, "group": group,
                                       "change": f"self-managed node group without the opt-in tag: tag the group "
                                                 f"{tag_key}={DEFAULT_MIGRATION_TAG['value']} (propagated to its "
                                                 "instances) and the eks-self-managed workflow migrates it"})
        return
    if group and cluster:  # a self-managed node group: its own workflow
        _add(inventory, f"eks/{cluster}/{group}", "eks-self-managed", {"cluster_name": cluster, "group_name": group},
             criticality, wave, seen, tagged)
        return
    if group:
        _add(inventory, f"asg/{group}", "asg", {"group_name": group, **alarms}, criticality, wave, seen, tagged)
        return
    cutover = {"mode": "none"}
    if iid in addresses:
        cutover = {"mode": "elastic_ip"}
    elif "/" in tags.get(DNS_TAG, ""):
        zone, record = tags[DNS_TAG].split("/", 1)
        cutover = {"mode": "dns", "hosted_zone_id": zone, "record_name": record}
    name = tags.get("Name") or iid
    _add(inventory, f"standalone/{name}", "standalone", {"instance_id": iid, "cutover": cutover, **alarms},
         criticality, wave, seen, tagged)


def _add(inventory: Inventory, name: str, kind: str, payload: dict, criticality: str, wave: int | None,
         seen: Seen, tagged: bool) -> None:
    target = inventory.targets.get(name)
    if target is None:
        target = inventory.targets[name] = Target(name, kind, 0, payload, criticality, wave, tagged)
    elif CRITICALITY_RANK.get(criticality, 1) > CRITICALITY_RANK.get(target.criticality, 1):
        target.criticality = criticality  # a group is as critical as its most critical member
    target.instances += 1
    target.criticality_tagged |= tagged
    target.instance_ids.append(seen.instance_id)
    if seen.name:
        target.names.append(seen.name)
    target.images[seen.image_id] = seen.image_name
    target.architecture = seen.architecture


def make_waves(targets: list[Target], max_instances: int = DEFAULT_MAX_INSTANCES_PER_WAVE) -> list[list[Target]]:
    """Explicit wave tags first, in their order (empty numbers close up; 0 is the
    canary). Otherwise: a canary wave of the least critical, smallest target of each
    kind, then waves of at most `max_instances` instances, least critical and
    smallest first (a target larger than the bound gets a wave alone)."""
    tagged = defaultdict(list)
    untagged = []
    for target in targets:
        (tagged[target.wave_tag].append(target) if target.wave_tag is not None else untagged.append(target))
        target.wave_reason = (f"tag {WAVE_TAG}={target.wave_tag}" if target.wave_tag is not None else
                              f"{target.criticality} criticality, {target.instances} instance"
                              f"{'s' if target.instances != 1 else ''}: least critical and smallest first, "
                              f"at most {max_instances} instances a wave")
    order = sorted(untagged, key=lambda t: (CRITICALITY_RANK.get(t.criticality, 1), t.instances, t.target))
    canary = []
    if not tagged.get(0):
        for kind in KIND_ORDER:
            first = next((t for t in order if t.kind == kind), None)
            if first:
                canary.append(first)
                order.remove(first)
                first.wave_reason = f"canary: the least critical, smallest {kind} target"
    waves: list[list[Target]] = [tagged.pop(0, []) + canary]
    for number in sorted(tagged):
        while len(waves) <= number:
            waves.append([])
        waves[number].extend(tagged[number])
    current, size = [], 0
    for target in order:
        if target.instances > max_instances:
            target.wave_reason = f"{target.instances} instances, more than {max_instances}: a wave of its own"
        if current and size + target.instances > max_instances:
            waves.append(current)
            current, size = [], 0
        current.append(target)
        size += target.instances
    if current:
        waves.append(current)
    return [wave for wave in waves if wave]


def build_plan(inventory: Inventory, region: str, max_instances: int = DEFAULT_MAX_INSTANCES_PER_WAVE,
               defaults: dict | None = None, tag_key: str = DEFAULT_MIGRATION_TAG["key"],
               al2023_images: dict[str, dict] | None = None) -> dict:
    """The plan file `start` accepts. `defaults` adds input fields per kind;
    `al2023_images` ({architecture: {id, name}}) is what the latest-AL2023 parameters name today."""
    al2023_images = al2023_images or {}

    def target_ami(target: Target):
        if target.kind == "eks":
            return "the EKS-optimized AL2023 AMI of the cluster's version (AMI type AL2023_*)"
        if target.kind == EKS_IN_PLACE.kind:
            return "the EKS-optimized AL2023 AMI of the cluster's version, in a new launch-template version"
        if target.kind == EKS_KARPENTER.kind:
            return "what the EC2NodeClass selects: alias al2023@latest (v1) or amiFamily AL2023 (v1beta1)"
        if target.kind == EKS_SELF_MANAGED.kind:
            return "the EKS-optimized AL2023 AMI of the cluster's version (launch-template version, nodeadm)"
        return al2023_images.get(target.architecture) or (
            f"the value of {AL2023_AMI_PARAMETER.get(target.architecture, '?')} when the target starts")
    created = dt.datetime.fromtimestamp(clock.now(), dt.UTC)
    plan_id = "plan-" + created.strftime("%Y%m%d-%H%M%S")
    waves = make_waves(list(inventory.targets.values()), max_instances)
    defaults = defaults or {}
    plan_waves = []
    for number, wave in enumerate(waves):
        targets = []
        for target in wave:
            item = target.as_dict(plan_id, number)
            item["input"] = {**defaults.get(target.kind, {}), **item["input"]}
            item["target_ami"] = target_ami(target)
            targets.append(item)
        plan_waves.append({"wave": number, "name": "canary" if number == 0 else f"wave {number}",
                           "instances": sum(t["instances"] for t in targets), "targets": targets})
    kinds = Counter()
    for target in inventory.targets.values():
        kinds[target.kind] += target.instances
    return {
        "version": 1,
        "plan_id": plan_id,
        "region": region,
        "created_at": created.isoformat(),
        "summary": {
            "instances_seen": inventory.instances_seen,
            "to_migrate": sum(kinds.values()),
            "by_kind": dict(sorted(kinds.items())),
            "already_al2023": inventory.already_al2023,
            "excluded": len(inventory.excluded),
            "karpenter": len(inventory.karpenter),
            "self_managed_node_groups": len(inventory.self_managed),
            "not_opted_in": len(inventory.not_opted_in),
            "other_os": inventory.other_os,
            "waves": len(plan_waves),
            "api_calls": dict(inventory.api_calls),
        },
        "waves": plan_waves,
        "not_migrated": {"excluded": inventory.excluded, "karpenter": inventory.karpenter,
                         "self_managed_node_groups": inventory.self_managed,
                         "not_opted_in": {"instances": inventory.not_opted_in,
                                          "change": f"tag them {tag_key}={DEFAULT_MIGRATION_TAG['value']} to include them"}},
    }


def plan_table(plan: dict) -> str:
    """Instances per kind and wave, then every target with what a reviewer needs."""
    kinds = KIND_ORDER
    rows = [("wave", "targets", *(f"{k} instances" for k in kinds), "instances")]
    for wave in plan["waves"]:
        per_kind = Counter()
        for target in wave["targets"]:
            per_kind[target["kind"]] += target["instances"]
        rows.append((wave["name"], str(len(wave["targets"])), *(str(per_kind[k]) for k in kinds),
                     str(wave["instances"])))
    lines = [format_table(rows), ""]
    rows = [("wave", "target", "name", "instances", "current AMI", "AL2023 AMI", "criticality", "why this wave")]
    for wave in plan["waves"]:
        for target in wave["targets"]:
            current = ", ".join(f"{a['name'] or '?'} ({a['id']})" for a in target.get("current_ami", []))
            new = target.get("target_ami")
            new = f"{new['name']} ({new['id']})" if isinstance(new, dict) else {
                EKS_NODEGROUP.kind: "EKS AL2023 AMI type", EKS_IN_PLACE.kind: "EKS AL2023 AMI", EKS_SELF_MANAGED.kind: "EKS AL2023 AMI",
                EKS_KARPENTER.kind: "EC2NodeClass AL2023"}.get(target["kind"], "at start (SSM)")
            ids = target.get("instance_ids", [])
            rows.append((wave["name"], target["target"], target.get("name") or "-",
                         ", ".join(ids) if len(ids) <= 2 else f"{len(ids)} ({ids[0]}, ...)", current, new,
                         f"{target['criticality']}" + ("" if "tag" in target.get("criticality_from", "tag")
                                                       and "default" not in target.get("criticality_from", "")
                                                       else " (default)"),
                         target.get("wave_reason", "")))
    lines.append(format_table(rows))
    scanned = [t for wave in plan["waves"] for t in wave["targets"] if "compatibility" in t]
    if scanned:  # plan --compatibility
        rows = [("target", "blockers", "warnings")]
        rows += [(t["target"], "; ".join(t["compatibility"]["blockers"]) or "none",
                  str(len(t["compatibility"]["warnings"]))) for t in scanned]
        lines += ["", "AL2023 compatibility (a blocker refuses the target in pre-flight):", format_table(rows)]
    s = plan["summary"]
    lines.append(f"\n{s['to_migrate']} AL2 instances to migrate in {s['waves']} waves; "
                 f"{s['already_al2023']} already on AL2023, {s['excluded']} excluded, "
                 f"{s['karpenter']} Karpenter nodes not opted in (EC2NodeClass change by hand), "
                 f"{s['self_managed_node_groups']} in self-managed node groups, "
                 f"{s['not_opted_in']} without the opt-in tag, {s['other_os']} other OS")
    untagged = plan["not_migrated"]["not_opted_in"]["instances"]
    if untagged:
        lines.append("without the opt-in tag (left as they are): " + ", ".join(
            f"{i['name']} ({i['instance_id']})" if i.get("name") else i["instance_id"] for i in untagged[:20])
            + (f" and {len(untagged) - 20} more" if len(untagged) > 20 else ""))
    return "\n".join(lines)


def latest_al2023_images(ssm, ec2) -> dict[str, dict]:
    """{architecture: {id, name}} of the AMIs the public AL2023 parameters name now."""
    found = {}
    for architecture, parameter in AL2023_AMI_PARAMETER.items():
        try:
            image_id = ssm.get_parameter(Name=parameter)["Parameter"]["Value"]
        except ssm.exceptions.ParameterNotFound:
            continue
        image = describe_images(ec2, [image_id]).get(image_id, {})
        found[architecture] = {"id": image_id, "name": image.get("Name", "")}
    return found
