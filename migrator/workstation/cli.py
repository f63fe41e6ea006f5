"""`al2023-migrate`: plan, rehearse, start and audit AL2 -> AL2023 migrations."""

from __future__ import annotations

import argparse
import contextlib
import textwrap
import json
import sys

from migrator.config import SCENARIOS_DIR
from migrator.fleet.plan import DEFAULT_MAX_INSTANCES_PER_WAVE
from migrator.workstation.local.scenario import DEFAULT_SEED
from migrator.tables import format_clock, format_table

DEFAULT_SCENARIO = SCENARIOS_DIR / "reference-200.yaml"
EXIT_OK, EXIT_UNEXPECTED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one line saying what is wrong, exit 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default where it has a real one (not None or False)."""

    def _get_help_string(self, action):
        if action.default in (None, False, argparse.SUPPRESS) or action.required:
            return action.help
        return super()._get_help_string(action)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="al2023-migrate", description=__doc__,
                     formatter_class=_Help)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    def command(name: str, summary: str, description: str):
        return commands.add_parser(name, help=summary, description=description,
                                   formatter_class=_Help)

    demo = command("demo", "run a scenario in the local runtime and audit the result",
                   "Build the scenario's fleet in a simulated AWS account, run the project's state machines "
                   "on it, and audit the account afterwards (docs/scenarios.md). Exit 0 when every target "
                   "ended as expected and every invariant holds, 1 otherwise, 2 for a bad scenario.")
    demo.add_argument("--scenario", default=str(DEFAULT_SCENARIO), help="scenario YAML (docs/scenarios.md)")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")

    def seed_option(command):
        command.add_argument("--seed", type=int, default=DEFAULT_SEED,
                             help="seed of every random choice in the run: the same scenario and seed give the same summary")

    seed_option(demo)

    def approvals_option(command):
        command.add_argument("--approvals", choices=("scenario", "manual"), default="scenario",
                             help="who answers the gates: the scenario's approvals section, or you (each "
                                  "gate's links are printed as it is reached; the clock waits for you)")

    approvals_option(demo)

    def aws_options(command):
        command.add_argument("--region", help="AWS region (default: the SDK's)")
        command.add_argument("--endpoint-url", help="another endpoint, e.g. http://127.0.0.1:5000 (local serve)")

    def table_option(command):
        command.add_argument("--table", help="the audit table (default: found by name)")

    plan = command("plan", "discover AL2 instances and write a plan of waves",
                   "Find every Amazon Linux 2 instance of the account and region, classify it (standalone, "
                   "Auto Scaling group, EKS node) and group the opted-in ones into waves, canary first.")
    aws_options(plan)
    plan.add_argument("--out", help="plan file to write (.json or .yaml)")
    plan.add_argument("--max-instances", type=int, default=DEFAULT_MAX_INSTANCES_PER_WAVE,
                      help="instances per wave after the canary")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON instead of the table")
    plan.add_argument("--compatibility", action="store_true",
                      help="also scan each server and group (as `scan --plan` does) and show its blockers per target")

    start = command("start", "start one wave of a plan on the fleet state machine",
                    "Store the plan in the audit table and start one wave on the fleet state machine. The "
                    "execution is named after the plan and wave, so starting it twice never runs it twice.")
    aws_options(start)
    start.add_argument("--plan", required=True, help="plan file from `plan`")
    start.add_argument("--wave", required=True, type=int, help="the wave's number in the plan")
    # Unset: the fleet input's defaults (migrator/fleet/waves.py WaveInput).
    start.add_argument("--max-concurrency", type=int, help="targets migrating at once (default: the fleet input's)")
    start.add_argument("--tolerated-failure-percentage", type=float,
                       help="failed targets tolerated before the wave stops (default: the fleet input's)")
    start.add_argument("--state-machine-arn", help="the fleet state machine (default: found by name)")
    table_option(start)

    status = command("status", "the fleet's executions and how they ended",
                     "List the fleet state machine's executions (one per wave), newest first.")
    aws_options(status)
    status.add_argument("--state-machine-arn", help="the fleet state machine (default: found by name)")

    audit = command("audit", "an execution's timeline, approvals, changes and errors",
                    "Read an execution's history and audit records: what ran when, who approved what, "
                    "which resources changed, and why it failed if it did.")
    aws_options(audit)
    audit.add_argument("execution_arn", help="a target's or a wave's execution ARN")
    audit.add_argument("--html", help="also write a self-contained HTML report here")
    table_option(audit)

    approvals_cmd = command("approvals", "pending approvals; approve or reject from the terminal",
                            "Answer approval gates with your IAM identity, under the same single-use rule "
                            "as the emailed links.")
    approvals_sub = approvals_cmd.add_subparsers(dest="approvals_command", metavar="ACTION", required=True,
                                                 parser_class=_Parser)
    listing = approvals_sub.add_parser("list", help="pending approval requests")
    aws_options(listing)
    table_option(listing)
    for verb in ("approve", "reject"):
        decide = approvals_sub.add_parser(verb, help=f"{verb} one request (IAM-authenticated, single use)")
        aws_options(decide)
        decide.add_argument("approval_id", help="the id `approvals list` shows")
        decide.add_argument("--comment", default="", help="recorded with the decision")
        table_option(decide)

    scan = command("scan", "AL2023 compatibility of hosts, read-only",
                   "Read each host through SSM Run Command (packages, services, ports, crontabs, mounts), "
                   "its user data and its MetadataNoToken metric, and check them against the AL2 -> AL2023 "
                   "rules (migrator/compat/rules.yaml, each with its AWS source). Exit 1 when a host has a "
                   "blocker.")
    aws_options(scan)
    scan.add_argument("--instance-id", action="append", help="an instance to scan (repeatable)")
    scan.add_argument("--plan", help="scan every standalone server and one instance of every group of a plan")
    scan.add_argument("--json", action="store_true", help="print the findings as JSON")
    scan.add_argument("--html", help="also write a self-contained HTML report here")

    local = command("local", "the local runtime",
                    "The simulated AWS account with the project's state machines, for scripts and the AWS CLI.")
    local_commands = local.add_subparsers(dest="local_command", metavar="ACTION", required=True, parser_class=_Parser)
    serve = local_commands.add_parser("serve", help="serve the local runtime as an AWS endpoint on 127.0.0.1",
                                      formatter_class=_Help)
    serve.add_argument("--port", type=int, default=5000, help="TCP port on 127.0.0.1")
    serve.add_argument("--scenario", default=str(DEFAULT_SCENARIO), help="the fleet to build (docs/scenarios.md)")
    seed_option(serve)
    approvals_option(serve)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("al2023-migrate")
    except PackageNotFoundError:
        return "unknown (not installed)"


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


def print_table(summary: dict, out=sys.stdout) -> None:
    rows = [("target", "instances", "outcome", "expected", "transitions", "sim time", "error")]
    for t in summary["targets"]:
        error = textwrap.shorten(t["error"] or "", width=70, placeholder=" …")  # whole words
        rows.append((t["target"], str(t["instances"]), t["outcome"], t["expected"],
                     str(t["state_transitions"]), format_clock(t["sim_seconds"]), error))
    print(format_table(rows), file=out)
    i = summary["instances"]
    print(
        f"\n{i['total']} instances: {i['migrated']} migrated, {i['rolled_back']} rolled back, {i['failed']} failed"
        f" | {summary['state_transitions']} state transitions, {summary['aws_api_calls']} AWS calls"
        f" | simulated {format_clock(summary['sim_seconds'])}, wall {summary['wall_seconds']}s",
        file=out,
    )
    expectations, invariants = summary["expectations"], summary["invariants"]
    print("expectations: ok" if expectations["ok"] else "expectations: NOT MET", file=out)
    for mismatch in expectations["mismatches"]:
        print(f"  - {mismatch}", file=out)
    print("invariants: ok" if invariants["ok"] else "invariants: VIOLATED", file=out)
    for violation in invariants["violations"]:
        print(f"  - {violation}", file=out)


class _LiveWaves:
    """On a terminal: one bar per wave, updated in place (rich), with the simulated clock."""

    def __init__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress = Progress(TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("targets  {task.fields[detail]}"))
        self.tasks = {}

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def update(self, wave) -> None:
        detail = (f"{wave.instances} instances, {wave.running} running, {wave.failed} failed, "
                  f"simulated {format_clock(wave.sim_seconds)}, ETA >= {format_clock(wave.eta_seconds)}")
        if wave.wave not in self.tasks:
            self.tasks[wave.wave] = self.progress.add_task(wave.wave, total=wave.targets, detail=detail)
        self.progress.update(self.tasks[wave.wave], completed=wave.done + wave.failed, detail=detail)


def demo(args) -> int:
    from migrator.workstation.local.demo import run_scenario

    scenario, problem = _load(args.scenario)
    if problem:
        return _fail_usage(problem)

    def progress(runtime, run, status):
        if not args.json:
            print(f"[{format_clock(runtime.clock.elapsed())}] {run.target}: {status}", flush=True)

    if not args.json:
        nodegroups = sum(len(c.nodegroups) for c in scenario.eks_clusters)
        self_managed = sum(len(c.self_managed) for c in scenario.eks_clusters)
        print(f"scenario {scenario.name}: {len(scenario.auto_scaling_groups)} Auto Scaling groups, "
              f"{len(scenario.standalone)} standalone instances, {nodegroups} EKS node groups"
              + (f", {self_managed} self-managed node groups" if self_managed else "")
              + f", seed {args.seed}", flush=True)
    def announce(request: dict) -> None:  # a gate left to the person at the terminal
        from migrator.workstation.local.approvals import approval_notice

        print(approval_notice(request), file=sys.stderr, flush=True)

    from migrator.fleet.plan import plan_table

    live = None if args.json or not sys.stdout.isatty() else _LiveWaves()
    with live or contextlib.nullcontext():
        summary = run_scenario(
            scenario, on_change=progress, seed=args.seed,
            announce_approval=announce if args.approvals == "manual" else None,
            on_plan=None if args.json else (lambda plan: print(plan_table(plan), flush=True)),
            on_progress=None if args.json else (live.update if live else lambda p: print(p.line(), flush=True)))
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
    return serve_forever(scenario, args.port, args.seed, manual_approvals=args.approvals == "manual")


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as stop:  # --help, or a usage error already printed
        return int(stop.code or 0)
    from botocore.exceptions import BotoCoreError, ClientError

    from migrator.fleet import commands
    from migrator.fleet.commands import CommandError

    handlers = {"demo": demo, "local": serve, "plan": commands.plan, "start": commands.start,
                "status": commands.status, "audit": commands.audit, "approvals": commands.approvals,
                "scan": commands.scan}
    try:
        return handlers[args.command](args)
    except CommandError as error:
        return _fail_usage(str(error))
    except (BotoCoreError, ClientError) as error:  # unreachable endpoint, no credentials, access denied...
        return _fail_usage(" ".join(str(error).split()))


if __name__ == "__main__":
    sys.exit(main())
