"""NodeGetVolumeStats' VOLUME_CONDITION when the LV or its mount changes behind the driver's back."""

import os
import subprocess
import time

from conftest import TINY_POOL, VG, lvm, lvs
from csi_support import C, MIB, block_cap, create, expect_code, mount_cap, publish, stage


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


def device_of(path):
    rdev = os.stat(path).st_rdev
    return "%d:%d" % (os.major(rdev), os.minor(rdev))


def test_lv_deactivated_behind_the_drivers_back(driver, paths):
    """A raw block publish is a bind mount of the device node, which does not hold the device open:
    `lvchange -an` succeeds and leaves the published node without a device. The kubelet repeating
    NodeStageVolume and NodePublishVolume activates the LV again."""
    staging, target = paths
    cap = block_cap(driver.csi)
    vid = published(driver, paths, cap=cap)
    device = device_of(target)
    lvm("lvchange", "-an", "%s/%s" % (VG, vid))
    assert lvs(vid)["lv_attr"][4] != "a", lvs(vid)
    condition = stats(driver, vid, target).volume_condition
    assert condition.abnormal, condition.message
    for part in (vid, target, device, "no longer exists"):
        assert part in condition.message, condition.message

    stage(driver, vid, staging, cap)
    assert lvs(vid)["lv_attr"][4] == "a", lvs(vid)
    now = device_of("/dev/mapper/" + dm_name(vid))
    if now == device:
        # The same minor again: the published node is the volume's device once more.
        publish(driver, vid, staging, target, cap)
        condition = stats(driver, vid, target).volume_condition
        assert not condition.abnormal, condition.message
    else:
        # Another minor: the old node stays dead, and the publish says the target holds another device.
        expect_code(C.ALREADY_EXISTS, publish, driver, vid, staging, target, cap)
        condition = stats(driver, vid, target).volume_condition
        assert condition.abnormal and device in condition.message, condition.message


def test_lv_removed_behind_the_drivers_back(driver, paths):
    staging, target = paths
    vid = published(driver, paths, cap=block_cap(driver.csi))
    lvm("lvchange", "-an", "%s/%s" % (VG, vid))
    lvm("lvremove", "-f", "%s/%s" % (VG, vid))
    assert lvs(vid) is None
    condition = stats(driver, vid, target).volume_condition
    assert condition.abnormal and "no longer exists in the backend" in condition.message, condition.message
    assert device_of(target) in condition.message, condition.message


def test_lv_mapping_fails_io(driver, paths):
    """`dmsetup remove --force` on a mounted LV fails with EBUSY, but not before it has replaced the
    mapping with one that fails all I/O: the filesystem stays mounted on a device that only errs."""
    staging, target = paths
    vid = published(driver, paths)
    out = subprocess.run(["dmsetup", "remove", "--force", dm_name(vid)], capture_output=True, text=True)
    assert out.returncode != 0, "dmsetup removed a mounted device: %s" % out.stdout
    table = subprocess.run(["dmsetup", "table", dm_name(vid)], capture_output=True, text=True, check=True).stdout
    assert " error" in table, table
    condition = stats(driver, vid, target).volume_condition
    assert condition.abnormal, condition.message
    for part in (vid, target, "Input/output error"):
        assert part in condition.message, condition.message


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
    # The driver answers from LVM state up to 0.9 s old (LVMBackend's cacheMaximumAge), and a pool
    # filling up changes no metadata that would refresh it sooner: ask until that age has passed.
    deadline = time.monotonic() + 10
    condition = stats(driver, vid, target).volume_condition
    while not condition.abnormal and time.monotonic() < deadline:
        time.sleep(0.2)
        condition = stats(driver, vid, target).volume_condition
    assert condition.abnormal and TINY_POOL in condition.message, condition.message
    # The driver promises nothing more from a full pool.
    pb = driver.csi.pb
    capacity = driver.controller.GetCapacity(pb.GetCapacityRequest(parameters={"thinPool": TINY_POOL}))
    assert capacity.available_capacity == 0
