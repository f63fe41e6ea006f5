"""The standalone EC2 migration, one function per state of standalone_ec2.asl.json.

Build the AL2023 instance beside the old one, validate it, move the Elastic IP
or DNS record, keep the old one stopped for rollback, decommission last. Every
function reads the current state before it changes anything, so a retry of the
same input changes nothing twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from botocore.exceptions import ClientError

from migrator import clock
from migrator.ami import OsFamily, describe_images, os_family, resolve_al2023_ami
from migrator.aws import client_token, error_code, execution_name, is_throttling
from migrator.config import EXECUTION_TAG, EXPIRES_TAG, PURPOSE_TAG, SOURCE_INSTANCE_TAG
from migrator.errors import (
    CutoverFailed,
    DeadlineExceeded,
    InstanceUnhealthy,
    NotReadyYet,
    PreflightFailed,
    QuiesceFailed,
    RollbackFailed,
    SnapshotFailed,
    SyncFailed,
)
from migrator.failures import CaughtError, explain_failure
from migrator.health import alarms_in_alarm
from migrator.standalone.models import MigrationInput
from migrator.standalone.results import (
    BlockDevice,
    CutoverDone,
    Decommissioned,
    DnsRecord,
    ElasticIp,
    FinalSync,
    Health,
    KeptOld,
    HealthCommand,
    Preflight,
    Quiesce,
    Replacement,
    Rollback,
    Snapshot,
    Snapshots,
    SnapshotsDone,
    StatusChecks,
)

FAILED_COMMAND = {"Cancelled", "TimedOut", "Failed", "Cancelling"}
# The PURPOSE_TAG of a run's snapshots: taken before any change, or of the quiesced data at the cutover.
BEFORE_CHANGE, FINAL_SYNC = "before-change", "final-sync"


@dataclass(frozen=True)
class Clients:
    ec2: object
    ssm: object
    route53: object
    cloudwatch: object


def describe_instance(ec2, instance_id: str) -> dict | None:
    try:
        reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    except ClientError as error:
        if error_code(error) == "InvalidInstanceID.NotFound":
            return None
        raise
    found = [i for r in reservations for i in r["Instances"]]
    return found[0] if found else None


def _tags(resource: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


# --- pre-flight ---------------------------------------------------------------


def preflight(c: Clients, request: MigrationInput, tag_key: str, tag_value: str) -> Preflight:
    instance = describe_instance(c.ec2, request.instance_id)
    if instance is None:
        raise PreflightFailed(f"instance {request.instance_id} does not exist")
    tags = _tags(instance)
    name = tags.get("Name") or request.instance_id
    iid = request.instance_id
    if tags.get(tag_key) != tag_value:
        raise PreflightFailed(f"instance {iid} is not tagged {tag_key}={tag_value}; the migration may only change tagged instances")
    image = describe_images(c.ec2, [instance["ImageId"]]).get(instance["ImageId"], {})
    family = os_family(image)
    record = _record_value(c.route53, request) if request.cutover.mode == "dns" else None
    base = {"target": f"standalone/{name}", "name": name, "instance_id": iid, "image_id": instance["ImageId"]}
    if family is OsFamily.AL2023:
        return Preflight(**base, already_migrated=True)
    if family is not OsFamily.AL2:
        raise PreflightFailed(f"instance {iid} runs {image.get('Name', 'an unknown image')}, not Amazon Linux 2")
    if instance.get("RootDeviceType") != "ebs":
        raise PreflightFailed(f"instance {iid} is instance-store backed; only EBS-backed instances are migrated")
    if instance["State"]["Name"] != "running":
        raise PreflightFailed(f"instance {iid} is {instance['State']['Name']}, not running")

    address = _elastic_ip(c.ec2, iid)
    if request.cutover.mode == "elastic_ip" and address is None:
        raise PreflightFailed(f"cutover mode elastic_ip, but instance {iid} has no Elastic IP")
    if record is not None:
        ips = {instance.get("PrivateIpAddress"), instance.get("PublicIpAddress")}
        if not set(record.values) & ips:
            raise PreflightFailed(f"DNS record {record.name} points at {record.values}, not at instance {iid}")
    volumes = _block_devices(c.ec2, instance)
    if record is not None and instance.get("PublicIpAddress") in record.values:
        record.public = True
    return Preflight(
        **base,
        already_migrated=False,
        subnet_id=instance["SubnetId"],
        availability_zone=instance["Placement"]["AvailabilityZone"],
        security_group_ids=sorted(g["GroupId"] for g in instance.get("SecurityGroups", [])),
        instance_profile_arn=(instance.get("IamInstanceProfile") or {}).get("Arn"),
        instance_type=instance["InstanceType"],
        key_name=instance.get("KeyName"),
        tags={k: v for k, v in tags.items() if not k.startswith("aws:")},
        root_device_name=instance["RootDeviceName"],
        block_devices=volumes,
        elastic_ip=address,
        dns=record,
        private_ip=instance.get("PrivateIpAddress"),
        public_ip=None if address else instance.get("PublicIpAddress"),
        source_dest_check=instance.get("SourceDestCheck", True),
    )


def _elastic_ip(ec2, instance_id: str) -> ElasticIp | None:
    addresses = ec2.describe_addresses(Filters=[{"Name": "instance-id", "Values": [instance_id]}])["Addresses"]
    if not addresses:
        return None
    address = addresses[0]
    return ElasticIp(allocation_id=address["AllocationId"], public_ip=address["PublicIp"])


def _record_value(route53, request: MigrationInput) -> DnsRecord:
    zone, name = request.cutover.hosted_zone_id, request.cutover.record_name
    wanted = name.rstrip(".") + "."
    found = route53.list_resource_record_sets(HostedZoneId=zone, StartRecordName=wanted, StartRecordType="A",
                                              MaxItems="1")["ResourceRecordSets"]
    if not found or found[0]["Name"] != wanted or found[0]["Type"] != "A":
        raise PreflightFailed(f"no A record {wanted} in hosted zone {zone}")
    return DnsRecord(zone=zone, name=wanted, ttl=found[0].get("TTL", 60),
                     values=[r["Value"] for r in found[0]["ResourceRecords"]])


def _block_devices(ec2, instance: dict) -> list[BlockDevice]:
    by_volume = {m["Ebs"]["VolumeId"]: m for m in instance.get("BlockDeviceMappings", []) if "Ebs" in m}
    if not by_volume:
        return []
    devices = []
    for volume in ec2.describe_volumes(VolumeIds=sorted(by_volume))["Volumes"]:
        mapping = by_volume[volume["VolumeId"]]
        devices.append(BlockDevice(
            device_name=mapping["DeviceName"],
            volume_id=volume["VolumeId"],
            size=volume["Size"],
            type=volume.get("VolumeType", "gp3"),
            iops=volume.get("Iops"),
            throughput=volume.get("Throughput"),
            encrypted=volume.get("Encrypted", False),
            kms_key_id=volume.get("KmsKeyId"),
            delete_on_termination=mapping["Ebs"].get("DeleteOnTermination", True),
            is_root=mapping["DeviceName"] == instance["RootDeviceName"],
        ))
    return sorted(devices, key=lambda d: d.device_name)


# --- snapshots ---------------------------------------------------------------


def snapshot(c: Clients, pre: Preflight, execution: str) -> Snapshots:
    """One crash-consistent multi-volume snapshot set, found again on retry by its tag."""
    existing = _snapshots_of(c.ec2, execution, pre.instance_id, BEFORE_CHANGE)
    if not existing:
        created = c.ec2.create_snapshots(
            InstanceSpecification={"InstanceId": pre.instance_id, "ExcludeBootVolume": False},
            Description=f"al2023-migration of {pre.instance_id} ({pre.name})",
            CopyTagsFromSource="volume",
            TagSpecifications=[{"ResourceType": "snapshot", "Tags": [
                {"Key": k, "Value": v}
                for k, v in {**identity_tags(execution, pre.instance_id), PURPOSE_TAG: BEFORE_CHANGE}.items()]}],
        )["Snapshots"]
        existing = {s["SnapshotId"]: s["VolumeId"] for s in created}
    devices = {d.volume_id: d.device_name for d in pre.block_devices}
    return Snapshots(
        started_at=clock.now(),
        snapshots=[Snapshot(snapshot_id=sid, volume_id=vid, device_name=devices.get(vid))
                   for sid, vid in sorted(existing.items())],
    )


def identity_tags(execution: str, source_instance: str) -> dict[str, str]:
    """What every snapshot and replacement of a run carries: the full execution ARN (two state
    machines may each run an execution of the same name) and the instance it migrates."""
    return {EXECUTION_TAG: execution, SOURCE_INSTANCE_TAG: source_instance}


def identity_filters(execution: str, source_instance: str) -> list[dict]:
    """Every lookup of what a run created matches both tags of `identity_tags`."""
    return [{"Name": f"tag:{k}", "Values": [v]} for k, v in identity_tags(execution, source_instance).items()]


def _snapshots_of(ec2, execution: str, source_instance: str, purpose: str) -> dict[str, str]:
    found = {}
    paginator = ec2.get_paginator("describe_snapshots")
    filters = identity_filters(execution, source_instance)
    filters.append({"Name": f"tag:{PURPOSE_TAG}", "Values": [purpose]})
    for page in paginator.paginate(OwnerIds=["self"], Filters=filters):
        found |= {s["SnapshotId"]: s["VolumeId"] for s in page["Snapshots"]}
    return found


def check_snapshots(c: Clients, request: MigrationInput, snapshots: Snapshots) -> SnapshotsDone:
    ids = [s.snapshot_id for s in snapshots.snapshots]
    described = c.ec2.describe_snapshots(SnapshotIds=ids)["Snapshots"]
    failed = [s for s in described if s["State"] == "error"]
    if failed:
        raise SnapshotFailed(
            "snapshot " + ", ".join(f"{s['SnapshotId']} of {s['VolumeId']}: {s.get('StateMessage', 'error')}" for s in failed)
        )
    pending = [s for s in described if s["State"] != "completed"]
    if pending:
        if clock.now() - snapshots.started_at > request.snapshot_deadline_seconds:
            raise DeadlineExceeded(f"snapshots not completed within {request.snapshot_deadline_seconds}s")
        raise NotReadyYet(", ".join(f"{s['SnapshotId']} {s.get('Progress', '')}" for s in pending))
    return SnapshotsDone(completed=sorted(ids), completed_at=clock.now())


# --- the new instance ----------------------------------------------------------


def launch(c: Clients, request: MigrationInput, pre: Preflight, snapshots: Snapshots, execution: str) -> Replacement:
    existing = _replacement(c.ec2, execution, pre.instance_id)
    if existing:
        return _launched(existing, reused=True)
    ami = resolve_al2023_ami(c.ssm, c.ec2, ami_id=request.ami_id, ssm_parameter=request.ami_ssm_parameter)
    image = describe_images(c.ec2, [ami["image_id"]])[ami["image_id"]]
    tags = {**pre.tags, **identity_tags(execution, pre.instance_id)}
    spec = {
        "ImageId": ami["image_id"],
        "InstanceType": pre.instance_type,
        "MinCount": 1,
        "MaxCount": 1,
        **_network(pre),
        "ClientToken": client_token(execution, "replacement"),
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
        "BlockDeviceMappings": block_device_mappings(pre, snapshots, image, request.restore_data_volumes),
        "TagSpecifications": [
            {"ResourceType": kind, "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())]}
            for kind in ("instance", "volume")
        ],
    }
    if pre.instance_profile_arn:
        spec["IamInstanceProfile"] = {"Arn": pre.instance_profile_arn}
    if pre.key_name:
        spec["KeyName"] = pre.key_name
    instance = c.ec2.run_instances(**spec)["Instances"][0]
    if not pre.source_dest_check:
        c.ec2.modify_instance_attribute(InstanceId=instance["InstanceId"], SourceDestCheck={"Value": False})
    return _launched(instance, reused=False, ami_name=ami["name"])


def _network(pre: Preflight) -> dict:
    """Same subnet and groups; a public IP when the old instance had one of its own."""
    if pre.public_ip:
        return {"NetworkInterfaces": [{"DeviceIndex": 0, "SubnetId": pre.subnet_id, "Groups": pre.security_group_ids,
                                       "AssociatePublicIpAddress": True}]}
    return {"SubnetId": pre.subnet_id, "SecurityGroupIds": pre.security_group_ids}


def _launched(instance: dict, reused: bool, ami_name: str | None = None) -> Replacement:
    return Replacement(instance_id=instance["InstanceId"], image_id=instance["ImageId"],
                       private_ip=instance.get("PrivateIpAddress"), reused=reused, started_at=clock.now(),
                       ami_name=ami_name)


def _replacement(ec2, execution: str, source_instance: str) -> dict | None:
    reservations = ec2.describe_instances(Filters=[
        *identity_filters(execution, source_instance),
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
    ])["Reservations"]
    found = [i for r in reservations for i in r["Instances"]]
    return found[0] if found else None


def block_device_mappings(pre: Preflight, snapshots: Snapshots, image: dict, restore_data: bool) -> list[dict]:
    """The root volume from the AL2023 AMI, sized and typed like the old one; the data
    volumes from their snapshots, with the old volumes' type, iops, throughput and key."""
    by_device = {s.device_name: s.snapshot_id for s in snapshots.snapshots}
    image_root = next((m for m in image.get("BlockDeviceMappings", []) if m.get("DeviceName") == image.get("RootDeviceName")), {})
    mappings = []
    for device in pre.block_devices:
        if device.is_root:
            ebs = {"VolumeSize": max(device.size, (image_root.get("Ebs") or {}).get("VolumeSize", 0))}
            name = image.get("RootDeviceName", device.device_name)
        elif restore_data:
            ebs = {"SnapshotId": by_device[device.device_name]}
            name = device.device_name
        else:
            continue
        ebs |= {"VolumeType": device.type, "DeleteOnTermination": device.delete_on_termination}
        if device.type in ("io1", "io2", "gp3") and device.iops:
            ebs["Iops"] = device.iops
        if device.type == "gp3" and device.throughput:
            ebs["Throughput"] = device.throughput
        if device.encrypted:
            ebs["Encrypted"] = True
            if device.kms_key_id:
                ebs["KmsKeyId"] = device.kms_key_id
        mappings.append({"DeviceName": name, "Ebs": ebs})
    return mappings


def start_health_script(c: Clients, request: MigrationInput, instance_id: str, execution: str,
                        commands: str | None = None) -> HealthCommand:
    """The health script (or the given commands, e.g. the verification after the final sync)."""
    commands = commands or request.health_script
    if not commands:
        return HealthCommand(command_id=None, started_at=clock.now())
    command = c.ssm.send_command(
        InstanceIds=[instance_id], DocumentName="AWS-RunShellScript",
        Parameters={"commands": [commands]}, TimeoutSeconds=600,
        Comment=f"al2023-migration health check {execution_name(execution)}"[:100],
    )["Command"]
    return HealthCommand(command_id=command["CommandId"], started_at=clock.now())


def check_health(c: Clients, request: MigrationInput, instance_id: str, command: HealthCommand) -> Health:
    """Running, both status checks ok, the health script succeeded, no alarm firing.
    NotReadyYet while any of them is still initializing."""
    instance = describe_instance(c.ec2, instance_id)
    state = instance["State"]["Name"] if instance else "gone"
    if clock.now() - command.started_at > request.health_deadline_seconds:
        raise DeadlineExceeded(f"instance {instance_id} not healthy within {request.health_deadline_seconds}s ({state})")
    if state == "pending":
        raise NotReadyYet(f"instance {instance_id} is pending")
    if state != "running":
        raise InstanceUnhealthy(f"instance {instance_id} is {state}")
    statuses = c.ec2.describe_instance_status(InstanceIds=[instance_id])["InstanceStatuses"]
    checks = {"system": statuses[0]["SystemStatus"]["Status"], "instance": statuses[0]["InstanceStatus"]["Status"]} \
        if statuses else {"system": "initializing", "instance": "initializing"}
    if "impaired" in checks.values():
        raise InstanceUnhealthy(f"instance {instance_id} status checks impaired: {checks}")
    if set(checks.values()) != {"ok"}:
        raise NotReadyYet(f"instance {instance_id} status checks {checks}")
    script = None
    if command.command_id:
        invocation = c.ssm.get_command_invocation(CommandId=command.command_id, InstanceId=instance_id)
        script = invocation["Status"]
        if invocation["Status"] in FAILED_COMMAND:
            output = (invocation.get("StandardErrorContent") or invocation.get("StandardOutputContent") or "")[-300:]
            raise InstanceUnhealthy(f"health script on {instance_id} {invocation['Status']}: {output}".strip())
        if invocation["Status"] != "Success":
            raise NotReadyYet(f"health script on {instance_id} is {invocation['Status']}")
    firing = alarms_in_alarm(c.cloudwatch, request.alarm_names)
    if firing:
        raise InstanceUnhealthy(f"alarm {', '.join(firing)} in ALARM for {instance_id}")
    return Health(instance_id=instance_id, status_checks=checks, health_script=script,
                  alarms={name: "OK" for name in request.alarm_names})


# --- the final sync: the old server's data, as it is when its writes stop ------------
#
# Mechanism: the old server's data volumes themselves move to the replacement (same subnet, so
# same Availability Zone), after a final snapshot. Nothing is copied, so nothing can be missed,
# there is no snapshot to wait for inside the write freeze, and a rollback moves the very same
# volumes back, carrying every write the replacement accepted. The replacement's first data
# volumes (restored from the snapshot taken before any change, for validation) are deleted once
# swapped out: they hold nothing the old volumes lack.


def quiesce(c: Clients, request: MigrationInput, pre: Preflight, execution: str) -> Quiesce:
    """Writes stop here: the input's quiesce commands through SSM (the final sync then stops
    the instance, which alone quiesces a server without them)."""
    command_id = None
    if request.quiesce_commands:
        command_id = c.ssm.send_command(
            InstanceIds=[pre.instance_id], DocumentName="AWS-RunShellScript",
            Parameters={"commands": [request.quiesce_commands]}, TimeoutSeconds=600,
            Comment=f"al2023-migration quiesce {execution_name(execution)}"[:100],
        )["Command"]["CommandId"]
    return Quiesce(command_id=command_id, frozen_at=clock.now())


def _data_devices(request: MigrationInput, pre: Preflight) -> dict[str, str]:
    """device -> the old server's data volume, for the volumes that move."""
    if not request.restore_data_volumes:
        return {}
    return {d.device_name: d.volume_id for d in pre.block_devices if not d.is_root}


def _attached(instance: dict | None) -> dict[str, str]:
    return {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in (instance or {}).get("BlockDeviceMappings", []) if "Ebs" in m}


def _stopped(c: Clients, instance_id: str, what: str) -> dict:
    """The instance, once stopped; stops it (and NotReadyYet) until then."""
    instance = describe_instance(c.ec2, instance_id)
    state = instance["State"]["Name"] if instance else "gone"
    if state in ("pending", "running"):
        c.ec2.stop_instances(InstanceIds=[instance_id])
        raise NotReadyYet(f"stopping {what} {instance_id}")
    if state == "stopping":
        raise NotReadyYet(f"{what} {instance_id} is stopping")
    if state != "stopped":
        raise SyncFailed(f"{what} {instance_id} is {state}")
    return instance


def move_volumes(c: Clients, volumes: dict[str, str], source: str, destination: str) -> None:
    """Each volume detached from `source` (stopped) and attached to `destination` (stopped) at its
    device; whatever else `destination` has at that device is detached first. Safe to repeat:
    NotReadyYet while a volume is between the two."""
    by_id = {v["VolumeId"]: v for v in c.ec2.describe_volumes(VolumeIds=sorted(volumes.values()))["Volumes"]}
    on_destination = _attached(describe_instance(c.ec2, destination))
    waiting = []
    for device, volume_id in sorted(volumes.items()):
        volume = by_id[volume_id]
        attachment = (volume.get("Attachments") or [{}])[0]
        if attachment.get("InstanceId") == destination:
            continue
        if attachment.get("InstanceId") == source:
            c.ec2.detach_volume(VolumeId=volume_id, InstanceId=source, Device=device)
        elif volume["State"] != "available":
            raise SyncFailed(f"volume {volume_id} is {volume['State']}, attached to {attachment.get('InstanceId')}")
        other = on_destination.get(device)
        if other and other != volume_id:
            c.ec2.detach_volume(VolumeId=other, InstanceId=destination, Device=device)
        waiting.append((device, volume_id))
    if not waiting:
        return
    # AWS: a detach takes a moment (`detaching`); attach once both are free.
    states = {v["VolumeId"]: v["State"] for v in c.ec2.describe_volumes(VolumeIds=[v for _, v in waiting])["Volumes"]}
    busy = [v for _, v in waiting if states[v] != "available"]
    if busy:
        raise NotReadyYet(f"volumes {', '.join(busy)} still detaching")
    for device, volume_id in waiting:
        c.ec2.attach_volume(VolumeId=volume_id, InstanceId=destination, Device=device)


def final_sync(c: Clients, request: MigrationInput, pre: Preflight, new: Replacement, quiesced: Quiesce,
               execution: str) -> FinalSync:
    """Converges, step by step and safe to repeat: quiesce commands done, old server stopped,
    final snapshot started, replacement stopped, the old data volumes on it, replacement started."""
    if quiesced.command_id:
        invocation = c.ssm.get_command_invocation(CommandId=quiesced.command_id, InstanceId=pre.instance_id)
        if invocation["Status"] in FAILED_COMMAND:
            output = (invocation.get("StandardErrorContent") or invocation.get("StandardOutputContent") or "")[-300:]
            raise QuiesceFailed(f"quiesce commands on {pre.instance_id} {invocation['Status']}: {output}".strip())
        if invocation["Status"] != "Success":
            raise NotReadyYet(f"quiesce commands on {pre.instance_id} are {invocation['Status']}")
    old = _stopped(c, pre.instance_id, "old instance")
    volumes = _data_devices(request, pre)
    final = _snapshots_of(c.ec2, execution, pre.instance_id, FINAL_SYNC)
    if volumes and not final:
        # EBS: a snapshot holds the data as it was when it started; the volume may be used meanwhile.
        if set(volumes.values()) - set(_attached(old).values()):
            raise SyncFailed(f"the data volumes of {pre.instance_id} left it before their final snapshot")
        created = c.ec2.create_snapshots(
            InstanceSpecification={"InstanceId": pre.instance_id, "ExcludeBootVolume": True},
            Description=f"al2023-migration final sync of {pre.instance_id} ({pre.name})",
            TagSpecifications=[{"ResourceType": "snapshot", "Tags": [
                {"Key": k, "Value": v}
                for k, v in {**identity_tags(execution, pre.instance_id), PURPOSE_TAG: FINAL_SYNC}.items()]}],
        )["Snapshots"]
        final = {s["SnapshotId"]: s["VolumeId"] for s in created}
    replacement = describe_instance(c.ec2, new.instance_id)
    if volumes and not _attached(replacement).items() >= volumes.items():
        _stopped(c, new.instance_id, "replacement")  # its first data volumes are in use while it runs
    move_volumes(c, volumes, pre.instance_id, new.instance_id)
    # The replacement's first data volumes, from the first snapshot: swapped out, so deleted.
    staging = c.ec2.describe_volumes(Filters=[*identity_filters(execution, pre.instance_id),
                                              {"Name": "status", "Values": ["available"]}])["Volumes"]
    for volume in staging:
        c.ec2.delete_volume(VolumeId=volume["VolumeId"])
    if describe_instance(c.ec2, new.instance_id)["State"]["Name"] == "stopped":
        c.ec2.start_instances(InstanceIds=[new.instance_id])
    return FinalSync(volumes=volumes, final_snapshots=sorted(final), staging_deleted=sorted(v["VolumeId"] for v in staging),
                     synced_at=clock.now())


def check_synced(c: Clients, pre: Preflight, new: Replacement, synced: FinalSync) -> None:
    """Before the address moves: the replacement has exactly the old data volumes, at their
    devices and sizes, and their final snapshots did not fail."""
    attached = _attached(describe_instance(c.ec2, new.instance_id))
    wrong = {d: attached.get(d) for d, v in synced.volumes.items() if attached.get(d) != v}
    if wrong:
        raise SyncFailed(f"replacement {new.instance_id} has {wrong} where the old data volumes {synced.volumes} belong")
    if synced.volumes:
        sizes = {v["VolumeId"]: v["Size"] for v in c.ec2.describe_volumes(VolumeIds=sorted(synced.volumes.values()))["Volumes"]}
        expected = {d.volume_id: d.size for d in pre.block_devices if d.volume_id in sizes}
        if sizes != expected:
            raise SyncFailed(f"data volume sizes {sizes}, the old server had {expected}")
    if synced.final_snapshots:
        failed = [s["SnapshotId"] for s in c.ec2.describe_snapshots(SnapshotIds=synced.final_snapshots)["Snapshots"]
                  if s["State"] == "error"]
        if failed:
            raise SnapshotFailed(f"final snapshot {', '.join(failed)} of the quiesced data failed")


# --- cutover, rollback, decommission ---------------------------------------------


def point_address(c: Clients, pre: Preflight, instance_id: str, ip: str | None) -> str | None:
    """Move the Elastic IP or UPSERT the record to `instance_id`; None when already there."""
    if pre.elastic_ip:
        address = pre.elastic_ip
        current = c.ec2.describe_addresses(AllocationIds=[address.allocation_id])["Addresses"][0]
        if current.get("InstanceId") == instance_id:
            return None
        c.ec2.associate_address(AllocationId=address.allocation_id, InstanceId=instance_id, AllowReassociation=True)
        return f"Elastic IP {address.public_ip} -> {instance_id}"
    if pre.dns:
        dns = pre.dns
        values = [ip] if instance_id != pre.instance_id else dns.values
        if instance_id == pre.instance_id and dns.public and ip and ip not in dns.values:
            values = [ip]  # AWS: a public IP that is not an Elastic IP changes with a stop and start
        if _current_record(c.route53, dns) == values:
            return None
        c.route53.change_resource_record_sets(HostedZoneId=dns.zone, ChangeBatch={
            "Comment": "al2023-migration cutover",
            "Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
                "Name": dns.name, "Type": "A", "TTL": dns.ttl,
                "ResourceRecords": [{"Value": v} for v in values]}}]})
        return f"DNS {dns.name} -> {values}"
    return None


def _current_record(route53, dns: DnsRecord) -> list[str]:
    found = route53.list_resource_record_sets(HostedZoneId=dns.zone, StartRecordName=dns.name,
                                              StartRecordType="A", MaxItems="1")["ResourceRecordSets"]
    if found and found[0]["Name"] == dns.name and found[0]["Type"] == "A":
        return [r["Value"] for r in found[0]["ResourceRecords"]]
    return []


def cutover(c: Clients, pre: Preflight, new: Replacement, quiesced: Quiesce | None = None) -> CutoverDone:
    current = describe_instance(c.ec2, new.instance_id) or {}
    # A public IP (not an Elastic IP) changes when an instance stops and starts, as the swap did.
    ip = current.get("PublicIpAddress") if pre.dns and pre.dns.public else current.get("PrivateIpAddress", new.private_ip)
    try:
        moved = point_address(c, pre, new.instance_id, ip)
    except ClientError as error:
        if is_throttling(error):
            raise
        raise CutoverFailed(f"moving the address of {pre.target} to {new.instance_id} failed: {error}") from error
    old = describe_instance(c.ec2, pre.instance_id)
    if old["State"]["Name"] in ("pending", "running"):
        c.ec2.stop_instances(InstanceIds=[pre.instance_id])  # stopped, never terminated: it is the rollback
    frozen = round(clock.now() - quiesced.frozen_at, 1) if quiesced else None
    return CutoverDone(moved=moved, old_instance=pre.instance_id, stopped_at=clock.now(), writes_frozen_seconds=frozen)


def check_old_stopped(c: Clients, pre: Preflight) -> None:
    state = describe_instance(c.ec2, pre.instance_id)["State"]["Name"]
    if state != "stopped":
        raise NotReadyYet(f"old instance {pre.instance_id} is {state}")


def _started_before(instance: dict, moment: float) -> bool:
    launched = instance["LaunchTime"]
    launched = launched.timestamp() if isinstance(launched, dt.datetime) else dt.datetime.fromisoformat(str(launched)).timestamp()
    return launched < moment


def carry_back(c: Clients, pre: Preflight, new: Replacement | None, volumes: dict[str, str]) -> dict[str, str]:
    """The old data volumes, with every write the replacement accepted, back onto the stopped old
    instance before it starts: the replacement is stopped first (its writes stop)."""
    if not volumes or new is None:
        return {}
    on_old = _attached(describe_instance(c.ec2, pre.instance_id))
    if on_old.items() >= volumes.items():
        return volumes
    replacement = describe_instance(c.ec2, new.instance_id)
    if replacement and replacement["State"]["Name"] not in ("stopped", "terminated"):
        _stopped(c, new.instance_id, "replacement")
    _stopped(c, pre.instance_id, "old instance")
    move_volumes(c, volumes, new.instance_id, pre.instance_id)
    return volumes


def rollback(
    c: Clients, request: MigrationInput, pre: Preflight, new: Replacement | None, error: CaughtError | None,
    failed_gate: str | None, quiesced: Quiesce | None = None,
) -> Rollback:
    """Step by step, safe to repeat: old instance started and running first, then the
    address or record back to it, then the new instance terminated."""
    old_id = pre.instance_id
    # Once writes stopped for the sync, the old data volumes may be on the replacement, wholly or in part.
    carried = carry_back(c, pre, new, _data_devices(request, pre)) if quiesced else {}
    old = describe_instance(c.ec2, old_id)
    old_state = old["State"]["Name"]
    if old_state == "running" and quiesced and quiesced.command_id and _started_before(old, quiesced.frozen_at):
        c.ec2.stop_instances(InstanceIds=[old_id])  # its application was quiesced: a restart brings it back
        raise NotReadyYet(f"restarting quiesced old instance {old_id}")
    if old_state == "stopping":
        raise NotReadyYet(f"old instance {old_id} is still stopping")
    if old_state == "stopped":
        c.ec2.start_instances(InstanceIds=[old_id])
        raise NotReadyYet(f"starting old instance {old_id}")
    if old_state == "pending":
        raise NotReadyYet(f"old instance {old_id} is starting")
    if old_state != "running":
        raise RollbackFailed(f"old instance {old_id} is {old_state}; it cannot be restored")
    moved = point_address(c, pre, old_id, old.get("PublicIpAddress") if pre.dns and pre.dns.public else pre.private_ip)
    new_id = new.instance_id if new else None
    replacement = describe_instance(c.ec2, new_id) if new_id else None
    if replacement and replacement["State"]["Name"] not in ("shutting-down", "terminated"):
        c.ec2.terminate_instances(InstanceIds=[new_id])
    error_name, message = explain_failure(error, failed_gate)
    return Rollback(
        volumes_back=carried,
        moved_back=moved,
        terminated=new_id,
        error=error_name,
        cause=f"{pre.target} rolled back to {old_id} (still Amazon Linux 2): {message}",
    )


def decommission(c: Clients, request: MigrationInput, pre: Preflight, snapshots: Snapshots,
                 synced: FinalSync | None = None) -> Decommissioned:
    old = describe_instance(c.ec2, pre.instance_id)
    if old and old["State"]["Name"] not in ("shutting-down", "terminated"):
        c.ec2.terminate_instances(InstanceIds=[pre.instance_id])
    expires = dt.datetime.fromtimestamp(clock.now(), dt.UTC) + dt.timedelta(days=request.snapshot_retention_days)
    ids = [s.snapshot_id for s in snapshots.snapshots] + (synced.final_snapshots if synced else [])
    c.ec2.create_tags(Resources=ids, Tags=[{"Key": EXPIRES_TAG, "Value": expires.date().isoformat()}])
    return Decommissioned(terminated=pre.instance_id, snapshots_expire=expires.date().isoformat(), snapshots=ids)


def keep_old_instance(c: Clients, pre: Preflight, new: Replacement, snapshots: Snapshots) -> KeptOld:
    """Terminating the old instance needs the approval, and rolling back a replacement that has
    served (and taken writes) for days needs a decision too: keep both, stopped old, and ask."""
    old = describe_instance(c.ec2, pre.instance_id)
    state = old["State"]["Name"] if old else "gone"
    if state in ("pending", "running"):
        c.ec2.stop_instances(InstanceIds=[pre.instance_id])  # never two servers for one address
        state = "stopping"
    ids = [s.snapshot_id for s in snapshots.snapshots]
    return KeptOld(
        old_instance=pre.instance_id, old_state=state, serving=new.instance_id, snapshots=ids,
        decide=f"{pre.target} is migrated and {new.instance_id} serves; nobody answered the decommission "
               f"approval, so the old instance {pre.instance_id} stays stopped with snapshots {', '.join(ids)}. "
               "Terminate it (and let the snapshots expire) once you are sure, or start a rollback by hand.")
