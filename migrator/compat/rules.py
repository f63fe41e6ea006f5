"""The AL2 -> AL2023 rules (rules.yaml, each with its AWS source) and what they find
on a host or in a user-data script."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field

from migrator.compat.host import HostFacts

RULES_FILE = Path(__file__).with_name("rules.yaml")
Severity = Literal["blocker", "warning"]


class Match(BaseModel, extra="forbid"):
    package: str | None = None
    repo: str | None = None
    command: str | None = None
    path: str | None = None
    cron: bool = False
    imds_v1_calls: bool = False


class Rule(BaseModel, extra="forbid"):
    id: str
    match: Match
    severity: Severity
    finding: str
    fix: str
    source: str = Field(pattern=r"^https://docs\.aws\.amazon\.com/")


class Finding(BaseModel):
    rule: str
    severity: Severity
    subject: str  # what on the host matched
    finding: str
    fix: str
    source: str

    @property
    def name(self) -> str:
        return f"{self.rule}: {self.subject}"


class Findings(BaseModel):
    blockers: list[Finding] = Field(default_factory=list)
    warnings: list[Finding] = Field(default_factory=list)

    def names(self, severity: Severity) -> list[str]:
        return [f.name for f in (self.blockers if severity == "blocker" else self.warnings)]


@cache
def load_rules(path: Path = RULES_FILE) -> tuple[Rule, ...]:
    return tuple(Rule.model_validate(rule) for rule in yaml.safe_load(path.read_text())["rules"])


def script_lines(text: str) -> list[str]:
    """The command lines of a shell script (comments and blanks left out)."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


PATH_IN_LINE = re.compile(r"(/(?:etc|sys|usr|opt|var|srv|home)/[\w./,@+-]*)")


def _subjects(rule: Rule, facts: HostFacts) -> list[str]:
    m = rule.match
    lines = script_lines(facts.user_data) + facts.cron
    if m.package:
        return [p.name for p in facts.user_packages if re.search(m.package, p.name)]
    if m.repo:
        return [f"{p.name} from {p.repo}" for p in facts.user_packages if p.repo and re.search(m.repo, p.repo)]
    if m.command:
        return [line[:120] for line in lines if re.search(m.command, line)]
    if m.path:
        named = {path for line in lines for path in PATH_IN_LINE.findall(line)}
        return sorted(p for p in set(facts.paths) | named if re.search(m.path, p))
    if m.cron:
        return [f"{len(facts.cron)} crontab entries"] if facts.cron else []
    if m.imds_v1_calls:
        calls = facts.imds_v1_calls or 0
        return [f"{calls:g} calls without a token (MetadataNoToken)"] if calls > 0 else []
    return []


def evaluate(facts: HostFacts, rules: tuple[Rule, ...] | None = None) -> Findings:
    findings = Findings()
    for rule in rules or load_rules():
        for subject in _subjects(rule, facts):
            finding = Finding(rule=rule.id, severity=rule.severity, subject=subject, finding=rule.finding,
                              fix=rule.fix, source=rule.source)
            (findings.blockers if rule.severity == "blocker" else findings.warnings).append(finding)
    return findings


def _script_stems(line: str) -> set[str]:
    """`*/5 * * * * /opt/app/rotate.sh` -> {"rotate"}: the name a systemd timer replacing it would have."""
    return {Path(path).stem for path in PATH_IN_LINE.findall(line)}


def missing_on_replacement(old: HostFacts, new: HostFacts, accepted: list[str] = ()) -> list[str]:
    """What the old host had that the new one lacks: services enabled or active, listening
    ports, crontab entries (or a systemd timer of the same name), mounted filesystems.
    `accepted` lists differences the operator accepts, by the same names."""
    timers = {s.removesuffix(".timer") for s in new.enabled + new.active if s.endswith(".timer")}
    missing = [f"service {s}" for s in sorted(set(old.enabled) | set(old.active))
               if s not in set(new.enabled) | set(new.active)]
    missing += [f"port {p}" for p in old.ports if p not in new.ports]
    missing += [f"cron {line}" for line in old.cron if line not in new.cron and not timers & _script_stems(line)]
    missing += [f"mount {m}" for m in old.mounts if m not in new.mounts]
    return [item for item in missing if item not in set(accepted)]
