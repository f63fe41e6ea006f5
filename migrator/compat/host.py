"""What runs on a host, read without changing it: the scan script run through SSM
Run Command (AWS-RunShellScript), and the parser of its output."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

SCAN_MARKER = "# al2023-migrate host scan v1 (read-only)"
# Each section is one well-known command, so the parser reads real output, not ours.
SCAN_SCRIPT = "\n".join([
    "#!/bin/bash",
    SCAN_MARKER,
    "echo '### userinstalled'; yumdb search reason user 2>/dev/null",
    "echo '### installed'; yum list installed -q 2>/dev/null",
    "echo '### enabled'; systemctl list-unit-files --type=service --state=enabled --no-legend --no-pager",
    "echo '### active'; systemctl list-units --type=service --state=active --no-legend --no-pager --plain",
    "echo '### listening'; ss -Hltn",
    "echo '### cron'; for u in $(cut -d: -f1 /etc/passwd); do crontab -l -u \"$u\" 2>/dev/null; done;"
    " cat /etc/cron.d/* 2>/dev/null",
    "echo '### mounts'; findmnt -rn -o TARGET,FSTYPE",
    "echo '### paths'; ls -1d /etc/sysconfig/network-scripts/ifcfg-* /etc/rc.d/init.d/* 2>/dev/null",
    "echo '### end'",
])
# What every AL2 AMI has: not a finding.
BASE_PATHS = {"/etc/sysconfig/network-scripts/ifcfg-lo", "/etc/sysconfig/network-scripts/ifcfg-eth0",
              "/etc/rc.d/init.d/functions", "/etc/rc.d/init.d/netconsole", "/etc/rc.d/init.d/network",
              "/etc/rc.d/init.d/README"}
# Filesystems of the kernel and systemd, not the workload's.
PSEUDO_FS = {"proc", "sysfs", "devtmpfs", "tmpfs", "securityfs", "cgroup", "cgroup2", "pstore", "bpf", "autofs",
             "debugfs", "tracefs", "hugetlbfs", "mqueue", "configfs", "fusectl", "devpts", "rpc_pipefs",
             "binfmt_misc", "selinuxfs", "efivarfs"}


class Package(BaseModel):
    name: str
    repo: str = ""


class HostFacts(BaseModel):
    user_packages: list[Package] = Field(default_factory=list)  # installed by someone, with their repository
    enabled: list[str] = Field(default_factory=list)  # systemd services
    active: list[str] = Field(default_factory=list)
    ports: list[int] = Field(default_factory=list)  # listening TCP
    cron: list[str] = Field(default_factory=list)
    mounts: list[str] = Field(default_factory=list)  # mount points of real filesystems
    paths: list[str] = Field(default_factory=list)
    user_data: str = ""
    imds_v1_calls: float | None = None  # MetadataNoToken over the last day; None: not known


def _sections(output: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = None
    for line in output.splitlines():
        if line.startswith("### "):
            current = line[4:].strip()
            sections[current] = []
        elif current and line.strip():
            sections[current].append(line.rstrip())
    return sections


def _package_name(nevra: str) -> str:
    """`nginx-1.20.1-1.amzn2.0.2.x86_64` -> `nginx` (name-version-release.arch)."""
    return nevra.rsplit("-", 2)[0] if nevra.count("-") >= 2 else nevra


def parse_scan(output: str) -> HostFacts:
    """The facts in the scan script's output. Raises ValueError if it is not complete
    (a scan cut short must not read as a clean host)."""
    sections = _sections(output)
    if "end" not in sections:
        raise ValueError("the host scan did not complete (no end marker)")
    repos = {}
    for line in sections.get("installed", []):  # `nginx.x86_64  1:1.20.1-1.amzn2.0.2  @amzn2extra-nginx1`
        fields = line.split()
        if len(fields) >= 3 and "." in fields[0]:
            repos[fields[0].rsplit(".", 1)[0]] = fields[2].lstrip("@")
    user = []
    for line in sections.get("userinstalled", []):  # a NEVRA line, then `     reason = user`
        if line[:1].isspace() or line.startswith("Loaded plugins") or "=" in line:
            continue
        name = _package_name(line.strip())
        user.append(Package(name=name, repo=repos.get(name, "")))
    ports = set()
    for line in sections.get("listening", []):  # `LISTEN 0 511 0.0.0.0:80 0.0.0.0:*`
        fields = line.split()
        if len(fields) >= 4 and fields[3].rsplit(":", 1)[-1].isdigit():
            ports.add(int(fields[3].rsplit(":", 1)[-1]))
    mounts = [f.split()[0] for f in sections.get("mounts", []) if len(f.split()) >= 2 and f.split()[1] not in PSEUDO_FS]
    return HostFacts(
        user_packages=user,
        enabled=sorted({line.split()[0].removesuffix(".service") for line in sections.get("enabled", [])}),
        active=sorted({line.split()[0].removesuffix(".service") for line in sections.get("active", [])}),
        ports=sorted(ports),
        cron=[line for line in sections.get("cron", []) if not line.lstrip().startswith("#")
              and not re.match(r"^\s*[A-Z_]+=", line)],
        mounts=sorted(set(mounts)),
        paths=sorted(p for p in sections.get("paths", []) if p not in BASE_PATHS),
    )
