"""The run summary (docs/scenarios.md `--json`) and the runtime's end-of-run audit of
the simulated account (the invariants)."""

from __future__ import annotations

import datetime as dt

from migrator.audit import read_trail
from migrator.config import EXECUTION_TAG, GROUP_TAG, PURPOSE_TAG, SOURCE_INSTANCE_TAG
from migrator.failures import error_message
from migrator.eks.self_managed import CORDONED_BY
from migrator.workstation.local.fleet import BuiltGroup, BuiltInstance
from migrator.workstation.local.runtime import ACCOUNT, AUDIT_TABLE, LocalRuntime, Run
from migrator.workflows import FLEET


def _seconds(timestamp) -> float:
    if isinstance(timestamp, dt.datetime):
        return timestamp.timestamp()
    return dt.datetime.fromisoformat(str(timestamp)).timestamp()


def state_transitions(history: list[dict]) -> int:
    """Billed transitions: states entered plus retried task attempts."""
    entered = sum(1 for e in history if e["type"].endswith("StateEntered"))
    attempts = sum(1 for e in history if e["type"] in ("LambdaFunctionScheduled", "TaskScheduled"))
    tasks = sum(1 for e in history if e["type"] == "TaskStateEntered")
    return entered + max(0, attempts - tasks)


def outcome_of(described: dict, history: list[dict]) -> str:
    if described["status"] == "SUCCEEDED":
        return "migrated"
    entered = {(e.get("stateEnteredEventDetails") or {}).get("name") for e in history}
    return "rolled_back" if "RolledBack" in entered else "failed"


def target_summary(runtime: LocalRuntime, run: Run, described: dict | None) -> dict:
    kind = run.workflow.kind or run.target.split("/", 1)[0]
    expected = runtime.scenario.expected_outcome(run.target, run.workflow.gates, run.wave)
    if described is None:  # its wave was never approved: nothing touched it
        return {"target": run.target, "kind": kind, "instances": runtime.fleet.instance_count(run.target),
                "outcome": "rolled_back", "expected": expected, "execution_arn": run.execution_arn,
                "status": "NOT_STARTED", "state_transitions": 0, "sim_seconds": 0.0,
                "error": f"wave {run.wave} was not approved; the target was left as it was"}
    history = runtime.history(run)
    times = [_seconds(e["timestamp"]) for e in history]
    error = None
    if described["status"] != "SUCCEEDED":
        error = f"{described.get('error', '')}: {error_message(described.get('cause'))}"
    return {
        "target": run.target,
        "kind": kind,
        "instances": runtime.fleet.instance_count(run.target),
        "outcome": outcome_of(described, history),
        "expected": expected,
        "execution_arn": run.execution_arn,
        "status": described["status"],
        "state_transitions": state_transitions(history),
        "sim_seconds": round(max(times) - min(times), 1) if times else 0.0,
        "error": error,
    }


def _described(runtime: LocalRuntime, run: Run) -> dict | None:
    sfn = runtime.client("stepfunctions")
    try:
        return sfn.describe_execution(executionArn=run.execution_arn)
    except sfn.exceptions.ExecutionDoesNotExist:
        return None


def summarize(runtime: LocalRuntime, results: dict[str, dict], wall_seconds: float) -> dict:
    fleet_runs = [run for run in runtime.runs if run.workflow is FLEET]
    targets = [target_summary(runtime, run, results.get(run.execution_arn) or _described(runtime, run))
               for run in runtime.runs if run.workflow is not FLEET]
    for target in targets:
        if target["kind"] == "asg":
            target["desired"] = _desired(runtime, target["target"])
        writes = runtime.fidelity.writes.report(target["target"]) if target["kind"] == "standalone" else None
        if writes is not None:
            target["writes"] = writes
        if target["kind"] == "standalone":  # how long its address answered no writes, by design
            freezes = runtime.fidelity.observations.write_freezes.get(target["target"], [])
            target["write_freeze_seconds"] = round(sum(freezes), 1)
        target.update(_host_checks(runtime, target["execution_arn"]))
    instances = {"total": 0, "migrated": 0, "rolled_back": 0, "failed": 0}
    for target in targets:
        instances["total"] += target["instances"]
        instances[target["outcome"]] += target["instances"]
    violations = check_invariants(runtime, targets)
    mismatches = [f"{t['target']}: ended {t['outcome']}, expected {t['expected']}"
                  for t in targets if t["outcome"] != t["expected"]]
    return {
        "scenario": runtime.scenario.name,
        "targets": targets,
        "instances": instances,
        "state_transitions": sum(t["state_transitions"] for t in targets)
        + sum(state_transitions(runtime.history(run)) for run in fleet_runs),
        "waves": [{"wave": run.wave, "execution_arn": run.execution_arn, "status": runtime.status(run)["status"]} for run in fleet_runs],
        "aws_api_calls": runtime.fidelity.calls.total,
        "aws_api_calls_throttled": runtime.fidelity.calls.throttled,
        "peak_aws_calls_per_sim_second": runtime.fidelity.calls.peak_per_second,
        "sim_seconds": round(runtime.clock.elapsed(), 1),
        "wall_seconds": round(wall_seconds, 2),
        # What the scenario expected is not safety: the invariants audit the account only.
        "expectations": {"ok": not mismatches, "mismatches": mismatches},
        "invariants": {"ok": not violations, "violations": violations},
    }


def _host_checks(runtime: LocalRuntime, execution_arn: str) -> dict:
    """`compatibility` {blockers, warnings} once the scan read the old host, and `parity` {missing}
    once a replacement was compared with it, as the workflow recorded them in the audit trail."""
    found = {}
    for record in read_trail(runtime.client("dynamodb"), AUDIT_TABLE, execution_arn):
        detail = record["detail"]
        if record["action"] == "compatibility-checked":
            found["compatibility"] = {"blockers": detail["blockers"], "warnings": detail["warnings"]}
        elif record["action"] == "parity-checked":
            found["parity"] = {"missing": detail["missing"]}
    return found


def _desired(runtime: LocalRuntime, target: str) -> dict:
    spec = runtime.fleet.groups[target.split("/", 1)[1]].spec
    group = runtime.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[spec.name])["AutoScalingGroups"][0]
    return {"before": spec.size, "after": group["DesiredCapacity"]}


# --- invariants ------------------------------------------------------------------


def check_invariants(runtime: LocalRuntime, targets: list[dict]) -> list[str]:
    violations: list[str] = []
    outcomes = {t["target"]: t for t in targets}
    for group in runtime.fleet.groups.values():
        summary = outcomes.get(group.spec.target)
        if summary is not None:
            violations += _check_group(runtime, group, summary)
    for built in runtime.fleet.instances.values():
        summary = outcomes.get(built.spec.target)
        if summary is not None:
            violations += _check_standalone(runtime, built, summary)
    for built in runtime.fleet.nodegroups.values():
        summary = outcomes.get(built.target)
        if summary is not None:
            check = _check_in_place if built.spec.ami == "custom" else _check_nodegroup
            violations += check(runtime, built, summary)
    for built in runtime.fleet.karpenter.values():
        summary = outcomes.get(built.target)
        if summary is not None:
            violations += _check_karpenter(built, summary)
    for built in runtime.fleet.self_managed.values():
        summary = outcomes.get(built.target)
        if summary is not None:
            violations += _check_self_managed(runtime, built, summary)
    for sim in (runtime.kubernetes.clusters.values() if runtime.kubernetes else []):
        consent = [b.spec.input for b in [*runtime.fleet.nodegroups.values(), *runtime.fleet.karpenter.values(),
                                          *runtime.fleet.self_managed.values()]
                   if b.cluster.name == sim.name]
        violations += _check_workloads(sim, bare_pods=any(i.get("delete_bare_pods") for i in consent),
                                       empty_dir=any(i.get("delete_empty_dir_data") for i in consent))
    violations += runtime.fidelity.address_violations
    violations += _check_bystanders(runtime)
    targets_by_group = {name for name, g in runtime.fleet.groups.items() if g.spec.target in outcomes}
    targets_by_group |= {b.spec.name for b in runtime.fleet.self_managed.values() if b.target in outcomes}
    standalone = {t for t in outcomes if t.startswith("standalone/")}
    clusters = {t.split("/")[1] for t in outcomes if t.startswith("eks/")}

    def ours(instance_id: str, group: str | None) -> bool:
        instance = _instance(runtime, instance_id)
        tags = instance.ec2_backend.tags.get(instance_id, {})
        return (group in targets_by_group or runtime.fidelity.target_of_instance(instance) in standalone
                or tags.get("eks:cluster-name") in clusters)

    outside = sorted(i for i, group in runtime.fidelity.changed_instances.items() if not ours(i, group))
    if outside:
        violations.append(f"instances outside the targets were stopped or terminated: {outside}")
    return violations


def _check_group(runtime: LocalRuntime, group: BuiltGroup, summary: dict) -> list[str]:
    """The owners' capacity stands (their last change, clamped to their min/max;
    else the original), their min/max unchanged, no canary left over, and every
    instance the group launched before the approval ran the AMI that was serving."""
    spec = group.spec
    name = spec.name
    autoscaling, ec2 = runtime.client("autoscaling"), runtime.client("ec2")
    problems = []
    current = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
    changes = runtime.fidelity.autoscaling.applied_events.get(spec.target, [])
    size = changes[-1] if changes else spec.size
    if (current["MinSize"], current["MaxSize"]) != (spec.min_size, spec.max_size):
        problems.append(f"asg/{name}: min/max {(current['MinSize'], current['MaxSize'])}, "
                        f"its owners' {(spec.min_size, spec.max_size)}")
    if current["DesiredCapacity"] != size:
        why = f"set to {size} by others during the run" if changes else f"originally {size}"
        problems.append(f"asg/{name}: desired capacity {current['DesiredCapacity']}, {why}")
    problems += _scale_outs_before_approval(runtime, group)
    instances = current["Instances"]
    members = {i["InstanceId"] for i in instances}
    serving = [i for i in instances if i["LifecycleState"] == "InService" and i["HealthStatus"] == "Healthy"]
    strays = ec2.describe_instances(Filters=[{"Name": f"tag:{GROUP_TAG}", "Values": [name]},
                                             {"Name": "instance-state-name", "Values": ["pending", "running"]}])
    outside = sorted(i["InstanceId"] for r in strays["Reservations"] for i in r["Instances"]
                     if i["InstanceId"] not in members)
    if outside:
        problems.append(f"asg/{name}: canary {outside} left running outside the group")
    if len(instances) != size or len(serving) != size:
        problems.append(f"asg/{name}: {len(serving)} of {len(instances)} instances serving, expected {size} "
                        "(canary left over?)")
    template = ec2.describe_launch_templates(LaunchTemplateIds=[group.template_id])["LaunchTemplates"][0]
    images = _images_of(ec2, sorted(members))
    migrated = summary["outcome"] == "migrated"
    want_image = runtime.fleet.al2023_image if migrated else group.original_image
    wrong = sorted(i for i, image in images.items() if image != want_image)
    if wrong:
        problems.append(f"asg/{name}: instances {wrong} not on {want_image} after {summary['outcome']}")
    default = str(template["DefaultVersionNumber"])
    if migrated and group.spec.os == "al2":
        if default == group.original_version:
            problems.append(f"asg/{name}: migrated but the template default is still version {default}")
    elif default != group.original_version:
        problems.append(f"asg/{name}: {summary['outcome']} but the template default moved to version {default}")
    if group.target_group_arn:
        health = runtime.client("elbv2").describe_target_health(TargetGroupArn=group.target_group_arn)
        registered = {d["Target"]["Id"] for d in health["TargetHealthDescriptions"]
                      if d["TargetHealth"]["State"] not in ("draining", "unused")}
        if registered != members:
            problems.append(f"asg/{name}: target group serves {sorted(registered)}, group has {sorted(members)}")
    trail = read_trail(runtime.client("dynamodb"), AUDIT_TABLE, summary["execution_arn"])
    if not trail and summary["status"] != "NOT_STARTED":
        problems.append(f"asg/{name}: no audit records for {summary['execution_arn']}")
    return problems


def _scale_outs_before_approval(runtime: LocalRuntime, group: BuiltGroup) -> list[str]:
    """Every instance the group itself launched before its first instance refresh
    (which only an approval starts) runs the AMI that was serving; the canary,
    launched by the migration (it carries the execution tag), is not the group's."""
    from moto.ec2.models import ec2_backends

    refreshes = runtime.fidelity.autoscaling.refreshes.get(group.spec.name, [])
    approved_at = min((r.started_at for r in refreshes), default=float("inf"))
    backend = ec2_backends[ACCOUNT][runtime.region]
    wrong = sorted(
        instance.id for instance in backend.all_instances()
        if backend.tags.get(instance.id, {}).get("aws:autoscaling:groupName") == group.spec.name
        and EXECUTION_TAG not in backend.tags.get(instance.id, {})
        and (getattr(instance, "sim_launched_at", 0) or 0) < approved_at
        and instance.image_id != group.original_image
    )
    return [f"asg/{group.spec.name}: instances launched before the approval run another AMI than "
            f"{group.original_image}: {wrong}"] if wrong else []


def _instance(runtime: LocalRuntime, instance_id: str):
    from moto.ec2.models import ec2_backends

    return ec2_backends[ACCOUNT][runtime.region].get_instance_by_id(instance_id)


def _check_standalone(runtime: LocalRuntime, built: BuiltInstance, summary: dict) -> list[str]:
    """Snapshots completed before the first change; the address on a running
    instance; the original kept until decommission, restored intact on rollback."""
    ec2 = runtime.client("ec2")
    target, problems = built.spec.target, []
    old = _describe(ec2, built.instance_id)
    replacements = _replacements(ec2, built.instance_id)
    launched_at = [getattr(_instance(runtime, r["InstanceId"]), "sim_launched_at", 0) for r in replacements]
    snapshots = ec2.describe_snapshots(OwnerIds=["self"], Filters=[  # those before any change
        {"Name": f"tag:{SOURCE_INSTANCE_TAG}", "Values": [built.instance_id]},
        {"Name": f"tag:{PURPOSE_TAG}", "Values": ["before-change"]}])["Snapshots"]
    if replacements:
        if {s["VolumeId"] for s in snapshots} != set(built.volume_ids.values()):
            problems.append(f"{target}: not every volume was snapshotted before the replacement was launched")
        done = [runtime.fidelity.snapshot_completed_at.get(s["SnapshotId"], float("inf")) for s in snapshots]
        if max(done, default=float("inf")) > min(launched_at):
            problems.append(f"{target}: a replacement was launched before every snapshot had completed")
    if summary["outcome"] == "migrated" and built.spec.os == "al2":
        serving = [r for r in replacements if r["State"]["Name"] == "running"]
        # stopped: the decommission gate went unanswered, the old one is kept for an operator
        if old["State"]["Name"] not in ("terminated", "stopped"):
            problems.append(f"{target}: migrated but the old instance is {old['State']['Name']}")
        if len(serving) != 1 or serving[0]["ImageId"] != runtime.fleet.al2023_image:
            problems.append(f"{target}: migrated but no single running AL2023 replacement")
        elif serving[0]["MetadataOptions"]["HttpTokens"] != "required":
            problems.append(f"{target}: the replacement does not require IMDSv2")
    elif summary["outcome"] != "migrated":
        if old["State"]["Name"] != "running" or old["ImageId"] != built.original_image:
            problems.append(f"{target}: {summary['outcome']} but the original is {old['State']['Name']}")
        attached = {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in old.get("BlockDeviceMappings", [])}
        if attached != built.volume_ids:
            problems.append(f"{target}: the original's volumes changed: {attached} != {built.volume_ids}")
        tags = {t["Key"]: t["Value"] for t in old.get("Tags", [])}
        if any(tags.get(k) != v for k, v in built.tags.items()):
            problems.append(f"{target}: the original's tags changed")
        alive = [r["InstanceId"] for r in replacements if r["State"]["Name"] not in ("terminated", "shutting-down")]
        if alive:
            problems.append(f"{target}: replacement {alive} left running after {summary['outcome']}")
        if built.allocation_id:
            address = ec2.describe_addresses(AllocationIds=[built.allocation_id])["Addresses"][0]
            if address.get("InstanceId") != built.instance_id:
                problems.append(f"{target}: Elastic IP not back on the original")
    writes = summary.get("writes")
    if writes and writes["lost"]:
        problems.append(f"{target}: {writes['lost']} of {writes['acknowledged']} acknowledged writes lost "
                        f"(not on the instance that serves)")
    problem = runtime.address_problem(built, at_the_end=True)
    if problem:
        problems.append(f"at the end: {problem}")
    return problems


def _check_nodegroup(runtime: LocalRuntime, built, summary: dict) -> list[str]:
    """The old group gone only after success; after a rollback the AL2 nodes serve,
    untainted and uncordoned, and the new group is gone."""
    eks, sim, target = runtime.client("eks"), built.sim, built.target
    groups = set(eks.list_nodegroups(clusterName=built.cluster.name)["nodegroups"])
    old = built.spec.name
    new = built.spec.input.get("new_nodegroup_name") or f"{old[:56]}-al2023"
    others = {g.name for g in built.cluster.nodegroups if g.name != old}
    problems = _check_untouched(runtime, built) if not built.spec.opt_in else []
    if new in others:  # the input named another group of the scenario: that group's own check covers it
        new = None
    with sim.lock:
        sim.reconcile()
        old_nodes = [n for n in sim.nodes.values() if n.nodegroup == old]
        if summary["outcome"] == "migrated" and built.spec.os == "al2":
            if old in groups or old_nodes:
                problems.append(f"{target}: migrated but the AL2 node group is still there")
            if new is not None and new not in groups:
                problems.append(f"{target}: migrated but {new} does not exist")
        elif summary["outcome"] != "migrated":
            if old not in groups or len(old_nodes) != built.spec.size:
                problems.append(f"{target}: {summary['outcome']} but the AL2 group lost nodes")
            if new is not None and (new in groups or any(n.nodegroup == new for n in sim.nodes.values())):
                problems.append(f"{target}: {summary['outcome']} but {new} was left behind")
            stuck = sorted(n.name for n in old_nodes if n.unschedulable or any(t.get("key") == "os" for t in n.taints))
            if stuck:
                problems.append(f"{target}: nodes left cordoned or tainted after {summary['outcome']}: {stuck}")
    return problems


def _check_in_place(runtime: LocalRuntime, built, summary: dict) -> list[str]:
    """A group updated in place keeps its name: migrated, every node on AL2023 from a new launch-template
    version; otherwise on its original version, every node AL2; either way its size and nothing cordoned."""
    target, spec = built.target, built.spec
    if not spec.opt_in:
        return _check_untouched(runtime, built)
    group = runtime.client("eks").describe_nodegroup(clusterName=built.cluster.name,
                                                     nodegroupName=spec.name)["nodegroup"]
    migrated = summary["outcome"] == "migrated" and spec.os == "al2"
    with built.sim.lock:
        built.sim.reconcile()
        nodes = [n for n in built.sim.nodes.values() if n.nodegroup == spec.name]
        wrong_os = sorted(n.name for n in nodes if n.os_image.startswith("Amazon Linux 2023") != (
            migrated or spec.os == "al2023"))
        cordoned = sorted(n.name for n in nodes if n.unschedulable or not n.ready(built.sim.clock.now()))
    problems = []
    version = str(group["launchTemplate"]["version"])
    if (version != "1") != migrated:
        problems.append(f"{target}: {summary['outcome']} but the group runs launch-template version {version}")
    if group["status"] != "ACTIVE" or len(nodes) != spec.size:
        problems.append(f"{target}: {group['status']} with {len(nodes)} nodes, expected ACTIVE with {spec.size}")
    if wrong_os:
        problems.append(f"{target}: {summary['outcome']} but nodes run the other Amazon Linux: {wrong_os[:5]}")
    if cordoned:
        problems.append(f"{target}: nodes left cordoned or not Ready after {summary['outcome']}: {cordoned[:5]}")
    return problems


def _check_karpenter(built, summary: dict) -> list[str]:
    """Migrated: the EC2NodeClass selects AL2023 and every node of the pool runs it. Otherwise: the
    EC2NodeClass selects AL2 as before and Karpenter has drifted the pool back. Either way `size` nodes,
    every one Ready, none tainted by a disruption or cordoned."""
    from migrator.workstation.local.karpenter import SimKarpenter

    sim, target, pool = built.sim, built.target, built.spec.nodepool
    karpenter = next(c for c in sim.controllers if isinstance(c, SimKarpenter))
    wanted = "AL2023" if summary["outcome"] == "migrated" else "AL2"
    problems = []
    with sim.lock:
        sim.reconcile()
        if karpenter.wanted_family(pool) != wanted:
            problems.append(f"{target}: {summary['outcome']} but its EC2NodeClass selects {karpenter.wanted_family(pool)}")
        nodes = [n for n in sim.nodes.values() if n.labels.get("karpenter.sh/nodepool") == pool]
        wrong = sorted(n.name for n in nodes if n.os_image.startswith("Amazon Linux 2023") != (wanted == "AL2023"))
        if wrong:
            problems.append(f"{target}: {summary['outcome']} but nodes are not on {wanted}: {wrong[:5]}")
        if len(nodes) != built.spec.size:
            problems.append(f"{target}: {len(nodes)} nodes at the end, {built.spec.size} at the start")
        stuck = sorted(n.name for n in nodes if n.unschedulable or n.taints or not n.ready(sim.clock.now()))
        if stuck:
            problems.append(f"{target}: nodes left tainted, cordoned or not Ready after {summary['outcome']}: {stuck}")
    return problems


def _check_self_managed(runtime: LocalRuntime, built, summary: dict) -> list[str]:
    """The group at its size and bounds with no canary mark; every instance on AL2023 after success (the
    template's default moved), on its AL2 image otherwise (the default unmoved); each joined as a Ready,
    schedulable node that carries none of our marks."""
    target, spec = built.target, built.spec
    autoscaling, ec2 = runtime.client("autoscaling"), runtime.client("ec2")
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[spec.name])["AutoScalingGroups"][0]
    problems = []
    if (group["DesiredCapacity"], group["MinSize"], group["MaxSize"]) != (spec.size, spec.size, spec.size):
        problems.append(f"{target}: desired/min/max {group['DesiredCapacity']}/{group['MinSize']}/{group['MaxSize']}, "
                        f"originally {spec.size}")
    if any(t["Key"] == "al2023-migration:canary" for t in group.get("Tags", [])):
        problems.append(f"{target}: the canary's capacity mark is left on the group")
    migrated = summary["outcome"] == "migrated" and spec.opt_in
    want = runtime.fleet.al2023_image if migrated else built.original_image
    members = sorted(i["InstanceId"] for i in group["Instances"])
    wrong = sorted(i for i, image in _images_of(ec2, members).items() if image != want)
    if wrong or len(members) != spec.size:
        problems.append(f"{target}: {len(members)} instances, {wrong or 'none'} not on {want} after {summary['outcome']}")
    default = str(ec2.describe_launch_templates(LaunchTemplateIds=[built.template_id])["LaunchTemplates"][0][
        "DefaultVersionNumber"])
    if (default != "1") != migrated:
        problems.append(f"{target}: {summary['outcome']} but the template's default version is {default}")
    with built.sim.lock:
        built.sim.reconcile()
        now = built.sim.clock.now()
        nodes = [n for n in built.sim.nodes.values() if n.instance_id in members]
        stuck = sorted(n.name for n in nodes if not n.ready(now) or n.unschedulable or CORDONED_BY in n.annotations)
    if len(nodes) != len(members):
        problems.append(f"{target}: {len(nodes)} of {len(members)} instances joined the cluster")
    if stuck:
        problems.append(f"{target}: nodes not Ready, cordoned or marked after {summary['outcome']}: {stuck}")
    return problems


def _check_untouched(runtime: LocalRuntime, built) -> list[str]:
    """A node group without the opt-in tag is someone else's: it ends exactly as the
    scenario built it (same tags, size and status; its nodes untainted, schedulable,
    with none of our annotations)."""
    target, spec = built.target, built.spec
    try:
        group = runtime.client("eks").describe_nodegroup(clusterName=built.cluster.name,
                                                         nodegroupName=spec.name)["nodegroup"]
    except runtime.client("eks").exceptions.ResourceNotFoundException:
        return [f"{target}: not ours, but it was deleted"]
    problems = []
    tags = {k: v for k, v in (group.get("tags") or {}).items() if not k.startswith("aws:")}
    if tags != {"team": "others"} or group["status"] != "ACTIVE" or group["scalingConfig"]["desiredSize"] != spec.size:
        problems.append(f"{target}: not ours, but it changed: tags {tags}, {group['status']}, "
                        f"desired {group['scalingConfig']['desiredSize']}")
    with built.sim.lock:
        changed = sorted(n.name for n in built.sim.nodes.values() if n.nodegroup == spec.name
                         and (n.unschedulable or n.taints or n.annotations))
    if changed:
        problems.append(f"{target}: not ours, but its nodes were cordoned, tainted or annotated: {changed}")
    return problems


def _check_workloads(sim, bare_pods: bool = False, empty_dir: bool = False) -> list[str]:
    """No pod lost; no workload ever below its budget's minimum during the run; no bare
    pod evicted and no emptyDir data lost unless an input consented to it."""
    problems = []
    with sim.lock:
        sim.reconcile()
        if sim.lost_pods:
            problems.append(f"cluster {sim.name}: pods lost with their nodes: {sim.lost_pods[:5]}")
        if sim.evicted_bare and not bare_pods:
            problems.append(f"cluster {sim.name}: pods with no controller evicted without consent: "
                            f"{sim.evicted_bare[:5]}")
        if sim.evicted_empty_dir and not empty_dir:
            problems.append(f"cluster {sim.name}: emptyDir data lost without consent: {sim.evicted_empty_dir[:5]}")
        for workload in sim.workloads.values():
            if workload.daemonset or workload.bare:  # bare pods: no desired count; their losses are counted above
                continue
            placed = [p for p in sim.pods.values() if p.workload == workload.name and p.deleting_at is None and p.node]
            if len(placed) != workload.replicas:
                problems.append(f"cluster {sim.name}: {workload.name} has {len(placed)} of {workload.replicas} pods placed")
            lowest = sim.min_available.get(workload.name, workload.replicas)
            if workload.pdb_min_available is not None and lowest < workload.pdb_min_available:
                problems.append(f"cluster {sim.name}: {workload.name} fell to {lowest} ready replicas, "
                                f"below its budget's {workload.pdb_min_available}")
    return problems


def _describe(ec2, instance_id: str) -> dict:
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def _replacements(ec2, instance_id: str) -> list[dict]:
    reservations = ec2.describe_instances(Filters=[{"Name": f"tag:{SOURCE_INSTANCE_TAG}", "Values": [instance_id]}])
    return [i for r in reservations["Reservations"] for i in r["Instances"]]


def _images_of(ec2, instance_ids: list[str]) -> dict[str, str]:
    if not instance_ids:
        return {}
    images = {}
    for page in ec2.get_paginator("describe_instances").paginate(InstanceIds=instance_ids):
        for reservation in page["Reservations"]:
            images |= {i["InstanceId"]: i["ImageId"] for i in reservation["Instances"]}
    return images


def _check_bystanders(runtime: LocalRuntime) -> list[str]:
    ec2 = runtime.client("ec2")
    problems = []
    for reservation in ec2.describe_instances(InstanceIds=sorted(runtime.fleet.bystanders))["Reservations"]:
        for instance in reservation["Instances"]:
            expected = runtime.fleet.bystanders[instance["InstanceId"]]
            if instance["State"]["Name"] != "running" or instance["ImageId"] != expected:
                problems.append(f"{instance['InstanceId']} outside the scenario was changed")
    return problems
