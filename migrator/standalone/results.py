"""What each state of standalone_ec2.asl.json returns, and the state they add up to."""

from pydantic import BaseModel

from migrator.compat.checks import Compatibility, Parity, ScanStarted
from migrator.failures import Caught
from migrator.standalone.models import MigrationInput


class BlockDevice(BaseModel):
    device_name: str
    volume_id: str
    size: int
    type: str
    iops: int | None
    throughput: int | None
    encrypted: bool
    kms_key_id: str | None
    delete_on_termination: bool
    is_root: bool


class ElasticIp(BaseModel):
    allocation_id: str
    public_ip: str


class DnsRecord(BaseModel):
    zone: str
    name: str
    ttl: int
    values: list[str]
    public: bool = False  # it named the instance's public IP: the replacement's public IP replaces it


class Preflight(BaseModel):
    """An instance already on AL2023 ends the run here, so only the first five fields are set then."""

    target: str  # standalone/<Name tag>, or the instance id when it has no Name
    name: str
    instance_id: str
    image_id: str
    already_migrated: bool
    subnet_id: str | None = None
    availability_zone: str | None = None
    security_group_ids: list[str] = []
    instance_profile_arn: str | None = None
    instance_type: str | None = None
    key_name: str | None = None
    tags: dict[str, str] = {}
    root_device_name: str | None = None
    block_devices: list[BlockDevice] = []
    elastic_ip: ElasticIp | None = None
    dns: DnsRecord | None = None
    private_ip: str | None = None
    public_ip: str | None = None  # not an Elastic IP's: the replacement gets one too
    source_dest_check: bool = True


class Snapshot(BaseModel):
    snapshot_id: str
    volume_id: str
    device_name: str | None


class Snapshots(BaseModel):
    started_at: float
    snapshots: list[Snapshot]


class SnapshotsDone(BaseModel):
    completed: list[str]
    completed_at: float


class Replacement(BaseModel):
    instance_id: str
    image_id: str
    private_ip: str | None
    reused: bool
    started_at: float
    ami_name: str | None = None  # known when this call launched it


class HealthCommand(BaseModel):
    command_id: str | None  # None: the input has no health script
    started_at: float


class StatusChecks(BaseModel):
    system: str
    instance: str


class Health(BaseModel):
    instance_id: str
    status_checks: StatusChecks
    health_script: str | None = None
    alarms: dict[str, str]


class Quiesce(BaseModel):
    command_id: str | None  # the quiesce commands' SSM command; None: the instance stop quiesces
    frozen_at: float  # writes stop being accepted from here until the address moves


class FinalSync(BaseModel):
    """The old server's data volumes, stopped and snapshotted, now attached to the replacement."""

    volumes: dict[str, str]  # device -> the old server's volume id, now on the replacement
    final_snapshots: list[str]  # of those volumes as they were when the writes stopped
    staging_deleted: list[str]  # the replacement's volumes from the first snapshot, replaced and deleted
    synced_at: float


class CutoverDone(BaseModel):
    moved: str | None  # None: the address already pointed at the new instance
    old_instance: str
    stopped_at: float
    writes_frozen_seconds: float | None = None  # from the quiesce to the address move


class Decommissioned(BaseModel):
    terminated: str
    snapshots_expire: str
    snapshots: list[str]


class KeptOld(BaseModel):
    """The decommission gate went unanswered: migrated, and nothing deleted without consent."""

    old_instance: str
    old_state: str
    serving: str  # the replacement
    snapshots: list[str]
    decide: str  # what the operator is asked to do


class Rollback(BaseModel):
    volumes_back: dict[str, str] = {}  # device -> volume carried back to the old instance, with its writes
    moved_back: str | None
    terminated: str | None
    error: str
    cause: str


class MigrationState(Caught):
    """One field per ResultPath of standalone_ec2.asl.json."""

    input: MigrationInput
    preflight: Preflight | None = None
    compatibility_scan: ScanStarted | None = None
    compatibility: Compatibility | None = None
    snapshots: Snapshots | None = None
    snapshots_done: SnapshotsDone | None = None
    replacement: Replacement | None = None
    health_command: HealthCommand | None = None
    health: Health | None = None
    parity_scan: ScanStarted | None = None
    parity: Parity | None = None
    cutover_approval: dict | None = None  # the approver's record
    quiesce: Quiesce | None = None
    final_sync: FinalSync | None = None
    health_after_sync: Health | None = None
    cutover: CutoverDone | None = None
    health_after_cutover: Health | None = None
    decommission_approval: dict | None = None  # the approver's record
    result: Decommissioned | None = None
    kept: KeptOld | None = None
    rollback: Rollback | None = None
