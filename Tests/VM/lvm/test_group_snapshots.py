"""Group snapshots (the GroupController service) on real device-mapper: a thin and a thick volume,
mounted and written, snapshotted together; every member holds what was written before the cut and
restores like any snapshot; the spec's codes for Get, Delete, a member deleted alone, a repeat and
another set of sources; no filesystem or device is left held after an error or a SIGKILL."""

import os
import subprocess
import threading
import time

import grpc

from conftest import POOL, VG, lvs
from csi_support import C, MIB, create, expect_code, mount_cap, name, publish, stage
from test_crash import fill, sha_of_device, written_block_volume
from test_luks import encrypted, mapping, publish as luks_publish, stage as luks_stage

THIN = {"thinPool": POOL}
GROUP_TAG = "csi.swift-csi.io/group="


def groups(driver):
    """A GroupController stub on the driver's current channel (a restart makes a new one)."""
    return driver.csi.grpc.GroupControllerStub(driver.channel)


def group_request(driver, group_name, sources):
    return driver.csi.pb.CreateVolumeGroupSnapshotRequest(name=group_name, source_volume_ids=sources,
                                                          secrets={"token": "group-secret-value"})


def mounted_volume(driver, staging, target, parameters, text):
    """A new 64 MiB ext4 volume, staged at `staging`, published at `target`, with `text` in data.txt
    (written, not synced: the cut must flush it)."""
    cap = mount_cap(driver.csi, "ext4")
    vid = create(driver, 64 * MIB, cap=cap, parameters=parameters).volume_id
    os.makedirs(staging, exist_ok=True)
    stage(driver, vid, staging, cap)
    publish(driver, vid, staging, target, cap)
    write(target, text)
    return vid


def write(target, text):
    with open(os.path.join(target, "data.txt"), "w") as f:
        f.write(text)


def read(target):
    with open(os.path.join(target, "data.txt")) as f:
        return f.read()


def dm_device(vid):
    """The major:minor of the LV of volume `vid`."""
    st = os.stat("/dev/mapper/%s-%s" % (VG, vid.replace("-", "--")))
    return "%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))


def suspended(vid):
    with open("/sys/dev/block/%s/dm/suspended" % dm_device(vid)) as f:
        return f.read().strip() == "1"


def writable(target, timeout=30):
    """Whether a write and fsync through `target` finish within `timeout` s (a frozen filesystem or
    a suspended device makes them wait). The writer is left behind if it hangs."""
    probe = os.path.join(target, "probe-%d" % time.monotonic_ns())
    child = subprocess.Popen(["sh", "-c", 'echo written > "$1" && sync "$1"', "sh", probe])
    try:
        return child.wait(timeout=timeout) == 0
    except subprocess.TimeoutExpired:
        return False


def members_in_lvs(group_id):
    return sorted(lv["lv_name"] for lv in lvs() if GROUP_TAG + group_id in lv["lv_tags"].split(","))


def restore_and_read(driver, snapshot, staging, target):
    cap = mount_cap(driver.csi, "ext4")
    pb = driver.csi.pb
    restored = driver.controller.CreateVolume(pb.CreateVolumeRequest(
        name=name("restore"), capacity_range=pb.CapacityRange(required_bytes=snapshot.size_bytes), volume_capabilities=[cap],
        volume_content_source=pb.VolumeContentSource(
            snapshot=pb.VolumeContentSource.SnapshotSource(snapshot_id=snapshot.snapshot_id)))).volume
    assert restored.content_source.snapshot.snapshot_id == snapshot.snapshot_id
    os.makedirs(staging, exist_ok=True)
    stage(driver, restored.volume_id, staging, cap)
    publish(driver, restored.volume_id, staging, target, cap)
    return read(target)


def test_group_of_a_thin_and_a_thick_volume(driver, paths):
    pb = driver.csi.pb
    staging, target = paths
    capabilities = driver.identity.GetPluginCapabilities(pb.GetPluginCapabilitiesRequest()).capabilities
    assert pb.PluginCapability.Service.GROUP_CONTROLLER_SERVICE in [c.service.type for c in capabilities]
    rpcs = [c.rpc.type for c in groups(driver).GroupControllerGetCapabilities(pb.GroupControllerGetCapabilitiesRequest()).capabilities]
    assert rpcs == [pb.GroupControllerServiceCapability.RPC.CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT]

    thin = mounted_volume(driver, staging, target, THIN, "thin before the cut\n")
    thick = mounted_volume(driver, staging + "-b", target + "-b", {}, "thick before the cut\n")
    group_name = name("group")
    request = group_request(driver, group_name, [thick, thin])
    group = groups(driver).CreateVolumeGroupSnapshot(request).group_snapshot
    write(target, "thin after the cut\n")
    write(target + "-b", "thick after the cut\n")

    assert group.group_snapshot_id and group.ready_to_use and group.creation_time.seconds > 1_700_000_000
    by_source = {s.source_volume_id: s for s in group.snapshots}
    assert sorted(by_source) == sorted([thin, thick])
    for s in group.snapshots:
        assert s.group_snapshot_id == group.group_snapshot_id and s.ready_to_use, s
        assert s.creation_time == group.creation_time
    # Thin source, thin snapshot in its pool; thick source, a classic snapshot of it.
    thin_lv, thick_lv = lvs(by_source[thin].snapshot_id), lvs(by_source[thick].snapshot_id)
    assert thin_lv["origin"] == thin and thin_lv["pool_lv"] == POOL and thin_lv["lv_attr"][0] == "V", thin_lv
    assert thick_lv["origin"] == thick and thick_lv["lv_attr"][0] == "s", thick_lv
    assert members_in_lvs(group.group_snapshot_id) == sorted(s.snapshot_id for s in group.snapshots)
    assert not suspended(thin) and not suspended(thick)
    assert "group-secret-value" not in driver.output()

    # ListSnapshots shows each member with its group, alone and by source volume.
    listed = {e.snapshot.snapshot_id: e.snapshot for e in driver.controller.ListSnapshots(pb.ListSnapshotsRequest()).entries}
    for s in group.snapshots:
        assert listed[s.snapshot_id].group_snapshot_id == group.group_snapshot_id
        one = driver.controller.ListSnapshots(pb.ListSnapshotsRequest(source_volume_id=s.source_volume_id)).entries
        assert [e.snapshot.group_snapshot_id for e in one] == [group.group_snapshot_id]

    # Idempotent on the name; other sources are ALREADY_EXISTS.
    again = groups(driver).CreateVolumeGroupSnapshot(group_request(driver, group_name, [thin, thick])).group_snapshot
    assert again == group
    expect_code(C.ALREADY_EXISTS, groups(driver).CreateVolumeGroupSnapshot, group_request(driver, group_name, [thin]))

    # Get: the members must be named exactly; an unknown group is NOT_FOUND.
    ids = [s.snapshot_id for s in group.snapshots]
    get = pb.GetVolumeGroupSnapshotRequest(group_snapshot_id=group.group_snapshot_id, snapshot_ids=list(reversed(ids)))
    assert groups(driver).GetVolumeGroupSnapshot(get).group_snapshot == group
    expect_code(C.INVALID_ARGUMENT, groups(driver).GetVolumeGroupSnapshot,
                pb.GetVolumeGroupSnapshotRequest(group_snapshot_id=group.group_snapshot_id, snapshot_ids=ids[:1]))
    expect_code(C.NOT_FOUND, groups(driver).GetVolumeGroupSnapshot,
                pb.GetVolumeGroupSnapshotRequest(group_snapshot_id="no-such-group", snapshot_ids=ids))

    # A member alone cannot be deleted (the spec's "snapshot is part of a group").
    expect_code(C.INVALID_ARGUMENT, driver.controller.DeleteSnapshot, pb.DeleteSnapshotRequest(snapshot_id=ids[0]))
    assert lvs(ids[0]) is not None

    # Each member restores like any snapshot, with what was written before the cut.
    assert restore_and_read(driver, by_source[thin], staging + "-r1", target + "-r1") == "thin before the cut\n"
    assert restore_and_read(driver, by_source[thick], staging + "-r2", target + "-r2") == "thick before the cut\n"

    # Delete: a mismatched list is INVALID_ARGUMENT and removes nothing; the group takes its members.
    expect_code(C.INVALID_ARGUMENT, groups(driver).DeleteVolumeGroupSnapshot,
                pb.DeleteVolumeGroupSnapshotRequest(group_snapshot_id=group.group_snapshot_id, snapshot_ids=ids[:1]))
    assert members_in_lvs(group.group_snapshot_id) == sorted(ids)
    delete = pb.DeleteVolumeGroupSnapshotRequest(group_snapshot_id=group.group_snapshot_id, snapshot_ids=ids)
    groups(driver).DeleteVolumeGroupSnapshot(delete)
    assert members_in_lvs(group.group_snapshot_id) == [] and all(lvs(i) is None for i in ids)
    groups(driver).DeleteVolumeGroupSnapshot(delete)
    assert not any(e.snapshot.group_snapshot_id for e in driver.controller.ListSnapshots(pb.ListSnapshotsRequest()).entries)
    assert writable(target) and writable(target + "-b")


def test_raw_block_and_mounted_volumes_together(driver, paths):
    """A thick volume written as a raw block device is suspended while the thin one is cut: both
    members hold the data of the cut."""
    pb = driver.csi.pb
    staging, target = paths
    size = 64 * MIB
    block, cap, sha = written_block_volume(driver, staging, target, size)
    thin = mounted_volume(driver, staging + "-b", target + "-b", THIN, "thin\n")
    group = groups(driver).CreateVolumeGroupSnapshot(group_request(driver, name("group"), [block, thin])).group_snapshot
    fill(target, size)
    member = next(s for s in group.snapshots if s.source_volume_id == block)
    restored = driver.controller.CreateVolume(pb.CreateVolumeRequest(
        name=name("restore"), capacity_range=pb.CapacityRange(required_bytes=size), volume_capabilities=[cap],
        volume_content_source=pb.VolumeContentSource(
            snapshot=pb.VolumeContentSource.SnapshotSource(snapshot_id=member.snapshot_id)))).volume
    os.makedirs(staging + "-r")
    stage(driver, restored.volume_id, staging + "-r", cap)
    publish(driver, restored.volume_id, staging + "-r", target + "-r", cap)
    assert sha_of_device(target + "-r", size) == sha
    assert not suspended(block) and writable(target + "-b")


def test_encrypted_thin_volumes_are_held_at_their_mapping(driver, paths):
    """Two mounted thin volumes, both encrypted: each is held by suspending its encryption mapping,
    so LVM can suspend the LV beneath for its cut, on any kernel; each member holds its volume's
    data of the cut, and restores encrypted with the same key."""
    pb = driver.csi.pb
    staging, target = paths
    cap = mount_cap(driver.csi, "ext4")
    volumes = []
    for i, (s, t) in enumerate([(staging, target), (staging + "-b", target + "-b")]):
        vid = create(driver, 64 * MIB, cap=cap, parameters=encrypted(THIN)).volume_id
        os.makedirs(s, exist_ok=True)
        luks_stage(driver, vid, s, cap)
        luks_publish(driver, vid, s, t, cap)
        write(t, "encrypted %d before\n" % i)
        volumes.append((vid, s, t))
    group = groups(driver).CreateVolumeGroupSnapshot(group_request(driver, name("group"), [v[0] for v in volumes])).group_snapshot
    for i, (vid, s, t) in enumerate(volumes):
        write(t, "encrypted %d after\n" % i)
        st = os.stat(mapping(vid))
        with open("/sys/dev/block/%d:%d/dm/suspended" % (os.major(st.st_rdev), os.minor(st.st_rdev))) as f:
            assert f.read().strip() == "0", "the mapping of %s is still suspended" % vid
    for i, (vid, s, t) in enumerate(volumes):
        member = next(m for m in group.snapshots if m.source_volume_id == vid)
        restored = driver.controller.CreateVolume(pb.CreateVolumeRequest(
            name=name("restore"), capacity_range=pb.CapacityRange(required_bytes=64 * MIB), volume_capabilities=[cap],
            parameters=THIN, volume_content_source=pb.VolumeContentSource(
                snapshot=pb.VolumeContentSource.SnapshotSource(snapshot_id=member.snapshot_id)))).volume
        assert restored.volume_context["encryption"] == "luks2"
        os.makedirs(s + "-r")
        luks_stage(driver, restored.volume_id, s + "-r", cap)
        luks_publish(driver, restored.volume_id, s + "-r", t + "-r", cap)
        assert read(t + "-r") == "encrypted %d before\n" % i


def test_errors_leave_nothing_held(driver, paths):
    """An error before or after the volumes are held leaves every filesystem writable at once."""
    staging, target = paths
    a = mounted_volume(driver, staging, target, THIN, "a\n")
    b = mounted_volume(driver, staging + "-b", target + "-b", THIN, "b\n")
    thick = mounted_volume(driver, staging + "-c", target + "-c", {}, "c\n")
    expect_code(C.NOT_FOUND, groups(driver).CreateVolumeGroupSnapshot, group_request(driver, name("group"), [thick, "pvc-no-such-volume"]))
    expect_code(C.NOT_FOUND, groups(driver).CreateVolumeGroupSnapshot, group_request(driver, name("group"), [thick, "not/an/id"]))
    expect_code(C.INVALID_ARGUMENT, groups(driver).CreateVolumeGroupSnapshot, group_request(driver, name("group"), [thick, thick]))
    assert writable(target + "-c") and not suspended(thick)

    # Two mounted thin volumes: LVM suspends each itself to cut it, so they can be held only by a
    # freeze LVM's suspend nests in (Linux 6.8 on). On older kernels the freeze is tried, undone,
    # and the group refused; either way nothing stays frozen.
    try:
        group = groups(driver).CreateVolumeGroupSnapshot(group_request(driver, name("group"), [a, b, thick])).group_snapshot
        assert len(group.snapshots) == 3
    except grpc.RpcError as error:
        assert error.code() == C.FAILED_PRECONDITION, error.details()
        assert "at most one such volume" in error.details(), error.details()
        release = tuple(int(x) for x in os.uname().release.split("-")[0].split(".")[:2])
        assert release < (6, 8), "refused on a kernel whose freeze should nest: %s" % error.details()
        assert not [lv for lv in lvs() if GROUP_TAG in lv["lv_tags"]], "members left behind"
    for t in (target, target + "-b", target + "-c"):
        assert writable(t), "%s is still held" % t
    assert not suspended(thick)


def test_driver_killed_while_volumes_are_held(driver, paths):
    """SIGKILL while the thick volume is suspended for the cut: it stays suspended (its writers
    wait); the restarted driver resumes it at start-up; the repeated request takes the whole group
    again."""
    staging, target = paths
    thin = mounted_volume(driver, staging, target, THIN, "thin before\n")
    thick = mounted_volume(driver, staging + "-b", target + "-b", {}, "thick before\n")
    request = group_request(driver, name("group"), [thin, thick])
    outcome = {}

    def run():
        try:
            outcome["response"] = groups(driver).CreateVolumeGroupSnapshot(request)
        except grpc.RpcError as error:
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 120
    while not suspended(thick):
        assert thread.is_alive(), "the group was cut before the thick volume was seen suspended: %s" % outcome
        assert time.monotonic() < deadline, "the thick volume was never suspended"
        time.sleep(0.002)
    driver.kill()
    thread.join(30)
    assert "error" in outcome, outcome
    assert suspended(thick), "killing the driver resumed the device"

    driver.start()
    assert not suspended(thick), "the restarted driver left the device suspended"
    assert "released what an interrupted group snapshot held" in driver.output()
    assert writable(target) and writable(target + "-b")

    group = groups(driver).CreateVolumeGroupSnapshot(request).group_snapshot
    assert sorted(s.source_volume_id for s in group.snapshots) == sorted([thin, thick])
    assert members_in_lvs(group.group_snapshot_id) == sorted(s.snapshot_id for s in group.snapshots)
    by_source = {s.source_volume_id: s for s in group.snapshots}
    assert restore_and_read(driver, by_source[thick], staging + "-r", target + "-r") == "thick before\n"
    assert not suspended(thick) and writable(target + "-b")
