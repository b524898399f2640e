"""A volume's whole life on real device-mapper: thick and thin, ext4, xfs and raw block."""

import hashlib
import os
import subprocess

import pytest

from conftest import POOL, VG, lvs
from csi_support import C, MIB, block_cap, create, delete, expect_code, findmnt, mount_cap, name, publish, stage

THIN = {"thinPool": POOL}


def write_random(path, size):
    data = os.urandom(size)
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return hashlib.sha256(data).hexdigest()


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def drop_caches():
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def fs_bytes(path):
    st = os.statvfs(path)
    return st.f_blocks * st.f_frsize


def unpublish(d, vid, target):
    d.node.NodeUnpublishVolume(d.csi.pb.NodeUnpublishVolumeRequest(volume_id=vid, target_path=target))


def unstage(d, vid, staging):
    d.node.NodeUnstageVolume(d.csi.pb.NodeUnstageVolumeRequest(volume_id=vid, staging_target_path=staging))


def expand(d, vid, size, path, cap):
    pb = d.csi.pb
    grown = d.controller.ControllerExpandVolume(pb.ControllerExpandVolumeRequest(
        volume_id=vid, capacity_range=pb.CapacityRange(required_bytes=size), volume_capability=cap))
    assert grown.capacity_bytes >= size
    # A filesystem must be grown on the node; a raw block device needs nothing there.
    assert grown.node_expansion_required == cap.HasField("mount")
    return d.node.NodeExpandVolume(pb.NodeExpandVolumeRequest(
        volume_id=vid, volume_path=path, capacity_range=pb.CapacityRange(required_bytes=size), volume_capability=cap))


def stats(d, vid, path):
    return d.node.NodeGetVolumeStats(d.csi.pb.NodeGetVolumeStatsRequest(volume_id=vid, volume_path=path))


@pytest.mark.parametrize("thin", [False, True], ids=["thick", "thin"])
@pytest.mark.parametrize("fs_type", ["ext4", "xfs"])
def test_filesystem_volume_life(driver, paths, thin, fs_type):
    staging, target = paths
    cap = mount_cap(driver.csi, fs_type)
    size = 320 * MIB
    vol = create(driver, size, cap=cap, parameters=THIN if thin else {})
    vid = vol.volume_id
    lv = lvs(vid)
    assert lv is not None and lv["lv_size"] == vol.capacity_bytes >= size
    assert (lv["pool_lv"] == POOL) == thin, lv
    assert "csi.swift-csi.io/fs=" + fs_type in lv["lv_tags"].split(",")

    stage(driver, vid, staging, cap)
    stage(driver, vid, staging, cap)  # a repeat is a no-op
    mounted = findmnt(staging)
    assert mounted["fstype"] == fs_type
    assert os.path.realpath(mounted["source"]) == os.path.realpath("/dev/%s/%s" % (VG, vid)), mounted
    publish(driver, vid, staging, target, cap)
    assert findmnt(target)["fstype"] == fs_type
    sha = write_random(os.path.join(target, "data"), 8 * MIB)

    unpublish(driver, vid, target)
    assert findmnt(target) is None and not os.path.exists(target)
    publish(driver, vid, staging, target, cap)
    drop_caches()
    assert digest(os.path.join(target, "data")) == sha

    usage = {u.unit: u for u in stats(driver, vid, target).usage}
    assert usage[driver.csi.pb.VolumeUsage.BYTES].total == fs_bytes(target)
    assert usage[driver.csi.pb.VolumeUsage.BYTES].used > 8 * MIB
    before = fs_bytes(target)
    grown = expand(driver, vid, size + 200 * MIB, target, cap)
    assert grown.capacity_bytes >= size + 200 * MIB
    assert lvs(vid)["lv_size"] >= size + 200 * MIB
    assert fs_bytes(target) > before + 150 * MIB, "the %s filesystem did not grow online" % fs_type
    drop_caches()
    assert digest(os.path.join(target, "data")) == sha
    condition = stats(driver, vid, target).volume_condition
    assert not condition.abnormal, condition.message

    unpublish(driver, vid, target)
    unstage(driver, vid, staging)
    assert findmnt(staging) is None
    unstage(driver, vid, staging)  # a repeat is a no-op
    delete(driver, vid)
    assert lvs(vid) is None
    delete(driver, vid)


def read_at(path, offset, size):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        import mmap
        buf = mmap.mmap(-1, size)
        os.preadv(fd, [buf], offset)
        return bytes(buf)
    finally:
        os.close(fd)


@pytest.mark.parametrize("thin", [False, True], ids=["thick", "thin"])
def test_raw_block_volume_life(driver, paths, thin):
    staging, target = paths
    cap = block_cap(driver.csi)
    vol = create(driver, 64 * MIB, cap=cap, parameters=THIN if thin else {})
    vid = vol.volume_id
    stage(driver, vid, staging, cap)
    publish(driver, vid, staging, target, cap)
    assert os.path.exists(target) and not os.path.isdir(target)
    pattern = os.urandom(MIB)
    with open(target, "r+b") as f:
        f.seek(vol.capacity_bytes - MIB)
        f.write(pattern)
        f.flush()
        os.fsync(f.fileno())
    unpublish(driver, vid, target)
    assert not os.path.exists(target)
    publish(driver, vid, staging, target, cap)
    assert read_at(target, vol.capacity_bytes - MIB, MIB) == pattern
    usage = stats(driver, vid, target).usage
    assert [u.total for u in usage] == [vol.capacity_bytes]

    grown = expand(driver, vid, 96 * MIB, target, cap)
    assert grown.capacity_bytes >= 96 * MIB
    assert int(subprocess.check_output(["blockdev", "--getsize64", target])) == grown.capacity_bytes
    assert read_at(target, vol.capacity_bytes - MIB, MIB) == pattern
    unpublish(driver, vid, target)
    unstage(driver, vid, staging)
    delete(driver, vid)
    assert lvs(vid) is None


@pytest.mark.parametrize("thin, restore_thin", [(False, False), (True, True), (False, True)],
                         ids=["thick", "thin", "thick-into-thin"])
def test_snapshot_restores_its_content(driver, paths, thin, restore_thin):
    staging, target = paths
    cap = mount_cap(driver.csi, "ext4")
    pb = driver.csi.pb
    vid = create(driver, 96 * MIB, cap=cap, parameters=THIN if thin else {}).volume_id
    stage(driver, vid, staging, cap)
    publish(driver, vid, staging, target, cap)
    sha = write_random(os.path.join(target, "data"), 4 * MIB)
    with open(os.path.join(target, "version"), "w") as f:
        f.write("v1")
    subprocess.run(["sync"], check=True)
    snap = driver.controller.CreateSnapshot(pb.CreateSnapshotRequest(source_volume_id=vid, name=name("snap"))).snapshot
    assert snap.ready_to_use and snap.source_volume_id == vid
    witness = lvs(snap.snapshot_id)
    assert witness is not None and (witness["origin"] == vid), witness
    with open(os.path.join(target, "version"), "w") as f:
        f.write("v2")
    write_random(os.path.join(target, "data"), 4 * MIB)

    source = pb.VolumeContentSource(snapshot=pb.VolumeContentSource.SnapshotSource(snapshot_id=snap.snapshot_id))
    restored = create(driver, 96 * MIB, cap=cap, parameters=THIN if restore_thin else {}, volume_content_source=source)
    assert (lvs(restored.volume_id)["pool_lv"] == POOL) == restore_thin
    assert restored.content_source.snapshot.snapshot_id == snap.snapshot_id
    rstaging, rtarget = staging + "-restored", target + "-restored"
    os.makedirs(rstaging)
    stage(driver, restored.volume_id, rstaging, cap)
    publish(driver, restored.volume_id, rstaging, rtarget, cap)
    with open(os.path.join(rtarget, "version")) as f:
        assert f.read() == "v1"
    assert digest(os.path.join(rtarget, "data")) == sha
    with open(os.path.join(target, "version")) as f:
        assert f.read() == "v2", "restoring changed the source volume"

    for v, s, t in [(restored.volume_id, rstaging, rtarget), (vid, staging, target)]:
        unpublish(driver, v, t)
        unstage(driver, v, s)
    delete(driver, restored.volume_id)
    expect_code(C.FAILED_PRECONDITION, delete, driver, vid)  # it has a snapshot
    driver.controller.DeleteSnapshot(pb.DeleteSnapshotRequest(snapshot_id=snap.snapshot_id))
    delete(driver, vid)
    assert lvs(vid) is None and lvs(snap.snapshot_id) is None and lvs(restored.volume_id) is None
