"""The simulated hosts: what runs on an AL2 instance (the scenario's `host:`), what an
AL2023 replacement running the same user data comes up with, and the output the
scan's real commands (yumdb, yum, systemctl, ss, crontab, findmnt, ls) would print.

This models hosts; it never decides findings. The project's scan
(migrator/compat) must find every problem from this output on its own.
"""

from __future__ import annotations

import re

from migrator.workstation.local.scenario import HostSpec

# What a package's service listens on, as the stock packages configure it.
SERVICE_PORTS = {"nginx": [80, 443], "httpd": [80, 443], "sshd": [22], "mariadb": [3306], "mysqld": [3306],
                 "postgresql": [5432], "redis": [6379], "memcached": [11211], "tomcat": [8080]}
# What AL2 packages are called on AL2023, where they exist at all.
NOT_ON_AL2023 = re.compile(r"^(python2|python27|python2-.+|compat-.+|openssl10.*)$")
BASE_SERVICES = ["amazon-ssm-agent", "sshd"]


def _extras_topics(user_data: str) -> list[str]:
    """The topics an `amazon-linux-extras install` line installs (nginx1, php8.2, docker)."""
    topics = []
    for line in user_data.splitlines():
        found = re.search(r"\bamazon-linux-extras\s+install\s+(.*)", line)
        if found:
            topics += [t for t in found[1].split() if not t.startswith("-")]
    return topics


def _package_of_topic(topic: str) -> str:
    """`nginx1` -> nginx, `php8.2` -> php, `postgresql14` -> postgresql: the package an extras topic installs."""
    return re.sub(r"[\d.]+$", "", topic) or topic


def _service_of(package: str) -> str:
    return {"cronie": "crond", "mariadb-server": "mariadb", "postgresql-server": "postgresql"}.get(package, package)


class SimulatedHost:
    def __init__(self, spec: HostSpec):
        self.spec = spec

    def al2_view(self) -> dict:
        """The AL2 host as the scenario describes it."""
        extras = {_package_of_topic(t): t for t in _extras_topics(self.spec.user_data)}
        packages = [(name, f"amzn2extra-{extras[name]}" if name in extras else "amzn2-core")
                    for name in self.spec.packages]
        services = sorted(set(BASE_SERVICES) | set(self.spec.services))
        ports = sorted({22} | set(self.spec.ports))
        return {"packages": packages, "services": services, "ports": ports, "cron": list(self.spec.cron)}

    def al2023_view(self) -> dict:
        """The same user data on AL2023: `amazon-linux-extras` is not there, so what it
        installed is missing (unless a dnf/yum line installs it); AL2 packages AL2023
        does not have are missing; cron is not installed by default; what is missing
        does not run and does not listen."""
        user_data = self.spec.user_data
        installed_by_dnf = {word for line in user_data.splitlines()
                            if re.search(r"\b(dnf|yum)\s+(-y\s+)?install\b", line) for word in line.split()}
        extras = {_package_of_topic(t) for t in _extras_topics(user_data)}
        missing = {p for p in self.spec.packages
                   if NOT_ON_AL2023.match(p) or (p in extras and p not in installed_by_dnf)}
        if "cronie" not in installed_by_dnf:
            missing.add("cronie")
        lost_services = {_service_of(p) for p in missing}
        services = sorted(s for s in set(BASE_SERVICES) | set(self.spec.services) if s not in lost_services)
        lost_ports = {port for service in lost_services for port in SERVICE_PORTS.get(service, [])}
        ports = sorted(p for p in {22} | set(self.spec.ports) if p not in lost_ports)
        cron = list(self.spec.cron) if "crond" in services else []
        return {"packages": [(p, "amazonlinux") for p in self.spec.packages if p not in missing],
                "services": services, "ports": ports, "cron": cron}


def scan_output(view: dict, mounts: list[str], al2: bool = True) -> str:
    """What the scan script prints on a host with this view, command by command."""
    lines = ["### userinstalled", "Loaded plugins: extras_suggestions, langpacks, priorities, update-motd"]
    for name, _ in view["packages"]:
        lines += [f"{name}-1.0-1.amzn2.x86_64", "     reason = user", ""]
    lines.append("### installed")
    lines += [f"{name}.x86_64    1.0-1.amzn2    @{repo}" for name, repo in view["packages"]]
    lines.append("### enabled")
    lines += [f"{service}.service    enabled" for service in view["services"]]
    lines.append("### active")
    lines += [f"{service}.service loaded active running {service}" for service in view["services"]]
    lines.append("### listening")
    lines += [f"LISTEN 0      128          0.0.0.0:{port}        0.0.0.0:*" for port in view["ports"]]
    lines.append("### cron")
    lines += view["cron"]
    lines.append("### mounts")
    lines += [f"{mount} xfs" for mount in mounts] + ["/proc proc", "/sys sysfs"]
    lines.append("### paths")  # an AL2 AMI's own; AL2023 has neither directory
    lines += ["/etc/rc.d/init.d/functions", "/etc/sysconfig/network-scripts/ifcfg-eth0"] if al2 else []
    lines.append("### end")
    return "\n".join(lines) + "\n"
