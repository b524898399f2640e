#!/usr/bin/env python3
"""A volume's life through a CSI driver socket, as the kubelet, external-provisioner, external-snapshotter
and external-resizer would drive it: GetCapacity, CreateVolume, NodeStageVolume (format and mount),
NodePublishVolume, write a file, CreateSnapshot, change the file, CreateVolume from the snapshot, stage and
publish it and read the snapshot's content back, ControllerExpandVolume and NodeExpandVolume (online),
unpublish, unstage, DeleteSnapshot, DeleteVolume. `lvs` (or the loop-file directory) is the witness.
Used by scripts/demo.sh; grpcio is an independent gRPC implementation, so this also shows the driver
speaking standard gRPC."""

import argparse
import hashlib
import os
import pathlib
import re
import subprocess
import sys
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "E2E"))
import kubelet_sim  # noqa: E402

import grpc  # noqa: E402

MIB = 1 << 20
TIMEOUT = 120


def step(text):
    print(f"  - {text}", flush=True)


def mib(n):
    return f"{n / MIB:.0f} MiB" if n < 1 << 30 else f"{n / (1 << 30):.2f} GiB"


class Story:
    def __init__(self, args):
        self.args = args
        self.ws = pathlib.Path(args.workspace) if args.workspace else None
        s = kubelet_sim.load_stubs()
        self.pb = s.csi_pb2
        channel = grpc.insecure_channel(f"unix:{args.endpoint}")
        self.identity = s.csi_pb2_grpc.IdentityStub(channel)
        self.controller = s.csi_pb2_grpc.ControllerStub(channel)
        self.node = s.csi_pb2_grpc.NodeStub(channel)
        self.kubelet = pathlib.Path(args.kubelet_dir)
        self.undo = []  # ((verb, id), action): what to take back if the story stops half-way, newest last
        pb = self.pb
        self.capability = pb.VolumeCapability(
            mount=pb.VolumeCapability.MountVolume(fs_type=args.fs_type),
            access_mode=pb.VolumeCapability.AccessMode(mode=pb.VolumeCapability.AccessMode.SINGLE_NODE_WRITER))
        self.parameters = {"thinPool": args.thin_pool} if args.thin_pool else {}

    # --- display ---------------------------------------------------------------------------------

    def short(self, path):
        """A path relative to the workspace, UUIDs and hashes cut to 8 characters, the middle of a long
        one elided: kubelet/pods/1b2c3d4e/…/mount."""
        text = str(path)
        if self.ws and text.startswith(str(self.ws) + "/"):
            text = text[len(str(self.ws)) + 1:]
        text = re.sub(r"\b([0-9a-f]{8})(-[0-9a-f]{4}){3}-[0-9a-f]{12}\b", r"\1", text)
        text = re.sub(r"\b([0-9a-f]{8})[0-9a-f]{56}\b", r"\1", text)
        parts = text.split("/")
        if len(text) > 44 and len(parts) > 4:
            text = "/".join(parts[:3] + ["…", parts[-1]])
        return text

    def shorten_text(self, text):
        """A message with the absolute paths in it shortened as `short` does."""
        return re.sub(r"/\S+", lambda m: self.short(m.group(0).rstrip(":,;")) + m.group(0)[len(m.group(0).rstrip(":,;")):]
                      if self.ws and m.group(0).startswith(str(self.ws)) else m.group(0), text)

    def witness(self, when):
        """`lvs` of the demo's volume group (or the loop-file directory), indented under one line."""
        if self.args.volume_group:
            words = ["lvm", "lvs"]
            if not os.path.exists("/run/udev/control"):
                words += ["--config", "activation { udev_rules = 0 udev_sync = 0 }"]
            words += ["-o", "lv_name,lv_size,pool_lv,origin", self.args.volume_group]
            out = subprocess.run(words, capture_output=True, text=True, env=dict(os.environ, LVM_SUPPRESS_FD_WARNINGS="1"))
            print(f"    $ lvs -o lv_name,lv_size,pool_lv,origin {self.args.volume_group}   # {when}")
            for line in (out.stdout or out.stderr).rstrip().splitlines():
                print("    " + line)
        elif self.args.loopfile_dir:
            rows = []
            for sub in ("volumes", "snapshots"):
                for f in sorted((pathlib.Path(self.args.loopfile_dir) / sub).glob("*.img")):
                    st = f.stat()
                    rows.append((f"{sub}/{f.name}", f"{mib(st.st_size)}, {st.st_blocks * 512 / MIB:.1f} MiB allocated"))
            print(f"    $ ls loopfiles/*/*.img   # {when}" + ("" if rows else ": none"))
            width = max((len(name) for name, _ in rows), default=0)
            for name, size in rows:
                print(f"      {name:<{width}}  {size}")
        sys.stdout.flush()

    def df(self, path):
        """df's 1K-block numbers for a mount point: (size, used, available) in KiB."""
        out = subprocess.run(["df", "-k", "--output=size,used,avail", str(path)], capture_output=True, text=True,
                             check=True).stdout.splitlines()[-1].split()
        return tuple(int(x) for x in out)

    @staticmethod
    def df_text(numbers):
        size, used, avail = numbers
        used_text = f"{used} KiB" if used < 1024 else f"{used / 1024:.0f} MiB"
        return f"{size / 1024:.0f} MiB size, {used_text} used, {avail / 1024:.0f} MiB avail"

    # --- calls -----------------------------------------------------------------------------------

    def create(self, name, size, source=None):
        pb = self.pb
        request = pb.CreateVolumeRequest(
            name=name, capacity_range=pb.CapacityRange(required_bytes=size),
            volume_capabilities=[self.capability], parameters=self.parameters)
        if source:
            request.volume_content_source.snapshot.snapshot_id = source
        if self.topology is not None:
            request.accessibility_requirements.preferred.append(self.topology)
            request.accessibility_requirements.requisite.append(self.topology)
        volume = self.controller.CreateVolume(request, timeout=TIMEOUT).volume
        self.undo.append((("delete", volume.volume_id), lambda: self.controller.DeleteVolume(
            pb.DeleteVolumeRequest(volume_id=volume.volume_id), timeout=TIMEOUT)))
        return volume

    def paths(self, volume):
        """Where the kubelet would stage and publish this volume."""
        digest = hashlib.sha256(volume.volume_id.encode()).hexdigest()
        staging = self.kubelet / "plugins" / "kubernetes.io" / "csi" / self.args.driver_name / digest / "globalmount"
        target = self.kubelet / "pods" / str(uuid.uuid4()) / "volumes" / "kubernetes.io~csi" / volume.volume_id / "mount"
        staging.mkdir(parents=True, exist_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        return staging, target

    def stage(self, volume, staging):
        pb = self.pb
        self.node.NodeStageVolume(pb.NodeStageVolumeRequest(
            volume_id=volume.volume_id, staging_target_path=str(staging), volume_capability=self.capability,
            volume_context=dict(volume.volume_context)), timeout=TIMEOUT)
        self.undo.append((("unstage", volume.volume_id), lambda: self.node.NodeUnstageVolume(
            pb.NodeUnstageVolumeRequest(volume_id=volume.volume_id, staging_target_path=str(staging)), timeout=TIMEOUT)))

    def publish(self, volume, staging, target):
        pb = self.pb
        self.node.NodePublishVolume(pb.NodePublishVolumeRequest(
            volume_id=volume.volume_id, staging_target_path=str(staging), target_path=str(target),
            volume_capability=self.capability, volume_context=dict(volume.volume_context)), timeout=TIMEOUT)
        self.undo.append((("unpublish", volume.volume_id), lambda: self.node.NodeUnpublishVolume(
            pb.NodeUnpublishVolumeRequest(volume_id=volume.volume_id, target_path=str(target)), timeout=TIMEOUT)))

    def source(self, path):
        """The device mounted at `path`, as findmnt names it."""
        out = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(path)], capture_output=True, text=True).stdout
        return out.strip().splitlines()[0] if out.strip() else "?"

    def finish(self, *keys):
        """Runs the undo actions named by `keys`, in that order: the story's own unpublish, unstage, delete."""
        for key in keys:
            index = next(i for i, (k, _) in enumerate(self.undo) if k == key)
            self.undo.pop(index)[1]()

    # --- the story -------------------------------------------------------------------------------

    def run(self):
        pb, args = self.pb, self.args
        info = self.identity.GetPluginInfo(pb.GetPluginInfoRequest(), timeout=TIMEOUT)
        node_info = self.node.NodeGetInfo(pb.NodeGetInfoRequest(), timeout=TIMEOUT)
        self.topology = node_info.accessible_topology if node_info.HasField("accessible_topology") else None
        topology = ", ".join(f"{k}={v}" for k, v in sorted(node_info.accessible_topology.segments.items()))
        step(f"GetPluginInfo: {info.name} {info.vendor_version}; NodeGetInfo: node {node_info.node_id}, topology {topology}")

        free = self.controller.GetCapacity(pb.GetCapacityRequest(volume_capabilities=[self.capability]),
                                           timeout=TIMEOUT).available_capacity
        line = f"GetCapacity: {mib(free)}"
        if args.volume_group:
            line += f" free in volume group {args.volume_group}"
        if args.thin_pool:
            promise = self.controller.GetCapacity(pb.GetCapacityRequest(
                volume_capabilities=[self.capability], parameters=self.parameters), timeout=TIMEOUT).available_capacity
            line += f"; thinPool={args.thin_pool}: {mib(promise)} (its size × overprovision ratio 2)"
        step(line)
        self.witness("the thin pool alone" if args.thin_pool else "before")

        kind = f"thin in {args.thin_pool}" if args.thin_pool else "loop file"
        name = f"pvc-{uuid.uuid4().hex[:8]}"
        volume = self.create(name, args.size_mib * MIB)
        step(f"CreateVolume {name} ({args.size_mib} MiB, {kind}): volume_id {volume.volume_id}, "
             f"{mib(volume.capacity_bytes)}")

        staging, target = self.paths(volume)
        self.stage(volume, staging)
        step(f"NodeStageVolume: {args.fs_type} on {self.source(staging)}, mounted at {self.short(staging)}")
        self.publish(volume, staging, target)
        step(f"NodePublishVolume: bind-mounted at {self.short(target)}")
        hello = target / "hello.txt"
        first = f"version 1, written at {time.strftime('%H:%M:%S')}"
        hello.write_text(first + "\n")
        os.sync()
        step(f"wrote hello.txt: {first!r}")

        snap_name = f"snapshot-{uuid.uuid4().hex[:8]}"
        snapshot = self.controller.CreateSnapshot(pb.CreateSnapshotRequest(
            source_volume_id=volume.volume_id, name=snap_name), timeout=TIMEOUT).snapshot
        self.undo.append((("delete", snapshot.snapshot_id), lambda: self.controller.DeleteSnapshot(
            pb.DeleteSnapshotRequest(snapshot_id=snapshot.snapshot_id), timeout=TIMEOUT)))
        hashed = " (a hash of the name: LV names may not start with 'snapshot')" if snapshot.snapshot_id != snap_name else ""
        step(f"CreateSnapshot {snap_name}: snapshot_id {snapshot.snapshot_id}{hashed}, {mib(snapshot.size_bytes)}, "
             f"ready_to_use {str(snapshot.ready_to_use).lower()}")
        second = f"version 2, written at {time.strftime('%H:%M:%S')}"
        hello.write_text(second + "\n")
        os.sync()
        step(f"changed hello.txt: {second!r}")
        self.witness("a volume and its snapshot")

        restored_name = f"pvc-{uuid.uuid4().hex[:8]}"
        restored = self.create(restored_name, args.size_mib * MIB, source=snapshot.snapshot_id)
        step(f"CreateVolume {restored_name} from {snapshot.snapshot_id}: {mib(restored.capacity_bytes)}")
        rstaging, rtarget = self.paths(restored)
        self.stage(restored, rstaging)
        self.publish(restored, rstaging, rtarget)
        step(f"NodeStageVolume + NodePublishVolume: {self.source(rstaging)} at {self.short(rtarget)}")
        back = (rtarget / "hello.txt").read_text().strip()
        now = hello.read_text().strip()
        step(f"{restored_name} hello.txt: {back!r}; {name} still has {now!r}")
        if back != first or now != second:
            raise SystemExit(f"  ! expected {first!r} in the restored volume and {second!r} in the source")
        self.witness("three volumes: the source, its snapshot, the restored one")

        before = self.df(target)
        step(f"df {name}: {self.df_text(before)}")
        grown_size = 2 * args.size_mib * MIB
        grown = self.controller.ControllerExpandVolume(pb.ControllerExpandVolumeRequest(
            volume_id=volume.volume_id, capacity_range=pb.CapacityRange(required_bytes=grown_size),
            volume_capability=self.capability), timeout=TIMEOUT)
        step(f"ControllerExpandVolume {name} to {mib(grown_size)}: {mib(grown.capacity_bytes)}, "
             f"node_expansion_required {str(grown.node_expansion_required).lower()}")
        try:
            expanded = self.node.NodeExpandVolume(pb.NodeExpandVolumeRequest(
                volume_id=volume.volume_id, volume_path=str(target),
                capacity_range=pb.CapacityRange(required_bytes=grown_size), volume_capability=self.capability),
                timeout=TIMEOUT)
        except grpc.RpcError as e:
            # Growing a mounted ext4 takes CAP_SYS_RESOURCE, which a container may not grant.
            step(f"NodeExpandVolume answered {e.code().name}: {self.shorten_text(e.details())}")
        else:
            after = self.df(target)
            step(f"NodeExpandVolume (online, mounted): {mib(expanded.capacity_bytes)}; "
                 f"df {name}: {before[0] / 1024:.0f} → {after[0] / 1024:.0f} MiB size, "
                 f"{before[2] / 1024:.0f} → {after[2] / 1024:.0f} MiB avail")
        if hello.read_text().strip() != second:
            raise SystemExit("  ! hello.txt changed while the volume grew")
        self.witness(f"{name} grown")

        self.finish(("unpublish", restored.volume_id), ("unstage", restored.volume_id),
                    ("unpublish", volume.volume_id), ("unstage", volume.volume_id))
        mounts = [line.split()[1] for line in open("/proc/self/mounts") if line.split()[1].startswith(str(self.kubelet))]
        step(f"NodeUnpublishVolume + NodeUnstageVolume, both volumes: {len(mounts)} mounts left under kubelet/")
        self.finish(("delete", restored.volume_id))
        step(f"DeleteVolume {restored.volume_id}")
        self.finish(("delete", snapshot.snapshot_id))
        step(f"DeleteSnapshot {snapshot.snapshot_id}")
        self.finish(("delete", volume.volume_id))
        step(f"DeleteVolume {volume.volume_id}")
        self.witness("all deleted")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True, help="the driver socket path")
    ap.add_argument("--kubelet-dir", required=True)
    ap.add_argument("--driver-name", required=True)
    ap.add_argument("--workspace", help="paths are shown relative to this directory")
    ap.add_argument("--volume-group", help="the LVM volume group `lvs` shows")
    ap.add_argument("--thin-pool", help="StorageClass parameter thinPool")
    ap.add_argument("--loopfile-dir", help="the loop-file backend's directory, shown instead of lvs")
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--fs-type", default="ext4")
    args = ap.parse_args()
    story = Story(args)
    try:
        story.run()
    except KeyboardInterrupt:
        story.undo.clear()  # Ctrl-C stops the driver too; demo.sh's cleanup unmounts and removes the rest
        return 130
    finally:
        while story.undo:  # what a failed step left behind, newest first; errors here are secondary
            try:
                story.undo.pop()[1]()
            except (grpc.RpcError, KeyboardInterrupt):
                break
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except grpc.RpcError as e:
        print(f"  ! the driver answered {e.code().name}: {e.details()}", file=sys.stderr)
        sys.exit(1)
