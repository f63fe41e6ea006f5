"""`make bench`: figures, never assertions.

1. The reference fleet (scenarios/reference-200.yaml) end to end: state
   transitions and AWS calls per migrated instance, the peak AWS calls in one
   simulated second, the simulated makespan beside its lower bound (the longest
   single target's simulated AWS durations), wall seconds.
2. `plan` over a simulated account of 10,000 instances: calls and seconds.
3. Every other shipped scenario, one line each (`--all`).

The reference fleet runs twice: once timed, once under a profiler (yappi, every
thread, CPU time) that says where the time goes; the simulated figures of both
runs are compared, since the same scenario and seed must give the same ones.
"""

from __future__ import annotations

import math
import statistics
import sys
import time

from migrator.config import SCENARIOS_DIR
from migrator.workstation.local.demo import run_scenario
from migrator.workstation.local.estimate import target_lower_bound
from migrator.workstation.local.scenario import Scenario, load_scenario

REFERENCE = SCENARIOS_DIR / "reference-200.yaml"


# Where CPU time goes, by the file a function lives in (first match wins).
WHERE = [
    ("ASL parsing (ANTLR)", ("/antlr4/", "/asl/antlr/", "/asl/parse/")),
    ("Step Functions interpreter (moto)", ("/moto/stepfunctions/",)),
    ("moto request dispatch and serialization", ("/moto/core/", "/moto/utilities/", "/xmltodict", "/jinja2/",
                                                 "/werkzeug/", "/responses/")),
    ("moto services (EC2, Auto Scaling, EKS...)", ("/moto/",)),
    ("botocore and boto3 (building and parsing calls)", ("/botocore/", "/boto3/", "/s3transfer/", "/jmespath/")),
    ("local runtime (fidelity, scheduler, Kubernetes)", ("/migrator/workstation/local/",)),
    ("handlers, domain, Powertools, Pydantic", ("/migrator/", "/lambdas/", "/aws_lambda_powertools/", "/pydantic",
                                                "/kubernetes/")),
    ("Python: json, copy, threading, sockets, re", ("/lib/python3",)),
]


def where_it_goes(action) -> tuple[object, list[tuple[str, float]]]:
    """Run `action` under yappi (CPU time, every thread); its own time per part."""
    import yappi

    yappi.set_clock_type("cpu")
    yappi.clear_stats()
    yappi.start(builtins=True)
    try:
        result = action()
    finally:
        yappi.stop()
    totals: dict[str, float] = {}
    for stat in yappi.get_func_stats():
        part = next((name for name, marks in WHERE if any(m in stat.module for m in marks)), "other")
        totals[part] = totals.get(part, 0.0) + stat.tsub
    yappi.clear_stats()
    return result, sorted(totals.items(), key=lambda item: -item[1])


def print_where(parts: list[tuple[str, float]]) -> None:
    total = sum(seconds for _, seconds in parts) or 1.0
    print(f"  where the CPU time goes (profiled run, {total:.1f} s CPU)")
    for name, seconds in parts:
        print(f"    {name:50} {seconds:7.1f} s  {100 * seconds / total:4.0f} %")


SIMULATED = ("instances", "state_transitions", "aws_api_calls", "aws_api_calls_throttled",
             "peak_aws_calls_per_sim_second", "sim_seconds")


def simulated_figures(summary: dict) -> dict:
    return {key: summary[key] for key in SIMULATED} | {
        "targets": [(t["target"], t["outcome"], t["state_transitions"], t["sim_seconds"]) for t in summary["targets"]]}


def _compare(first: dict, second: dict) -> str:
    differing = [key for key in first if first[key] != second[key]]
    return "yes" if not differing else "NO, the rehearsal is not deterministic: " + ", ".join(differing)


def _freezes(summary: dict) -> str:
    """From the old server's stop for the final sync to the address on the replacement."""
    seconds = sorted(t["write_freeze_seconds"] for t in summary["targets"]
                     if t["kind"] == "standalone" and t["outcome"] == "migrated" and t.get("write_freeze_seconds"))
    if not seconds:
        return "none"
    return f"{statistics.median(seconds):.0f} s / {seconds[-1]:.0f} s over {len(seconds)} servers"


def reference() -> None:
    scenario = load_scenario(REFERENCE)
    started = time.monotonic()
    summary = run_scenario(scenario)
    wall = time.monotonic() - started
    profiled, parts = where_it_goes(lambda: run_scenario(scenario))
    migrated = max(1, summary["instances"]["migrated"])
    bound = max(target_lower_bound(scenario, t["target"]) for t in summary["targets"])
    waves = len(summary.get("waves", []))
    print(f"reference fleet ({summary['instances']['total']} instances, {len(summary['targets'])} targets, {waves} waves)")
    rows = [
        ("migrated / rolled back / failed",
         f"{summary['instances']['migrated']} / {summary['instances']['rolled_back']} / {summary['instances']['failed']}"),
        ("state transitions per migrated instance", f"{summary['state_transitions'] / migrated:.1f}"),
        ("AWS calls per migrated instance", f"{summary['aws_api_calls'] / migrated:.1f}"),
        ("peak AWS calls in one simulated second", str(summary["peak_aws_calls_per_sim_second"])),
        ("simulated makespan", f"{summary['sim_seconds']:.0f} s ({summary['sim_seconds'] / 3600:.1f} h)"),
        ("lower bound: longest single target", f"{bound:.0f} s ({bound / 3600:.1f} h)"),
        ("makespan / lower bound", f"{summary['sim_seconds'] / bound:.1f}x (waves run one after another)"),
        ("write freeze per migrated server (median / max)", _freezes(summary)),
        ("wall seconds", f"{wall:.1f}"),
        ("same simulated figures on a second run", _compare(simulated_figures(summary), simulated_figures(profiled))),
        ("expectations", "ok" if summary["expectations"]["ok"] else "NOT MET: " + "; ".join(summary["expectations"]["mismatches"][:3])),
        ("invariants", "ok" if summary["invariants"]["ok"] else "VIOLATED: " + "; ".join(summary["invariants"]["violations"][:3])),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label.ljust(width)}  {value}")
    print_where(parts)


def plan_10k(count: int = 10_000) -> None:
    """Discovery and planning over an account of `count` instances in moto."""
    import boto3
    from moto import mock_aws
    from moto.ec2.models import ec2_backends

    from migrator.config import AL2_AMI_PARAMETER, AL2023_AMI_PARAMETER
    from migrator.fleet.plan import build_plan, discover

    with mock_aws():
        ec2 = boto3.client("ec2", "us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
        ssm = boto3.client("ssm", "us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
        al2 = ssm.get_parameter(Name=AL2_AMI_PARAMETER["x86_64"])["Parameter"]["Value"]
        al2023 = ssm.get_parameter(Name=AL2023_AMI_PARAMETER["x86_64"])["Parameter"]["Value"]
        backend = ec2_backends["123456789012"]["us-east-1"]  # built in the backend: the API would be the slow part
        built = time.monotonic()
        for batch in range(count // 500):
            kind = batch % 4
            tags = {"al2023-migration": "enabled"}
            if kind == 1:
                tags["aws:autoscaling:groupName"] = f"group-{batch}"
            elif kind == 2:
                tags |= {"eks:cluster-name": "prod", "eks:nodegroup-name": f"ng-{batch}"}
            image = al2023 if batch % 10 == 9 else al2
            backend.run_instances(image, 500, None, [], instance_type="t3.micro", tags={"instance": tags},
                                  is_instance_type_default=False)
        built = time.monotonic() - built
        started = time.monotonic()
        inventory = discover(ec2)
        plan = build_plan(inventory, "us-east-1")
        took = time.monotonic() - started
    calls = sum(inventory.api_calls.values())
    print(f"plan over {inventory.instances_seen} instances (account built in {built:.0f} s)")
    print(f"  targets {len(inventory.targets)}, waves {len(plan['waves'])}, AL2023 already {inventory.already_al2023}")
    print(f"  AWS calls {calls} ({dict(inventory.api_calls)}), wall {took:.1f} s "
          f"(not profiled: a profiled second pass over 10,000 instances takes over ten minutes)")


def scenarios() -> None:
    print("every shipped scenario")
    print(f"  {'scenario':34} {'instances':>9} {'migrated':>8} {'rolled back':>11} {'transitions/inst':>16} "
          f"{'calls/inst':>10} {'sim s':>7} {'wall s':>7}  invariants")
    for path in sorted(SCENARIOS_DIR.glob("*.yaml")):
        if path == REFERENCE:
            continue
        started = time.monotonic()
        summary = run_scenario(load_scenario(path))
        wall = time.monotonic() - started
        i = summary["instances"]
        per = max(1, i["migrated"] + i["rolled_back"])
        print(f"  {summary['scenario']:34} {i['total']:>9} {i['migrated']:>8} {i['rolled_back']:>11} "
              f"{summary['state_transitions'] / per:>16.1f} {summary['aws_api_calls'] / per:>10.1f} "
              f"{summary['sim_seconds']:>7.0f} {wall:>7.1f}  {'ok' if summary['invariants']['ok'] else 'VIOLATED'}")


def main(argv: list[str]) -> int:
    reference()
    print()
    plan_10k()
    if "--all" in argv:
        print()
        scenarios()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
