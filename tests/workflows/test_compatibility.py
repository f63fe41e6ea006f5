"""The compatibility scan and the parity check inside the standalone and group workflows, executed
from their ASL files: the scenario's `host:` is what the simulated SSM answers from; the scan finds
the problems on its own."""

from __future__ import annotations

import json

from migrator.audit import read_trail
from migrator.config import SOURCE_INSTANCE_TAG
from migrator.workstation.local.demo import migration_input, rollout_input
from migrator.workstation.local.runtime import AUDIT_TABLE, LocalRuntime
from migrator.workstation.local.summary import summarize
from migrator.workflows import ASG_ROLLOUT, STANDALONE_EC2
from tests.conftest import running

EXTRAS_NGINX = {"user_data": "#!/bin/bash\namazon-linux-extras install -y nginx1\nsystemctl enable --now nginx\n",
                "packages": ["nginx"], "services": ["nginx"], "ports": [80, 443]}
LEGACY = {"user_data": "#!/bin/bash\namazon-linux-extras install -y nginx1\n",
          "packages": ["nginx", "python2", "compat-openssl10"], "services": ["nginx"], "ports": [80, 443],
          "imds_v1_calls": 3}
CRON = {"user_data": "#!/bin/bash\ndnf install -y nginx\n", "packages": ["nginx", "cronie"],
        "services": ["nginx", "crond"], "ports": [80], "cron": ["*/5 * * * * /opt/app/rotate.sh"]}
CLEAN = {"user_data": "#!/bin/bash\ndnf install -y nginx\n", "packages": ["nginx"], "services": ["nginx"],
         "ports": [80, 443]}


def server(host: dict, **spec):
    return running([], standalone=[{"name": "app-1", "volumes_gib": [8, 20], "elastic_ip": True, "host": host,
                                    **spec}], timings={"retention": 600})


def group(host: dict, **spec):
    return running([{"name": "web", "size": 2, "target_group": True, "host": host, **spec}])


def migrate(rt: LocalRuntime, **overrides):
    built = next(iter(rt.fleet.instances.values()))
    run = rt.start_execution(STANDALONE_EC2, built.spec.target, {**migration_input(built, rt.scenario), **overrides})
    return run, rt.wait([run], timeout=300)[run.execution_arn]


def roll_out(rt: LocalRuntime, **overrides):
    spec = rt.scenario.auto_scaling_groups[0]
    run = rt.start_execution(ASG_ROLLOUT, spec.target, {**rollout_input(spec, rt.scenario), **overrides})
    return run, rt.wait([run], timeout=300)[run.execution_arn]


def trail(rt: LocalRuntime, run) -> dict[str, dict]:
    return {r["action"]: r["detail"] for r in read_trail(rt.client("dynamodb"), AUDIT_TABLE, run.execution_arn)}


def entered(rt: LocalRuntime, run) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in rt.history(run) if "stateEnteredEventDetails" in e]


def replacements(rt: LocalRuntime, instance_id: str) -> list[dict]:
    found = rt.client("ec2").describe_instances(Filters=[{"Name": f"tag:{SOURCE_INSTANCE_TAG}", "Values": [instance_id]}])
    return [i for r in found["Reservations"] for i in r["Instances"]]


def approval_evidence(rt: LocalRuntime, run) -> dict:
    """What the approval request carried (the Lambda's input in the history)."""
    for event in rt.history(run):
        details = event.get("taskScheduledEventDetails") or {}
        if "waitForTaskToken" in details.get("resource", ""):
            return json.loads(details["parameters"])["Payload"]["evidence"]
    raise AssertionError("no approval was requested")


def test_a_blocker_refuses_the_server_in_preflight_with_nothing_changed():
    with server(LEGACY) as rt:
        built = next(iter(rt.fleet.instances.values()))
        run, result = migrate(rt)
        assert result["status"] == "FAILED" and result["error"] == "CompatibilityBlocked"
        for blocker in ("amazon-linux-extras", "python2: python2", "compat-packages: compat-openssl10",
                        "openssl10: compat-openssl10", "imds-v1:"):
            assert blocker in result["cause"]
        assert "SnapshotVolumes" not in entered(rt, run)
        assert replacements(rt, built.instance_id) == []
        assert rt.client("ec2").describe_snapshots(OwnerIds=["self"], Filters=[
            {"Name": "volume-id", "Values": list(built.volume_ids.values())}])["Snapshots"] == []
        checked = trail(rt, run)["compatibility-checked"]
        assert checked["scanned"] and {b.split(":")[0] for b in checked["blockers"]} == {
            "amazon-linux-extras", "python2", "compat-packages", "openssl10", "imds-v1"}


def test_a_clean_host_migrates_with_parity_checked():
    with server(CLEAN) as rt:
        run, result = migrate(rt)
        assert result["status"] == "SUCCEEDED", result
        records = trail(rt, run)
        assert records["compatibility-checked"]["blockers"] == []
        assert records["parity-checked"]["checked"] and records["parity-checked"]["missing"] == []
        assert entered(rt, run).index("CheckParity") < entered(rt, run).index("ApproveCutover")


def test_a_missing_port_after_launch_rolls_back_naming_it():
    """`compatibility: warn` lets an extras-installed nginx through; on AL2023 it does not come up,
    so the replacement lacks its service and ports: ParityMissing, and the ordinary rollback."""
    with server(EXTRAS_NGINX) as rt:
        built = next(iter(rt.fleet.instances.values()))
        run, result = migrate(rt, compatibility="warn")
        assert result["status"] == "FAILED", result
        assert "RolledBack" in entered(rt, run) and "ApproveCutover" not in entered(rt, run)
        cause = result["cause"]
        assert result["error"] == "ParityMissing" and "port 80" in cause and "port 443" in cause and "service nginx" in cause
        old = rt.client("ec2").describe_instances(InstanceIds=[built.instance_id])["Reservations"][0]["Instances"][0]
        assert old["State"]["Name"] == "running"
        assert all(r["State"]["Name"] in ("terminated", "shutting-down")
                   for r in replacements(rt, built.instance_id))


def test_compatibility_warn_proceeds_and_the_blockers_reach_the_approval_evidence():
    with server(EXTRAS_NGINX, input={"compatibility": "warn",
                                     "parity_accept": ["service nginx", "port 80", "port 443"]}) as rt:
        run, result = migrate(rt)
        assert result["status"] == "SUCCEEDED", result
        evidence = approval_evidence(rt, run)
        assert any(b.startswith("amazon-linux-extras") for b in evidence["compatibility_blockers_accepted"])
        assert any(w.startswith("extras-package") for w in evidence["compatibility_warnings"])
        assert sorted(evidence["parity"]["accepted"]) == ["port 443", "port 80", "service nginx"]


def test_parity_accept_lets_an_accepted_difference_through_and_a_warning_is_caught_by_parity():
    """cron is a warning (it proceeds); the AL2023 replacement has no cronie unless installed: parity
    catches the lost crond and crontab entry, unless they are accepted."""
    with server(CRON) as rt:
        run, result = migrate(rt)
        assert result["error"] == "ParityMissing" and "RolledBack" in entered(rt, run)
        assert "service crond" in result["cause"] and "cron */5" in result["cause"]
        assert any(w.startswith("cron:") for w in trail(rt, run)["compatibility-checked"]["warnings"])
    with server(CRON) as rt:
        run, result = migrate(rt, parity_accept=["service crond", "cron */5 * * * * /opt/app/rotate.sh"])
        assert result["status"] == "SUCCEEDED", result


def test_a_group_with_a_blocker_is_refused_before_any_launch_template_version():
    with group(LEGACY) as rt:
        run, result = roll_out(rt)
        assert result["status"] == "FAILED" and result["error"] == "CompatibilityBlocked"
        assert "CreateLaunchTemplateVersion" not in entered(rt, run)
        versions = rt.client("ec2").describe_launch_template_versions(
            LaunchTemplateId=rt.fleet.groups["web"].template_id)["LaunchTemplateVersions"]
        assert len(versions) == 1


def test_a_group_canary_missing_a_port_rolls_back_and_a_clean_group_migrates():
    with group(EXTRAS_NGINX, input={"compatibility": "warn"}) as rt:
        run, result = roll_out(rt)
        assert result["error"] == "ParityMissing" and "RolledBack" in entered(rt, run)
        assert "port 80" in result["cause"]
        assert "ApproveRefresh" not in entered(rt, run)
    with group(CLEAN) as rt:
        run, result = roll_out(rt)
        assert result["status"] == "SUCCEEDED", result
        assert trail(rt, run)["parity-checked"]["missing"] == []


def test_a_host_ssm_cannot_reach_is_still_checked_statically():
    """SSM answers InvalidInstanceId for an unmanaged instance: the user data is checked anyway."""
    with server({**LEGACY, "ssm": False}) as rt:
        run, result = migrate(rt)
        assert result["error"] == "CompatibilityBlocked"
        checked = trail(rt, run)["compatibility-checked"]
        assert not checked["scanned"]
        assert [b.split(":")[0] for b in checked["blockers"]] == ["amazon-linux-extras", "imds-v1"]


def test_the_summary_reports_compatibility_and_parity_per_target():
    with server(CRON) as rt:
        run, result = migrate(rt)
        target = summarize(rt, {run.execution_arn: result}, 0)["targets"][0]
        assert target["compatibility"]["blockers"] == []
        assert [w.split(":")[0] for w in target["compatibility"]["warnings"]] == ["cron"]
        assert target["parity"]["missing"] == ["service crond", "cron */5 * * * * /opt/app/rotate.sh"]


def nodegroup(user_data: str, **spec):
    return running([], eks_clusters=[{"name": "prod", "nodegroups": [
        {"name": "ng", "size": 2, "launch_template": "custom", "user_data": user_data, **spec}],
        "workloads": [{"name": "api", "replicas": 2, "service_account": "api", "aws_identity": "irsa"}]}])


def migrate_nodegroup(rt: LocalRuntime, **overrides):
    from migrator.workstation.local.demo import nodegroup_input
    from migrator.workflows import EKS_NODEGROUP

    built = rt.fleet.nodegroups["eks/prod/ng"]
    run = rt.start_execution(EKS_NODEGROUP, "eks/prod/ng", {**nodegroup_input(built, rt.scenario), **overrides})
    return run, rt.wait([run], timeout=300)[run.execution_arn]


def test_eks_user_data_beyond_bootstrap_is_carried_into_the_nodeadm_document_and_scanned():
    import base64

    from migrator.eks.userdata import parse_node_config, shell_scripts

    agent = "yum install -y amazon-cloudwatch-agent\nsysctl -w vm.max_map_count=262144\n"
    with nodegroup(agent) as rt:
        run, result = migrate_nodegroup(rt)
        assert result["status"] == "SUCCEEDED", result
        new = rt.client("eks").describe_nodegroup(clusterName="prod", nodegroupName="ng-al2023")["nodegroup"]
        data = rt.client("ec2").describe_launch_template_versions(LaunchTemplateId=new["launchTemplate"]["id"])[
            "LaunchTemplateVersions"][0]["LaunchTemplateData"]
        document = base64.b64decode(data["UserData"]).decode()
        assert parse_node_config(document)["kind"] == "NodeConfig"
        [script] = shell_scripts(document)
        assert "sysctl -w vm.max_map_count=262144" in script and "amazon-cloudwatch-agent" in script
        assert "bootstrap.sh" not in script
        checked = trail(rt, run)["compatibility-checked"]
        assert checked["blockers"] == [] and [w.split(":")[0] for w in checked["warnings"]] == ["yum-install"]
        evidence = approval_evidence(rt, run)
        assert evidence["carried_user_data"] == [script]
        assert evidence["compatibility"]["warnings"] == checked["warnings"]


def test_eks_carried_user_data_with_a_blocker_refuses_the_node_group_before_any_change():
    with nodegroup("amazon-linux-extras install -y epel\n") as rt:
        run, result = migrate_nodegroup(rt)
        assert result["error"] == "CompatibilityBlocked" and "amazon-linux-extras" in result["cause"]
        assert set(rt.client("eks").list_nodegroups(clusterName="prod")["nodegroups"]) == {"ng"}
    with nodegroup("amazon-linux-extras install -y epel\n") as rt:  # and with the default template it is refused
        run, result = migrate_nodegroup(rt, launch_template="none", compatibility="warn")
        assert result["error"] == "PreflightFailed" and "user_data" in result["cause"]


def test_eks_pods_without_irsa_or_pod_identity_are_warnings_in_the_evidence():
    workloads = [{"name": "api", "replicas": 2},  # the default service account: the node role's credentials
                 {"name": "s3-sync", "replicas": 1, "service_account": "s3-sync", "aws_identity": "irsa"},
                 {"name": "queue", "replicas": 1, "service_account": "queue", "aws_identity": "pod_identity"},
                 {"name": "agent", "daemonset": True, "service_account": "agent"}]
    with running([], eks_clusters=[{"name": "prod", "nodegroups": [{"name": "ng", "size": 2}],
                                    "workloads": workloads}]) as rt:
        run, result = migrate_nodegroup(rt)
        assert result["status"] == "SUCCEEDED", result
        warnings = trail(rt, run)["compatibility-checked"]["warnings"]
        assert [w.split(" (")[0] for w in warnings] == ["pod-credentials: default/agent",
                                                        "pod-credentials: default/default"]
        assert "lose the node role's credentials" in warnings[0]
        assert approval_evidence(rt, run)["compatibility"]["warnings"] == warnings
    with running([], eks_clusters=[{"name": "prod", "nodegroups": [{"name": "ng", "size": 2, "launch_template": "custom"}],
                                    "workloads": workloads}]) as rt:
        run, result = migrate_nodegroup(rt, imds_hop_limit=2)  # pods still reach IMDS: nothing to warn of
        assert result["status"] == "SUCCEEDED" and "compatibility-checked" not in trail(rt, run)
