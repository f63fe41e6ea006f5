"""Run a scenario end to end: build the fleet, start one execution per target,
wait for all of them, and audit the simulated account."""

from __future__ import annotations

import time
from collections.abc import Callable

from migrator.local.runtime import LocalRuntime, Run
from migrator.local.fleet import BuiltInstance, BuiltNodegroup
from migrator.local.scenario import AutoScalingGroupSpec, Scenario
from migrator.local.summary import summarize
from migrator.workflows import ASG_ROLLOUT, EKS_NODEGROUP, STANDALONE_EC2

HEALTH_SCRIPT = "systemctl is-active --quiet app && curl -fsS http://127.0.0.1:8080/health"


def rollout_input(spec: AutoScalingGroupSpec, scenario: Scenario) -> dict:
    return {
        "group_name": spec.name,
        "alarm_names": spec.alarms,
        "canary_bake_seconds": int(scenario.timings.canary_bake),
        "instance_warmup_seconds": int(scenario.timings.refresh_warmup),
        "approval_timeout_seconds": int(scenario.approvals.timeout),
    }


def nodegroup_input(built: BuiltNodegroup, scenario: Scenario) -> dict:
    return {
        "cluster_name": built.cluster.name,
        "nodegroup_name": built.spec.name,
        "launch_template": built.spec.launch_template,
        "approval_timeout_seconds": int(scenario.approvals.timeout),
    }


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
    return payload


def start_targets(runtime: LocalRuntime) -> list[Run]:
    runs = [
        runtime.start_execution(EKS_NODEGROUP, built.target, nodegroup_input(built, runtime.scenario))
        for built in runtime.fleet.nodegroups.values()
    ]
    runs += [
        runtime.start_execution(STANDALONE_EC2, built.spec.target, migration_input(built, runtime.scenario))
        for built in runtime.fleet.instances.values()
    ]
    return runs + [
        runtime.start_execution(ASG_ROLLOUT, spec.target, rollout_input(spec, runtime.scenario))
        for spec in runtime.scenario.auto_scaling_groups
    ]


def run_scenario(scenario: Scenario, on_change: Callable[[LocalRuntime, Run, str], None] | None = None) -> dict:
    started = time.monotonic()
    with LocalRuntime(scenario) as runtime:
        runs = start_targets(runtime)
        callback = (lambda run, status: on_change(runtime, run, status)) if on_change else None
        results = runtime.wait(runs, on_change=callback)
        return summarize(runtime, results, time.monotonic() - started)
