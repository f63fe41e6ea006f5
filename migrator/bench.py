"""`make bench`: run the shipped scenarios in the local runtime and print figures.

Per scenario: state transitions and AWS calls per migrated instance, the peak
AWS calls in one simulated second, simulated and wall seconds. Nothing here is
asserted: the figures are for reading and comparing between commits.
"""

from __future__ import annotations

import sys
import time

from migrator.config import SCENARIOS_DIR
from migrator.local.demo import run_scenario
from migrator.local.scenario import load_scenario

COLUMNS = ("scenario", "instances", "migrated", "rolled back", "transitions/inst", "AWS calls/inst",
           "peak calls/sim s", "sim s", "wall s", "invariants")


def measure(path) -> tuple:
    scenario = load_scenario(path)
    started = time.monotonic()
    summary = run_scenario(scenario)
    wall = time.monotonic() - started
    instances = summary["instances"]
    per = max(1, instances["migrated"] + instances["rolled_back"])
    return (
        scenario.name, instances["total"], instances["migrated"], instances["rolled_back"],
        f"{summary['state_transitions'] / per:.1f}", f"{summary['aws_api_calls'] / per:.1f}",
        summary["peak_aws_calls_per_sim_second"], f"{summary['sim_seconds']:.0f}", f"{wall:.1f}",
        "ok" if summary["invariants"]["ok"] else "VIOLATED",
    )


def main(paths: list[str]) -> int:
    rows = [COLUMNS] + [tuple(map(str, measure(p))) for p in paths or sorted(SCENARIOS_DIR.glob("*.yaml"))]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    for index, row in enumerate(rows):
        print("  ".join(c.rjust(w) if index and i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if index == 0:
            print("  ".join("-" * w for w in widths))
    return 0 if all(r[-1] == "ok" for r in rows[1:]) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
