"""Crash safety on real devices: SIGKILL the driver (and its children) inside each mutating call,
restart it, repeat the request. The repeat completes, the data is intact, nothing is left behind."""

import hashlib
import os
import subprocess
import threading
import time

import grpc
import pytest

from conftest import VG, lvs
from csi_support import GIB, MIB, block_cap, create, mount_cap, name, publish, stage, stage_and_publish


def kill_inside(driver, call, witness, what, timeout=120, may_finish=False):
    """Sends `call` on a thread, kills the driver once `witness()` holds, restarts it, and returns
    what the interrupted call got (an exception or a response). With `may_finish`, a call that
    finished before the witness was seen (a step too quick to catch) returns None instead of failing."""
    outcome = {}

    def run():
        try:
            outcome["response"] = call()
        except grpc.RpcError as error:
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + timeout
    while not witness():
        if not thread.is_alive() and may_finish:
            thread.join()
            return None
        assert thread.is_alive(), "the call finished before %s: %s" % (what, outcome)
        assert time.monotonic() < deadline, "no sign of %s within %s s" % (what, timeout)
        time.sleep(0.002)
    driver.kill()
    thread.join(30)
    driver.start()
    return outcome


def running(driver, *names):
    """Whether a child of the driver with one of these command names runs (read from the driver's
    own /proc/PID/task/*/children: quick enough to catch a short xfs_growfs)."""
    def check():
        pid = driver.process.pid
        try:
            tasks = os.listdir("/proc/%d/task" % pid)
        except OSError:
            return False
        for task in tasks:
            try:
                with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                    children = f.read().split()
            except OSError:
                continue
            for child in children:
                try:
                    with open("/proc/%s/comm" % child) as f:
                        if f.read().strip() in names:
                            return True
                except OSError:
                    pass
        return False
    return check


def leftovers(vid):
    """Device-mapper devices, LVs and mounts that mention `vid`."""
    dm = subprocess.run(["dmsetup", "ls"], capture_output=True, text=True).stdout
    with open("/proc/self/mountinfo") as f:
        mounts = [line for line in f if vid in line]
    return [line for line in dm.splitlines() if vid.replace("-", "--") in line] + mounts


def sha_of_device(path, size):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        remaining = size
        while remaining:
            chunk = f.read(min(remaining, 4 * MIB))
            assert chunk, "short read from %s" % path
            h.update(chunk)
            remaining -= len(chunk)
    return h.hexdigest()


def fill(path, size):
    h = hashlib.sha256()
    with open(path, "r+b") as f:
        for _ in range(size // (4 * MIB)):
            data = os.urandom(4 * MIB)
            f.write(data)
            h.update(data)
        f.flush()
        os.fsync(f.fileno())
    return h.hexdigest()


def written_block_volume(driver, staging, target, size):
    """A new raw block volume of `size`, staged and published, filled with random data: its id, its
    capability and the data's sha256."""
    cap = block_cap(driver.csi)
    vid = create(driver, size, cap=cap).volume_id
    stage_and_publish(driver, vid, staging, target, cap)
    return vid, cap, fill(target, size)


def test_create_volume_from_snapshot(driver, paths):
    """A thick restore copies the snapshot block by block: killed mid-copy, the repeat must not hand
    out the half-copied LV."""
    pb = driver.csi.pb
    staging, target = paths
    size = 256 * MIB
    vid, cap, sha = written_block_volume(driver, staging, target, size)
    snap = driver.controller.CreateSnapshot(pb.CreateSnapshotRequest(source_volume_id=vid, name=name("snap"))).snapshot
    restore_name = name("restore")
    request = pb.CreateVolumeRequest(
        name=restore_name, capacity_range=pb.CapacityRange(required_bytes=size), volume_capabilities=[cap],
        volume_content_source=pb.VolumeContentSource(snapshot=pb.VolumeContentSource.SnapshotSource(snapshot_id=snap.snapshot_id)))
    node = "/dev/mapper/%s-%s" % (VG, restore_name.replace("-", "--"))
    kill_inside(driver, lambda: driver.controller.CreateVolume(request), lambda: os.path.exists(node), "the new LV")
    restored = driver.controller.CreateVolume(request).volume
    rstaging, rtarget = staging + "-r", target + "-r"
    os.makedirs(rstaging)
    stage(driver, restored.volume_id, rstaging, cap)
    publish(driver, restored.volume_id, rstaging, rtarget, cap)
    assert sha_of_device(rtarget, size) == sha, "the restored volume does not hold the snapshot's data"


@pytest.mark.parametrize("fs_type", ["ext4", "xfs"])
def test_node_stage_while_formatting(driver, paths, fs_type):
    staging, target = paths
    cap = mount_cap(driver.csi, fs_type)
    vid = create(driver, GIB, cap=cap).volume_id
    request = driver.csi.pb.NodeStageVolumeRequest(volume_id=vid, staging_target_path=staging, volume_capability=cap)
    kill_inside(driver, lambda: driver.node.NodeStageVolume(request), running(driver, "mkfs.ext4", "mke2fs", "mkfs.xfs"), "mkfs")
    driver.node.NodeStageVolume(request)
    publish(driver, vid, staging, target, cap)
    with open(os.path.join(target, "probe"), "w") as f:
        f.write("written after the crash")
    out = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "--mountpoint", staging], capture_output=True, text=True).stdout
    assert out.strip() == fs_type


def test_node_publish(driver, paths):
    staging, target = paths
    cap = mount_cap(driver.csi, "ext4")
    vid = create(driver, 64 * MIB, cap=cap).volume_id
    stage(driver, vid, staging, cap)
    request = driver.csi.pb.NodePublishVolumeRequest(volume_id=vid, staging_target_path=staging, target_path=target,
                                                     volume_capability=cap)

    def mounted():
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == target for line in f)

    # A bind mount takes a millisecond: the call may answer before the poll sees the mount. Then
    # it is undone and tried again; if it is never caught, the crash is made by hand: the mount
    # done, the driver killed before answering.
    for _ in range(5):
        if kill_inside(driver, lambda: driver.node.NodePublishVolume(request), mounted, "the bind mount",
                       may_finish=True) is not None:
            break
        driver.node.NodeUnpublishVolume(driver.csi.pb.NodeUnpublishVolumeRequest(volume_id=vid, target_path=target))
    else:
        os.makedirs(target, exist_ok=True)
        subprocess.run(["mount", "--bind", staging, target], check=True)
        driver.kill()
        driver.start()
    assert mounted()
    driver.node.NodePublishVolume(request)
    with open("/proc/self/mountinfo") as f:
        assert sum(1 for line in f if line.split()[4] == target) == 1, "the repeat stacked a second mount"


@pytest.mark.parametrize("fs_type", ["ext4", "xfs"])
def test_node_expand(driver, paths, fs_type):
    pb = driver.csi.pb
    staging, target = paths
    cap = mount_cap(driver.csi, fs_type)
    vid = create(driver, 320 * MIB, cap=cap).volume_id
    stage(driver, vid, staging, cap)
    publish(driver, vid, staging, target, cap)
    data = os.urandom(8 * MIB)
    with open(os.path.join(target, "data"), "wb") as f:
        f.write(data)
    subprocess.run(["sync"], check=True)
    size = 2 * GIB
    driver.controller.ControllerExpandVolume(pb.ControllerExpandVolumeRequest(
        volume_id=vid, capacity_range=pb.CapacityRange(required_bytes=size), volume_capability=cap))
    request = pb.NodeExpandVolumeRequest(volume_id=vid, volume_path=target, capacity_range=pb.CapacityRange(required_bytes=size),
                                         volume_capability=cap)
    kill_inside(driver, lambda: driver.node.NodeExpandVolume(request), running(driver, "resize2fs", "xfs_growfs"), "the resize")
    response = driver.node.NodeExpandVolume(request)
    assert response.capacity_bytes >= size
    st = os.statvfs(target)
    assert st.f_blocks * st.f_frsize > 3 * size // 4, "the filesystem did not grow"
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")
    with open(os.path.join(target, "data"), "rb") as f:
        assert f.read() == data


def test_delete_volume(driver):
    vid = create(driver, 64 * MIB).volume_id
    node = "/dev/mapper/%s-%s" % (VG, vid.replace("-", "--"))
    assert os.path.exists(node)
    request = driver.csi.pb.DeleteVolumeRequest(volume_id=vid)
    kill_inside(driver, lambda: driver.controller.DeleteVolume(request), lambda: not os.path.exists(node), "the deactivation")
    driver.controller.DeleteVolume(request)
    assert lvs(vid) is None
    assert leftovers(vid) == []
