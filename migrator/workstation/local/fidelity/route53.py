"""Route 53: a record change is a cutover call, with the cutover's faults."""

from __future__ import annotations

from dataclasses import dataclass

from moto.ec2.models import ec2_backends
from moto.route53 import models as route53_models

from migrator.workstation.local.fidelity.context import Context
from migrator.workstation.local.fidelity.ec2 import EC2


@dataclass
class Route53:
    ctx: Context
    ec2: EC2

    def install(self) -> None:
        ec2 = self.ec2
        original_change = route53_models.Route53Backend.change_resource_record_sets

        # Faults at the cutover, as for an Elastic IP: the call fails, or the
        # instance the record now names turns unhealthy / the alarm fires.
        def change_resource_record_sets(backend, zone_id, change_list):
            ec2.accrue_writes()
            instances = instances_by_ip(change_list)
            for instance in instances:
                ec2.before_cutover_call(instance)
            result = original_change(backend, zone_id, change_list)
            for instance in instances:
                ec2.after_cutover_call(instance)
            return result

        self.ctx.patches.patch(route53_models.Route53Backend, "change_resource_record_sets",
                               change_resource_record_sets)


def instances_by_ip(change_list) -> list:
    ips = {record for change in change_list for record in _record_values(change)}
    found = []
    for region_backends in ec2_backends.values():
        for backend in region_backends.values():
            for instance in backend.all_instances():
                if ips & {instance.private_ip, instance.public_ip}:
                    found.append(instance)
    return found


def _record_values(change) -> list[str]:
    record_set = change.get("ResourceRecordSet") or {}
    records = record_set.get("ResourceRecords") or []
    return [r.get("Value") if isinstance(r, dict) else r for r in records]
