"""The `al2023-migrate` command as a user runs it."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import urllib.request
from urllib.parse import urlencode
import shutil
import socket
import subprocess
import sys
import time

import boto3
import pytest

from migrator.workstation.cli import main
from migrator.config import SCENARIOS_DIR
from migrator.workstation.local.scenario import parse_scenario
from migrator.workstation.local.server import LocalServer
from tests.conftest import eventually

SUMMARY_KEYS = {"scenario", "targets", "instances", "state_transitions", "aws_api_calls", "sim_seconds",
                "wall_seconds", "expectations", "invariants"}
TARGET_KEYS = {"target", "kind", "instances", "outcome", "expected", "execution_arn", "status",
               "state_transitions", "sim_seconds", "error"}


def one_line_usage_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("version: 2\nname: x\n", "version"),
        ("version: 1\nname: x\nauto_scaling_groups: [{name: web, size: 0}]\n", "auto_scaling_groups.0.size"),
        ("version: 1\nname: x\nauto_scaling_groups: [{name: web, size: 2}]\n"
         "faults: [{target: asg/nope, at: canary, kind: unhealthy}]\n", "faults.0.target"),
        ("version: 1\nname: x\nauto_scaling_groups: [{name: web, size: 2}]\n"
         "faults: [{target: asg/web, at: canary, kind: error}]\n", "faults.0.kind"),
        ("version: 1\nname: x\neks_clusters: [{name: prod}]\n", "eks_clusters.0.nodegroups"),
        ("version: 1\nname: x\neks_clusters: [{name: p, nodegroups: [{name: a, size: 1}]}]\n"
         "faults: [{target: eks/p/a, at: drain, kind: pdb-blocked}]\n", "pdb-blocked needs a workload"),
        ("version: 1\nname: x\nstandalone: [{name: db-1, elastic_ip: true, dns: db-1.example.com}]\n",
         "standalone.0"),
        ("version: 1\nname: x\nstandalone: [{name: db-1}]\n"
         "faults: [{target: standalone/db-1, at: canary, kind: unhealthy}]\n", "faults.0.at"),
        ("version: 1\nname: x\nstandalone: [{name: db-1\n", "scenario.yaml:4:1: not valid YAML"),
        ("version: 1\nname: x\neks_clusters: [{name: p, nodegroups: [{name: a, size: 1, input: {force: true}}]}]\n",
         "input: force is not a field"),
        ("version: 1\nname: x\neks_clusters: [{name: p, nodegroups: [{name: a, size: 1}],\n"
         "  workloads: [{name: w, extra_pdb: true}]}]\n", "extra_pdb needs pdb_min_available"),
        ("version: 1\nname: x\nauto_scaling_groups: [{name: web, size: 2}]\n"
         "events: [{target: asg/nope, at: canary, kind: scale, desired: 3}]\n", "events.0.target"),
        ("version: 1\nname: x\nauto_scaling_groups: [{name: web, size: 2}]\n"
         "events: [{target: asg/web, at: drain, kind: scale, desired: 3}]\n", "events.0.at"),
        ("version: 1\nname: x\nauto_scaling_groups: [{name: web, size: 2, max_size: 1}]\n", "max_size"),
        ("version: [1\n", "not valid YAML"),
    ],
)
def test_a_bad_scenario_exits_2_with_one_line_naming_the_field(tmp_path, capsys, content, words):
    path = tmp_path / "scenario.yaml"
    path.write_text(content)
    assert words in one_line_usage_error(capsys, ["demo", "--scenario", str(path)])


def test_bad_arguments_exit_2_with_one_line(capsys):
    assert "--scenario" in one_line_usage_error(capsys, ["demo", "--scenario"])
    assert "invalid choice" in one_line_usage_error(capsys, ["migrate-everything"])
    assert "ACTION" in one_line_usage_error(capsys, ["approvals"])  # no internal names


@pytest.mark.parametrize("argv", [["status"], ["audit", "arn:aws:states:us-east-1:123456789012:execution:fleet:w"],
                                  ["approvals", "list"], ["approvals", "approve", "abc"], ["plan"]])
def test_an_unreachable_endpoint_is_one_line_and_exit_2_for_every_command(capsys, monkeypatch, argv):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # the answer, not botocore's retries, is under test
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    error = one_line_usage_error(capsys, [*argv, "--endpoint-url", f"http://127.0.0.1:{_free_port()}"])
    assert "Could not connect" in error and "Traceback" not in error


def test_version_and_help_say_what_each_command_does(capsys):
    assert main(["--version"]) == 0
    assert re.fullmatch(r"al2023-migrate \d+\.\d+\.\d+\n", capsys.readouterr().out)
    assert main(["plan", "--help"]) == 0
    out = capsys.readouterr().out
    assert "Amazon Linux 2 instance" in out and "(default: 50)" in out and "(default: None)" not in out
    assert "cannot read" in one_line_usage_error(capsys, ["demo", "--scenario", "/nonexistent.yaml"])


def test_demo_json_reports_the_faulted_group_rolled_back_and_the_others_migrated(capsys):
    code = main(["demo", "--scenario", str(SCENARIOS_DIR / "asg-canary-unhealthy.yaml"), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert SUMMARY_KEYS <= set(summary)
    assert all(TARGET_KEYS <= set(t) for t in summary["targets"])
    outcomes = {t["target"]: t["outcome"] for t in summary["targets"]}
    assert outcomes == {"asg/web": "rolled_back", "asg/api": "migrated"}
    assert summary["instances"] == {"total": 10, "migrated": 4, "rolled_back": 6, "failed": 0}
    assert summary["invariants"] == {"ok": True, "violations": []}
    assert summary["expectations"] == {"ok": True, "mismatches": []}


def _clock_seconds(text: str) -> int:
    hours, minutes, seconds = (int(part) for part in text.split(":"))
    return hours * 3600 + minutes * 60 + seconds


def test_demo_progress_in_a_pipe_has_an_eta_that_is_a_lower_bound_and_counts_down(capsys):
    """In a pipe, one line per change with the simulated clock and an ETA from the plan's
    lower bounds: never rising, 0 at the end, and never promising less than the run took."""
    assert main(["demo", "--scenario", str(SCENARIOS_DIR / "fleet-mixed.yaml")]) == 0
    lines = re.findall(r"^\[(\d+:\d\d:\d\d)\] .* ETA >= (\d+:\d\d:\d\d)$", capsys.readouterr().out, re.M)
    clock = [_clock_seconds(at) for at, _ in lines]
    eta = [_clock_seconds(left) for _, left in lines]
    assert len(lines) >= 4 and clock == sorted(clock)
    assert eta == sorted(eta, reverse=True) and eta[0] > 0 and eta[-1] == 0
    assert all(clock[-1] - at >= left for at, left in zip(clock, eta))  # a lower bound: the run took at least that


def test_an_unmet_expect_is_an_expectation_not_an_invariant_and_exits_1(tmp_path, capsys):
    path = tmp_path / "scenario.yaml"
    path.write_text("version: 1\nname: expect\nauto_scaling_groups: [{name: web, size: 1, expect: rolled_back}]\n")
    code = main(["demo", "--scenario", str(path), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 1
    assert summary["targets"][0]["expected"] == "rolled_back"
    assert summary["expectations"] == {"ok": False, "mismatches": ["asg/web: ended migrated, expected rolled_back"]}
    assert summary["invariants"] == {"ok": True, "violations": []}


def test_every_shipped_scenario_is_valid():
    import yaml

    for path in sorted(SCENARIOS_DIR.glob("*.yaml")):
        parse_scenario(yaml.safe_load(path.read_text()), source=path.name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_local_serve_runs_a_rollout_driven_over_http(aws_cli):
    """start-execution, describe-execution and get-execution-history against the served
    endpoint, the approval answered by hand through the emailed link's page."""
    scenario = parse_scenario({"version": 1, "name": "serve", "clock": {"speed": 1000},
                               "approvals": {"default": "ignore"},
                               "auto_scaling_groups": [{"name": "web", "size": 2, "target_group": True}]})
    server = LocalServer(scenario, _free_port())
    server.start()
    try:
        sfn = boto3.client("stepfunctions", endpoint_url=server.endpoint, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        machine = server.runtime.state_machines["asg-rollout"]
        arn = sfn.start_execution(stateMachineArn=machine, name="by-hand-1",
                                  input=json.dumps({"group_name": "web", "canary_bake_seconds": 60}))["executionArn"]
        email = _wait_for_approval_email(server, sfn, arn)
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}
        out = subprocess.run([aws_cli, "--endpoint-url", server.endpoint, "stepfunctions", "describe-execution",
                              "--execution-arn", arn], env=env, capture_output=True, text=True, check=True)
        assert json.loads(out.stdout)["status"] == "RUNNING"
        page = urllib.request.urlopen(email["links"]["approve"]).read().decode()
        assert "Approve before-refresh of asg/web?" in page and "<form method='post'>" in page
        fields = dict(re.findall(r"name='(d|e|s)' value='([^']*)'", page)) | {"approver": "ops@example.com"}
        urllib.request.urlopen(urllib.request.Request(email["links"]["approve"].split("?")[0],
                                                      data=urlencode(fields).encode()))
        status = eventually(lambda: sfn.describe_execution(executionArn=arn)["status"] != "RUNNING"
                            and sfn.describe_execution(executionArn=arn)["status"], "the execution's end", poll=0.1)
        assert status == "SUCCEEDED"
        aws = [aws_cli, "--endpoint-url", server.endpoint, "stepfunctions"]
        newest = json.loads(subprocess.run(aws + ["get-execution-history", "--execution-arn", arn, "--reverse-order",
                                                  "--max-items", "2"], env=env, capture_output=True, text=True,
                                                 check=True).stdout)
        assert [e["type"] for e in newest["events"]][0] == "ExecutionSucceeded" and len(newest["events"]) == 2
        unnamed = subprocess.run(aws + ["list-executions"], env=env, capture_output=True, text=True)
        assert unnamed.returncode != 0 and "ValidationException" in unnamed.stderr
    finally:
        server.stop()


def _utc(moment) -> str:
    """A timestamp as the AWS CLI prints it (epoch seconds or ISO text) or boto3 gives it, in UTC."""
    if isinstance(moment, (int, float)):
        moment = dt.datetime.fromtimestamp(moment, dt.UTC)
    elif isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_one_clock_describe_execution_history_status_and_audit_agree(aws_cli, capsys):
    """Under local serve every timestamp is on the simulated clock: describe-execution
    (through the real AWS CLI), the history's first and last events, `status` and `audit`
    say the same start and stop, and the approval lies inside its gate's step."""
    scenario = parse_scenario({"version": 1, "name": "one-clock", "approvals": {"default": "approve", "after": 600},
                               "auto_scaling_groups": [{"name": "web", "size": 2}]})
    server = LocalServer(scenario, _free_port())
    server.start()
    try:
        sfn = boto3.client("stepfunctions", endpoint_url=server.endpoint, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        machine = server.runtime.state_machines["asg-rollout"]
        arn = sfn.start_execution(stateMachineArn=machine, name="one-clock-1",
                                  input=json.dumps({"group_name": "web", "canary_bake_seconds": 60}))["executionArn"]
        eventually(lambda: sfn.describe_execution(executionArn=arn)["status"] == "SUCCEEDED", "the execution's end",
                   poll=0.1)
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}
        aws = [aws_cli, "--endpoint-url", server.endpoint, "stepfunctions"]
        described = json.loads(subprocess.run(aws + ["describe-execution", "--execution-arn", arn], env=env,
                                              capture_output=True, text=True, check=True).stdout)
        events = json.loads(subprocess.run(aws + ["get-execution-history", "--execution-arn", arn], env=env,
                                           capture_output=True, text=True, check=True).stdout)["events"]
        start, stop = _utc(described["startDate"]), _utc(described["stopDate"])
        assert (_utc(events[0]["timestamp"]), _utc(events[-1]["timestamp"])) == (start, stop)
        assert start.startswith("2026-01-01") and start < stop  # the simulated epoch, not the wall clock

        assert main(["status", "--endpoint-url", server.endpoint, "--state-machine-arn", machine]) == 0
        row = next(line for line in capsys.readouterr().out.splitlines() if "one-clock-1" in line)
        assert start in row and stop in row
        assert main(["audit", "--endpoint-url", server.endpoint, arn]) == 0
        audit = capsys.readouterr().out
        assert f"started {start}, stopped {stop}" in audit
        gate = re.search(r"^  (\S+)\s+\S+\s+ApproveRefresh", audit, re.M)  # started, took, step
        approved = re.search(r"approval asg/web/before-refresh: approve by \S+ at (\S+)", audit)
        assert gate and approved and start <= gate[1] <= approved[1] <= stop
    finally:
        server.stop()


def _wait_for_approval_email(server, sfn, arn: str) -> dict:
    def emails():
        server.runtime.bot.poll()
        found = [m for m in server.runtime.bot.messages if m["kind"] == "approval-request"]
        assert found or sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"
        return found

    return eventually(emails, "the approval gate", poll=0.1)[0]


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "migrator.workstation.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "demo" in out.stdout


def test_local_serve_with_manual_approvals_leaves_every_gate_to_a_person(capsys):
    """The scenario would approve at once; with --approvals manual nobody answers but the
    person, who gets the links printed, and the gate waits for them."""
    scenario = parse_scenario({"version": 1, "name": "manual", "approvals": {"default": "approve", "after": 0},
                               "auto_scaling_groups": [{"name": "web", "size": 2}]})
    server = LocalServer(scenario, _free_port(), manual_approvals=True)
    server.start()
    try:
        sfn = boto3.client("stepfunctions", endpoint_url=server.endpoint, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        arn = sfn.start_execution(stateMachineArn=server.runtime.state_machines["asg-rollout"], name="manual-1",
                                  input=json.dumps({"group_name": "web", "canary_bake_seconds": 60}))["executionArn"]
        deadline, printed = time.monotonic() + 120, ""
        while "approval needed" not in printed and time.monotonic() < deadline:
            printed += capsys.readouterr().out
            time.sleep(0.2)
        assert "approval needed: before-refresh of asg/web" in printed
        time.sleep(2)  # the scenario's own answer (after: 0) would have come by now
        assert sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"
        assert server.runtime.bot.decisions == []
        approval_id = re.search(r"approvals approve (\S+) --endpoint-url", printed)[1]
        assert main(["approvals", "approve", approval_id, "--endpoint-url", server.endpoint]) == 0
        while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sfn.describe_execution(executionArn=arn)["status"] == "SUCCEEDED"
    finally:
        server.stop()


def test_scan_reads_each_host_through_ssm_and_names_its_findings(capsys):
    """`scan` against local serve: the simulated SSM prints what the scenario's host
    runs, as the real commands would; the scan finds the problems on its own."""
    scenario = parse_scenario({"version": 1, "name": "scan", "standalone": [
        {"name": "legacy", "host": {"user_data": "#!/bin/bash\namazon-linux-extras install -y nginx1\n",
                                    "packages": ["nginx", "python2", "compat-openssl10"], "services": ["nginx", "crond"],
                                    "ports": [80, 443], "cron": ["*/5 * * * * /opt/app/rotate.sh"],
                                    "imds_v1_calls": 3}},
        {"name": "clean", "host": {"services": ["sshd"], "ports": [22]}}]})
    server = LocalServer(scenario, _free_port())
    server.start()
    try:
        ids = {b.spec.name: b.instance_id for b in server.runtime.fleet.instances.values()}
        code = main(["scan", "--instance-id", ids["legacy"], "--instance-id", ids["clean"], "--json",
                     "--endpoint-url", server.endpoint])
        report = json.loads(capsys.readouterr().out)
        legacy, clean = report[f"instance/{ids['legacy']}"], report[f"instance/{ids['clean']}"]
        assert code == 1  # a blocker
        assert {b.split(":")[0] for b in legacy["blockers"]} == {
            "amazon-linux-extras", "python2", "compat-packages", "openssl10", "imds-v1"}
        assert {w.split(":")[0] for w in legacy["warnings"]} == {"extras-package", "cron"}
        assert clean["blockers"] == [] and clean["warnings"] == []
    finally:
        server.stop()


def test_scan_against_local_serve_reports_the_same_findings_as_the_workflows(capsys, tmp_path):
    """`plan --compatibility` and `scan --plan --json` against local serve, then the workflows of the same
    fleet: the pre-flight's findings per target are the CLI's, blocker for blocker, warning for warning."""
    from migrator.workstation.local.demo import start_targets
    from migrator.workstation.local.summary import summarize

    legacy = {"user_data": "#!/bin/bash\namazon-linux-extras install -y nginx1\n", "packages": ["nginx", "python2"],
              "services": ["nginx", "crond"], "ports": [80], "cron": ["*/5 * * * * /opt/app/rotate.sh"]}
    scenario = parse_scenario({"version": 1, "name": "scan-vs-workflow",
                               "standalone": [{"name": "legacy", "host": legacy, "expect": "failed"},
                                              {"name": "clean", "host": {"services": ["nginx"], "ports": [80]}}],
                               "auto_scaling_groups": [{"name": "web", "size": 2, "host": legacy,
                                                        "expect": "failed"}]})
    server = LocalServer(scenario, _free_port())
    server.start()
    try:
        plan_file = tmp_path / "plan.json"
        assert main(["plan", "--compatibility", "--out", str(plan_file), "--endpoint-url", server.endpoint]) == 0
        printed = capsys.readouterr().out
        assert "AL2023 compatibility" in printed and "amazon-linux-extras: amazon-linux-extras install" in printed
        assert main(["scan", "--plan", str(plan_file), "--json", "--endpoint-url", server.endpoint]) == 1
        report = json.loads(capsys.readouterr().out)
        planned = {t["target"]: t["compatibility"] for w in json.loads(plan_file.read_text())["waves"]
                   for t in w["targets"]}
        runs = start_targets(server.runtime)
        results = server.runtime.wait(runs, timeout=600)
        summary = summarize(server.runtime, results, 0)
        by_target = {t["target"]: t for t in summary["targets"]}
        assert set(report) == set(by_target) == {"standalone/legacy", "standalone/clean", "asg/web"}
        for name, found in report.items():
            workflow = by_target[name]["compatibility"]
            assert (found["blockers"], found["warnings"]) == (workflow["blockers"], workflow["warnings"]), name
            assert planned[name] == workflow
        assert by_target["standalone/legacy"]["error"].startswith("CompatibilityBlocked")
        assert by_target["standalone/clean"]["outcome"] == "migrated"
        assert summary["expectations"]["ok"] and summary["invariants"]["ok"]
    finally:
        server.stop()
