"""What a thin pool promises, and sizes a filesystem needs, against lvs."""

from conftest import POOL, RATIO, lvs
from csi_support import C, MIB, create, expect_code, findmnt, mount_cap, publish, stage


def capacity(driver, **parameters):
    pb = driver.csi.pb
    return driver.controller.GetCapacity(pb.GetCapacityRequest(parameters=parameters)).available_capacity


def promised(pool):
    return sum(lv["lv_size"] for lv in lvs() if lv["pool_lv"] == pool)


def test_thin_pool_promises_size_times_ratio_minus_what_it_gave(driver, paths):
    pool_size = lvs(POOL)["lv_size"]
    assert capacity(driver, thinPool=POOL) == pool_size * RATIO - promised(POOL)
    first = create(driver, pool_size, parameters={"thinPool": POOL})
    assert capacity(driver, thinPool=POOL) == pool_size * RATIO - promised(POOL)
    assert promised(POOL) >= first.capacity_bytes
    # The same space is not promised twice: what is left is all that can be had.
    left = capacity(driver, thinPool=POOL)
    details = expect_code(C.RESOURCE_EXHAUSTED, create, driver, left + 64 * MIB, parameters={"thinPool": POOL})
    assert POOL in details
    create(driver, left, parameters={"thinPool": POOL})
    assert capacity(driver, thinPool=POOL) == 0
    expect_code(C.RESOURCE_EXHAUSTED, create, driver, 4 * MIB, parameters={"thinPool": POOL})


def test_small_xfs_volume_is_rounded_up_to_what_xfs_needs(driver, paths):
    staging, target = paths
    cap = mount_cap(driver.csi, "xfs")
    vol = create(driver, 64 * MIB, cap=cap)
    assert vol.capacity_bytes >= 300 * MIB and lvs(vol.volume_id)["lv_size"] == vol.capacity_bytes
    stage(driver, vol.volume_id, staging, cap)
    publish(driver, vol.volume_id, staging, target, cap)
    assert findmnt(target)["fstype"] == "xfs"
    pb = driver.csi.pb
    expect_code(C.OUT_OF_RANGE, driver.controller.CreateVolume, pb.CreateVolumeRequest(
        name="too-small-for-xfs", capacity_range=pb.CapacityRange(required_bytes=64 * MIB, limit_bytes=128 * MIB),
        volume_capabilities=[cap]))
