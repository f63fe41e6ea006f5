"""The same scenario and seed give the same summary, on an idle or a loaded machine."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager

from migrator.workstation.local.demo import run_scenario
from migrator.workstation.local.scenario import parse_scenario

# Every kind of target, waves through the fleet state machine, a Kubernetes drain,
# approvals and throttled calls: each draws on the clock or the seed.
SCENARIO = {
    "version": 1, "name": "determinism",
    "waves": {"max_instances": 4, "max_concurrency": 4},
    "standalone": [{"name": "db-1", "volumes_gib": [8, 20], "elastic_ip": True}],
    "auto_scaling_groups": [{"name": "web", "size": 3, "target_group": True}, {"name": "api", "size": 2}],
    "eks_clusters": [{"name": "prod", "nodegroups": [{"name": "ng", "size": 2}],
                      "workloads": [{"name": "api", "replicas": 2, "pdb_min_available": 1}]}],
    "faults": [{"target": "any", "kind": "throttle", "rate": 0.1}],
}


@contextmanager
def cpu_burners():
    """Keep every core busy, as a loaded CI machine is."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def without_wall_time(summary: dict) -> dict:
    return {key: value for key, value in summary.items() if key != "wall_seconds"}


def test_the_same_scenario_gives_the_same_summary_idle_and_loaded():
    scenario = parse_scenario(SCENARIO)
    idle = without_wall_time(run_scenario(scenario))
    with cpu_burners():
        loaded = without_wall_time(run_scenario(scenario))
    assert idle["aws_api_calls_throttled"] > 0  # the seed really decided something
    for field in idle:
        assert loaded[field] == idle[field], field

