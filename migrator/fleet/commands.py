"""`plan`, `start`, `status` and `audit`: the same against AWS and against `local serve`."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import boto3
import yaml
from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from migrator.fleet.plan import (DEFAULT_MAX_INSTANCES_PER_WAVE, build_plan, discover, latest_al2023_images,
                                  plan_table)
from migrator.fleet.report import build_report, iso, render_html, render_text
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
        result = build_plan(discover(ec2, clients("eks")), ec2.meta.region_name, max_instances,
                            al2023_images=latest_al2023_images(clients("ssm"), ec2))
    except (ClientError, BotoCoreError) as error:
        raise CommandError(f"discovery failed: {error}") from None
    if getattr(args, "compatibility", False):  # each server's and group's scan, in the plan
        compat_clients = _compat_clients(args)
        scanned = _scan_hosts(compat_clients, _plan_hosts(result, compat_clients))
        for wave in result["waves"]:
            for target in wave["targets"]:
                if target["target"] in scanned:
                    findings = scanned[target["target"]]["findings"]
                    target["compatibility"] = {"blockers": findings.names("blocker"),
                                               "warnings": findings.names("warning")}
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
    rows = [("execution", "status", "started (UTC)", "stopped (UTC)")]
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=machine):
        for execution in page["executions"]:
            rows.append((execution["name"], execution["status"], iso(execution["startDate"]),
                         iso(execution.get("stopDate"))))  # UTC, as audit prints them, whatever the local zone
    print(format_table(rows))
    return 0


def audit(args) -> int:
    clients = session_clients(args)
    sfn, dynamodb = clients("stepfunctions"), clients("dynamodb")
    try:
        # CloudTrail names who answered a gate with its raw task token (the history cannot)
        report = build_report(sfn, dynamodb, _find_table(dynamodb, args.table), args.execution_arn,
                              cloudtrail=clients("cloudtrail"))
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


def _plan_hosts(plan_data: dict, compat_clients) -> list[tuple[str, str]]:
    """(target, instance) to scan for each standalone server and group of a plan: a group's oldest
    in-service instance, as its rollout's pre-flight scans it."""
    from migrator.compat.checks import oldest_in_service

    hosts = []
    for wave in plan_data["waves"]:
        for target in wave["targets"]:
            if target["kind"] == "standalone":
                hosts.append((target["target"], target["input"]["instance_id"]))
            elif target["kind"] == "asg":
                oldest = oldest_in_service(compat_clients, target["input"]["group_name"])
                if oldest:
                    hosts.append((target["target"], oldest))
    return hosts


def _scan_hosts(compat_clients, hosts: list[tuple[str, str]]) -> dict:
    """Each host's findings, by the workflows' own code (migrator/compat/checks.py): the scan through
    SSM, the user data and the MetadataNoToken metric; a host SSM cannot reach gets the static checks."""
    from migrator.compat.checks import ScanRequest, host_findings, start
    from migrator.compat.scan import ScanFailed, read_scan

    started = {name: start(compat_clients, ScanRequest(execution="cli", target=name, purpose="compatibility",
                                                       instance_id=iid)) for name, iid in hosts}
    results = {}
    for name, iid in hosts:
        facts = None
        if started[name].command_id:
            try:
                compat_clients.ssm.get_waiter("command_executed").wait(
                    CommandId=started[name].command_id, InstanceId=iid, WaiterConfig={"Delay": 2, "MaxAttempts": 150})
                facts = read_scan(compat_clients.ssm, started[name].command_id, iid)
            except (ScanFailed, WaiterError) as error:
                raise CommandError(f"{name}: the scan did not complete: {' '.join(str(error).split())}") from None
        results[name] = {"instance_id": iid, "scanned": facts is not None,
                         "findings": host_findings(compat_clients, facts, iid, None)}
    return results


def _compat_clients(args):
    from migrator.compat.checks import Clients

    clients = session_clients(args)
    return Clients(ec2=clients("ec2"), ssm=clients("ssm"), cloudwatch=clients("cloudwatch"),
                   autoscaling=clients("autoscaling"))


def scan(args) -> int:
    """AL2023 compatibility of each host, read-only: the scan through SSM, the
    MetadataNoToken metric and the user data; Auto Scaling groups through their oldest
    in-service instance."""
    from migrator.compat.rules import Findings

    compat_clients = _compat_clients(args)
    hosts = [(f"instance/{iid}", iid) for iid in args.instance_id or []]
    if args.plan:
        hosts += _plan_hosts(load_plan_file(args.plan), compat_clients)
    if not hosts:
        raise CommandError("nothing to scan: pass --instance-id or --plan")
    results = _scan_hosts(compat_clients, hosts)
    report = {name: {"instance_id": r["instance_id"], "scanned": r["scanned"], **_findings_json(r["findings"])}
              for name, r in results.items()}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        rows = [("target", "severity", "finding", "fix")]
        for name, result in results.items():
            findings: Findings = result["findings"]
            for finding in findings.blockers + findings.warnings:
                rows.append((name, finding.severity, finding.name, finding.fix[:80]))
            if not findings.blockers and not findings.warnings:
                rows.append((name, "ok", "no finding", ""))
        print(format_table(rows))
    if args.html:
        Path(args.html).write_text(_scan_html(results))
        print(f"HTML report written to {args.html}", file=sys.stderr)
    return 1 if any(r["findings"].blockers for r in results.values()) else 0


def _findings_json(findings) -> dict:
    return {"blockers": findings.names("blocker"), "warnings": findings.names("warning"),
            "details": [f.model_dump() for f in findings.blockers + findings.warnings]}


def _scan_html(results: dict) -> str:
    import html

    rows = []
    for name, result in results.items():
        for f in result["findings"].blockers + result["findings"].warnings:
            rows.append(f"<tr class='{f.severity}'><td>{html.escape(name)}</td><td>{f.severity}</td>"
                        f"<td>{html.escape(f.name)}</td><td>{html.escape(f.finding)}</td><td>{html.escape(f.fix)}</td>"
                        f"<td><a href='{html.escape(f.source)}'>source</a></td></tr>")
    return ("<!doctype html><meta charset='utf-8'><title>AL2023 compatibility</title><style>"
            "body{font:14px system-ui;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:4px 8px;text-align:left}.blocker td:nth-child(2){color:#b00;font-weight:bold}</style>"
            "<h1>AL2023 compatibility</h1><table><tr><th>target</th><th>severity</th><th>finding</th>"
            "<th>what changes</th><th>fix</th><th>source</th></tr>" + "".join(rows) + "</table>")
