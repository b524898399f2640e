"""Clones (CLONE_VOLUME) on real device-mapper: a thin source gives a thin snapshot, a thick source
a new LV filled block by block; the clone holds the source's data, later writes stay apart, and a
driver killed mid-copy never hands out a half-copied clone."""

import os

import pytest

from conftest import POOL, VG, lvs
from csi_support import C, MIB, block_cap, create, expect_code, mount_cap, publish, stage
from test_crash import fill, kill_inside, sha_of_device

THIN = {"thinPool": POOL}


def clone_request(driver, source_id, size, cap, clone_name=None, parameters=None):
    pb = driver.csi.pb
    return pb.CreateVolumeRequest(
        name=clone_name or "clone-%s" % source_id, capacity_range=pb.CapacityRange(required_bytes=size),
        volume_capabilities=[cap], parameters=parameters or {},
        volume_content_source=pb.VolumeContentSource(volume=pb.VolumeContentSource.VolumeSource(volume_id=source_id)))


def write_at(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def tags(lv):
    return lv["lv_tags"].split(",")


def published_block(driver, vid, staging, target, cap):
    os.makedirs(staging, exist_ok=True)
    stage(driver, vid, staging, cap)
    publish(driver, vid, staging, target, cap)
    return target


def check_apart(source_dev, clone_dev, size, sha):
    """Writes to each side; the other keeps what it had."""
    write_at(clone_dev, 0, b"\x11" * 65536)
    assert sha_of_device(source_dev, size) == sha, "a write to the clone reached the source"
    clone_sha = sha_of_device(clone_dev, size)
    write_at(source_dev, 2 * MIB, b"\x22" * 65536)
    assert sha_of_device(clone_dev, size) == clone_sha, "a write to the source reached the clone"


@pytest.mark.parametrize("kind", ["thin", "thick", "thick-into-thin"])
def test_clone_holds_the_source_data_and_writes_stay_apart(driver, paths, kind):
    staging, target = paths
    cap = block_cap(driver.csi)
    size = 64 * MIB
    source = create(driver, size, cap=cap, parameters=THIN if kind == "thin" else {}).volume_id
    source_dev = published_block(driver, source, staging, target, cap)
    sha = fill(source_dev, size)

    request = clone_request(driver, source, size, cap, parameters=THIN if kind == "thick-into-thin" else {})
    clone = driver.controller.CreateVolume(request).volume
    assert clone.content_source.volume.volume_id == source
    assert clone.capacity_bytes >= size
    lv = lvs(clone.volume_id)
    assert "csi.swift-csi.io/source=" + source in tags(lv) and "csi.swift-csi.io/source-kind=volume" in tags(lv), lv
    assert "csi.swift-csi.io/kind=volume" in tags(lv) and "csi.swift-csi.io/restoring" not in tags(lv), lv
    assert lv["lv_attr"][4] == "a", "the clone is not active: %s" % lv
    if kind == "thin":
        # A thin snapshot of the source, activation skip off.
        assert lv["origin"] == source and lv["pool_lv"] == POOL, lv
        assert lv["lv_attr"][9] != "k", "the clone skips activation: %s" % lv
    else:
        assert lv["origin"] == "", lv
        assert lv["pool_lv"] == (POOL if kind == "thick-into-thin" else ""), lv
    # A repeat is the same volume.
    assert driver.controller.CreateVolume(request).volume.volume_id == clone.volume_id

    clone_dev = published_block(driver, clone.volume_id, staging + "-clone", target + "-clone", cap)
    assert sha_of_device(clone_dev, size) == sha, "the clone does not hold the source's data"
    check_apart(source_dev, clone_dev, size, sha)

    # The source may be deleted (a thin clone is a thin snapshot of it); the clone keeps its data.
    pb = driver.csi.pb
    clone_sha = sha_of_device(clone_dev, size)
    driver.node.NodeUnpublishVolume(pb.NodeUnpublishVolumeRequest(volume_id=source, target_path=target))
    driver.node.NodeUnstageVolume(pb.NodeUnstageVolumeRequest(volume_id=source, staging_target_path=staging))
    driver.controller.DeleteVolume(pb.DeleteVolumeRequest(volume_id=source))
    assert lvs(source) is None
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")
    assert sha_of_device(clone_dev, size) == clone_sha


def test_thin_clone_of_a_mounted_filesystem_holds_what_was_written(driver, paths):
    """LVM suspends (and so flushes) the source's filesystem for a thin snapshot: a file written
    through the mount, not synced, is in the clone."""
    staging, target = paths
    cap = mount_cap(driver.csi, "ext4")
    source = create(driver, 64 * MIB, cap=cap, parameters=THIN).volume_id
    stage(driver, source, staging, cap)
    publish(driver, source, staging, target, cap)
    with open(os.path.join(target, "data.txt"), "w") as f:
        f.write("written before the clone\n")
    clone = driver.controller.CreateVolume(clone_request(driver, source, 64 * MIB, cap)).volume
    with open(os.path.join(target, "data.txt"), "w") as f:
        f.write("written after the clone\n")
    cstaging, ctarget = staging + "-clone", target + "-clone"
    os.makedirs(cstaging)
    stage(driver, clone.volume_id, cstaging, cap)
    publish(driver, clone.volume_id, cstaging, ctarget, cap)
    with open(os.path.join(ctarget, "data.txt")) as f:
        assert f.read() == "written before the clone\n"


def test_thick_clone_killed_mid_copy_is_copied_again(driver, paths):
    """The driver is killed while it copies a thick source: the clone keeps its restoring mark, is
    refused to the node, and the repeated CreateVolume copies it whole."""
    pb = driver.csi.pb
    staging, target = paths
    cap = block_cap(driver.csi)
    size = 256 * MIB
    source = create(driver, size, cap=cap).volume_id
    source_dev = published_block(driver, source, staging, target, cap)
    sha = fill(source_dev, size)
    request = clone_request(driver, source, size, cap)
    node = "/dev/mapper/%s-%s" % (VG, request.name.replace("-", "--"))
    kill_inside(driver, lambda: driver.controller.CreateVolume(request), lambda: os.path.exists(node), "the clone's LV")

    lv = lvs(request.name)
    assert lv is not None and "csi.swift-csi.io/restoring" in tags(lv), "not cut short mid-copy: %s" % lv
    got = driver.controller.ControllerGetVolume(pb.ControllerGetVolumeRequest(volume_id=request.name))
    assert got.status.volume_condition.abnormal and "cloned from volume " + source in got.status.volume_condition.message
    cstaging, ctarget = staging + "-clone", target + "-clone"
    os.makedirs(cstaging)
    expect_code(C.FAILED_PRECONDITION, stage, driver, request.name, cstaging, cap)

    clone = driver.controller.CreateVolume(request).volume
    assert "csi.swift-csi.io/restoring" not in tags(lvs(clone.volume_id))
    publish_dev = published_block(driver, clone.volume_id, cstaging, ctarget, cap)
    assert sha_of_device(publish_dev, size) == sha, "the repeated clone does not hold the source's data"
