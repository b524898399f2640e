"""IO limits through mutable parameters (a VolumeAttributesClass): kept in the LV's tags, written to
`io.max` of the pod's cgroup in a cgroup v2 hierarchy shaped like the kubelet's (systemd and
cgroupfs drivers), changed by ControllerModifyVolume and by growth (per GiB), lifted at unpublish,
and a `dd oflag=direct` from inside the pod's cgroup measurably throttled."""

import os
import subprocess
import time
import uuid

import pytest

from conftest import POOL, VG, lvm, lvs
from csi_support import C, MIB, block_cap, create, expect_code, mount_cap, publish, stage

CGROUP = "/sys/fs/cgroup"
TAG = "csi.swift-csi.io/"


@pytest.fixture(scope="module")
def cgroup_root():
    """cgroup v2 at /sys/fs/cgroup with the io controller enabled at the root."""
    mounted_here = False
    if not os.path.exists(os.path.join(CGROUP, "cgroup.controllers")):
        os.makedirs(CGROUP, exist_ok=True)
        subprocess.run(["mount", "-t", "cgroup2", "none", CGROUP], check=True)
        mounted_here = True
    with open(os.path.join(CGROUP, "cgroup.controllers")) as f:
        if "io" not in f.read().split():
            pytest.skip("this kernel's cgroup v2 has no io controller")
    enable_io(CGROUP)
    yield CGROUP
    for top in ("kubepods", "kubepods.slice"):
        remove_cgroup_tree(os.path.join(CGROUP, top))
    if mounted_here:
        subprocess.run(["umount", CGROUP], check=False)


def enable_io(cgroup):
    with open(os.path.join(cgroup, "cgroup.subtree_control"), "w") as f:
        f.write("+io")


def remove_cgroup_tree(path):
    if not os.path.isdir(path):
        return
    for entry in os.listdir(path):
        child = os.path.join(path, entry)
        if os.path.isdir(child):
            remove_cgroup_tree(child)
    os.rmdir(path)


def pod_cgroup_path(layout, uid, qos="burstable"):
    """Where the kubelet puts pod `uid`'s cgroup (kubelet cm: CgroupName.ToSystemd/ToCgroupfs)."""
    if layout == "systemd":
        u = uid.replace("-", "_")
        if qos == "guaranteed":
            return os.path.join(CGROUP, "kubepods.slice", "kubepods-pod%s.slice" % u)
        return os.path.join(CGROUP, "kubepods.slice", "kubepods-%s.slice" % qos, "kubepods-%s-pod%s.slice" % (qos, u))
    if qos == "guaranteed":
        return os.path.join(CGROUP, "kubepods", "pod" + uid)
    return os.path.join(CGROUP, "kubepods", qos, "pod" + uid)


def make_pod_cgroup(layout, uid, qos="burstable", io=True):
    """Makes the pod's cgroup and its parents, `+io` in each parent's subtree_control (as the
    kubelet's cgroup manager enables the controllers down the path)."""
    path = pod_cgroup_path(layout, uid, qos)
    parts = os.path.relpath(path, CGROUP).split("/")
    current = CGROUP
    for part in parts:
        current = os.path.join(current, part)
        os.makedirs(current, exist_ok=True)
        if current != path and io:
            enable_io(current)
    return path


def io_max(cgroup):
    with open(os.path.join(cgroup, "io.max")) as f:
        return dict((line.split(" ", 1)[0], line.split(" ", 1)[1]) for line in f.read().splitlines() if line)


def lv_device(vid):
    st = os.stat("/dev/mapper/%s-%s" % (VG.replace("-", "--"), vid.replace("-", "--")))
    return "%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))


def fs_target(d, uid, pv):
    return d.path("pods", uid, "volumes", "kubernetes.io~csi", pv, "mount")


def block_target(d, uid, pv):
    return d.path("plugins", "kubernetes.io", "csi", "volumeDevices", "publish", pv, uid)


def staging_path(d, vid):
    path = d.path("plugins", "kubernetes.io", "csi", "pv", vid, "globalmount")
    os.makedirs(path, exist_ok=True)
    return path


def modify(d, vid, params):
    d.controller.ControllerModifyVolume(d.csi.pb.ControllerModifyVolumeRequest(volume_id=vid, mutable_parameters=params))


def unpublish(d, vid, target):
    d.node.NodeUnpublishVolume(d.csi.pb.NodeUnpublishVolumeRequest(volume_id=vid, target_path=target))


def unstage(d, vid, staging):
    d.node.NodeUnstageVolume(d.csi.pb.NodeUnstageVolumeRequest(volume_id=vid, staging_target_path=staging))


def io_tags(vid):
    return sorted(t for t in lvs(vid)["lv_tags"].split(",") if t.startswith(TAG) and "=" in t
                  and t[len(TAG):].split("=")[0] in KEYS)


KEYS = {q + s for q in ("readIOPS", "writeIOPS", "readBytesPerSecond", "writeBytesPerSecond") for s in ("", "PerGiB")}


@pytest.fixture
def cleanup(driver):
    """Unpublishes, unstages and deletes what a test made, even when it failed."""
    made = []
    yield made
    for vid, staging, targets in made:
        for target in targets:
            try:
                unpublish(driver, vid, target)
            except Exception:
                pass
        try:
            unstage(driver, vid, staging)
        except Exception:
            pass
        try:
            driver.controller.DeleteVolume(driver.csi.pb.DeleteVolumeRequest(volume_id=vid))
        except Exception:
            pass


def test_modify_volume_advertised(driver, cgroup_root):
    caps = driver.controller.ControllerGetCapabilities(driver.csi.pb.ControllerGetCapabilitiesRequest()).capabilities
    assert driver.csi.pb.ControllerServiceCapability.RPC.MODIFY_VOLUME in [c.rpc.type for c in caps]


@pytest.mark.parametrize("layout", ["systemd", "cgroupfs"])
def test_limits_applied_modified_and_lifted(driver, cgroup_root, cleanup, layout):
    uid = str(uuid.uuid4())
    cgroup = make_pod_cgroup(layout, uid, qos="burstable" if layout == "systemd" else "guaranteed")
    cap = mount_cap(driver.csi, "ext4")
    vol = create(driver, 64 * MIB, cap=cap, mutable_parameters={"writeBytesPerSecond": "2097152", "readIOPS": "500"})
    vid = vol.volume_id
    staging = staging_path(driver, vid)
    target = fs_target(driver, uid, "pv-" + vid)
    cleanup.append((vid, staging, [target]))
    assert io_tags(vid) == [TAG + "readIOPS=500", TAG + "writeBytesPerSecond=2097152"]

    stage(driver, vid, staging, cap)
    publish(driver, vid, staging, target, cap)
    dev = lv_device(vid)
    assert io_max(cgroup) == {dev: "rbps=max wbps=2097152 riops=500 wiops=max"}

    # Keys not given keep their limits; the others change (the spec: no change from absence).
    modify(driver, vid, {"writeBytesPerSecond": "4194304", "writeIOPS": "100"})
    assert io_max(cgroup) == {dev: "rbps=max wbps=4194304 riops=500 wiops=100"}
    assert io_tags(vid) == [TAG + "readIOPS=500", TAG + "writeBytesPerSecond=4194304", TAG + "writeIOPS=100"]
    modify(driver, vid, {"writeBytesPerSecond": "4194304", "writeIOPS": "100"})  # a repeat changes nothing
    assert io_max(cgroup) == {dev: "rbps=max wbps=4194304 riops=500 wiops=100"}
    # max lifts one limit.
    modify(driver, vid, {"readIOPS": "max"})
    assert io_max(cgroup) == {dev: "rbps=max wbps=4194304 riops=max wiops=100"}
    assert TAG + "readIOPS=500" not in io_tags(vid)

    # The tags are the truth: a limit lost from the cgroup comes back with a repeated publish.
    with open(os.path.join(cgroup, "io.max"), "w") as f:
        f.write("%s rbps=max wbps=max riops=max wiops=max" % dev)
    assert io_max(cgroup) == {}
    publish(driver, vid, staging, target, cap)
    assert io_max(cgroup) == {dev: "rbps=max wbps=4194304 riops=max wiops=100"}

    unpublish(driver, vid, target)
    assert io_max(cgroup) == {}


def test_per_gib_follows_size_raw_block(driver, cgroup_root, cleanup):
    uid = str(uuid.uuid4())
    cgroup = make_pod_cgroup("systemd", uid, qos="besteffort")
    cap = block_cap(driver.csi)
    vol = create(driver, 256 * MIB, cap=cap, parameters={"thinPool": POOL},
                 mutable_parameters={"writeIOPSPerGiB": "400", "readBytesPerSecondPerGiB": "10485760"})
    vid = vol.volume_id
    staging = staging_path(driver, vid)
    target = block_target(driver, uid, "pv-" + vid)
    cleanup.append((vid, staging, [target]))
    stage(driver, vid, staging, cap)
    publish(driver, vid, staging, target, cap)
    dev = lv_device(vid)
    # 256 MiB is a quarter GiB: 400 IOPS and 10 MiB/s per GiB make 100 and 2.5 MiB/s.
    assert io_max(cgroup) == {dev: "rbps=2621440 wbps=max riops=max wiops=100"}

    pb = driver.csi.pb
    driver.controller.ControllerExpandVolume(pb.ControllerExpandVolumeRequest(
        volume_id=vid, capacity_range=pb.CapacityRange(required_bytes=768 * MIB), volume_capability=cap))
    assert io_max(cgroup) == {dev: "rbps=7864320 wbps=max riops=max wiops=300"}

    # An absolute limit replaces the per-GiB one of the same quantity.
    modify(driver, vid, {"writeIOPS": "1000"})
    assert io_max(cgroup) == {dev: "rbps=7864320 wbps=max riops=max wiops=1000"}
    assert io_tags(vid) == [TAG + "readBytesPerSecondPerGiB=10485760", TAG + "writeIOPS=1000"]
    unpublish(driver, vid, target)
    assert io_max(cgroup) == {}


def test_invalid_parameters_change_nothing(driver, cgroup_root, cleanup):
    pb = driver.csi.pb
    details = expect_code(C.INVALID_ARGUMENT, create, driver, 32 * MIB, mutable_parameters={"readIOPZ": "10"})
    assert "readIOPZ" in details
    vol = create(driver, 32 * MIB, mutable_parameters={"readIOPS": "100"})
    vid = vol.volume_id
    cleanup.append((vid, staging_path(driver, vid), []))
    for params, word in [({"iops": "5"}, "iops"), ({"readIOPS": "1"}, "readIOPS"), ({"readIOPS": "ten"}, "readIOPS"),
                         ({"readIOPS": "-5"}, "readIOPS"), ({"writeIOPS": "5000000000"}, "writeIOPS"),
                         ({"readIOPS": "10", "readIOPSPerGiB": "10"}, "readIOPSPerGiB")]:
        details = expect_code(C.INVALID_ARGUMENT, modify, driver, vid, params)
        assert word in details and vid in details, details
    assert io_tags(vid) == [TAG + "readIOPS=100"]
    expect_code(C.NOT_FOUND, modify, driver, "no-such-volume", {"readIOPS": "10"})
    expect_code(C.INVALID_ARGUMENT, driver.controller.ControllerModifyVolume, pb.ControllerModifyVolumeRequest(volume_id=vid))


def test_no_pod_cgroup_is_a_clear_error(driver, cgroup_root, cleanup):
    uid = str(uuid.uuid4())
    cap = mount_cap(driver.csi, "ext4")
    vol = create(driver, 32 * MIB, cap=cap, mutable_parameters={"writeIOPS": "50"})
    vid = vol.volume_id
    staging = staging_path(driver, vid)
    target = fs_target(driver, uid, "pv-" + vid)
    cleanup.append((vid, staging, [target]))
    stage(driver, vid, staging, cap)
    start = time.monotonic()
    details = expect_code(C.FAILED_PRECONDITION, publish, driver, vid, staging, target, cap)
    assert uid in details and "kubepods.slice/kubepods-pod%s.slice" % uid.replace("-", "_") in details, details
    assert "kubepods/besteffort/pod" + uid in details, details
    assert time.monotonic() - start >= 4, "the pod's cgroup was not waited for"
    assert not os.path.ismount(target), "a publish whose limits failed left a mount"

    # The io controller not enabled above the pod's cgroup: said so, naming the parent.
    uid2 = str(uuid.uuid4())
    make_pod_cgroup("cgroupfs", uid2, qos="besteffort", io=False)
    target2 = fs_target(driver, uid2, "pv-" + vid)
    cleanup.append((vid, staging, [target2]))
    details = expect_code(C.FAILED_PRECONDITION, publish, driver, vid, staging, target2, cap)
    assert "cgroup.subtree_control" in details and "kubepods/besteffort" in details, details

    # A pod cgroup made while the publish waits is found.
    uid3 = str(uuid.uuid4())
    target3 = fs_target(driver, uid3, "pv-" + vid)
    cleanup.append((vid, staging, [target3]))
    later = subprocess.Popen(["sh", "-c", "sleep 1; mkdir -p %s" % pod_cgroup_path("cgroupfs", uid3, "guaranteed")])
    make_pod_cgroup("cgroupfs", "placeholder", qos="guaranteed")  # kubepods exists with +io
    publish(driver, vid, staging, target3, cap)
    later.wait()
    assert io_max(pod_cgroup_path("cgroupfs", uid3, "guaranteed")) == {lv_device(vid): "rbps=max wbps=max riops=max wiops=50"}


def timed_dd(cgroup, path, mib):
    """Seconds a `dd oflag=direct` of `mib` MiB takes from inside `cgroup` (the shell's pid in its cgroup.procs)."""
    script = "echo $$ > %s/cgroup.procs && exec dd if=/dev/zero of=%s bs=1M count=%d oflag=direct conv=fsync status=none" % (
        cgroup, path, mib)
    start = time.monotonic()
    subprocess.run(["sh", "-c", script], check=True)
    return time.monotonic() - start


def test_dd_is_throttled(driver, cgroup_root, cleanup):
    uid = str(uuid.uuid4())
    cgroup = make_pod_cgroup("systemd", uid, qos="burstable")
    other = make_pod_cgroup("systemd", str(uuid.uuid4()), qos="burstable")
    cap = mount_cap(driver.csi, "ext4")
    vol = create(driver, 64 * MIB, cap=cap, mutable_parameters={"writeBytesPerSecond": str(2 * MIB)})
    vid = vol.volume_id
    staging = staging_path(driver, vid)
    target = fs_target(driver, uid, "pv-" + vid)
    cleanup.append((vid, staging, [target]))
    stage(driver, vid, staging, cap)
    publish(driver, vid, staging, target, cap)
    data = os.path.join(target, "data")
    # The same write from a cgroup without the limit, then from the pod's: 8 MiB at 2 MiB/s is ~4 s.
    free = timed_dd(other, data, 8)
    throttled = timed_dd(cgroup, data, 8)
    print("dd of 8 MiB, oflag=direct: %.2f s unthrottled, %.2f s at writeBytesPerSecond=2 MiB/s" % (free, throttled))
    assert throttled >= 3.0, "8 MiB at 2 MiB/s took %.2f s" % throttled
    assert throttled > 3 * free, "throttled %.2f s vs unthrottled %.2f s" % (throttled, free)
    # Raised by a modify, the same write is faster again.
    modify(driver, vid, {"writeBytesPerSecond": str(64 * MIB)})
    raised = timed_dd(cgroup, data, 8)
    print("after the modify to 64 MiB/s: %.2f s" % raised)
    assert raised < throttled / 2, "raised %.2f s vs throttled %.2f s" % (raised, throttled)


def test_modify_cut_short_is_finished_by_its_repeat_after_a_restart(driver, cgroup_root, cleanup):
    """The driver dies after recording new limits and before writing io.max (made here by hand:
    the tags changed, the cgroup not). Restarted, it knows nothing in memory: the repeated modify
    records nothing new and finds the publish in the mount table to apply the limits."""
    uid = str(uuid.uuid4())
    cgroup = make_pod_cgroup("cgroupfs", uid, qos="burstable")
    cap = mount_cap(driver.csi, "ext4")
    vol = create(driver, 32 * MIB, cap=cap, mutable_parameters={"writeIOPS": "50"})
    vid = vol.volume_id
    staging = staging_path(driver, vid)
    target = fs_target(driver, uid, "pv-" + vid)
    cleanup.append((vid, staging, [target]))
    stage(driver, vid, staging, cap)
    publish(driver, vid, staging, target, cap)
    dev = lv_device(vid)
    assert io_max(cgroup) == {dev: "rbps=max wbps=max riops=max wiops=50"}

    driver.kill()
    lvm("lvchange", "--deltag", TAG + "writeIOPS=50", "--addtag", TAG + "writeIOPS=75", "%s/%s" % (VG, vid))
    driver.start()
    assert io_max(cgroup) == {dev: "rbps=max wbps=max riops=max wiops=50"}
    modify(driver, vid, {"writeIOPS": "75"})
    assert io_max(cgroup) == {dev: "rbps=max wbps=max riops=max wiops=75"}
    unpublish(driver, vid, target)
    assert io_max(cgroup) == {}


def test_encrypted_volume_is_limited_on_its_mapping(driver, cgroup_root, cleanup):
    """Pods do their IO on the LUKS2 mapping, not on the LV under it: the limit is for the mapping."""
    uid = str(uuid.uuid4())
    cgroup = make_pod_cgroup("systemd", uid, qos="guaranteed")
    cap = mount_cap(driver.csi, "ext4")
    vol = create(driver, 64 * MIB, cap=cap, parameters={"encryption": "luks2"},
                 mutable_parameters={"readBytesPerSecond": str(8 * MIB)})
    vid = vol.volume_id
    staging = staging_path(driver, vid)
    target = fs_target(driver, uid, "pv-" + vid)
    cleanup.append((vid, staging, [target]))
    driver.node.NodeStageVolume(driver.csi.pb.NodeStageVolumeRequest(
        volume_id=vid, staging_target_path=staging, volume_capability=cap, secrets={"passphrase": "io limits key"},
        volume_context={"encryption": "luks2"}))
    publish(driver, vid, staging, target, cap)
    st = os.stat("/dev/mapper/luks-" + vid)
    mapping = "%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))
    assert mapping != lv_device(vid)
    assert io_max(cgroup) == {mapping: "rbps=%d wbps=max riops=max wiops=max" % (8 * MIB)}
    modify(driver, vid, {"readBytesPerSecond": str(16 * MIB)})
    assert io_max(cgroup) == {mapping: "rbps=%d wbps=max riops=max wiops=max" % (16 * MIB)}
    unpublish(driver, vid, target)
    assert io_max(cgroup) == {}
