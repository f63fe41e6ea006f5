"""How long a target needs at the least: the simulated seconds AWS itself spends on
it with nothing else in the way. The benchmark compares a run's makespan with it, and
the live progress view turns it into an ETA (a lower bound, so the ETA is optimistic)."""

from __future__ import annotations

import math

from migrator.workstation.local.scenario import KarpenterPoolSpec, Scenario, SelfManagedSpec


def target_lower_bound(scenario: Scenario, target: str) -> float:
    """The simulated seconds AWS itself needs for one target on its own: boots,
    health checks, bakes, snapshots, node group creation, approvals, retention."""
    t, approve = scenario.timings, scenario.approvals.after
    kind, name = target.split("/", 1)
    if kind == "asg":
        size = next(g.size for g in scenario.auto_scaling_groups if g.name == name)
        per_batch = max(1, math.floor((size + 1) * (100 - 90) / 100))  # the default 90 % min healthy
        batches = math.ceil(size / per_batch)
        return t.instance_boot + t.health_grace + t.canary_bake + approve + batches * (t.instance_boot + t.refresh_warmup)
    if kind == "standalone":
        return t.snapshot_complete + t.instance_boot + t.health_grace + 2 * approve + t.retention
    spec = scenario.targets().get(target)
    if isinstance(spec, KarpenterPoolSpec):  # drift: a replacement boots, then the old node drains, per batch
        at_once = max(1, math.ceil(spec.size * spec.budget_percent / 100))
        return approve + math.ceil(spec.size / at_once) * (t.instance_boot + t.pod_termination)
    if isinstance(spec, SelfManagedSpec):  # a canary, then each node drained and replaced, one at a time
        join = t.instance_boot + t.node_ready + t.pod_start
        return join + approve + spec.size * (t.pod_termination + join) + t.pod_termination
    if getattr(spec, "ami", None) == "custom":  # in place: one gate, then EKS replaces the nodes (surge first)
        from migrator.workstation.local.fidelity.eks_update import TERMINATE_AFTER_DRAIN_SECONDS

        return approve + t.instance_boot + spec.size * (t.pod_termination + TERMINATE_AFTER_DRAIN_SECONDS)
    return t.nodegroup_create + t.instance_boot + 2 * approve + t.pod_termination + t.nodegroup_delete


def remaining_lower_bound(scenario: Scenario, plan: dict, wave_index: int, wave_elapsed: float,
                          open_targets: list[str]) -> float:
    """Seconds left at the least: the slowest target of this wave still open, less the
    time the wave has run, then each later wave's slowest target (waves run one after another)."""
    current = max((target_lower_bound(scenario, t) for t in open_targets), default=0.0)
    later = sum(max((target_lower_bound(scenario, t["target"]) for t in wave["targets"]), default=0.0)
                for wave in plan["waves"][wave_index + 1:])
    return max(0.0, current - wave_elapsed) + later
