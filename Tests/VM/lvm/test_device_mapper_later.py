"""A node whose device-mapper module is not loaded when the driver starts (a fresh node: dm-mod loads
on first use) must serve node calls once it is, without a restart."""

import os
import subprocess
import time

import pytest

from conftest import VG, lvm, start_driver
from csi_support import create, mount_cap, publish, stage

def loaded(module):
    return os.path.exists("/sys/module/" + module)


def unload_device_mapper():
    """rmmod every dm module no one uses, until dm_mod itself is gone. The session's driver holds
    /dev/mapper/control open while its LVM handle is (up to 5 s after its last command)."""
    deadline = time.monotonic() + 20
    while loaded("dm_mod") and time.monotonic() < deadline:
        with open("/proc/modules") as f:
            unused = [line.split()[0] for line in f if line.startswith("dm_") and line.split()[2] == "0"]
        for module in unused:
            subprocess.run(["rmmod", module], capture_output=True)
        if not unused:
            time.sleep(0.5)
    if loaded("dm_mod"):
        with open("/proc/modules") as f:
            pytest.fail("device-mapper could not be unloaded: " + "".join(l for l in f if l.startswith("dm_")))


def test_node_calls_work_when_dm_mod_loads_after_start(csi, volume_group, tmp_path):
    lvm("vgchange", "-an", VG)
    unload_device_mapper()
    # libdevmapper made /dev/mapper/control itself; a fresh node without kmod's static nodes has none.
    if os.path.exists("/dev/mapper/control"):
        os.unlink("/dev/mapper/control")
    assert not loaded("dm_mod") and not os.path.exists("/dev/mapper/control")
    driver = start_driver(csi)
    try:
        cap = mount_cap(csi, "ext4")
        vid = create(driver, 64 * 1 << 20, cap=cap).volume_id
        base = driver.path("pods", "dm-later")
        staging, target = os.path.join(base, "globalmount"), os.path.join(base, "mnt")
        os.makedirs(staging)
        stage(driver, vid, staging, cap)
        publish(driver, vid, staging, target, cap)
        assert loaded("dm_mod")
        with open(os.path.join(target, "f"), "w") as f:
            f.write("ok")
        driver.node.NodeUnpublishVolume(csi.pb.NodeUnpublishVolumeRequest(volume_id=vid, target_path=target))
        driver.node.NodeUnstageVolume(csi.pb.NodeUnstageVolumeRequest(volume_id=vid, staging_target_path=staging))
        driver.controller.DeleteVolume(csi.pb.DeleteVolumeRequest(volume_id=vid))
    finally:
        assert driver.stop() == 0
        lvm("vgchange", "-ay", VG, check=False)
