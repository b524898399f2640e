"""The LVM path on a real kernel: fixtures for the suite that runs inside Tests/VM/vm.

A volume group on the VM's first virtio disk (SWIFT_CSI_LVM_DISK, default /dev/vda) with two thin
pools, and csi-lvm-driver serving it on a Unix socket, driven by grpcio. `lvs`, `findmnt` and file
contents are the witnesses. On a host that has device-mapper and a spare disk, set
SWIFT_CSI_LVM_DISK to run the suite there (everything on the disk is destroyed).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "E2E"))
import csi_support  # noqa: E402

DISK = os.environ.get("SWIFT_CSI_LVM_DISK") or ("/dev/vda" if os.environ.get("SWIFT_CSI_VM") == "1" else None)
VG = "vmvg"
POOL = "pool"
TINY_POOL = "tinypool"
RATIO = 2

if DISK is None:
    pytest.skip("runs inside Tests/VM/vm (or set SWIFT_CSI_LVM_DISK to a disk it may wipe)", allow_module_level=True)


def udev_running():
    return os.path.exists("/run/udev/control")


def lvm(*args, check=True):
    """Runs an lvm command as an operator would; without udev, LVM must not wait for it."""
    words = ["lvm", args[0]]
    if not udev_running():
        words += ["--config", "activation { udev_rules = 0 udev_sync = 0 }"]
    env = dict(os.environ, LVM_SUPPRESS_FD_WARNINGS="1")
    out = subprocess.run(words + list(args[1:]), env=env, capture_output=True, text=True)
    if check:
        assert out.returncode == 0, "%s: %s" % (" ".join(words + list(args[1:])), out.stderr)
    return out


def lvs(name=None):
    """LVs of the suite's VG as dicts (sizes in bytes); one LV's dict, or None, when `name` is given."""
    out = lvm("lvs", "--reportformat", "json", "--units", "b", "--nosuffix", "-a", "-o",
              "lv_name,lv_size,lv_attr,pool_lv,origin,lv_tags,data_percent,metadata_percent", VG)
    rows = json.loads(out.stdout)["report"][0]["lv"]
    for row in rows:
        row["lv_size"] = int(row["lv_size"])
    if name is None:
        return rows
    return next((r for r in rows if r["lv_name"] == name), None)


@pytest.fixture(scope="session")
def volume_group():
    lvm("pvcreate", "-q", DISK)
    lvm("vgcreate", "-q", VG, DISK)
    lvm("lvcreate", "-q", "-y", "--type", "thin-pool", "-L", "1G", "-n", POOL, VG)
    # A small pool that errors when full instead of queueing writes for a minute.
    lvm("lvcreate", "-q", "-y", "--type", "thin-pool", "-L", "64M", "-n", TINY_POOL, VG)
    lvm("lvchange", "-q", "--errorwhenfull", "y", VG + "/" + TINY_POOL)
    yield VG
    csi_support.unmount_all_under("/run/swift-csi-test")
    lvm("vgremove", "-ff", "-y", VG, check=False)


@pytest.fixture(scope="session")
def csi():
    stubs, out = csi_support.generate_stubs()
    yield stubs
    shutil.rmtree(out, ignore_errors=True)


def start_driver(csi, extra=()):
    os.makedirs("/run/swift-csi-test", exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="driver-", dir="/run/swift-csi-test")
    return csi_support.Driver(csi_support.built_binary(), csi, workdir,
                              ["--backend", "lvm", "--volume-group", VG, "--overprovision-ratio", str(RATIO),
                               "--luks-iter-time", "50", "--luks-pbkdf-memory", "8192"] + list(extra))


@pytest.fixture(scope="session")
def driver(csi, volume_group):
    d = start_driver(csi)
    yield d
    rc = d.stop()
    if rc != 0:
        print(d.output()[-4000:])
    assert rc == 0, "driver exited with %s" % rc


@pytest.fixture
def paths(driver, request):
    """A fresh staging and target path pair under the kubelet directory, unmounted afterwards."""
    base = driver.path("pods", request.node.name.replace("[", "-").replace("]", ""))
    staging = os.path.join(base, "globalmount")
    target = os.path.join(base, "volumes", "mnt")
    os.makedirs(staging, exist_ok=True)
    yield staging, target
    csi_support.unmount_all_under(base)
    shutil.rmtree(base, ignore_errors=True)
    remove_everything(driver)


def remove_everything(driver):
    """Deletes every snapshot and volume the driver owns, so each test starts with the VG's room
    (closing the encrypted mappings a test left open, as an unstage would)."""
    pb = driver.csi.pb
    if os.path.isdir("/dev/mapper"):
        for entry in os.listdir("/dev/mapper"):
            if entry.startswith("luks-"):
                subprocess.run(["cryptsetup", "close", entry], check=False)
    groups = {}
    for snap in driver.controller.ListSnapshots(pb.ListSnapshotsRequest()).entries:
        if snap.snapshot.group_snapshot_id:
            groups.setdefault(snap.snapshot.group_snapshot_id, []).append(snap.snapshot.snapshot_id)
        else:
            driver.controller.DeleteSnapshot(pb.DeleteSnapshotRequest(snapshot_id=snap.snapshot.snapshot_id))
    # A member of a group snapshot goes with its group only.
    for group, members in groups.items():
        driver.csi.grpc.GroupControllerStub(driver.channel).DeleteVolumeGroupSnapshot(
            pb.DeleteVolumeGroupSnapshotRequest(group_snapshot_id=group, snapshot_ids=members))
    for entry in driver.controller.ListVolumes(pb.ListVolumesRequest()).entries:
        driver.controller.DeleteVolume(pb.DeleteVolumeRequest(volume_id=entry.volume.volume_id))
