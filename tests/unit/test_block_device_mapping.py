"""The replacement's block devices: the root from the AL2023 AMI, data volumes from their snapshots."""

from migrator.standalone.migration import block_device_mappings
from migrator.standalone.results import BlockDevice, Preflight, Snapshot, Snapshots

AMI = {"RootDeviceName": "/dev/xvda",
       "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8, "SnapshotId": "snap-ami"}}]}


def device(name: str, size: int, *, root: bool = False, **extra) -> BlockDevice:
    fields = {"type": "gp3", "iops": None, "throughput": None, "encrypted": False, "kms_key_id": None,
              "delete_on_termination": True} | extra
    return BlockDevice(device_name=name, volume_id=f"vol-{name[-1]}", size=size, is_root=root, **fields)


def preflight(*devices: BlockDevice) -> Preflight:
    return Preflight(target="standalone/db-1", name="db-1", instance_id="i-0123456789abcdef0",
                     image_id="ami-al2", already_migrated=False, block_devices=list(devices))


def snapshots(pre: Preflight) -> Snapshots:
    return Snapshots(started_at=0, snapshots=[
        Snapshot(snapshot_id=f"snap-{d.device_name[-1]}", volume_id=d.volume_id, device_name=d.device_name)
        for d in pre.block_devices])


def test_the_root_comes_from_the_ami_under_the_amis_root_name_and_data_from_its_snapshot():
    pre = preflight(device("/dev/sda1", 20, root=True), device("/dev/sdf", 100, delete_on_termination=False))
    assert block_device_mappings(pre, snapshots(pre), AMI, restore_data=True) == [
        {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 20, "VolumeType": "gp3", "DeleteOnTermination": True}},
        {"DeviceName": "/dev/sdf", "Ebs": {"SnapshotId": "snap-f", "VolumeType": "gp3",
                                           "DeleteOnTermination": False}},
    ]


def test_the_root_is_never_smaller_than_the_amis_own_root():
    pre = preflight(device("/dev/xvda", 4, root=True))
    [root] = block_device_mappings(pre, snapshots(pre), AMI, restore_data=True)
    assert root["Ebs"]["VolumeSize"] == 8


def test_without_restoring_data_volumes_only_the_root_is_mapped():
    pre = preflight(device("/dev/xvda", 20, root=True), device("/dev/sdf", 100))
    assert [m["DeviceName"] for m in block_device_mappings(pre, snapshots(pre), AMI, restore_data=False)] == [
        "/dev/xvda"]


def test_iops_and_throughput_are_kept_only_where_the_volume_type_takes_them():
    pre = preflight(device("/dev/xvda", 20, root=True, iops=3000, throughput=250),
                    device("/dev/sdf", 100, type="io2", iops=8000, throughput=500),
                    device("/dev/sdg", 100, type="st1", iops=500, throughput=40))
    root, io2, st1 = (m["Ebs"] for m in block_device_mappings(pre, snapshots(pre), AMI, restore_data=True))
    assert (root["Iops"], root["Throughput"]) == (3000, 250)
    assert io2["Iops"] == 8000 and "Throughput" not in io2
    assert "Iops" not in st1 and "Throughput" not in st1


def test_encrypted_volumes_stay_encrypted_with_their_own_key():
    pre = preflight(device("/dev/xvda", 20, root=True, encrypted=True, kms_key_id="arn:aws:kms:key/1"),
                    device("/dev/sdf", 100, encrypted=True))
    root, data = (m["Ebs"] for m in block_device_mappings(pre, snapshots(pre), AMI, restore_data=True))
    assert (root["Encrypted"], root["KmsKeyId"]) == (True, "arn:aws:kms:key/1")
    assert data["Encrypted"] is True and "KmsKeyId" not in data
