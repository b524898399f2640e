"""What the CSI test suites share: stubs generated from the project's csi.proto, a csi-lvm-driver
process on a Unix socket, and small request helpers. Used by Tests/E2E and by Tests/VM (the LVM
path on a real kernel)."""

import importlib
import importlib.resources
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

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BINARY = os.path.join(ROOT, ".build", "debug", "csi-lvm-driver")
MIB = 1 << 20
GIB = 1 << 30
C = grpc.StatusCode


def generate_stubs(out=None):
    """(csi_pb2, csi_pb2_grpc) generated into `out` (default: a new temporary directory), and that
    directory. Where SWIFT_CSI_STUBS names a directory that holds them already, they are imported
    from there (Tests/VM makes them on the host: protoc is slow under emulation)."""
    ready = os.environ.get("SWIFT_CSI_STUBS")
    if ready and out is None and os.path.exists(os.path.join(ready, "csi_pb2.py")):
        sys.path.insert(0, ready)
        try:
            return type("CSI", (), {"pb": importlib.import_module("csi_pb2"),
                                    "grpc": importlib.import_module("csi_pb2_grpc")}), tempfile.mkdtemp(prefix="csi-stubs-")
        finally:
            sys.path.remove(ready)
    from grpc_tools import protoc

    out = out or tempfile.mkdtemp(prefix="csi-stubs-")
    include = str(importlib.resources.files("grpc_tools") / "_proto")
    protos = os.path.join(ROOT, "Sources", "CSI", "Protos")
    rc = protoc.main(["protoc", "-I" + protos, "-I" + include, "--python_out=" + out,
                      "--grpc_python_out=" + out, os.path.join(protos, "csi.proto")])
    assert rc == 0, "protoc failed on %s/csi.proto" % protos
    sys.path.insert(0, out)
    try:
        pb2 = importlib.import_module("csi_pb2")
        grpc_mod = importlib.import_module("csi_pb2_grpc")
    finally:
        sys.path.remove(out)
    return type("CSI", (), {"pb": pb2, "grpc": grpc_mod}), out


def built_binary():
    if not os.path.exists(BINARY):
        subprocess.run(["swift", "build", "--product", "csi-lvm-driver"], cwd=ROOT, check=True)
    return BINARY


class Driver:
    """One csi-lvm-driver process on a socket in `workdir`, with stubs for its three services."""

    def __init__(self, binary, csi, workdir, extra_args, kubelet_dir=None, driver_name="test.csi.swift-csi.io",
                 node_id="node0", common_args=None):
        self.csi = csi
        self.binary = binary
        self.backend = extra_args[extra_args.index("--backend") + 1] if "--backend" in extra_args else "lvm"
        self.workdir = workdir
        self.kubelet_dir = kubelet_dir or os.path.join(workdir, "kubelet")
        os.makedirs(self.kubelet_dir, exist_ok=True)
        self.socket = os.path.join(workdir, "csi.sock")
        self.log_path = os.path.join(workdir, "driver.log")
        common = ["--shutdown-grace", "5", "-v", "debug"] if common_args is None else common_args
        self.args = [binary, "--endpoint", "unix://" + self.socket, "--driver-name", driver_name,
                     "--node-id", node_id, "--kubelet-dir", self.kubelet_dir] + common + extra_args
        self.log = open(self.log_path, "ab")
        self.channel = None
        self.start()

    def start(self, timeout=30):
        """Starts the process (again, after a kill) and waits until it answers."""
        # A session of its own: kill() takes the driver's children (mkfs, resize2fs) with it, as a
        # container's end does.
        self.process = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.socket):
            if self.process.poll() is not None:
                raise AssertionError("driver exited with %s before creating %s:\n%s"
                                     % (self.process.returncode, self.socket, self.output()))
            if time.monotonic() > deadline:
                raise AssertionError("driver did not create %s within %s s:\n%s" % (self.socket, timeout, self.output()))
            time.sleep(0.02)
        if self.channel is not None:
            self.channel.close()
        self.channel = grpc.insecure_channel("unix://" + self.socket)
        grpc.channel_ready_future(self.channel).result(timeout=timeout)
        self.identity = self.csi.grpc.IdentityStub(self.channel)
        self.controller = self.csi.grpc.ControllerStub(self.channel)
        self.node = self.csi.grpc.NodeStub(self.channel)

    def kill(self):
        """SIGKILL to the driver and its children: no cleanup runs, the socket stays behind."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()

    def output(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def path(self, *parts):
        """A path under the kubelet directory (the only place staging and target paths may be)."""
        return os.path.join(self.kubelet_dir, *parts)

    def stop(self):
        self.channel.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


def unmount_all_under(path):
    """Unmount every mount below `path`, deepest first (cleanup after a failed test)."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(path + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def name(prefix="pvc"):
    return "%s-%s" % (prefix, uuid.uuid4())


def mount_cap(csi, fs_type="", mode=None, flags=()):
    pb = csi.pb
    mode = pb.VolumeCapability.AccessMode.SINGLE_NODE_WRITER if mode is None else mode
    return pb.VolumeCapability(mount=pb.VolumeCapability.MountVolume(fs_type=fs_type, mount_flags=list(flags)),
                               access_mode=pb.VolumeCapability.AccessMode(mode=mode))


def block_cap(csi, mode=None):
    pb = csi.pb
    mode = pb.VolumeCapability.AccessMode.SINGLE_NODE_WRITER if mode is None else mode
    return pb.VolumeCapability(block=pb.VolumeCapability.BlockVolume(),
                               access_mode=pb.VolumeCapability.AccessMode(mode=mode))


def expect_code(code, call, *args, **kwargs):
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    assert info.value.code() == code, "expected %s, got %s: %s" % (code, info.value.code(), info.value.details())
    return info.value.details()


def create(d, size=16 * MIB, vol_name=None, cap=None, **kwargs):
    pb = d.csi.pb
    request = pb.CreateVolumeRequest(name=vol_name or name(), capacity_range=pb.CapacityRange(required_bytes=size),
                                     volume_capabilities=[cap or mount_cap(d.csi)], **kwargs)
    return d.controller.CreateVolume(request).volume


def delete(d, volume_id):
    d.controller.DeleteVolume(d.csi.pb.DeleteVolumeRequest(volume_id=volume_id))


def stage(d, vid, staging, cap):
    d.node.NodeStageVolume(d.csi.pb.NodeStageVolumeRequest(volume_id=vid, staging_target_path=staging, volume_capability=cap))


def publish(d, vid, staging, target, cap, readonly=False):
    d.node.NodePublishVolume(d.csi.pb.NodePublishVolumeRequest(volume_id=vid, staging_target_path=staging, target_path=target,
                                                               volume_capability=cap, readonly=readonly))


def stage_and_publish(d, vid, staging, target, cap, readonly=False):
    stage(d, vid, staging, cap)
    publish(d, vid, staging, target, cap, readonly)


def device_mapper_available():
    """Whether this kernel has device-mapper; loads dm_mod first where modprobe can (a fresh
    kernel loads it on first use), as LVM and the driver do."""
    if not os.path.exists("/dev/mapper/control") and shutil.which("modprobe"):
        subprocess.run(["modprobe", "dm_mod"], capture_output=True)
    try:
        os.close(os.open("/dev/mapper/control", os.O_RDWR))
        return True
    except OSError:
        return False


def is_mounted(path):
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def findmnt(path):
    """findmnt's SOURCE, FSTYPE and OPTIONS of the mount at `path`, or None."""
    out = subprocess.run(["findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS", "--mountpoint", path],
                         capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout.strip():
        return None
    source, fstype, options = out.stdout.split()[:3]
    return {"source": source, "fstype": fstype, "options": options.split(",")}
