"""Discovery, plans and waves on fleet.asl.json, and the audit report."""

from __future__ import annotations

import json
import socket
from html.parser import HTMLParser

from migrator.workstation.cli import main
from migrator.fleet.plan import Target, build_plan, discover, latest_al2023_images, make_waves, plan_table
from migrator.fleet.report import build_report, render_html, render_text
from migrator.workstation.local.demo import plan_fleet, run_scenario, run_waves
from migrator.workstation.local.runtime import AUDIT_TABLE
from migrator.workstation.local.scenario import parse_scenario
from migrator.workstation.local.server import LocalServer
from migrator.workflows import ASG_ROLLOUT, FLEET
from tests.conftest import running

MIXED = {
    "standalone": [{"name": "db-1", "elastic_ip": True}, {"name": "app-1", "dns": "app-1.internal.example.com"}],
    "eks_clusters": [{"name": "prod", "nodegroups": [{"name": "ng-general", "size": 2}],
                      "workloads": [{"name": "api", "replicas": 2, "pdb_min_available": 1}]}],
}
GROUPS = [{"name": "web", "size": 3, "alarms": ["web-5xx"]}, {"name": "api", "size": 2}]


def fleet(**extra):
    return {"version": 1, "name": "fleet", "clock": {"speed": 1000}, "auto_scaling_groups": GROUPS,
            **MIXED, **extra}


def test_discovery_classifies_a_mixed_account():
    with running(GROUPS, **MIXED) as rt:
        ec2 = rt.client("ec2")
        tags = lambda **t: [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in t.items()]}]
        al2, al2023 = rt.fleet.al2_image, rt.fleet.al2023_image
        launch = lambda image, **t: ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, TagSpecifications=tags(**t))
        launch(al2, **{"al2023-migration": "exclude", "Name": "legacy"})
        launch(al2, **{"karpenter.sh/nodepool": "default", "kubernetes.io/cluster/prod": "owned"})
        launch(al2, **{"aws:autoscaling:groupName": "self-ng", "kubernetes.io/cluster/prod": "owned"})
        launch(al2, **{"aws:autoscaling:groupName": "edge-ng", "kubernetes.io/cluster/prod": "owned",
                       "al2023-migration": "enabled"})  # opted in: the self-managed workflow's
        launch(al2023, **{"al2023-migration": "enabled", "Name": "new-box"})

        inventory = discover(ec2)
        kinds = {name: (t.kind, t.instances) for name, t in inventory.targets.items()}
        assert kinds == {"asg/web": ("asg", 3), "asg/api": ("asg", 2), "standalone/db-1": ("standalone", 1),
                         "standalone/app-1": ("standalone", 1), "eks/prod/ng-general": ("eks", 2),
                         "eks/prod/edge-ng": ("eks-self-managed", 1)}
        assert inventory.targets["eks/prod/edge-ng"].input == {"cluster_name": "prod", "group_name": "edge-ng"}
        assert inventory.targets["standalone/db-1"].input["cutover"] == {"mode": "elastic_ip"}
        built = rt.fleet.instances["app-1"]
        assert inventory.targets["standalone/app-1"].input["cutover"] == {
            "mode": "dns", "hosted_zone_id": built.zone_id, "record_name": built.record_name}
        assert inventory.targets["asg/web"].input["alarm_names"] == ["web-5xx"]
        assert len(inventory.excluded) == 1 and inventory.already_al2023 == 1
        assert inventory.karpenter[0]["nodepool"] == "default" and "al2023@latest" in inventory.karpenter[0]["change"]
        assert inventory.self_managed[0]["group"] == "self-ng"
        assert len(inventory.not_opted_in) == 1  # the scenario's bystander carries no opt-in tag
        assert inventory.api_calls["describe_instances"] == 1 and inventory.api_calls["describe_images"] == 1

        # what a reviewer sees: which instance, on what, going to what, and why in this wave
        plan = build_plan(inventory, rt.region, al2023_images=latest_al2023_images(rt.client("ssm"), ec2))
        db = next(t for w in plan["waves"] for t in w["targets"] if t["target"] == "standalone/db-1")
        assert db["name"] == "db-1" and db["instance_ids"] == [rt.fleet.instances["db-1"].instance_id]
        assert db["current_ami"][0]["id"] == al2 and db["current_ami"][0]["name"]
        assert db["target_ami"]["id"] == al2023 and db["criticality_from"] == "default (no tag)"
        assert db["wave_reason"]
        table = plan_table(plan)
        assert "standalone instances" in table and "db-1" in table and "(default)" in table
        untagged = inventory.not_opted_in[0]["instance_id"]
        assert f"without the opt-in tag (left as they are): " in table and untagged in table


def test_waves_start_with_a_canary_of_each_kind_and_respect_the_size_bound():
    targets = [Target(f"asg/g{i}", "asg", size, {}) for i, size in enumerate((40, 3, 10, 20))]
    targets += [Target(f"standalone/s{i}", "standalone", 1, {}) for i in range(5)]
    targets += [Target("eks/c/ng", "eks", 8, {}, criticality="high"), Target("asg/tagged", "asg", 2, {}, wave_tag=3)]
    waves = make_waves(targets, max_instances=20)
    assert sorted(t.target for t in waves[0]) == ["asg/g1", "eks/c/ng", "standalone/s0"]
    assert all(sum(t.instances for t in wave) <= 20 for wave in waves[1:] if len(wave) > 1)
    assert [t.target for t in waves[-1]] == ["asg/g0"]  # larger than the bound: a wave alone, last
    # an explicit wave tag orders its target before every untagged one (empty waves close up)
    assert [t.target for t in waves[1]] == ["asg/tagged"]
    plan = build_plan(type("Inventory", (), {"targets": {t.target: t for t in targets}, "already_al2023": 0,
                                             "excluded": [], "karpenter": [], "self_managed": [], "not_opted_in": [],
                                             "other_os": 0, "instances_seen": 0, "api_calls": {}})(), "us-east-1", 20)
    names = [t["execution_name"] for w in plan["waves"] for t in w["targets"]]
    assert len(set(names)) == len(names) and all(len(n) <= 80 for n in names)


def test_the_fleet_migrates_every_target_wave_by_wave():
    summary = run_scenario(parse_scenario(fleet(waves={"max_instances": 4, "max_concurrency": 4})))
    assert summary["invariants"] == {"ok": True, "violations": []}
    assert {t["outcome"] for t in summary["targets"]} == {"migrated"}
    assert summary["instances"]["migrated"] == 9
    assert len(summary["waves"]) == 2 and {w["status"] for w in summary["waves"]} == {"SUCCEEDED"}


def test_a_failed_target_fails_the_wave_unless_tolerated():
    fault = [{"target": "asg/web", "at": "canary", "kind": "unhealthy"}]
    strict = run_scenario(parse_scenario(fleet(waves={"max_instances": 50}, faults=fault)))
    assert [w["status"] for w in strict["waves"]][-1] == "FAILED" or "FAILED" in {w["status"] for w in strict["waves"]}
    assert strict["invariants"]["ok"]  # asg/web rolled back as expected, the rest migrated
    tolerant = run_scenario(parse_scenario(fleet(waves={"max_instances": 50, "tolerated_failure_percentage": 50},
                                                 faults=fault)))
    assert {w["status"] for w in tolerant["waves"]} == {"SUCCEEDED"}
    assert {t["target"]: t["outcome"] for t in tolerant["targets"]}["asg/web"] == "rolled_back"


def test_a_rejected_wave_starts_nothing():
    summary = run_scenario(parse_scenario(fleet(waves={"max_instances": 50},
                                                approvals={"gates": {"wave-0/start": "reject"}})))
    first = [t for t in summary["targets"] if t["status"] == "NOT_STARTED"]
    assert first and all(t["outcome"] == t["expected"] == "rolled_back" for t in first)
    assert summary["invariants"]["ok"]


def test_a_retried_wave_never_starts_a_target_twice():
    with running(GROUPS, waves={"max_instances": 50}) as rt:
        plan = plan_fleet(rt)
        run_waves(rt, plan)
        sfn = rt.client("stepfunctions")
        before = len(sfn.list_executions(stateMachineArn=rt.state_machines[ASG_ROLLOUT.name])["executions"])
        again = rt.start_execution(FLEET, "wave-0-retry", {"plan_id": plan["plan_id"], "wave": 0})
        result = rt.wait([again])[again.execution_arn]
        assert result["status"] == "SUCCEEDED"
        after = len(sfn.list_executions(stateMachineArn=rt.state_machines[ASG_ROLLOUT.name])["executions"])
        assert after == before
        output = json.loads(result["output"])
        assert output["targets"] == [] and len(output["already_done"]) == len(plan["waves"][0]["targets"])


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text, self.bars = [], [], 0

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.bars += (dict(attrs).get("class") or "").startswith("bar ")

    def handle_data(self, data):
        self.text.append(data)


def test_the_audit_report_shows_steps_approvals_changes_of_the_wave_and_its_children(tmp_path):
    with running(GROUPS[:1], waves={"max_instances": 50}) as rt:
        plan = plan_fleet(rt)
        run_waves(rt, plan)
        wave = next(r for r in rt.runs if r.workflow is FLEET)
        report = build_report(rt.client("stepfunctions"), rt.client("dynamodb"), AUDIT_TABLE, wave.execution_arn)
        text = render_text(report)
        assert "RunTargets" in text and "approval wave-0/start: approve by scenario" in text
        assert "asg-rollout" in text and "approval asg/web/before-refresh: approve" in text
        assert "instance-refresh-succeeded" in text
        page = tmp_path / "audit.html"
        page.write_text(render_html(report))
        parsed = _Page()
        parsed.feed(page.read_text())
        drawn = [s for item in (report, *report["children"]) for s in item["steps"] if s["kind"] != "flow"]
        assert parsed.bars == len(drawn) > 0  # one bar on the timeline per step that is not mere flow
        assert parsed.tags.count("section") == 1 + len(report["children"])
        assert "WaitForRefresh" in "".join(parsed.text)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_plan_start_and_audit_commands_against_local_serve(tmp_path, capsys):
    server = LocalServer(parse_scenario(fleet()), _free_port())
    server.start()
    try:
        out = tmp_path / "plan.yaml"
        assert main(["plan", "--endpoint-url", server.endpoint, "--out", str(out)]) == 0
        table = capsys.readouterr().out
        assert "canary" in table and "9 AL2 instances to migrate" in table
        assert main(["start", "--endpoint-url", server.endpoint, "--plan", str(out), "--wave", "0"]) == 0
        started = capsys.readouterr().out
        assert "started wave 0" in started
        arn = started.strip().rsplit(" ", 1)[-1]
        assert main(["start", "--endpoint-url", server.endpoint, "--plan", str(out), "--wave", "0"]) == 0
        assert "was started already" in capsys.readouterr().out
        assert main(["start", "--endpoint-url", server.endpoint, "--plan", str(out), "--wave", "99"]) == 2
        assert "--wave 99" in capsys.readouterr().err
        assert main(["audit", "--endpoint-url", server.endpoint, arn, "--html", str(tmp_path / "a.html")]) == 0
        assert "fleet /" in capsys.readouterr().out and (tmp_path / "a.html").exists()
    finally:
        server.stop()
