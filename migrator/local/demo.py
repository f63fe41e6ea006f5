"""Run a scenario end to end: build the fleet, start one execution per target,
wait for all of them, and audit the simulated account."""

from __future__ import annotations

import time
from collections.abc import Callable

from migrator.local.runtime import LocalRuntime, Run
from migrator.local.scenario import AutoScalingGroupSpec, Scenario
from migrator.local.summary import summarize
from migrator.workflows import ASG_ROLLOUT


class UnsupportedScenario(Exception):
    """The scenario has targets of a kind this version cannot migrate yet."""


def rollout_input(spec: AutoScalingGroupSpec, scenario: Scenario) -> dict:
    return {
        "group_name": spec.name,
        "alarm_names": spec.alarms,
        "canary_bake_seconds": int(scenario.timings.canary_bake),
        "instance_warmup_seconds": int(scenario.timings.refresh_warmup),
        "approval_timeout_seconds": int(scenario.approvals.timeout),
    }


def check_supported(scenario: Scenario) -> None:
    unsupported = scenario.unsupported_kinds()
    if unsupported:
        raise UnsupportedScenario(
            f"scenario {scenario.name}: {', '.join(unsupported)} targets are not supported yet; "
            "this version migrates auto_scaling_groups"
        )


def start_targets(runtime: LocalRuntime) -> list[Run]:
    return [
        runtime.start_execution(ASG_ROLLOUT, spec.target, rollout_input(spec, runtime.scenario))
        for spec in runtime.scenario.auto_scaling_groups
    ]


def run_scenario(scenario: Scenario, on_change: Callable[[LocalRuntime, Run, str], None] | None = None) -> dict:
    check_supported(scenario)
    started = time.monotonic()
    with LocalRuntime(scenario) as runtime:
        runs = start_targets(runtime)
        callback = (lambda run, status: on_change(runtime, run, status)) if on_change else None
        results = runtime.wait(runs, on_change=callback)
        return summarize(runtime, results, time.monotonic() - started)
