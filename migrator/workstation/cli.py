"""`al2023-migrate`: plan, rehearse, start and audit AL2 -> AL2023 migrations."""

from __future__ import annotations

import argparse
import json
import sys

from migrator.config import SCENARIOS_DIR
from migrator.workstation.local.scenario import DEFAULT_SEED
from migrator.tables import format_table

DEFAULT_SCENARIO = SCENARIOS_DIR / "reference-200.yaml"
EXIT_OK, EXIT_UNEXPECTED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one line saying what is wrong, exit 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="al2023-migrate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = commands.add_parser("demo", help="run a scenario in the local runtime and audit the result")
    demo.add_argument("--scenario", default=str(DEFAULT_SCENARIO), help="scenario YAML (SCENARIOS.md)")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")

    def seed_option(command):
        command.add_argument("--seed", type=int, default=DEFAULT_SEED,
                             help=f"seed of every random choice in the run (default {DEFAULT_SEED}): "
                                  "the same scenario and seed give the same summary")

    seed_option(demo)

    def aws_options(command):
        command.add_argument("--region", help="AWS region (default: the SDK's)")
        command.add_argument("--endpoint-url", help="another endpoint, e.g. http://127.0.0.1:5000 (local serve)")

    def table_option(command):
        command.add_argument("--table", help="the audit table (default: found by name)")

    plan = commands.add_parser("plan", help="discover AL2 instances and write a plan of waves")
    aws_options(plan)
    plan.add_argument("--out", help="plan file to write (.json or .yaml)")
    plan.add_argument("--max-instances", type=int, help="instances per wave after the canary")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON instead of the table")

    start = commands.add_parser("start", help="start one wave of a plan on the fleet state machine")
    aws_options(start)
    start.add_argument("--plan", required=True, help="plan file from `plan`")
    start.add_argument("--wave", required=True, type=int)
    # Unset: the fleet input's defaults (migrator/fleet/waves.py WaveInput).
    start.add_argument("--max-concurrency", type=int)
    start.add_argument("--tolerated-failure-percentage", type=float)
    start.add_argument("--state-machine-arn", help="the fleet state machine (default: found by name)")
    table_option(start)

    status = commands.add_parser("status", help="the fleet's executions and how they ended")
    aws_options(status)
    status.add_argument("--state-machine-arn", help="the fleet state machine (default: found by name)")

    audit = commands.add_parser("audit", help="an execution's timeline, approvals, changes and errors")
    aws_options(audit)
    audit.add_argument("execution_arn")
    audit.add_argument("--html", help="also write a self-contained HTML report here")
    table_option(audit)

    approvals_cmd = commands.add_parser("approvals", help="pending approvals; approve or reject from the terminal")
    approvals_sub = approvals_cmd.add_subparsers(dest="approvals_command", required=True, parser_class=_Parser)
    listing = approvals_sub.add_parser("list", help="pending approval requests")
    aws_options(listing)
    table_option(listing)
    for verb in ("approve", "reject"):
        decide = approvals_sub.add_parser(verb, help=f"{verb} one request (IAM-authenticated, single use)")
        aws_options(decide)
        decide.add_argument("approval_id")
        decide.add_argument("--comment", default="")
        table_option(decide)

    local = commands.add_parser("local", help="the local runtime")
    local_commands = local.add_subparsers(dest="local_command", required=True, parser_class=_Parser)
    serve = local_commands.add_parser("serve", help="serve the local runtime as an AWS endpoint on 127.0.0.1")
    serve.add_argument("--port", type=int, default=5000)
    serve.add_argument("--scenario", default=str(DEFAULT_SCENARIO))
    seed_option(serve)
    return parser


def _fail_usage(message: str) -> int:
    print(f"al2023-migrate: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _load(path: str):
    from migrator.workstation.local.scenario import ScenarioError, load_scenario

    try:
        scenario = load_scenario(path)
    except ScenarioError as error:
        return None, str(error)
    return scenario, None


def _format_sim(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def print_table(summary: dict, out=sys.stdout) -> None:
    rows = [("target", "instances", "outcome", "expected", "transitions", "sim time", "error")]
    for t in summary["targets"]:
        error = (t["error"] or "")[:70]
        rows.append((t["target"], str(t["instances"]), t["outcome"], t["expected"],
                     str(t["state_transitions"]), _format_sim(t["sim_seconds"]), error))
    print(format_table(rows), file=out)
    i = summary["instances"]
    print(
        f"\n{i['total']} instances: {i['migrated']} migrated, {i['rolled_back']} rolled back, {i['failed']} failed"
        f" | {summary['state_transitions']} state transitions, {summary['aws_api_calls']} AWS calls"
        f" | simulated {_format_sim(summary['sim_seconds'])}, wall {summary['wall_seconds']}s",
        file=out,
    )
    expectations, invariants = summary["expectations"], summary["invariants"]
    print("expectations: ok" if expectations["ok"] else "expectations: NOT MET", file=out)
    for mismatch in expectations["mismatches"]:
        print(f"  - {mismatch}", file=out)
    print("invariants: ok" if invariants["ok"] else "invariants: VIOLATED", file=out)
    for violation in invariants["violations"]:
        print(f"  - {violation}", file=out)


def demo(args) -> int:
    from migrator.workstation.local.demo import run_scenario

    scenario, problem = _load(args.scenario)
    if problem:
        return _fail_usage(problem)

    def progress(runtime, run, status):
        if not args.json:
            print(f"[{_format_sim(runtime.clock.elapsed())}] {run.target}: {status}", flush=True)

    if not args.json:
        nodegroups = sum(len(c.nodegroups) for c in scenario.eks_clusters)
        print(f"scenario {scenario.name}: {len(scenario.auto_scaling_groups)} Auto Scaling groups, "
              f"{len(scenario.standalone)} standalone instances, {nodegroups} EKS node groups, "
              f"seed {args.seed}", flush=True)
    summary = run_scenario(scenario, on_change=progress, seed=args.seed,
                           on_progress=None if args.json else (lambda line: print(line, flush=True)))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print()
        print_table(summary)
    met = summary["invariants"]["ok"] and summary["expectations"]["ok"]
    return EXIT_OK if met else EXIT_UNEXPECTED


def serve(args) -> int:
    from migrator.workstation.local.server import serve_forever

    scenario, problem = _load(args.scenario)
    if problem:
        return _fail_usage(problem)
    if not 1 <= args.port <= 65535:
        return _fail_usage(f"--port {args.port} is not a TCP port")
    return serve_forever(scenario, args.port, args.seed)


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as stop:  # --help, or a usage error already printed
        return int(stop.code or 0)
    from botocore.exceptions import BotoCoreError, ClientError

    from migrator.fleet import commands
    from migrator.fleet.commands import CommandError

    handlers = {"demo": demo, "local": serve, "plan": commands.plan, "start": commands.start,
                "status": commands.status, "audit": commands.audit, "approvals": commands.approvals}
    try:
        return handlers[args.command](args)
    except CommandError as error:
        return _fail_usage(str(error))
    except (BotoCoreError, ClientError) as error:  # unreachable endpoint, no credentials, access denied...
        return _fail_usage(" ".join(str(error).split()))


if __name__ == "__main__":
    sys.exit(main())
