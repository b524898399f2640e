"""CSI conformance of csi-lvm-driver, driven over its Unix socket by a grpcio client.

The rules come from the CSI specification's error tables and from what kubernetes-csi's
csi-sanity checks: every RPC, every error code, idempotency of every call. The real binary
runs twice: with the loop-file backend and with the LVM backend on a volume group made on a loop
device. The node tests run on both where the kernel has device-mapper (in Tests/VM, where this
suite runs again with `-k lvm`); without it, LVM node calls must refuse clearly while controller
calls work.

Stubs are generated at test time from Sources/CSI/Protos into a temporary directory.
"""

import concurrent.futures
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import grpc
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from csi_support import (  # noqa: E402
    BINARY, GIB, MIB, ROOT, C, Driver as BaseDriver, block_cap, create, delete, device_mapper_available, expect_code,
    generate_stubs, is_mounted, mount_cap, name, stage, stage_and_publish, unmount_all_under)

DRIVER_NAME = "conformance.csi.swift-csi.io"
NODE_ID = "node0"
TOPOLOGY_KEY = "topology.%s/node" % DRIVER_NAME

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: loop devices, mounts and LVM")


# ---------------------------------------------------------------------------------------------
# Fixtures: stubs, binary, driver processes


@pytest.fixture(scope="session")
def csi():
    """The csi_pb2 and csi_pb2_grpc modules, generated from the project's own csi.proto."""
    stubs, out = generate_stubs()
    yield stubs
    shutil.rmtree(out, ignore_errors=True)


@pytest.fixture(scope="session")
def binary():
    if not os.path.exists(BINARY):
        subprocess.run(["swift", "build", "--product", "csi-lvm-driver"], cwd=ROOT, check=True)
    return BINARY


class Driver(BaseDriver):
    """The conformance suite's driver: its name, node id and volume limit."""

    def __init__(self, binary, csi, workdir, extra_args, kubelet_dir=None):
        super().__init__(binary, csi, workdir, extra_args, kubelet_dir=kubelet_dir, driver_name=DRIVER_NAME,
                         node_id=NODE_ID,
                         common_args=["--max-volumes-per-node", "17", "--shutdown-grace", "5", "-v", "debug"])


@pytest.fixture(scope="module")
def loopfile_driver(binary, csi):
    workdir = tempfile.mkdtemp(prefix="csi-loopfile-")
    driver = Driver(binary, csi, workdir, ["--backend", "loopfile",
                                           "--loopfile-dir", os.path.join(workdir, "volumes")])
    yield driver
    rc = driver.stop()
    unmount_all_under(workdir)
    # Detach any loop device still backed by this test's files.
    listing = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    for line in listing.splitlines():
        if workdir in line:
            subprocess.run(["losetup", "-d", line.split(":")[0]], check=False)
    shutil.rmtree(workdir, ignore_errors=True)
    assert rc == 0, "driver exited with %s" % rc


def lvm(*args):
    env = dict(os.environ, LVM_SUPPRESS_FD_WARNINGS="1")
    words = ["lvm", args[0]] + ([] if device_mapper_available() else ["--driverloaded", "n"])
    if device_mapper_available() and not os.path.exists("/run/udev/control"):
        words += ["--config", "activation { udev_rules = 0 udev_sync = 0 }"]
    return subprocess.run(words + list(args[1:]), env=env,
                          capture_output=True, text=True)


PHYSICAL_VOLUMES = {}


@pytest.fixture(scope="module")
def volume_group():
    """A fresh volume group of 2 GiB on a loop device; always removed, with its loop device."""
    if shutil.which("lvm") is None or shutil.which("losetup") is None:
        pytest.skip("lvm2 and losetup are needed for the LVM backend")
    workdir = tempfile.mkdtemp(prefix="csi-lvm-")
    image = os.path.join(workdir, "pv.img")
    with open(image, "wb") as f:
        f.truncate(2 * GIB)
    loop = subprocess.run(["losetup", "-f", "--show", image], capture_output=True, text=True, check=True).stdout.strip()
    name = "csitest" + uuid.uuid4().hex[:10]
    try:
        created = lvm("vgcreate", "-qq", name, loop)
        assert created.returncode == 0, created.stderr
        PHYSICAL_VOLUMES[name] = loop
        yield name
    finally:
        lvm("vgremove", "-ff", "-y", name)
        lvm("pvremove", "-y", loop)
        subprocess.run(["losetup", "-d", loop], check=False)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def lvm_driver(binary, csi, volume_group):
    workdir = tempfile.mkdtemp(prefix="csi-lvmdrv-")
    driver = Driver(binary, csi, workdir, ["--backend", "lvm", "--volume-group", volume_group,
                                           "--lvm-scan-device", PHYSICAL_VOLUMES[volume_group]])
    yield driver
    rc = driver.stop()
    unmount_all_under(workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    assert rc == 0, "driver exited with %s" % rc


@pytest.fixture(params=["loopfile", "lvm"])
def driver(request):
    return request.getfixturevalue(request.param + "_driver")


@pytest.fixture(params=["loopfile", "lvm"])
def node_driver(request):
    """A driver whose node path works: loop files everywhere, LVM where device-mapper is."""
    if request.param == "lvm" and not device_mapper_available():
        pytest.skip("the LVM node path needs device-mapper; Tests/VM runs it on a real kernel")
    return request.getfixturevalue(request.param + "_driver")


# ---------------------------------------------------------------------------------------------
# Helpers





# ---------------------------------------------------------------------------------------------
# Identity


def test_get_plugin_info(driver):
    info = driver.identity.GetPluginInfo(driver.csi.pb.GetPluginInfoRequest())
    assert info.name == DRIVER_NAME
    assert info.vendor_version


def test_get_plugin_capabilities(driver):
    pb = driver.csi.pb
    caps = driver.identity.GetPluginCapabilities(pb.GetPluginCapabilitiesRequest()).capabilities
    services = {c.service.type for c in caps if c.HasField("service")}
    assert pb.PluginCapability.Service.CONTROLLER_SERVICE in services
    assert pb.PluginCapability.Service.VOLUME_ACCESSIBILITY_CONSTRAINTS in services
    expansion = [c.volume_expansion.type for c in caps if c.HasField("volume_expansion")]
    assert expansion == [pb.PluginCapability.VolumeExpansion.ONLINE]


def test_probe_ready(driver):
    response = driver.identity.Probe(driver.csi.pb.ProbeRequest())
    assert response.HasField("ready") and response.ready.value


# ---------------------------------------------------------------------------------------------
# Controller


def test_controller_capabilities(driver):
    pb = driver.csi.pb
    caps = driver.controller.ControllerGetCapabilities(pb.ControllerGetCapabilitiesRequest()).capabilities
    types = {c.rpc.type for c in caps}
    RPC = pb.ControllerServiceCapability.RPC
    for wanted in (RPC.CREATE_DELETE_VOLUME, RPC.LIST_VOLUMES, RPC.GET_CAPACITY, RPC.CREATE_DELETE_SNAPSHOT,
                   RPC.LIST_SNAPSHOTS, RPC.EXPAND_VOLUME, RPC.GET_VOLUME, RPC.VOLUME_CONDITION):
        assert wanted in types
    assert RPC.PUBLISH_UNPUBLISH_VOLUME not in types


def test_controller_publish_is_unimplemented(driver):
    pb = driver.csi.pb
    expect_code(C.UNIMPLEMENTED, driver.controller.ControllerPublishVolume,
                pb.ControllerPublishVolumeRequest(volume_id="x", node_id=NODE_ID))


def test_create_volume_invalid_arguments(driver):
    pb = driver.csi.pb
    AM = pb.VolumeCapability.AccessMode
    cap = mount_cap(driver.csi)
    cases = [
        pb.CreateVolumeRequest(volume_capabilities=[cap]),  # no name
        pb.CreateVolumeRequest(name=name()),  # no capabilities
        pb.CreateVolumeRequest(name=name(), volume_capabilities=[mount_cap(driver.csi, mode=AM.MULTI_NODE_MULTI_WRITER)]),
        pb.CreateVolumeRequest(name=name(), volume_capabilities=[mount_cap(driver.csi, fs_type="ntfs")]),
        pb.CreateVolumeRequest(name=name(), volume_capabilities=[pb.VolumeCapability(access_mode=AM(mode=AM.SINGLE_NODE_WRITER))]),
        pb.CreateVolumeRequest(name=name(), volume_capabilities=[cap], parameters={"color": "blue"}),
        pb.CreateVolumeRequest(name=name(), volume_capabilities=[cap],
                               capacity_range=pb.CapacityRange(required_bytes=2 * GIB, limit_bytes=GIB)),
        pb.CreateVolumeRequest(name=name(), volume_capabilities=[cap],
                               capacity_range=pb.CapacityRange(required_bytes=-1)),
        # A volume source without its id (a missing source volume is NOT_FOUND: test_clones).
        pb.CreateVolumeRequest(name=name(), volume_capabilities=[cap],
                               volume_content_source=pb.VolumeContentSource(volume=pb.VolumeContentSource.VolumeSource(volume_id=""))),
    ]
    for request in cases:
        expect_code(C.INVALID_ARGUMENT, driver.controller.CreateVolume, request)


def test_create_volume_rounds_up_and_reports_topology(driver):
    volume = create(driver, size=5 * MIB + 1)
    try:
        assert volume.volume_id
        assert volume.capacity_bytes >= 5 * MIB + 1
        assert volume.capacity_bytes % 4096 == 0
        assert [dict(t.segments) for t in volume.accessible_topology] == [{TOPOLOGY_KEY: NODE_ID}]
    finally:
        delete(driver, volume.volume_id)


def test_create_volume_is_idempotent_and_detects_incompatible_repeat(driver):
    vol_name = name()
    first = create(driver, size=8 * MIB, vol_name=vol_name)
    try:
        again = create(driver, size=8 * MIB, vol_name=vol_name)
        assert again.volume_id == first.volume_id
        assert again.capacity_bytes == first.capacity_bytes
        expect_code(C.ALREADY_EXISTS, create, driver, size=64 * MIB, vol_name=vol_name)
    finally:
        delete(driver, first.volume_id)


def test_create_volume_default_size_and_limit(driver):
    pb = driver.csi.pb
    limited = driver.controller.CreateVolume(pb.CreateVolumeRequest(
        name=name(), volume_capabilities=[mount_cap(driver.csi)],
        capacity_range=pb.CapacityRange(limit_bytes=12 * MIB))).volume
    try:
        assert 0 < limited.capacity_bytes <= 12 * MIB
    finally:
        delete(driver, limited.volume_id)
    unsized = driver.controller.CreateVolume(pb.CreateVolumeRequest(
        name=name(), volume_capabilities=[mount_cap(driver.csi)])).volume
    try:
        assert unsized.capacity_bytes == GIB  # the driver's default size
    finally:
        delete(driver, unsized.volume_id)


def allocation_unit(d):
    """The backend's allocation unit: a MiB for loop files, the volume group's 4 MiB extent for LVM."""
    return 4 * MIB if d.backend == "lvm" else MIB


def size_on_disk(d, volume_id):
    """The size of a volume as the storage itself reports it: the LV's size or the file's."""
    if d.backend == "lvm":
        vg = d.args[d.args.index("--volume-group") + 1]
        out = lvm("lvs", "--noheadings", "--units", "b", "--nosuffix", "-o", "lv_size", "%s/%s" % (vg, volume_id))
        assert out.returncode == 0, out.stderr
        return int(out.stdout.strip())
    return os.stat(os.path.join(d.workdir, "volumes", "volumes", volume_id + ".img")).st_size


def test_create_volume_with_only_a_limit_caps_the_default_at_whole_units(driver):
    """With limit_bytes alone the plugin may choose any size up to it: the driver takes its default
    size, capped by the largest whole number of allocation units not above the limit. A limit
    below one unit is OUT_OF_RANGE, and the message names both figures."""
    pb = driver.csi.pb
    unit = allocation_unit(driver)
    limit = 2 * unit + unit // 2 + 4096
    vol_name = name()
    request = pb.CreateVolumeRequest(name=vol_name, volume_capabilities=[mount_cap(driver.csi)],
                                     capacity_range=pb.CapacityRange(limit_bytes=limit))
    volume = driver.controller.CreateVolume(request).volume
    try:
        assert volume.capacity_bytes == 2 * unit
        assert size_on_disk(driver, volume.volume_id) == 2 * unit
        again = driver.controller.CreateVolume(request).volume
        assert (again.volume_id, again.capacity_bytes) == (volume.volume_id, 2 * unit)
        got = driver.controller.ControllerGetVolume(pb.ControllerGetVolumeRequest(volume_id=volume.volume_id))
        assert got.volume.capacity_bytes == 2 * unit
    finally:
        delete(driver, volume.volume_id)

    # A limit above the default size caps the default; it is not a request for that much.
    roomy = driver.controller.CreateVolume(pb.CreateVolumeRequest(
        name=name(), volume_capabilities=[mount_cap(driver.csi)], capacity_range=pb.CapacityRange(limit_bytes=1 << 40))).volume
    try:
        assert roomy.capacity_bytes == GIB
        assert size_on_disk(driver, roomy.volume_id) == GIB
    finally:
        delete(driver, roomy.volume_id)

    tiny = name()
    details = expect_code(C.OUT_OF_RANGE, driver.controller.CreateVolume, pb.CreateVolumeRequest(
        name=tiny, volume_capabilities=[mount_cap(driver.csi)], capacity_range=pb.CapacityRange(limit_bytes=unit - 4096)))
    assert str(unit - 4096) in details and str(unit) in details, details
    listed = driver.controller.ListVolumes(pb.ListVolumesRequest()).entries
    assert tiny not in {e.volume.volume_id for e in listed}


def test_create_volume_with_maximum_length_name(driver):
    long_name = "pvc-" + "x" * 124
    assert len(long_name) == 128
    volume = create(driver, vol_name=long_name)
    try:
        assert create(driver, vol_name=long_name).volume_id == volume.volume_id
    finally:
        delete(driver, volume.volume_id)


def test_create_volume_too_large_is_resource_exhausted(driver):
    expect_code(C.RESOURCE_EXHAUSTED, create, driver, size=1 << 50)


def test_capacity_range_the_backend_cannot_meet_is_out_of_range(driver):
    """Sizes round up to the allocation unit (a MiB for loop files, a 4 MiB extent for LVM). A
    range with no such size in it is OUT_OF_RANGE, the spec's code for an unsupported capacity
    range, for CreateVolume and ControllerExpandVolume alike, and nothing is created or grown."""
    pb = driver.csi.pb
    vol_name = name()
    details = expect_code(C.OUT_OF_RANGE, driver.controller.CreateVolume, pb.CreateVolumeRequest(
        name=vol_name, volume_capabilities=[mount_cap(driver.csi)],
        capacity_range=pb.CapacityRange(required_bytes=5 * MIB + 1, limit_bytes=5 * MIB + 4096)))
    assert str(5 * MIB + 4096) in details
    listed = driver.controller.ListVolumes(pb.ListVolumesRequest()).entries
    assert vol_name not in {e.volume.volume_id for e in listed}  # ids are the names when those are valid LVM names

    volume = create(driver, size=8 * MIB)
    try:
        assert volume.capacity_bytes == 8 * MIB
        expect_code(C.OUT_OF_RANGE, driver.controller.ControllerExpandVolume, pb.ControllerExpandVolumeRequest(
            volume_id=volume.volume_id, capacity_range=pb.CapacityRange(required_bytes=9 * MIB + 1, limit_bytes=9 * MIB + 4096)))
        got = driver.controller.ControllerGetVolume(pb.ControllerGetVolumeRequest(volume_id=volume.volume_id))
        assert got.volume.capacity_bytes == 8 * MIB

        # A volume restored from a snapshot holds at least the snapshot: a smaller limit is OUT_OF_RANGE.
        snapshot = driver.controller.CreateSnapshot(pb.CreateSnapshotRequest(
            name=name("snapshot"), source_volume_id=volume.volume_id)).snapshot
        try:
            source = pb.VolumeContentSource(snapshot=pb.VolumeContentSource.SnapshotSource(snapshot_id=snapshot.snapshot_id))
            expect_code(C.OUT_OF_RANGE, driver.controller.CreateVolume, pb.CreateVolumeRequest(
                name=name(), volume_capabilities=[mount_cap(driver.csi)], volume_content_source=source,
                capacity_range=pb.CapacityRange(required_bytes=MIB, limit_bytes=4 * MIB)))
        finally:
            driver.controller.DeleteSnapshot(pb.DeleteSnapshotRequest(snapshot_id=snapshot.snapshot_id))
    finally:
        delete(driver, volume.volume_id)


def test_create_volume_outside_requisite_topology(driver):
    pb = driver.csi.pb
    requirement = pb.TopologyRequirement(requisite=[pb.Topology(segments={TOPOLOGY_KEY: "another-node"})])
    expect_code(C.RESOURCE_EXHAUSTED, create, driver, accessibility_requirements=requirement)
    mine = pb.TopologyRequirement(requisite=[pb.Topology(segments={TOPOLOGY_KEY: NODE_ID})])
    volume = create(driver, accessibility_requirements=mine)
    delete(driver, volume.volume_id)


def test_concurrent_creates_of_one_name_yield_one_volume(driver):
    vol_name = name()
    outcomes = []

    def attempt():
        try:
            return create(driver, vol_name=vol_name).volume_id
        except grpc.RpcError as error:
            return error.code()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda _: attempt(), range(8)))
    ids = {o for o in outcomes if isinstance(o, str)}
    assert all(isinstance(o, str) or o == C.ABORTED for o in outcomes), outcomes
    assert len(ids) == 1, outcomes
    final = create(driver, vol_name=vol_name)
    assert final.volume_id in ids
    delete(driver, final.volume_id)


def test_delete_volume(driver):
    pb = driver.csi.pb
    expect_code(C.INVALID_ARGUMENT, driver.controller.DeleteVolume, pb.DeleteVolumeRequest())
    # Unknown ids (even ones no volume could have) succeed: deletion is idempotent.
    delete(driver, "pvc-does-not-exist")
    delete(driver, "../../etc/passwd --force")
    volume = create(driver)
    delete(driver, volume.volume_id)
    delete(driver, volume.volume_id)
    expect_code(C.NOT_FOUND, driver.controller.ControllerGetVolume, pb.ControllerGetVolumeRequest(volume_id=volume.volume_id))


def test_validate_volume_capabilities(driver):
    pb = driver.csi.pb
    AM = pb.VolumeCapability.AccessMode
    cap = mount_cap(driver.csi)
    expect_code(C.INVALID_ARGUMENT, driver.controller.ValidateVolumeCapabilities,
                pb.ValidateVolumeCapabilitiesRequest(volume_capabilities=[cap]))
    expect_code(C.NOT_FOUND, driver.controller.ValidateVolumeCapabilities,
                pb.ValidateVolumeCapabilitiesRequest(volume_id="pvc-missing", volume_capabilities=[cap]))
    volume = create(driver)
    try:
        expect_code(C.INVALID_ARGUMENT, driver.controller.ValidateVolumeCapabilities,
                    pb.ValidateVolumeCapabilitiesRequest(volume_id=volume.volume_id))
        ok = driver.controller.ValidateVolumeCapabilities(pb.ValidateVolumeCapabilitiesRequest(
            volume_id=volume.volume_id, volume_capabilities=[cap, block_cap(driver.csi)]))
        assert ok.HasField("confirmed")
        assert len(ok.confirmed.volume_capabilities) == 2
        bad = driver.controller.ValidateVolumeCapabilities(pb.ValidateVolumeCapabilitiesRequest(
            volume_id=volume.volume_id, volume_capabilities=[mount_cap(driver.csi, mode=AM.MULTI_NODE_MULTI_WRITER)]))
        assert not bad.HasField("confirmed")
        assert bad.message
    finally:
        delete(driver, volume.volume_id)


def test_list_volumes_pages_and_rejects_bad_tokens(driver):
    pb = driver.csi.pb
    made = [create(driver, size=4 * MIB).volume_id for _ in range(5)]
    try:
        seen, token, pages = [], "", 0
        while True:
            response = driver.controller.ListVolumes(pb.ListVolumesRequest(max_entries=2, starting_token=token))
            assert len(response.entries) <= 2
            seen += [e.volume.volume_id for e in response.entries]
            for entry in response.entries:
                assert not entry.status.volume_condition.abnormal
            pages += 1
            token = response.next_token
            if not token:
                break
            assert pages < 100
        assert set(made) <= set(seen)
        assert len(seen) == len(set(seen)), "a volume was listed twice"
        everything = driver.controller.ListVolumes(pb.ListVolumesRequest())
        assert everything.next_token == ""
        assert set(made) <= {e.volume.volume_id for e in everything.entries}
        expect_code(C.ABORTED, driver.controller.ListVolumes, pb.ListVolumesRequest(starting_token="invalid-token"))
        expect_code(C.INVALID_ARGUMENT, driver.controller.ListVolumes, pb.ListVolumesRequest(max_entries=-1))
    finally:
        for volume_id in made:
            delete(driver, volume_id)
    remaining = {e.volume.volume_id for e in driver.controller.ListVolumes(pb.ListVolumesRequest()).entries}
    assert not (set(made) & remaining)


def test_get_capacity(driver):
    pb = driver.csi.pb
    before = driver.controller.GetCapacity(pb.GetCapacityRequest()).available_capacity
    assert before > 0
    elsewhere = driver.controller.GetCapacity(pb.GetCapacityRequest(
        accessible_topology=pb.Topology(segments={TOPOLOGY_KEY: "another-node"})))
    assert elsewhere.available_capacity == 0
    here = driver.controller.GetCapacity(pb.GetCapacityRequest(
        accessible_topology=pb.Topology(segments={TOPOLOGY_KEY: NODE_ID}),
        volume_capabilities=[mount_cap(driver.csi)]))
    assert here.available_capacity > 0


def test_get_capacity_follows_lvm_within_a_second(lvm_driver, volume_group):
    pb = lvm_driver.csi.pb
    before = lvm_driver.controller.GetCapacity(pb.GetCapacityRequest()).available_capacity
    made = lvm("lvcreate", "-an", "-Zn", "-L", "64m", "-n", "outofband", volume_group)
    assert made.returncode == 0, made.stderr
    try:
        time.sleep(1.0)
        after = lvm_driver.controller.GetCapacity(pb.GetCapacityRequest()).available_capacity
        assert after == before - 64 * MIB
    finally:
        lvm("lvremove", "-y", "%s/outofband" % volume_group)


def test_lvm_parameters_and_vg_pattern(binary, csi, lvm_driver, volume_group):
    pb = csi.pb
    # A StorageClass naming the VG explicitly; one naming a VG that does not exist.
    named = create(lvm_driver, parameters={"volumeGroup": volume_group})
    try:
        assert named.volume_context["location"].startswith(volume_group + "/")
    finally:
        delete(lvm_driver, named.volume_id)
    missing = expect_code(C.NOT_FOUND, create, lvm_driver, parameters={"volumeGroup": "no-such-vg-" + uuid.uuid4().hex[:6]})
    assert "no-such-vg" in missing
    # A second driver choosing its VG by pattern finds the same group.
    workdir = tempfile.mkdtemp(prefix="csi-vgpattern-")
    try:
        d = Driver(binary, csi, workdir, ["--backend", "lvm", "--vg-pattern", "%s|never-matches" % volume_group])
        volume = create(d)
        try:
            assert volume.volume_context["location"].startswith(volume_group + "/")
            assert d.controller.GetCapacity(pb.GetCapacityRequest()).available_capacity > 0
        finally:
            delete(d, volume.volume_id)
        assert d.stop() == 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_modify_volume_only_where_advertised(driver):
    """MODIFY_VOLUME (IO limits through mutable parameters) is advertised only where it works: the
    LVM backend on a node with cgroup v2 and its io controller (Tests/VM/lvm/test_io_limits.py).
    Where it is not, CreateVolume's mutable parameters are INVALID_ARGUMENT (the spec: they SHALL
    NOT be given then) and ControllerModifyVolume is refused: UNIMPLEMENTED for a backend that
    records no limits, FAILED_PRECONDITION where this node cannot apply them."""
    pb = driver.csi.pb
    RPC = pb.ControllerServiceCapability.RPC
    caps = driver.controller.ControllerGetCapabilities(pb.ControllerGetCapabilitiesRequest()).capabilities
    if RPC.MODIFY_VOLUME in {c.rpc.type for c in caps}:
        assert driver.backend == "lvm", "the loop-file backend records no IO limits"
        details = expect_code(C.INVALID_ARGUMENT, create, driver, 8 * MIB, mutable_parameters={"readIOPZ": "100"})
        assert "readIOPZ" in details
        return
    details = expect_code(C.INVALID_ARGUMENT, create, driver, 8 * MIB, mutable_parameters={"readIOPS": "100"})
    assert "mutable_parameters" in details
    volume = create(driver, size=8 * MIB)
    try:
        expect_code(C.UNIMPLEMENTED if driver.backend == "loopfile" else C.FAILED_PRECONDITION,
                    driver.controller.ControllerModifyVolume,
                    pb.ControllerModifyVolumeRequest(volume_id=volume.volume_id, mutable_parameters={"readIOPS": "100"}))
    finally:
        delete(driver, volume.volume_id)


def test_controller_get_volume(driver):
    pb = driver.csi.pb
    expect_code(C.INVALID_ARGUMENT, driver.controller.ControllerGetVolume, pb.ControllerGetVolumeRequest())
    expect_code(C.NOT_FOUND, driver.controller.ControllerGetVolume, pb.ControllerGetVolumeRequest(volume_id="pvc-missing"))
    volume = create(driver)
    try:
        got = driver.controller.ControllerGetVolume(pb.ControllerGetVolumeRequest(volume_id=volume.volume_id))
        assert got.volume.volume_id == volume.volume_id
        assert got.volume.capacity_bytes == volume.capacity_bytes
        assert not got.status.volume_condition.abnormal
    finally:
        delete(driver, volume.volume_id)


def test_controller_expand_volume(driver):
    pb = driver.csi.pb
    expect_code(C.INVALID_ARGUMENT, driver.controller.ControllerExpandVolume,
                pb.ControllerExpandVolumeRequest(capacity_range=pb.CapacityRange(required_bytes=GIB)))
    expect_code(C.NOT_FOUND, driver.controller.ControllerExpandVolume,
                pb.ControllerExpandVolumeRequest(volume_id="pvc-missing", capacity_range=pb.CapacityRange(required_bytes=GIB)))
    volume = create(driver, size=8 * MIB)
    try:
        expect_code(C.INVALID_ARGUMENT, driver.controller.ControllerExpandVolume,
                    pb.ControllerExpandVolumeRequest(volume_id=volume.volume_id))
        grown = driver.controller.ControllerExpandVolume(pb.ControllerExpandVolumeRequest(
            volume_id=volume.volume_id, capacity_range=pb.CapacityRange(required_bytes=20 * MIB),
            volume_capability=mount_cap(driver.csi)))
        assert grown.capacity_bytes >= 20 * MIB
        assert grown.node_expansion_required
        again = driver.controller.ControllerExpandVolume(pb.ControllerExpandVolumeRequest(
            volume_id=volume.volume_id, capacity_range=pb.CapacityRange(required_bytes=20 * MIB),
            volume_capability=block_cap(driver.csi)))
        assert again.capacity_bytes == grown.capacity_bytes
        assert not again.node_expansion_required
        got = driver.controller.ControllerGetVolume(pb.ControllerGetVolumeRequest(volume_id=volume.volume_id))
        assert got.volume.capacity_bytes == grown.capacity_bytes
        expect_code(C.RESOURCE_EXHAUSTED, driver.controller.ControllerExpandVolume, pb.ControllerExpandVolumeRequest(
            volume_id=volume.volume_id, capacity_range=pb.CapacityRange(required_bytes=1 << 50)))
    finally:
        delete(driver, volume.volume_id)


def test_snapshots(driver):
    pb = driver.csi.pb
    ctl = driver.controller
    expect_code(C.INVALID_ARGUMENT, ctl.CreateSnapshot, pb.CreateSnapshotRequest(source_volume_id="v"))
    expect_code(C.INVALID_ARGUMENT, ctl.CreateSnapshot, pb.CreateSnapshotRequest(name=name("snapshot")))
    expect_code(C.NOT_FOUND, ctl.CreateSnapshot, pb.CreateSnapshotRequest(name=name("snapshot"), source_volume_id="pvc-missing"))
    expect_code(C.INVALID_ARGUMENT, ctl.DeleteSnapshot, pb.DeleteSnapshotRequest())
    ctl.DeleteSnapshot(pb.DeleteSnapshotRequest(snapshot_id="snap-missing"))
    expect_code(C.ABORTED, ctl.ListSnapshots, pb.ListSnapshotsRequest(starting_token="invalid-token"))
    assert list(ctl.ListSnapshots(pb.ListSnapshotsRequest(snapshot_id="snap-missing")).entries) == []

    source = create(driver, size=8 * MIB)
    other = create(driver, size=8 * MIB)
    snap_name = name("snapshot")
    try:
        snapshot = ctl.CreateSnapshot(pb.CreateSnapshotRequest(name=snap_name, source_volume_id=source.volume_id)).snapshot
        assert snapshot.snapshot_id and snapshot.source_volume_id == source.volume_id
        assert snapshot.ready_to_use
        assert snapshot.size_bytes == source.capacity_bytes
        assert snapshot.creation_time.seconds > 1_600_000_000
        again = ctl.CreateSnapshot(pb.CreateSnapshotRequest(name=snap_name, source_volume_id=source.volume_id)).snapshot
        assert again.snapshot_id == snapshot.snapshot_id
        expect_code(C.ALREADY_EXISTS, ctl.CreateSnapshot, pb.CreateSnapshotRequest(name=snap_name, source_volume_id=other.volume_id))

        by_id = ctl.ListSnapshots(pb.ListSnapshotsRequest(snapshot_id=snapshot.snapshot_id)).entries
        assert [e.snapshot.snapshot_id for e in by_id] == [snapshot.snapshot_id]
        by_source = ctl.ListSnapshots(pb.ListSnapshotsRequest(source_volume_id=source.volume_id)).entries
        assert [e.snapshot.snapshot_id for e in by_source] == [snapshot.snapshot_id]
        assert list(ctl.ListSnapshots(pb.ListSnapshotsRequest(source_volume_id=other.volume_id)).entries) == []
        got = ctl.GetSnapshot(pb.GetSnapshotRequest(snapshot_id=snapshot.snapshot_id)).snapshot
        assert got.snapshot_id == snapshot.snapshot_id
        expect_code(C.NOT_FOUND, ctl.GetSnapshot, pb.GetSnapshotRequest(snapshot_id="snap-missing"))

        # A volume from the snapshot records its source; a missing snapshot is NOT_FOUND.
        source_of = pb.VolumeContentSource(snapshot=pb.VolumeContentSource.SnapshotSource(snapshot_id=snapshot.snapshot_id))
        if driver.backend == "lvm" and not device_mapper_available():
            # Copying the snapshot's data needs device nodes: refused clearly, not faked.
            details = expect_code(C.FAILED_PRECONDITION, create, driver, size=8 * MIB, volume_content_source=source_of)
            assert "device" in details
        else:
            restored = create(driver, size=8 * MIB, volume_content_source=source_of)
            try:
                assert restored.content_source.snapshot.snapshot_id == snapshot.snapshot_id
                assert restored.capacity_bytes >= snapshot.size_bytes
            finally:
                delete(driver, restored.volume_id)
        expect_code(C.NOT_FOUND, create, driver, volume_content_source=pb.VolumeContentSource(
            snapshot=pb.VolumeContentSource.SnapshotSource(snapshot_id="snap-missing")))

        if driver.backend == "lvm":
            # An LVM origin with a snapshot is in use: FAILED_PRECONDITION, and nothing is deleted.
            expect_code(C.FAILED_PRECONDITION, ctl.DeleteVolume, pb.DeleteVolumeRequest(volume_id=source.volume_id))
            assert ctl.ControllerGetVolume(pb.ControllerGetVolumeRequest(volume_id=source.volume_id)).volume.volume_id
        ctl.DeleteSnapshot(pb.DeleteSnapshotRequest(snapshot_id=snapshot.snapshot_id))
        ctl.DeleteSnapshot(pb.DeleteSnapshotRequest(snapshot_id=snapshot.snapshot_id))
        assert list(ctl.ListSnapshots(pb.ListSnapshotsRequest(snapshot_id=snapshot.snapshot_id)).entries) == []
    finally:
        for entry in ctl.ListSnapshots(pb.ListSnapshotsRequest(source_volume_id=source.volume_id)).entries:
            ctl.DeleteSnapshot(pb.DeleteSnapshotRequest(snapshot_id=entry.snapshot.snapshot_id))
        delete(driver, source.volume_id)
        delete(driver, other.volume_id)


def test_group_snapshots(driver):
    """GROUP_CONTROLLER_SERVICE where the backend takes group snapshots (LVM) and only there; the
    spec's codes for each call. Tests/VM/lvm/test_group_snapshots.py covers mounted volumes."""
    pb = driver.csi.pb
    groups = driver.csi.grpc.GroupControllerStub(driver.channel)
    caps = driver.identity.GetPluginCapabilities(pb.GetPluginCapabilitiesRequest()).capabilities
    advertised = pb.PluginCapability.Service.GROUP_CONTROLLER_SERVICE in {c.service.type for c in caps if c.HasField("service")}
    if driver.backend == "loopfile":
        # Loop files are not advertised: not a service the driver serves there.
        assert not advertised
        expect_code(C.UNIMPLEMENTED, groups.GroupControllerGetCapabilities, pb.GroupControllerGetCapabilitiesRequest())
        expect_code(C.UNIMPLEMENTED, groups.CreateVolumeGroupSnapshot,
                    pb.CreateVolumeGroupSnapshotRequest(name=name("group"), source_volume_ids=["v"]))
        return
    assert advertised
    rpcs = [c.rpc.type for c in groups.GroupControllerGetCapabilities(pb.GroupControllerGetCapabilitiesRequest()).capabilities]
    assert rpcs == [pb.GroupControllerServiceCapability.RPC.CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT]
    expect_code(C.INVALID_ARGUMENT, groups.CreateVolumeGroupSnapshot, pb.CreateVolumeGroupSnapshotRequest(source_volume_ids=["v"]))
    expect_code(C.INVALID_ARGUMENT, groups.CreateVolumeGroupSnapshot, pb.CreateVolumeGroupSnapshotRequest(name=name("group")))
    expect_code(C.NOT_FOUND, groups.CreateVolumeGroupSnapshot,
                pb.CreateVolumeGroupSnapshotRequest(name=name("group"), source_volume_ids=["pvc-missing"]))
    groups.DeleteVolumeGroupSnapshot(pb.DeleteVolumeGroupSnapshotRequest(group_snapshot_id="group-missing", snapshot_ids=["s"]))
    expect_code(C.NOT_FOUND, groups.GetVolumeGroupSnapshot,
                pb.GetVolumeGroupSnapshotRequest(group_snapshot_id="group-missing", snapshot_ids=["s"]))

    a, b, c = (create(driver, size=8 * MIB) for _ in range(3))
    group_name = name("group")
    request = pb.CreateVolumeGroupSnapshotRequest(name=group_name, source_volume_ids=[a.volume_id, b.volume_id],
                                                  secrets={"key": "conformance-secret"})
    group = None
    try:
        group = groups.CreateVolumeGroupSnapshot(request).group_snapshot
        assert group.group_snapshot_id and group.ready_to_use and group.creation_time.seconds > 1_600_000_000
        assert sorted(s.source_volume_id for s in group.snapshots) == sorted([a.volume_id, b.volume_id])
        assert all(s.group_snapshot_id == group.group_snapshot_id and s.ready_to_use for s in group.snapshots)
        assert groups.CreateVolumeGroupSnapshot(request).group_snapshot == group
        expect_code(C.ALREADY_EXISTS, groups.CreateVolumeGroupSnapshot,
                    pb.CreateVolumeGroupSnapshotRequest(name=group_name, source_volume_ids=[a.volume_id, c.volume_id]))
        ids = [s.snapshot_id for s in group.snapshots]
        got = groups.GetVolumeGroupSnapshot(pb.GetVolumeGroupSnapshotRequest(group_snapshot_id=group.group_snapshot_id, snapshot_ids=ids))
        assert got.group_snapshot == group
        expect_code(C.INVALID_ARGUMENT, groups.GetVolumeGroupSnapshot,
                    pb.GetVolumeGroupSnapshotRequest(group_snapshot_id=group.group_snapshot_id, snapshot_ids=ids[:1]))
        listed = driver.controller.ListSnapshots(pb.ListSnapshotsRequest(source_volume_id=a.volume_id)).entries
        assert [e.snapshot.group_snapshot_id for e in listed] == [group.group_snapshot_id]
        expect_code(C.INVALID_ARGUMENT, driver.controller.DeleteSnapshot, pb.DeleteSnapshotRequest(snapshot_id=ids[0]))
        expect_code(C.INVALID_ARGUMENT, groups.DeleteVolumeGroupSnapshot,
                    pb.DeleteVolumeGroupSnapshotRequest(group_snapshot_id=group.group_snapshot_id, snapshot_ids=ids[1:]))
        groups.DeleteVolumeGroupSnapshot(pb.DeleteVolumeGroupSnapshotRequest(group_snapshot_id=group.group_snapshot_id, snapshot_ids=ids))
        groups.DeleteVolumeGroupSnapshot(pb.DeleteVolumeGroupSnapshotRequest(group_snapshot_id=group.group_snapshot_id, snapshot_ids=ids))
        assert list(driver.controller.ListSnapshots(pb.ListSnapshotsRequest(source_volume_id=a.volume_id)).entries) == []
        assert "conformance-secret" not in driver.output()
        group = None
    finally:
        if group is not None:
            groups.DeleteVolumeGroupSnapshot(pb.DeleteVolumeGroupSnapshotRequest(
                group_snapshot_id=group.group_snapshot_id, snapshot_ids=[s.snapshot_id for s in group.snapshots]))
        for volume in (a, b, c):
            delete(driver, volume.volume_id)


def clone_source(pb, volume_id):
    return pb.VolumeContentSource(volume=pb.VolumeContentSource.VolumeSource(volume_id=volume_id))


def test_clones(driver):
    """CLONE_VOLUME: advertised; a clone records its source, is at least the source's size and
    idempotent; a missing source is NOT_FOUND, a limit below the source's size OUT_OF_RANGE, the
    same name with another source ALREADY_EXISTS."""
    pb = driver.csi.pb
    ctl = driver.controller
    RPC = pb.ControllerServiceCapability.RPC
    caps = ctl.ControllerGetCapabilities(pb.ControllerGetCapabilitiesRequest()).capabilities
    assert RPC.CLONE_VOLUME in {c.rpc.type for c in caps}
    expect_code(C.NOT_FOUND, create, driver, volume_content_source=clone_source(pb, "pvc-missing"))
    expect_code(C.NOT_FOUND, create, driver, volume_content_source=clone_source(pb, "no/such volume"))

    source = create(driver, size=16 * MIB)
    other = create(driver, size=8 * MIB)
    try:
        details = expect_code(C.OUT_OF_RANGE, driver.controller.CreateVolume, pb.CreateVolumeRequest(
            name=name(), volume_capabilities=[mount_cap(driver.csi)], capacity_range=pb.CapacityRange(limit_bytes=8 * MIB),
            volume_content_source=clone_source(pb, source.volume_id)))
        assert source.volume_id in details and "limit_bytes" in details
        clone_name = name("clone")
        if driver.backend == "lvm" and not device_mapper_available():
            # A thick source's data is copied, which needs device nodes: refused clearly, nothing left.
            details = expect_code(C.FAILED_PRECONDITION, create, driver, size=8 * MIB, vol_name=clone_name,
                                  volume_content_source=clone_source(pb, source.volume_id))
            assert "device" in details
            assert clone_name not in {e.volume.volume_id for e in ctl.ListVolumes(pb.ListVolumesRequest()).entries}
            return
        clone = create(driver, size=8 * MIB, vol_name=clone_name, volume_content_source=clone_source(pb, source.volume_id))
        try:
            assert clone.content_source.volume.volume_id == source.volume_id
            assert clone.capacity_bytes >= source.capacity_bytes
            again = create(driver, size=8 * MIB, vol_name=clone_name, volume_content_source=clone_source(pb, source.volume_id))
            assert again.volume_id == clone.volume_id and again.capacity_bytes == clone.capacity_bytes
            expect_code(C.ALREADY_EXISTS, create, driver, size=8 * MIB, vol_name=clone_name,
                        volume_content_source=clone_source(pb, other.volume_id))
            expect_code(C.ALREADY_EXISTS, create, driver, size=8 * MIB, vol_name=clone_name)
            got = ctl.ControllerGetVolume(pb.ControllerGetVolumeRequest(volume_id=clone.volume_id)).volume
            assert got.content_source.volume.volume_id == source.volume_id
            listed = {e.volume.volume_id: e.volume for e in ctl.ListVolumes(pb.ListVolumesRequest()).entries}
            assert listed[clone.volume_id].content_source.volume.volume_id == source.volume_id
            assert not listed[source.volume_id].HasField("content_source")
        finally:
            delete(driver, clone.volume_id)
    finally:
        delete(driver, source.volume_id)
        delete(driver, other.volume_id)


def test_clone_holds_the_source_data_and_writes_stay_apart(node_driver):
    """A clone of a published raw block volume holds the source's data at clone time; what is
    written afterwards to either side is not seen by the other."""
    d = node_driver
    pb = d.csi.pb
    cap = block_cap(d.csi)
    size = 16 * MIB
    paths = []

    def publish_block(volume_id):
        staging = d.path("plugins", "clones", volume_id)
        target = d.path("pods", "clones", volume_id, "dev")
        stage_and_publish(d, volume_id, staging, target, cap)
        paths.append((volume_id, staging, target))
        return target

    def read(path):
        with open(path, "rb") as f:
            return f.read(size)

    def write(path, offset, data):
        with open(path, "r+b") as f:
            f.seek(offset)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    source = create(d, size=size, cap=cap)
    clone = None
    try:
        source_dev = publish_block(source.volume_id)
        data = os.urandom(size)
        write(source_dev, 0, data)
        clone = create(d, size=size, cap=cap, volume_content_source=clone_source(pb, source.volume_id))
        clone_dev = publish_block(clone.volume_id)
        assert read(clone_dev) == data, "the clone does not hold the source's data"
        write(clone_dev, 0, b"\x11" * 4096)
        write(source_dev, MIB, b"\x22" * 4096)
        assert read(source_dev) == data[:MIB] + b"\x22" * 4096 + data[MIB + 4096:], "a write to the clone reached the source"
        assert read(clone_dev) == b"\x11" * 4096 + data[4096:], "a write to the source reached the clone"
    finally:
        for volume_id, staging, target in reversed(paths):
            d.node.NodeUnpublishVolume(pb.NodeUnpublishVolumeRequest(volume_id=volume_id, target_path=target))
            d.node.NodeUnstageVolume(pb.NodeUnstageVolumeRequest(volume_id=volume_id, staging_target_path=staging))
        if clone is not None:
            delete(d, clone.volume_id)
        delete(d, source.volume_id)


def test_list_snapshots_pages(driver):
    pb = driver.csi.pb
    ctl = driver.controller
    source = create(driver, size=4 * MIB)
    made = []
    try:
        for _ in range(3):
            made.append(ctl.CreateSnapshot(pb.CreateSnapshotRequest(
                name=name("snapshot"), source_volume_id=source.volume_id)).snapshot.snapshot_id)
        seen, token = [], ""
        for _ in range(10):
            response = ctl.ListSnapshots(pb.ListSnapshotsRequest(max_entries=1, starting_token=token,
                                                                 source_volume_id=source.volume_id))
            assert len(response.entries) <= 1
            seen += [e.snapshot.snapshot_id for e in response.entries]
            token = response.next_token
            if not token:
                break
        assert sorted(seen) == sorted(made)
    finally:
        for snapshot_id in made:
            ctl.DeleteSnapshot(pb.DeleteSnapshotRequest(snapshot_id=snapshot_id))
        delete(driver, source.volume_id)


# ---------------------------------------------------------------------------------------------
# Node


def test_node_get_info(driver):
    info = driver.node.NodeGetInfo(driver.csi.pb.NodeGetInfoRequest())
    assert info.node_id == NODE_ID
    assert info.max_volumes_per_node == 17
    assert dict(info.accessible_topology.segments) == {TOPOLOGY_KEY: NODE_ID}


def test_node_get_capabilities(driver):
    pb = driver.csi.pb
    caps = driver.node.NodeGetCapabilities(pb.NodeGetCapabilitiesRequest()).capabilities
    RPC = pb.NodeServiceCapability.RPC
    assert {c.rpc.type for c in caps} == {RPC.STAGE_UNSTAGE_VOLUME, RPC.GET_VOLUME_STATS, RPC.EXPAND_VOLUME,
                                         RPC.VOLUME_CONDITION, RPC.SINGLE_NODE_MULTI_WRITER}


def test_node_invalid_arguments(driver):
    pb = driver.csi.pb
    node = driver.node
    cap = mount_cap(driver.csi)
    staging = driver.path("plugins", "staging", "x")
    target = driver.path("pods", "x", "mount")
    cases = [
        (node.NodeStageVolume, pb.NodeStageVolumeRequest(staging_target_path=staging, volume_capability=cap)),
        (node.NodeStageVolume, pb.NodeStageVolumeRequest(volume_id="v", volume_capability=cap)),
        (node.NodeStageVolume, pb.NodeStageVolumeRequest(volume_id="v", staging_target_path=staging)),
        (node.NodeStageVolume, pb.NodeStageVolumeRequest(volume_id="v", staging_target_path="/tmp/outside", volume_capability=cap)),
        (node.NodeStageVolume, pb.NodeStageVolumeRequest(volume_id="v", staging_target_path=driver.path("..", "escape"), volume_capability=cap)),
        (node.NodeStageVolume, pb.NodeStageVolumeRequest(volume_id="v", staging_target_path="relative/path", volume_capability=cap)),
        (node.NodeUnstageVolume, pb.NodeUnstageVolumeRequest(staging_target_path=staging)),
        (node.NodeUnstageVolume, pb.NodeUnstageVolumeRequest(volume_id="v")),
        (node.NodePublishVolume, pb.NodePublishVolumeRequest(target_path=target, staging_target_path=staging, volume_capability=cap)),
        (node.NodePublishVolume, pb.NodePublishVolumeRequest(volume_id="v", staging_target_path=staging, volume_capability=cap)),
        (node.NodePublishVolume, pb.NodePublishVolumeRequest(volume_id="v", target_path=target, staging_target_path=staging)),
        (node.NodePublishVolume, pb.NodePublishVolumeRequest(volume_id="v", target_path="/etc/x", staging_target_path=staging, volume_capability=cap)),
        (node.NodeUnpublishVolume, pb.NodeUnpublishVolumeRequest(target_path=target)),
        (node.NodeUnpublishVolume, pb.NodeUnpublishVolumeRequest(volume_id="v")),
        (node.NodeGetVolumeStats, pb.NodeGetVolumeStatsRequest(volume_path=target)),
        (node.NodeGetVolumeStats, pb.NodeGetVolumeStatsRequest(volume_id="v")),
        (node.NodeExpandVolume, pb.NodeExpandVolumeRequest(volume_path=target)),
        (node.NodeExpandVolume, pb.NodeExpandVolumeRequest(volume_id="v")),
    ]
    for call, request in cases:
        expect_code(C.INVALID_ARGUMENT, call, request)


def test_node_symlink_escaping_kubelet_dir_is_refused(node_driver):
    pb = node_driver.csi.pb
    outside = tempfile.mkdtemp(prefix="csi-outside-")
    link = node_driver.path("pods", "evil-link")
    os.makedirs(os.path.dirname(link), exist_ok=True)
    os.symlink(outside, link)
    try:
        expect_code(C.INVALID_ARGUMENT, node_driver.node.NodeStageVolume, pb.NodeStageVolumeRequest(
            volume_id="v", staging_target_path=os.path.join(link, "stage"), volume_capability=mount_cap(node_driver.csi)))
    finally:
        os.unlink(link)
        shutil.rmtree(outside, ignore_errors=True)


def test_node_unknown_volume_is_not_found(node_driver):
    d = node_driver
    pb = d.csi.pb
    staging = d.path("plugins", "staging", "missing")
    target = d.path("pods", "missing", "mount")
    expect_code(C.NOT_FOUND, d.node.NodeStageVolume, pb.NodeStageVolumeRequest(
        volume_id="pvc-missing", staging_target_path=staging, volume_capability=mount_cap(d.csi)))
    expect_code(C.NOT_FOUND, d.node.NodePublishVolume, pb.NodePublishVolumeRequest(
        volume_id="pvc-missing", staging_target_path=staging, target_path=target, volume_capability=mount_cap(d.csi)))
    expect_code(C.NOT_FOUND, d.node.NodeGetVolumeStats, pb.NodeGetVolumeStatsRequest(volume_id="pvc-missing", volume_path=target))
    expect_code(C.NOT_FOUND, d.node.NodeExpandVolume, pb.NodeExpandVolumeRequest(volume_id="pvc-missing", volume_path=target))
    expect_code(C.NOT_FOUND, d.node.NodeUnpublishVolume, pb.NodeUnpublishVolumeRequest(volume_id="pvc-missing", target_path=target))
    expect_code(C.NOT_FOUND, d.node.NodeUnstageVolume, pb.NodeUnstageVolumeRequest(volume_id="pvc-missing", staging_target_path=staging))


@pytest.mark.parametrize("call", ["NodeGetVolumeStats", "NodeExpandVolume"])
def test_node_unknown_volume_with_a_bad_path_is_not_found(node_driver, call):
    """The volume is looked up before its path is checked: an unknown volume is NOT_FOUND even at a
    relative path or one outside the kubelet directory; a known one at such a path is INVALID_ARGUMENT."""
    d = node_driver
    pb = d.csi.pb
    request = getattr(pb, call + "Request")
    method = getattr(d.node, call)
    bad_paths = ["relative/path", "/tmp/outside-kubelet", d.path("..", "escape")]
    for path in bad_paths:
        details = expect_code(C.NOT_FOUND, method, request(volume_id="pvc-missing", volume_path=path))
        assert "pvc-missing" in details
    volume = create(d)
    try:
        for path in bad_paths:
            expect_code(C.INVALID_ARGUMENT, method, request(volume_id=volume.volume_id, volume_path=path))
    finally:
        delete(d, volume.volume_id)


def test_node_publish_requires_stage(node_driver):
    d = node_driver
    pb = d.csi.pb
    volume = create(d)
    try:
        expect_code(C.FAILED_PRECONDITION, d.node.NodePublishVolume, pb.NodePublishVolumeRequest(
            volume_id=volume.volume_id, staging_target_path=d.path("plugins", "staging", volume.volume_id),
            target_path=d.path("pods", volume.volume_id, "mount"), volume_capability=mount_cap(d.csi)))
    finally:
        delete(d, volume.volume_id)


def has_cap_sys_resource():
    """ext4 online resize needs CAP_SYS_RESOURCE, which some container sandboxes drop."""
    with open("/proc/self/status") as f:
        eff = int(next(line for line in f if line.startswith("CapEff:")).split()[1], 16)
    return bool(eff & (1 << 24))


@pytest.mark.parametrize("fs_type, size, grown", [("xfs", 320 * MIB, 448 * MIB), ("ext4", 32 * MIB, 96 * MIB)])
def test_node_path_end_to_end(node_driver, fs_type, size, grown):
    """Create, stage (format), publish, write, unpublish, re-publish and read, expand online,
    stats, snapshot, and delete — each mutating call repeated to prove idempotency."""
    # Growing ext4 online needs CAP_SYS_RESOURCE; without it only that step is left out.
    can_grow = fs_type != "ext4" or has_cap_sys_resource()
    d = node_driver
    pb = d.csi.pb
    cap = mount_cap(d.csi, fs_type=fs_type, flags=["noatime"])
    volume = create(d, size=size, cap=cap)
    vid = volume.volume_id
    staging = d.path("plugins", "kubernetes.io", "csi", DRIVER_NAME, vid, "globalmount")
    target = d.path("pods", "pod-1", "volumes", "kubernetes.io~csi", vid, "mount")
    stage = pb.NodeStageVolumeRequest(volume_id=vid, staging_target_path=staging, volume_capability=cap,
                                      volume_context=dict(volume.volume_context), secrets={"token": "s3cr3t-value"})
    publish = pb.NodePublishVolumeRequest(volume_id=vid, staging_target_path=staging, target_path=target,
                                          volume_capability=cap, volume_context=dict(volume.volume_context))
    try:
        d.node.NodeStageVolume(stage)
        d.node.NodeStageVolume(stage)
        assert is_mounted(staging)
        d.node.NodePublishVolume(publish)
        d.node.NodePublishVolume(publish)
        assert is_mounted(target)
        with open(os.path.join(target, "data.txt"), "w") as f:
            f.write("kept across publishes\n")

        # A different volume at the same target is refused.
        other = create(d, size=size, cap=cap)
        try:
            other_staging = d.path("plugins", "staging", other.volume_id)
            d.node.NodeStageVolume(pb.NodeStageVolumeRequest(volume_id=other.volume_id, staging_target_path=other_staging,
                                                             volume_capability=cap))
            expect_code(C.ALREADY_EXISTS, d.node.NodePublishVolume, pb.NodePublishVolumeRequest(
                volume_id=other.volume_id, staging_target_path=other_staging, target_path=target, volume_capability=cap))
            d.node.NodeUnstageVolume(pb.NodeUnstageVolumeRequest(volume_id=other.volume_id, staging_target_path=other_staging))
        finally:
            delete(d, other.volume_id)
        # The same volume asked read-only at the same target is incompatible.
        expect_code(C.ALREADY_EXISTS, d.node.NodePublishVolume, pb.NodePublishVolumeRequest(
            volume_id=vid, staging_target_path=staging, target_path=target, volume_capability=cap, readonly=True))

        unpublish = pb.NodeUnpublishVolumeRequest(volume_id=vid, target_path=target)
        d.node.NodeUnpublishVolume(unpublish)
        d.node.NodeUnpublishVolume(unpublish)
        assert not is_mounted(target)
        assert not os.path.exists(target), "the plugin deletes the target it created"
        d.node.NodePublishVolume(publish)
        with open(os.path.join(target, "data.txt")) as f:
            assert f.read() == "kept across publishes\n"

        stats = d.node.NodeGetVolumeStats(pb.NodeGetVolumeStatsRequest(volume_id=vid, volume_path=target))
        units = {u.unit: u for u in stats.usage}
        assert set(units) == {pb.VolumeUsage.BYTES, pb.VolumeUsage.INODES}
        small_total = units[pb.VolumeUsage.BYTES].total
        assert 0 < small_total <= size
        assert units[pb.VolumeUsage.BYTES].used > 0
        assert units[pb.VolumeUsage.INODES].total > 0 and units[pb.VolumeUsage.INODES].used > 0
        assert not stats.volume_condition.abnormal

        if can_grow:
            expanded = d.controller.ControllerExpandVolume(pb.ControllerExpandVolumeRequest(
                volume_id=vid, capacity_range=pb.CapacityRange(required_bytes=grown), volume_capability=cap))
            assert expanded.node_expansion_required
            expand = pb.NodeExpandVolumeRequest(volume_id=vid, volume_path=target, staging_target_path=staging,
                                                capacity_range=pb.CapacityRange(required_bytes=grown), volume_capability=cap)
            assert d.node.NodeExpandVolume(expand).capacity_bytes >= grown
            assert d.node.NodeExpandVolume(expand).capacity_bytes >= grown
            stats = d.node.NodeGetVolumeStats(pb.NodeGetVolumeStatsRequest(volume_id=vid, volume_path=target))
            big_total = {u.unit: u for u in stats.usage}[pb.VolumeUsage.BYTES].total
            assert big_total > small_total + (grown - size) // 2, (small_total, big_total)
        else:
            # A filesystem that already fills its device needs no privilege to "expand".
            expand = pb.NodeExpandVolumeRequest(volume_id=vid, volume_path=target, staging_target_path=staging,
                                                capacity_range=pb.CapacityRange(required_bytes=size), volume_capability=cap)
            assert d.node.NodeExpandVolume(expand).capacity_bytes == volume.capacity_bytes
        with open(os.path.join(target, "data.txt")) as f:
            assert f.read() == "kept across publishes\n"

        snapshot = d.controller.CreateSnapshot(pb.CreateSnapshotRequest(name=name("snapshot"), source_volume_id=vid)).snapshot
        assert snapshot.ready_to_use
        restored = create(d, size=grown, cap=cap, volume_content_source=pb.VolumeContentSource(
            snapshot=pb.VolumeContentSource.SnapshotSource(snapshot_id=snapshot.snapshot_id)))
        restored_staging = d.path("plugins", "staging", restored.volume_id)
        try:
            d.node.NodeStageVolume(pb.NodeStageVolumeRequest(volume_id=restored.volume_id, staging_target_path=restored_staging,
                                                             volume_capability=cap))
            with open(os.path.join(restored_staging, "data.txt")) as f:
                assert f.read() == "kept across publishes\n"
            d.node.NodeUnstageVolume(pb.NodeUnstageVolumeRequest(volume_id=restored.volume_id, staging_target_path=restored_staging))
        finally:
            delete(d, restored.volume_id)
        d.controller.DeleteSnapshot(pb.DeleteSnapshotRequest(snapshot_id=snapshot.snapshot_id))

        # Once the mount is gone, stats report an abnormal condition instead of stale numbers.
        d.node.NodeUnpublishVolume(unpublish)
        os.makedirs(target, exist_ok=True)
        gone = d.node.NodeGetVolumeStats(pb.NodeGetVolumeStatsRequest(volume_id=vid, volume_path=target))
        assert gone.volume_condition.abnormal
        os.rmdir(target)

        unstage = pb.NodeUnstageVolumeRequest(volume_id=vid, staging_target_path=staging)
        d.node.NodeUnstageVolume(unstage)
        d.node.NodeUnstageVolume(unstage)
        assert not is_mounted(staging)
        assert os.path.isdir(staging), "the staging directory belongs to the CO and stays"
        assert "s3cr3t-value" not in d.output(), "a secret reached the log"
        assert "secrets" in d.output()
    finally:
        unmount_all_under(d.kubelet_dir)
        delete(d, vid)
    if not can_grow:
        pytest.skip("the rest of the path passed; growing ext4 online needs CAP_SYS_RESOURCE, which this sandbox does not grant")


@pytest.mark.parametrize("fs_type, size", [("ext4", 32 * MIB), ("xfs", 300 * MIB)])
def test_node_expand_of_a_filesystem_that_fills_its_device(node_driver, fs_type, size):
    """NodeExpandVolume with nothing to grow succeeds (no CAP_SYS_RESOURCE needed for ext4) and
    reports the volume's size; the filesystem is unchanged."""
    d = node_driver
    pb = d.csi.pb
    cap = mount_cap(d.csi, fs_type=fs_type)
    volume = create(d, size=size, cap=cap)
    vid = volume.volume_id
    staging = d.path("plugins", "staging", vid)
    target = d.path("pods", "expand-full", vid)
    try:
        stage_and_publish(d, vid, staging, target, cap)
        before = os.statvfs(target)
        for capacity_range in (None, pb.CapacityRange(required_bytes=size)):
            response = d.node.NodeExpandVolume(pb.NodeExpandVolumeRequest(
                volume_id=vid, volume_path=target, staging_target_path=staging, capacity_range=capacity_range,
                volume_capability=cap))
            assert response.capacity_bytes == volume.capacity_bytes
        after = os.statvfs(target)
        assert after.f_blocks * after.f_frsize == before.f_blocks * before.f_frsize
        d.node.NodeUnpublishVolume(pb.NodeUnpublishVolumeRequest(volume_id=vid, target_path=target))
        d.node.NodeUnstageVolume(pb.NodeUnstageVolumeRequest(volume_id=vid, staging_target_path=staging))
    finally:
        unmount_all_under(d.kubelet_dir)
        delete(d, vid)


def test_node_stats_report_a_volume_that_vanished(loopfile_driver):
    """The backend losing a mounted volume shows up as an abnormal VolumeCondition."""
    d = loopfile_driver
    pb = d.csi.pb
    cap = mount_cap(d.csi)
    volume = create(d, cap=cap)
    vid = volume.volume_id
    staging = d.path("plugins", "staging", vid)
    target = d.path("pods", "vanish", vid)
    record = os.path.join(d.workdir, "volumes", "volumes", vid + ".json")
    try:
        stage_and_publish(d, vid, staging, target, cap)
        healthy = d.node.NodeGetVolumeStats(pb.NodeGetVolumeStatsRequest(volume_id=vid, volume_path=target))
        assert not healthy.volume_condition.abnormal
        assert os.path.exists(record), record
        os.rename(record, record + ".moved")
        sick = d.node.NodeGetVolumeStats(pb.NodeGetVolumeStatsRequest(volume_id=vid, volume_path=target))
        assert sick.volume_condition.abnormal
        assert "no longer exists" in sick.volume_condition.message
        os.rename(record + ".moved", record)
        d.node.NodeUnpublishVolume(pb.NodeUnpublishVolumeRequest(volume_id=vid, target_path=target))
        d.node.NodeUnstageVolume(pb.NodeUnstageVolumeRequest(volume_id=vid, staging_target_path=staging))
    finally:
        if os.path.exists(record + ".moved"):
            os.rename(record + ".moved", record)
        unmount_all_under(d.kubelet_dir)
        delete(d, vid)


def test_node_read_only_publish(node_driver):
    d = node_driver
    pb = d.csi.pb
    cap = mount_cap(d.csi)
    volume = create(d, cap=cap)
    vid = volume.volume_id
    staging = d.path("plugins", "staging", vid)
    target = d.path("pods", "ro", vid)
    try:
        stage_and_publish(d, vid, staging, target, cap, readonly=True)
        with pytest.raises(OSError):
            with open(os.path.join(target, "nope"), "w") as f:
                f.write("x")
        d.node.NodeUnpublishVolume(pb.NodeUnpublishVolumeRequest(volume_id=vid, target_path=target))
        d.node.NodeUnstageVolume(pb.NodeUnstageVolumeRequest(volume_id=vid, staging_target_path=staging))
    finally:
        unmount_all_under(d.kubelet_dir)
        delete(d, vid)


def test_node_xfs(node_driver):
    d = node_driver
    pb = d.csi.pb
    cap = mount_cap(d.csi, fs_type="xfs")
    volume = create(d, size=320 * MIB, cap=cap)
    vid = volume.volume_id
    staging = d.path("plugins", "staging", vid)
    try:
        stage(d, vid, staging, cap)
        with open("/proc/self/mountinfo") as f:
            fs = [line.split(" - ")[1].split()[0] for line in f if line.split()[4] == staging]
        assert fs == ["xfs"]
        # The same device asked as ext4 is refused: it already holds xfs.
        d.node.NodeUnstageVolume(pb.NodeUnstageVolumeRequest(volume_id=vid, staging_target_path=staging))
        expect_code(C.FAILED_PRECONDITION, d.node.NodeStageVolume, pb.NodeStageVolumeRequest(
            volume_id=vid, staging_target_path=staging, volume_capability=mount_cap(d.csi, fs_type="ext4")))
    finally:
        unmount_all_under(d.kubelet_dir)
        delete(d, vid)


XFS_MINIMUM = 300 * MIB  # mkfs.xfs refuses anything smaller ("Filesystem must be larger than 300MB")


@pytest.mark.parametrize("asked_by", ["capability", "parameter"])
def test_xfs_volume_is_made_large_enough_for_mkfs(node_driver, asked_by):
    """A 64 MiB volume for xfs is created at xfs's minimum size, reports it, and stages."""
    d = node_driver
    pb = d.csi.pb
    cap = mount_cap(d.csi, fs_type="xfs")
    if asked_by == "capability":
        volume = create(d, size=64 * MIB, cap=cap)
    else:
        volume = create(d, size=64 * MIB, cap=mount_cap(d.csi), parameters={"fsType": "xfs"})
    vid = volume.volume_id
    staging = d.path("plugins", "staging", vid)
    target = d.path("pods", "xfs-min", vid)
    try:
        assert volume.capacity_bytes >= XFS_MINIMUM
        listed = d.controller.ControllerGetVolume(pb.ControllerGetVolumeRequest(volume_id=vid)).volume
        assert listed.capacity_bytes == volume.capacity_bytes
        stage_and_publish(d, vid, staging, target, cap)
        with open("/proc/self/mountinfo") as f:
            fs = [line.split(" - ")[1].split()[0] for line in f if line.split()[4] == staging]
        assert fs == ["xfs"]
        with open(os.path.join(target, "data.txt"), "w") as f:
            f.write("xfs at its minimum size\n")
        d.node.NodeUnpublishVolume(pb.NodeUnpublishVolumeRequest(volume_id=vid, target_path=target))
        d.node.NodeUnstageVolume(pb.NodeUnstageVolumeRequest(volume_id=vid, staging_target_path=staging))
    finally:
        unmount_all_under(d.kubelet_dir)
        delete(d, vid)


def test_xfs_limit_below_its_minimum_is_out_of_range(node_driver):
    d = node_driver
    pb = d.csi.pb
    request = pb.CreateVolumeRequest(name=name(), capacity_range=pb.CapacityRange(required_bytes=64 * MIB, limit_bytes=200 * MIB),
                                     volume_capabilities=[mount_cap(d.csi, fs_type="xfs")])
    details = expect_code(C.OUT_OF_RANGE, d.controller.CreateVolume, request)
    assert "xfs" in details and str(XFS_MINIMUM) in details and str(200 * MIB) in details
    # No limit below the minimum: the same request within a larger limit succeeds.
    request.capacity_range.limit_bytes = XFS_MINIMUM
    volume = d.controller.CreateVolume(request).volume
    try:
        assert volume.capacity_bytes == XFS_MINIMUM
    finally:
        delete(d, volume.volume_id)


def test_stage_xfs_on_a_volume_too_small_is_failed_precondition(node_driver):
    """A volume created without an fs type is sized as asked; staging it as xfs says why it cannot."""
    d = node_driver
    pb = d.csi.pb
    volume = create(d, size=64 * MIB, cap=mount_cap(d.csi))
    vid = volume.volume_id
    staging = d.path("plugins", "staging", vid)
    try:
        assert volume.capacity_bytes == 64 * MIB
        details = expect_code(C.FAILED_PRECONDITION, d.node.NodeStageVolume, pb.NodeStageVolumeRequest(
            volume_id=vid, staging_target_path=staging, volume_capability=mount_cap(d.csi, fs_type="xfs")))
        assert vid in details and str(64 * MIB) in details and str(XFS_MINIMUM) in details, details
        assert not is_mounted(staging)
        # Nothing was written to it: it still stages as the default filesystem.
        stage(d, vid, staging, mount_cap(d.csi))
        d.node.NodeUnstageVolume(pb.NodeUnstageVolumeRequest(volume_id=vid, staging_target_path=staging))
    finally:
        unmount_all_under(d.kubelet_dir)
        delete(d, vid)


def test_node_raw_block(node_driver):
    d = node_driver
    pb = d.csi.pb
    cap = block_cap(d.csi)
    volume = create(d, size=16 * MIB, cap=cap)
    vid = volume.volume_id
    staging = d.path("plugins", "staging", vid)
    target = d.path("plugins", "kubernetes.io", "csi", "volumeDevices", "publish", vid, "pod-1")
    publish = pb.NodePublishVolumeRequest(volume_id=vid, staging_target_path=staging, target_path=target, volume_capability=cap)
    try:
        stage(d, vid, staging, cap)
        d.node.NodePublishVolume(publish)
        d.node.NodePublishVolume(publish)
        import stat
        assert stat.S_ISBLK(os.stat(target).st_mode)
        with open(target, "rb") as f:
            f.seek(0, 2)
            assert f.tell() == volume.capacity_bytes
        stats = d.node.NodeGetVolumeStats(pb.NodeGetVolumeStatsRequest(volume_id=vid, volume_path=target))
        assert [(u.unit, u.total) for u in stats.usage] == [(pb.VolumeUsage.BYTES, volume.capacity_bytes)]
        d.node.NodeUnpublishVolume(pb.NodeUnpublishVolumeRequest(volume_id=vid, target_path=target))
        d.node.NodeUnpublishVolume(pb.NodeUnpublishVolumeRequest(volume_id=vid, target_path=target))
        assert not os.path.exists(target)
        d.node.NodeUnstageVolume(pb.NodeUnstageVolumeRequest(volume_id=vid, staging_target_path=staging))
    finally:
        unmount_all_under(d.kubelet_dir)
        delete(d, vid)


@pytest.mark.skipif(device_mapper_available(), reason="this kernel has device-mapper")
def test_lvm_node_calls_refuse_without_device_mapper(lvm_driver):
    d = lvm_driver
    pb = d.csi.pb
    cap = mount_cap(d.csi)
    volume = create(d, cap=cap)
    try:
        details = expect_code(C.FAILED_PRECONDITION, d.node.NodeStageVolume, pb.NodeStageVolumeRequest(
            volume_id=volume.volume_id, staging_target_path=d.path("plugins", "staging", volume.volume_id), volume_capability=cap))
        assert volume.volume_id in details
        # The finding is logged once, with what was tried; it is looked for again on later calls.
        assert "/dev/mapper/control" in details and "looked for again" in details, details
        assert d.output().count("csi-lvm-driver: device-mapper is not available: ") == 1, d.output()
    finally:
        delete(d, volume.volume_id)


# ---------------------------------------------------------------------------------------------
# Process lifecycle


def test_sigterm_removes_socket_and_exits_zero(binary, csi):
    workdir = tempfile.mkdtemp(prefix="csi-sigterm-")
    try:
        d = Driver(binary, csi, workdir, ["--backend", "loopfile", "--loopfile-dir", os.path.join(workdir, "v")])
        assert d.identity.Probe(csi.pb.ProbeRequest()).ready.value
        assert oct(os.stat(d.socket).st_mode & 0o777) == oct(0o660)
        assert d.stop() == 0, d.output()
        assert not os.path.exists(d.socket)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_sigterm_lets_an_in_flight_call_finish(binary, csi):
    workdir = tempfile.mkdtemp(prefix="csi-inflight-")
    d = Driver(binary, csi, workdir, ["--backend", "loopfile", "--loopfile-dir", os.path.join(workdir, "v")])
    pb = csi.pb
    cap = mount_cap(csi, fs_type="xfs")
    try:
        volume = create(d, size=2 * GIB, cap=cap)
        staging = d.path("plugins", "staging", volume.volume_id)
        call = d.node.NodeStageVolume.future(pb.NodeStageVolumeRequest(
            volume_id=volume.volume_id, staging_target_path=staging, volume_capability=cap))
        deadline = time.monotonic() + 10
        while "GRPC call: /csi.v1.Node/NodeStageVolume" not in d.output():
            assert time.monotonic() < deadline, d.output()
            time.sleep(0.002)
        d.process.send_signal(signal.SIGTERM)
        call.result(timeout=30)  # the call that was running completes normally
        assert d.process.wait(timeout=30) == 0, d.output()
        assert is_mounted(staging)
        assert not os.path.exists(d.socket)
    finally:
        d.stop()
        unmount_all_under(workdir)
        listing = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
        for line in listing.splitlines():
            if workdir in line:
                subprocess.run(["losetup", "-d", line.split(":")[0]], check=False)
        shutil.rmtree(workdir, ignore_errors=True)


def test_killed_driver_restarts_from_what_is_on_disk(binary, csi):
    """No state only in memory: after SIGKILL, a new driver on the same directories answers
    repeats of every call from the backend's records and /proc/self/mountinfo."""
    workdir = tempfile.mkdtemp(prefix="csi-restart-")
    args = ["--backend", "loopfile", "--loopfile-dir", os.path.join(workdir, "v")]
    pb = csi.pb
    cap = mount_cap(csi)
    d = Driver(binary, csi, workdir, args)
    try:
        volume = create(d, size=16 * MIB, cap=cap, vol_name="pvc-restart")
        vid = volume.volume_id
        staging = d.path("plugins", "staging", vid)
        target = d.path("pods", "restart", vid)
        stage = pb.NodeStageVolumeRequest(volume_id=vid, staging_target_path=staging, volume_capability=cap)
        publish = pb.NodePublishVolumeRequest(volume_id=vid, staging_target_path=staging, target_path=target,
                                              volume_capability=cap)
        d.node.NodeStageVolume(stage)
        d.node.NodePublishVolume(publish)
        with open(os.path.join(target, "before-crash"), "w") as f:
            f.write("x")
        d.process.kill()
        d.process.wait()
        d.stop()
        # The socket of a killed driver is stale: the next driver replaces it.
        d = Driver(binary, csi, workdir, args)
        assert create(d, size=16 * MIB, cap=cap, vol_name="pvc-restart").volume_id == vid
        d.node.NodeStageVolume(stage)
        d.node.NodePublishVolume(publish)
        assert os.path.exists(os.path.join(target, "before-crash"))
        stats = d.node.NodeGetVolumeStats(pb.NodeGetVolumeStatsRequest(volume_id=vid, volume_path=target))
        assert not stats.volume_condition.abnormal
        d.node.NodeUnpublishVolume(pb.NodeUnpublishVolumeRequest(volume_id=vid, target_path=target))
        d.node.NodeUnstageVolume(pb.NodeUnstageVolumeRequest(volume_id=vid, staging_target_path=staging))
        delete(d, vid)
        assert d.stop() == 0, d.output()
    finally:
        d.stop()
        unmount_all_under(workdir)
        listing = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
        for line in listing.splitlines():
            if workdir in line:
                subprocess.run(["losetup", "-d", line.split(":")[0]], check=False)
        shutil.rmtree(workdir, ignore_errors=True)


def test_second_driver_on_same_socket_is_refused(binary, csi, loopfile_driver):
    args = [binary, "--endpoint", loopfile_driver.socket, "--driver-name", DRIVER_NAME, "--node-id", NODE_ID,
            "--kubelet-dir", loopfile_driver.kubelet_dir, "--backend", "loopfile",
            "--loopfile-dir", os.path.join(loopfile_driver.workdir, "volumes")]
    result = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert loopfile_driver.socket in result.stderr + result.stdout
    # The first driver still serves.
    assert loopfile_driver.identity.Probe(csi.pb.ProbeRequest()).ready.value


def test_stale_socket_is_replaced(binary, csi):
    import socket as pysocket
    workdir = tempfile.mkdtemp(prefix="csi-stale-")
    stale = pysocket.socket(pysocket.AF_UNIX, pysocket.SOCK_STREAM)
    stale.bind(os.path.join(workdir, "csi.sock"))
    stale.close()  # the file stays; nothing answers on it
    try:
        d = Driver(binary, csi, workdir, ["--backend", "loopfile", "--loopfile-dir", os.path.join(workdir, "v")])
        assert d.identity.Probe(csi.pb.ProbeRequest()).ready.value
        assert d.stop() == 0, d.output()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_node_mode_serves_no_controller(binary, csi):
    workdir = tempfile.mkdtemp(prefix="csi-nodemode-")
    try:
        d = Driver(binary, csi, workdir, ["--backend", "loopfile", "--loopfile-dir", os.path.join(workdir, "v"), "--mode", "node"])
        pb = csi.pb
        caps = d.identity.GetPluginCapabilities(pb.GetPluginCapabilitiesRequest()).capabilities
        services = {c.service.type for c in caps if c.HasField("service")}
        assert pb.PluginCapability.Service.CONTROLLER_SERVICE not in services
        expect_code(C.UNIMPLEMENTED, d.controller.CreateVolume, pb.CreateVolumeRequest(name="x"))
        assert d.node.NodeGetInfo(pb.NodeGetInfoRequest()).node_id == NODE_ID
        assert d.stop() == 0, d.output()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.parametrize("args, flag", [
    (["--driver-name", "bad_name"], "--driver-name"),
    (["--endpoint", "tcp://127.0.0.1:1"], "--endpoint"),
    (["--mode", "everything"], "--mode"),
    (["--vg-pattern", "vg[0-"], "--vg-pattern"),
])
def test_bad_flags_are_named(binary, args, flag):
    base = ["--node-id", NODE_ID, "--backend", "loopfile", "--loopfile-dir", "/tmp/csi-unused"]
    if flag == "--vg-pattern":
        base = ["--node-id", NODE_ID]
    result = subprocess.run([binary] + base + args, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert flag in result.stderr
