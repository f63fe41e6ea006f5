"""The AL2 -> AL2023 rules on real command output (fixtures/al2-scan.txt is what the
scan script prints on an AL2 host: yumdb, yum list installed, systemctl, ss, crontab,
findmnt, ls) and on real user data."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrator.compat.host import HostFacts, parse_scan
from migrator.compat.rules import evaluate, load_rules, missing_on_replacement

SCAN = (Path(__file__).parent / "fixtures/al2-scan.txt").read_text()


def test_the_scan_output_reads_as_the_host_s_facts():
    facts = parse_scan(SCAN)
    assert [(p.name, p.repo) for p in facts.user_packages] == [
        ("compat-openssl10", "amzn2-core"), ("nginx", "amzn2extra-nginx1"), ("python2-boto", "amzn2-core")]
    assert facts.enabled == ["amazon-ssm-agent", "crond", "nginx", "sshd"]
    assert facts.ports == [22, 80, 443]
    assert facts.cron == ["*/5 * * * * /opt/app/rotate.sh", "0 3 * * * root python2 /opt/app/report.py"]
    assert facts.mounts == ["/", "/data"]  # not /proc, /sys or cgroup mounts
    assert facts.paths == ["/etc/rc.d/init.d/legacy-agent", "/etc/sysconfig/network-scripts/ifcfg-eth1"]


def test_a_scan_cut_short_is_an_error_not_a_clean_host():
    with pytest.raises(ValueError, match="did not complete"):
        parse_scan(SCAN.split("### mounts")[0])


def _rules_found(facts: HostFacts) -> dict[str, set[str]]:
    findings = evaluate(facts)
    return {"blocker": {f.rule for f in findings.blockers}, "warning": {f.rule for f in findings.warnings}}


def test_each_rule_fires_on_what_it_describes_and_names_it():
    facts = parse_scan(SCAN).model_copy(update={
        "user_data": "#!/bin/bash\namazon-linux-extras install -y docker nginx1\n"
                     "yum install -y httpd\nchkconfig legacy-agent on\n"
                     "curl -s http://169.254.169.254/latest/meta-data/instance-id\n"
                     "echo 'PubkeyAcceptedKeyTypes +ssh-rsa' >> /etc/ssh/sshd_config\n"
                     "pip2 install requests\n",
        "imds_v1_calls": 12})
    found = _rules_found(facts)
    assert found["blocker"] == {"amazon-linux-extras", "docker-from-extras", "python2", "python2-command",
                                "compat-packages", "openssl10", "imds-v1", "imds-v1-command"}
    assert found["warning"] == {"extras-package", "cron", "network-scripts", "sysv-init", "sysv-command",
                                "ssh-rsa-sha1", "yum-install"}
    names = evaluate(facts).names("blocker")
    assert "python2: python2-boto" in names and "compat-packages: compat-openssl10" in names


def test_a_clean_host_has_no_finding_and_tokens_keep_imds_quiet():
    facts = HostFacts(enabled=["sshd"], ports=[22], user_data=(
        "#!/bin/bash\nTOKEN=$(curl -sX PUT http://169.254.169.254/latest/api/token "
        "-H 'X-aws-ec2-metadata-token-ttl-seconds: 60')\n"
        "curl -s -H \"X-aws-ec2-metadata-token: $TOKEN\" http://169.254.169.254/latest/meta-data/instance-id\n"),
        imds_v1_calls=0)
    assert evaluate(facts).blockers == [] and evaluate(facts).warnings == []


def test_cgroup_v1_paths_in_scripts_are_warnings():
    facts = HostFacts(user_data="#!/bin/bash\ncat /sys/fs/cgroup/memory/memory.limit_in_bytes\n")
    assert _rules_found(facts)["warning"] == {"cgroup-v1"}


def test_every_rule_names_an_aws_source():
    assert all(rule.source.startswith("https://docs.aws.amazon.com/") for rule in load_rules())
    assert len({rule.id for rule in load_rules()}) == len(load_rules())


def test_parity_names_what_the_replacement_lacks_and_honours_accepted_differences():
    old = parse_scan(SCAN)
    new = HostFacts(enabled=["amazon-ssm-agent", "sshd", "rotate.timer"], active=["amazon-ssm-agent", "sshd"],
                    ports=[22, 443], mounts=["/", "/data"])
    assert missing_on_replacement(old, new) == [
        "service crond", "service nginx", "port 80", "cron 0 3 * * * root python2 /opt/app/report.py"]
    assert missing_on_replacement(old, new, accepted=["service crond", "cron 0 3 * * * root python2 "
                                                                       "/opt/app/report.py"]) == [
        "service nginx", "port 80"]
