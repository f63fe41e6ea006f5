"""`plan`, `start`, `status` and `audit`: the same against AWS and against `local serve`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import boto3
import yaml
from botocore.exceptions import BotoCoreError, ClientError

from migrator.fleet.plan import DEFAULT_MAX_INSTANCES_PER_WAVE, build_plan, discover, plan_table
from migrator.fleet.report import build_report, render_html, render_text
from migrator.fleet.waves import store_plan
from migrator.tables import format_table


class CommandError(Exception):
    """Bad arguments or an unusable account: one line, exit 2."""


def session_clients(args):
    endpoint = getattr(args, "endpoint_url", None)
    options = {"region_name": args.region} if args.region else {}
    if endpoint and ("127.0.0.1" in endpoint or "localhost" in endpoint):
        # the local runtime accepts any credentials; don't require the user's
        options |= {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        options.setdefault("region_name", "us-east-1")
    session = boto3.session.Session(**options)
    if session.region_name is None:
        raise CommandError("no AWS region: pass --region or set AWS_DEFAULT_REGION")
    return lambda service: session.client(service, endpoint_url=endpoint)


def _find_state_machine(sfn, given: str | None) -> str:
    if given:
        return given
    for page in sfn.get_paginator("list_state_machines").paginate():
        for machine in page["stateMachines"]:
            if machine["name"] == "fleet" or machine["name"].startswith("Fleet"):
                return machine["stateMachineArn"]
    raise CommandError("no fleet state machine found: deploy the stack, or pass --state-machine-arn")


def _find_table(dynamodb, given: str | None) -> str:
    if given:
        return given
    for page in dynamodb.get_paginator("list_tables").paginate():
        for name in page["TableNames"]:
            if "audit" in name.lower():
                return name
    raise CommandError("no audit table found: deploy the stack, or pass --table")


def load_plan_file(path: str) -> dict:
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise CommandError(f"{path}: cannot read: {error.strerror}") from None
    try:
        plan = yaml.safe_load(text)  # JSON is YAML too
    except yaml.YAMLError:
        raise CommandError(f"{path}: not a JSON or YAML plan") from None
    if not isinstance(plan, dict) or "plan_id" not in plan or "waves" not in plan:
        raise CommandError(f"{path}: not a plan (no plan_id or waves)")
    return plan


def plan(args) -> int:
    max_instances = DEFAULT_MAX_INSTANCES_PER_WAVE if args.max_instances is None else args.max_instances
    if max_instances < 1:
        raise CommandError("--max-instances must be at least 1")
    clients = session_clients(args)
    try:
        ec2 = clients("ec2")
        result = build_plan(discover(ec2), ec2.meta.region_name, max_instances)
    except (ClientError, BotoCoreError) as error:
        raise CommandError(f"discovery failed: {error}") from None
    if args.out:
        text = yaml.safe_dump(result, sort_keys=False) if args.out.endswith((".yaml", ".yml")) else json.dumps(result, indent=2)
        Path(args.out).write_text(text)
    print(json.dumps(result, indent=2) if args.json else plan_table(result))
    if args.out and not args.json:
        print(f"plan {result['plan_id']} written to {args.out}")
    return 0


def start(args) -> int:
    plan_data = load_plan_file(args.plan)
    waves = {w["wave"]: w for w in plan_data["waves"]}
    if args.wave not in waves:
        raise CommandError(f"--wave {args.wave}: the plan has waves {sorted(waves)}")
    clients = session_clients(args)
    sfn, dynamodb = clients("stepfunctions"), clients("dynamodb")
    machine = _find_state_machine(sfn, args.state_machine_arn)
    store_plan(dynamodb, _find_table(dynamodb, args.table), plan_data)
    name = f"{plan_data['plan_id']}-wave-{args.wave}"
    options = {"max_concurrency": args.max_concurrency, "tolerated_failure_percentage": args.tolerated_failure_percentage}
    # What is not given, LoadWave fills in with the fleet input's defaults.
    payload = {"plan_id": plan_data["plan_id"], "wave": args.wave, **{k: v for k, v in options.items() if v is not None}}
    arn = machine.replace(":stateMachine:", ":execution:") + f":{name}"
    try:
        existing = sfn.describe_execution(executionArn=arn)["status"]
    except sfn.exceptions.ExecutionDoesNotExist:
        existing = None
    if existing:  # the execution name is the plan's: a second `start` never runs the wave twice
        print(f"wave {args.wave} of {plan_data['plan_id']} was started already ({existing}): {arn}")
        return 0
    arn = sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(payload))["executionArn"]
    print(f"started wave {args.wave} ({waves[args.wave]['instances']} instances, "
          f"{len(waves[args.wave]['targets'])} targets): {arn}")
    return 0


def status(args) -> int:
    clients = session_clients(args)
    sfn = clients("stepfunctions")
    machine = _find_state_machine(sfn, args.state_machine_arn)
    rows = [("execution", "status", "started", "stopped")]
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=machine):
        for execution in page["executions"]:
            rows.append((execution["name"], execution["status"], str(execution["startDate"])[:19],
                         str(execution.get("stopDate") or "")[:19]))
    print(format_table(rows))
    return 0


def audit(args) -> int:
    clients = session_clients(args)
    sfn, dynamodb = clients("stepfunctions"), clients("dynamodb")
    try:
        report = build_report(sfn, dynamodb, _find_table(dynamodb, args.table), args.execution_arn)
    except sfn.exceptions.ExecutionDoesNotExist:
        raise CommandError(f"no execution {args.execution_arn}") from None
    except ClientError as error:
        raise CommandError(f"cannot read {args.execution_arn}: {error}") from None
    print(render_text(report))
    if args.html:
        Path(args.html).write_text(render_html(report))
        print(f"HTML report written to {args.html}")
    return 0


def approvals(args) -> int:
    """The terminal's way to answer: the caller's IAM identity is the approver, and the
    same conditional write keeps every request single-use."""
    from migrator.approvals.core import PAST, Approvals, LinkRefused

    clients = session_clients(args)
    dynamodb = clients("dynamodb")
    store = Approvals(dynamodb=dynamodb, sfn=clients("stepfunctions"), sns=None,
                      table=_find_table(dynamodb, args.table), topic="", secret=b"", base_url="")
    if args.approvals_command == "list":
        rows = [("id", "target", "gate", "expires")]
        for request in store.pending():
            rows.append((request["id"], request["target"], request["gate"],
                         datetime.fromtimestamp(request["expires_at"], UTC).isoformat(timespec="minutes")))
        print(format_table(rows))
        return 0
    identity = clients("sts").get_caller_identity()["Arn"]
    try:
        record = store.decide(args.approval_id, args.approvals_command, identity, "terminal", "al2023-migrate",
                              args.comment)
    except LinkRefused as error:
        raise CommandError(str(error)) from None
    if record.get("callback_error"):  # recorded here, but the execution never heard it
        raise CommandError(f"{args.approval_id}: {args.approvals_command} did not reach the execution "
                           f"({record['callback_error']}): the gate closed meanwhile")
    print(f"{args.approval_id}: {PAST[args.approvals_command]} by {record['by']} at {record['at']}")
    return 0
