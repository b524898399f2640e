"""NodeGetVolumeStats' VOLUME_CONDITION when the LV or its mount changes behind the driver's back."""

import os
import subprocess

import pytest

from conftest import POOL, RATIO, TINY_POOL, VG, lvm, lvs
from csi_support import C, MIB, block_cap, create, delete, expect_code, mount_cap, publish, stage


def stats(d, vid, path):
    return d.node.NodeGetVolumeStats(d.csi.pb.NodeGetVolumeStatsRequest(volume_id=vid, volume_path=path))


def published(driver, paths, parameters=None, cap=None, size=64 * MIB):
    staging, target = paths
    cap = cap or mount_cap(driver.csi, "ext4")
    vid = create(driver, size, cap=cap, parameters=parameters or {}).volume_id
    stage(driver, vid, staging, cap)
    publish(driver, vid, staging, target, cap)
    assert not stats(driver, vid, target).volume_condition.abnormal
    return vid


def dm_name(vid):
    return "%s-%s" % (VG.replace("-", "--"), vid.replace("-", "--"))


def test_mount_gone(driver, paths):
    staging, target = paths
    vid = published(driver, paths)
    subprocess.run(["umount", target], check=True)
    condition = stats(driver, vid, target).volume_condition
    assert condition.abnormal and "mount" in condition.message, condition.message


def test_lv_deactivated_behind_the_drivers_back(driver, paths):
    staging, target = paths
    vid = published(driver, paths)
    # The mapping is replaced by one that fails all I/O and its name removed: LVM sees the LV inactive
    # while the filesystem is still mounted on the dead device.
    subprocess.run(["dmsetup", "remove", "--force", dm_name(vid)], check=True, capture_output=True)
    assert lvs(vid)["lv_attr"][4] != "a", lvs(vid)
    condition = stats(driver, vid, target).volume_condition
    assert condition.abnormal, condition.message
    assert vid in condition.message


def test_lv_removed_behind_the_drivers_back(driver, paths):
    staging, target = paths
    vid = published(driver, paths)
    subprocess.run(["dmsetup", "remove", "--force", dm_name(vid)], check=True, capture_output=True)
    lvm("lvremove", "-f", "%s/%s" % (VG, vid))
    assert lvs(vid) is None
    condition = stats(driver, vid, target).volume_condition
    assert condition.abnormal and "no longer exists" in condition.message, condition.message


def test_thin_pool_full(driver, paths):
    staging, target = paths
    # The tiny pool is 64 MiB; the ratio lets a 96 MiB thin volume be promised from it.
    cap = block_cap(driver.csi)
    vid = published(driver, paths, parameters={"thinPool": TINY_POOL}, cap=cap, size=96 * MIB)
    fd = os.open(target, os.O_WRONLY | os.O_DIRECT)
    import mmap
    chunk = mmap.mmap(-1, MIB)
    chunk.write(os.urandom(MIB))
    failed = False
    try:
        for i in range(96):
            os.pwritev(fd, [chunk], i * MIB)
    except OSError:
        failed = True
    finally:
        os.close(fd)
    assert failed, "writing 96 MiB into a 64 MiB pool that errors when full did not fail"
    pool = lvs(TINY_POOL)
    assert float(pool["data_percent"]) >= 99.9, pool
    condition = stats(driver, vid, target).volume_condition
    assert condition.abnormal and TINY_POOL in condition.message, condition.message
    # The driver promises nothing more from a full pool.
    pb = driver.csi.pb
    capacity = driver.controller.GetCapacity(pb.GetCapacityRequest(parameters={"thinPool": TINY_POOL}))
    assert capacity.available_capacity == 0
