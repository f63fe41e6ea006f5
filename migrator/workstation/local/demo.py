"""Run a scenario end to end: build the fleet, start one execution per target,
wait for all of them, and audit the simulated account."""

from __future__ import annotations

from dataclasses import dataclass, replace

import time
from collections.abc import Callable

from migrator.fleet.plan import KIND_WORKFLOW, build_plan, discover, latest_al2023_images
from migrator.fleet.waves import store_plan
from migrator.tables import format_clock
from migrator.workstation.local.estimate import remaining_lower_bound
from migrator.workstation.local.fleet import BuiltInstance, BuiltNodegroup, BuiltPool, BuiltSelfManaged
from migrator.workstation.local.runtime import AUDIT_TABLE, LocalRuntime, Run
from migrator.workstation.local.scenario import DEFAULT_SEED, AutoScalingGroupSpec, Scenario
from migrator.workstation.local.summary import summarize
from migrator.workflows import (
    ASG_ROLLOUT,
    EKS_IN_PLACE,
    EKS_KARPENTER,
    EKS_NODEGROUP,
    EKS_SELF_MANAGED,
    FLEET,
    STANDALONE_EC2,
    WORKFLOWS,
)

WORKFLOWS_BY_NAME = {workflow.name: workflow for workflow in WORKFLOWS}

HEALTH_SCRIPT = "systemctl is-active --quiet app && curl -fsS http://127.0.0.1:8080/health"


def rollout_input(spec: AutoScalingGroupSpec, scenario: Scenario) -> dict:
    return {
        "group_name": spec.name,
        "alarm_names": spec.alarms,
        "canary_bake_seconds": int(scenario.timings.canary_bake),
        "instance_warmup_seconds": int(scenario.timings.refresh_warmup),
        "approval_timeout_seconds": int(scenario.approvals.timeout),
        **spec.input,  # the scenario's rehearsal of operator choices
    }


def _eks_input(built, scenario: Scenario, **names) -> dict:
    """An EKS target's execution input: its cluster, the names its workflow takes, the scenario's choices."""
    return {
        "cluster_name": built.cluster.name,
        **names,
        "approval_timeout_seconds": int(scenario.approvals.timeout),
        **built.spec.input,  # the scenario's rehearsal of operator choices
    }


def nodegroup_input(built: BuiltNodegroup, scenario: Scenario) -> dict:
    return _eks_input(built, scenario, nodegroup_name=built.spec.name, launch_template=built.spec.launch_template)


def in_place_input(built: BuiltNodegroup, scenario: Scenario) -> dict:
    return _eks_input(built, scenario, nodegroup_name=built.spec.name)


def self_managed_input(built: BuiltSelfManaged, scenario: Scenario) -> dict:
    return _eks_input(built, scenario, group_name=built.spec.name)


def karpenter_input(built: BuiltPool, scenario: Scenario) -> dict:
    return _eks_input(built, scenario, nodepool_name=built.spec.nodepool)


def nodegroup_run(built: BuiltNodegroup, scenario: Scenario) -> tuple:
    """The workflow a node group takes and its input: in place when its launch template names a custom AMI."""
    if built.spec.ami == "custom":
        return EKS_IN_PLACE, in_place_input(built, scenario)
    return EKS_NODEGROUP, nodegroup_input(built, scenario)


def migration_input(built: BuiltInstance, scenario: Scenario) -> dict:
    payload = {
        "instance_id": built.instance_id,
        "cutover": built.cutover(),
        "alarm_names": built.spec.alarms,
        "retention_seconds": int(scenario.timings.retention),
        "approval_timeout_seconds": int(scenario.approvals.timeout),
    }
    if built.spec.health_script:
        payload["health_script"] = HEALTH_SCRIPT
    return {**payload, **built.spec.input}  # the scenario's rehearsal of operator choices


def start_targets(runtime: LocalRuntime) -> list[Run]:
    with runtime.clock.busy():  # every target starts at the same simulated moment
        return _start_targets(runtime)


def _start_targets(runtime: LocalRuntime) -> list[Run]:
    runs = [runtime.start_execution(workflow, built.target, payload)
            for built in runtime.fleet.nodegroups.values()
            for workflow, payload in [nodegroup_run(built, runtime.scenario)]]
    runs += [
        runtime.start_execution(EKS_KARPENTER, built.target, karpenter_input(built, runtime.scenario))
        for built in runtime.fleet.karpenter.values()
    ]
    runs += [
        runtime.start_execution(EKS_SELF_MANAGED, built.target, self_managed_input(built, runtime.scenario))
        for built in runtime.fleet.self_managed.values()
    ]
    runs += [
        runtime.start_execution(STANDALONE_EC2, built.spec.target, migration_input(built, runtime.scenario))
        for built in runtime.fleet.instances.values()
    ]
    return runs + [
        runtime.start_execution(ASG_ROLLOUT, spec.target, rollout_input(spec, runtime.scenario))
        for spec in runtime.scenario.auto_scaling_groups
    ]


def plan_fleet(runtime: LocalRuntime) -> dict:
    """Discovery of the simulated account, as `al2023-migrate plan` does it, with the
    scenario's timings as input defaults; the waves stored for the fleet state machine."""
    scenario = runtime.scenario
    timeout = {"approval_timeout_seconds": int(scenario.approvals.timeout)}
    defaults = dict.fromkeys(KIND_WORKFLOW, timeout) | {  # every kind has gates; two have more timings
        ASG_ROLLOUT.kind: {**timeout, "canary_bake_seconds": int(scenario.timings.canary_bake),
                           "instance_warmup_seconds": int(scenario.timings.refresh_warmup)},
        STANDALONE_EC2.kind: {**timeout, "retention_seconds": int(scenario.timings.retention)},
    }
    ec2 = runtime.client("ec2")
    plan = build_plan(discover(ec2, runtime.client("eks")), runtime.region, scenario.waves.max_instances, defaults,
                      al2023_images=latest_al2023_images(runtime.client("ssm"), ec2))
    store_plan(runtime.client("dynamodb"), AUDIT_TABLE, plan)
    return plan


def run_waves(runtime: LocalRuntime, plan: dict, on_progress: Callable[[WaveProgress], None] | None = None) -> None:
    """Each wave as one execution of the fleet state machine, one after another."""
    waves = runtime.scenario.waves
    sfn = runtime.client("stepfunctions")
    with runtime.clock.busy():  # time moves only while a wave runs: each starts when the last ended
        for wave in plan["waves"]:
            _run_wave(runtime, plan, wave, waves, sfn, on_progress)


def _run_wave(runtime: LocalRuntime, plan: dict, wave: dict, waves, sfn, on_progress) -> None:
    """One wave on the fleet state machine; returns when it ended, the clock held."""
    fleet = runtime.start_execution(FLEET, f"wave-{wave['wave']}", {
        "plan_id": plan["plan_id"], "wave": wave["wave"], "max_concurrency": waves.max_concurrency,
        "tolerated_failure_percentage": waves.tolerated_failure_percentage,
        "approval_timeout_seconds": int(runtime.scenario.approvals.timeout),
    })
    fleet.wave = wave["wave"]
    children = [Run(t["target"], WORKFLOWS_BY_NAME[t["state_machine"]],
                    runtime.execution_arn(WORKFLOWS_BY_NAME[t["state_machine"]], t["execution_name"]),
                    runtime.clock.now(), wave=wave["wave"]) for t in wave["targets"]]
    runtime.runs.extend(children)
    shown, started = None, runtime.clock.elapsed()
    while runtime.status(fleet)["status"] == "RUNNING":
        if on_progress:
            progress = _progress(sfn, plan, wave, children, runtime, started)
            if shown is None or _counts(progress) != _counts(shown):  # a change, not just the clock moving
                on_progress(progress)
                shown = progress
        runtime.clock.wait_holding(runtime.fidelity.stepfunctions.execution_ended)
    runtime.wait([fleet])
    if on_progress:
        progress = _progress(sfn, plan, wave, children, runtime, started)
        if shown is None or _counts(progress) != _counts(shown) or progress.sim_seconds != shown.sim_seconds:
            on_progress(progress)  # the wave's end, unless the last line already said it


@dataclass(frozen=True)
class WaveProgress:
    """Where a wave stands, for the live view (a terminal) or one line per change (a pipe)."""

    wave: str
    targets: int
    instances: int
    done: int
    running: int
    failed: int
    sim_seconds: float
    eta_seconds: float  # simulated seconds left at the least (the plan's lower bounds)

    def line(self) -> str:
        ended = self.done + self.failed
        filled = int(30 * ended / max(1, self.targets))
        return (f"[{format_clock(self.sim_seconds)}] {self.wave:>8} "
                f"[{'#' * filled}{'.' * (30 - filled)}] {ended}/{self.targets} targets ({self.instances} instances), "
                f"{self.running} running, {self.failed} failed, ETA >= {format_clock(self.eta_seconds)}")


def _counts(progress: WaveProgress) -> WaveProgress:
    return replace(progress, sim_seconds=0, eta_seconds=0)


def _progress(sfn, plan: dict, wave: dict, children: list[Run], runtime: LocalRuntime,
              started: float) -> WaveProgress:
    done = failed = running = 0
    still_open = []
    for child in children:
        try:
            status = sfn.describe_execution(executionArn=child.execution_arn)["status"]
        except sfn.exceptions.ExecutionDoesNotExist:  # not started yet: still to do
            still_open.append(child.target)
            continue
        done += status == "SUCCEEDED"
        failed += status in ("FAILED", "TIMED_OUT", "ABORTED")
        running += status == "RUNNING"
        if status == "RUNNING":
            still_open.append(child.target)
    now = runtime.clock.elapsed()
    eta = remaining_lower_bound(runtime.scenario, plan, plan["waves"].index(wave), now - started, still_open)
    return WaveProgress(wave["name"], len(children), wave["instances"], done, running, failed, now, eta)


def _clock(runtime: LocalRuntime) -> str:
    return format_clock(runtime.clock.elapsed())


def run_scenario(scenario: Scenario, on_change: Callable[[LocalRuntime, Run, str], None] | None = None,
                 on_progress: Callable[[WaveProgress], None] | None = None, seed: int = DEFAULT_SEED,
                 on_plan: Callable[[dict], None] | None = None,
                 announce_approval: Callable[[dict], None] | None = None) -> dict:
    """`announce_approval` set: every gate is left to a person (`--approvals manual`)."""
    started = time.monotonic()
    with LocalRuntime(scenario, seed) as runtime:
        if announce_approval:
            runtime.leave_gates_to_people(announce_approval)
        if scenario.waves:
            plan = plan_fleet(runtime)
            if on_plan:
                on_plan(plan)
            run_waves(runtime, plan, on_progress)
            results = {}
        else:
            runs = start_targets(runtime)
            callback = (lambda run, status: on_change(runtime, run, status)) if on_change else None
            # a person may take a while: no real-time limit then
            results = runtime.wait(runs, on_change=callback, timeout=float("inf") if announce_approval else 1800)
        return summarize(runtime, results, time.monotonic() - started)
