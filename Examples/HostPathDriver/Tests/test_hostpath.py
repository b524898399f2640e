"""The hostpath example driver over its socket, as a CO drives it: create a volume, stage and
publish it (bind mounts), write through the mount, unpublish, unstage, delete; then SIGTERM.
Needs root (bind mounts) and the example built (`make example` does both)."""

import errno
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

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.dirname(HERE)
REPO = os.path.abspath(os.path.join(EXAMPLE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "Tests", "E2E"))
import csi_support  # noqa: E402  (stubs from the project's csi.proto, mount cleanup)

BINARY = os.environ.get("HOSTPATH_DRIVER", os.path.join(EXAMPLE, ".build", "debug", "hostpath-driver"))
NAME = "hostpath.csi.example.com"
C = grpc.StatusCode

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root")


@pytest.fixture(scope="module")
def csi():
    stubs, out = csi_support.generate_stubs()
    yield stubs
    shutil.rmtree(out, ignore_errors=True)


@pytest.fixture
def driver(csi):
    assert os.path.exists(BINARY), "%s is missing: build it with `make example`" % BINARY
    work = tempfile.mkdtemp(prefix="hostpath-")
    kubelet, root, socket = os.path.join(work, "kubelet"), os.path.join(work, "volumes"), os.path.join(work, "csi.sock")
    os.makedirs(kubelet)
    log = open(os.path.join(work, "driver.log"), "wb")
    process = subprocess.Popen([BINARY, "--endpoint", "unix://" + socket, "--root", root, "--node-id", "node-a",
                                "--kubelet-dir", kubelet], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while not os.path.exists(socket):
        assert process.poll() is None, "the driver exited with %s" % process.returncode
        assert time.monotonic() < deadline, "no socket at %s" % socket
        time.sleep(0.02)
    channel = grpc.insecure_channel("unix://" + socket)
    grpc.channel_ready_future(channel).result(timeout=10)
    d = type("Driver", (), dict(process=process, socket=socket, kubelet=kubelet, root=root, work=work,
                                identity=csi.grpc.IdentityStub(channel), controller=csi.grpc.ControllerStub(channel),
                                node=csi.grpc.NodeStub(channel), pb=csi.pb))
    try:
        yield d
    finally:
        channel.close()
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
        csi_support.unmount_all_under(work)
        shutil.rmtree(work, ignore_errors=True)


def capability(pb, mode=None, block=False):
    mode = mode if mode is not None else pb.VolumeCapability.AccessMode.SINGLE_NODE_WRITER
    access = pb.VolumeCapability.AccessMode(mode=mode)
    if block:
        return pb.VolumeCapability(block=pb.VolumeCapability.BlockVolume(), access_mode=access)
    return pb.VolumeCapability(mount=pb.VolumeCapability.MountVolume(), access_mode=access)


def code_of(call):
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code()


def mounted(path):
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def test_a_volume_from_creation_to_deletion(driver):
    pb = driver.pb
    info = driver.identity.GetPluginInfo(pb.GetPluginInfoRequest())
    assert (info.name, info.vendor_version, dict(info.manifest)) == (NAME, "0.1.0", {"backend": "hostpath"})
    assert driver.identity.Probe(pb.ProbeRequest()).ready.value

    name = "pvc-" + uuid.uuid4().hex
    volume = driver.controller.CreateVolume(pb.CreateVolumeRequest(
        name=name, volume_capabilities=[capability(pb)],
        capacity_range=pb.CapacityRange(required_bytes=10 << 20))).volume
    assert volume.volume_id == name and volume.capacity_bytes == 10 << 20
    assert dict(volume.accessible_topology[0].segments) == {"topology.%s/node" % NAME: "node-a"}
    data = os.path.join(driver.root, name, "data")
    assert os.path.isdir(data)
    # A repeat answers the same volume.
    again = driver.controller.CreateVolume(pb.CreateVolumeRequest(
        name=name, volume_capabilities=[capability(pb)], capacity_range=pb.CapacityRange(required_bytes=10 << 20)))
    assert again.volume.volume_id == name

    staging = os.path.join(driver.kubelet, "plugins", "kubernetes.io", "csi", NAME, name, "globalmount")
    target = os.path.join(driver.kubelet, "pods", "uid-1", "volumes", "kubernetes.io~csi", name, "mount")
    reader = os.path.join(driver.kubelet, "pods", "uid-2", "volumes", "kubernetes.io~csi", name, "mount")
    os.makedirs(staging)
    driver.node.NodeStageVolume(pb.NodeStageVolumeRequest(
        volume_id=name, staging_target_path=staging, volume_capability=capability(pb)))
    driver.node.NodeStageVolume(pb.NodeStageVolumeRequest(
        volume_id=name, staging_target_path=staging, volume_capability=capability(pb)))
    assert mounted(staging)
    for path, readonly in ((target, False), (reader, True)):
        driver.node.NodePublishVolume(pb.NodePublishVolumeRequest(
            volume_id=name, staging_target_path=staging, target_path=path, volume_capability=capability(pb),
            readonly=readonly))
    assert mounted(target) and mounted(reader)

    # Written through the mount, the file is in the volume's directory, and visible read-only.
    with open(os.path.join(target, "hello.txt"), "w") as f:
        f.write("hello from a pod\n")
    with open(os.path.join(data, "hello.txt")) as f:
        assert f.read() == "hello from a pod\n"
    with open(os.path.join(reader, "hello.txt")) as f:
        assert f.read() == "hello from a pod\n"
    with pytest.raises(OSError) as refused:
        open(os.path.join(reader, "other.txt"), "w")
    assert refused.value.errno == errno.EROFS

    stats = driver.node.NodeGetVolumeStats(pb.NodeGetVolumeStatsRequest(volume_id=name, volume_path=target))
    assert not stats.volume_condition.abnormal and stats.usage[0].total > 0

    for path in (target, reader):
        driver.node.NodeUnpublishVolume(pb.NodeUnpublishVolumeRequest(volume_id=name, target_path=path))
        driver.node.NodeUnpublishVolume(pb.NodeUnpublishVolumeRequest(volume_id=name, target_path=path))
        assert not os.path.exists(path)
    driver.node.NodeUnstageVolume(pb.NodeUnstageVolumeRequest(volume_id=name, staging_target_path=staging))
    assert not mounted(staging)

    driver.controller.DeleteVolume(pb.DeleteVolumeRequest(volume_id=name))
    driver.controller.DeleteVolume(pb.DeleteVolumeRequest(volume_id=name))
    assert not os.path.exists(os.path.join(driver.root, name))
    assert list(driver.controller.ListVolumes(pb.ListVolumesRequest()).entries) == []


def test_refusals_keep_their_codes(driver):
    pb = driver.pb
    name = "pvc-" + uuid.uuid4().hex
    driver.controller.CreateVolume(pb.CreateVolumeRequest(name=name, volume_capabilities=[capability(pb)]))
    staging = os.path.join(driver.kubelet, "staging", name)
    # A directory cannot be a raw block device.
    assert code_of(lambda: driver.node.NodeStageVolume(pb.NodeStageVolumeRequest(
        volume_id=name, staging_target_path=staging, volume_capability=capability(pb, block=True)))) == C.INVALID_ARGUMENT
    # Paths outside the kubelet directory are refused.
    assert code_of(lambda: driver.node.NodeStageVolume(pb.NodeStageVolumeRequest(
        volume_id=name, staging_target_path="/etc", volume_capability=capability(pb)))) == C.INVALID_ARGUMENT
    # Unknown volumes are NOT_FOUND; a name that is no directory name is INVALID_ARGUMENT.
    assert code_of(lambda: driver.node.NodeStageVolume(pb.NodeStageVolumeRequest(
        volume_id="pvc-none", staging_target_path=staging, volume_capability=capability(pb)))) == C.NOT_FOUND
    assert code_of(lambda: driver.controller.CreateVolume(pb.CreateVolumeRequest(
        name="../escape", volume_capabilities=[capability(pb)]))) == C.INVALID_ARGUMENT
    # This driver takes no snapshots, and says so.
    rpcs = [c.rpc.type for c in driver.controller.ControllerGetCapabilities(
        pb.ControllerGetCapabilitiesRequest()).capabilities]
    assert pb.ControllerServiceCapability.RPC.CREATE_DELETE_VOLUME in rpcs
    assert pb.ControllerServiceCapability.RPC.CREATE_DELETE_SNAPSHOT not in rpcs
    assert code_of(lambda: driver.controller.CreateSnapshot(pb.CreateSnapshotRequest(
        name="snap-1", source_volume_id=name))) == C.UNIMPLEMENTED


def test_sigterm_removes_the_socket_and_exits_cleanly(driver):
    driver.process.send_signal(signal.SIGTERM)
    assert driver.process.wait(timeout=20) == 0
    assert not os.path.exists(driver.socket)
