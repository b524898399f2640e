#!/usr/bin/env python3
"""A volume's life through a CSI driver socket, as the kubelet and external-provisioner would drive it:
CreateVolume, NodeStageVolume, NodePublishVolume, write a file, NodeUnpublishVolume, publish again and read
the file back, unpublish, NodeUnstageVolume, DeleteVolume. Used by scripts/demo.sh; grpcio is an independent
gRPC implementation, so this also shows the driver speaking standard gRPC."""

import argparse
import hashlib
import os
import pathlib
import sys
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "E2E"))
import kubelet_sim  # noqa: E402

import grpc  # noqa: E402


def step(text):
    print(f"  - {text}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True, help="the driver socket path")
    ap.add_argument("--kubelet-dir", required=True)
    ap.add_argument("--driver-name", required=True)
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--fs-type", default="ext4")
    args = ap.parse_args()

    s = kubelet_sim.load_stubs()
    pb = s.csi_pb2
    channel = grpc.insecure_channel(f"unix:{args.endpoint}")
    identity = s.csi_pb2_grpc.IdentityStub(channel)
    controller = s.csi_pb2_grpc.ControllerStub(channel)
    node = s.csi_pb2_grpc.NodeStub(channel)
    timeout = 60

    info = identity.GetPluginInfo(pb.GetPluginInfoRequest(), timeout=timeout)
    node_info = node.NodeGetInfo(pb.NodeGetInfoRequest(), timeout=timeout)
    step(f"GetPluginInfo: {info.name} {info.vendor_version}; NodeGetInfo: node_id {node_info.node_id}")

    capability = pb.VolumeCapability(
        mount=pb.VolumeCapability.MountVolume(fs_type=args.fs_type),
        access_mode=pb.VolumeCapability.AccessMode(mode=pb.VolumeCapability.AccessMode.SINGLE_NODE_WRITER))
    name = f"pvc-{uuid.uuid4()}"
    request = pb.CreateVolumeRequest(
        name=name, capacity_range=pb.CapacityRange(required_bytes=args.size_mib << 20),
        volume_capabilities=[capability])
    if node_info.HasField("accessible_topology"):
        request.accessibility_requirements.preferred.append(node_info.accessible_topology)
        request.accessibility_requirements.requisite.append(node_info.accessible_topology)
    volume = controller.CreateVolume(request, timeout=timeout).volume
    step(f"CreateVolume {name}: volume_id {volume.volume_id}, {volume.capacity_bytes >> 20} MiB")

    kubelet = pathlib.Path(args.kubelet_dir)
    digest = hashlib.sha256(volume.volume_id.encode()).hexdigest()
    staging = kubelet / "plugins" / "kubernetes.io" / "csi" / args.driver_name / digest / "globalmount"
    pod = uuid.uuid4()
    target = kubelet / "pods" / str(pod) / "volumes" / "kubernetes.io~csi" / name / "mount"
    staging.mkdir(parents=True, exist_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    context = dict(volume.volume_context)
    try:
        node.NodeStageVolume(pb.NodeStageVolumeRequest(
            volume_id=volume.volume_id, staging_target_path=str(staging), volume_capability=capability,
            volume_context=context), timeout=timeout)
        step(f"NodeStageVolume: formatted {args.fs_type} and mounted at {staging}")

        def publish():
            node.NodePublishVolume(pb.NodePublishVolumeRequest(
                volume_id=volume.volume_id, staging_target_path=str(staging), target_path=str(target),
                volume_capability=capability, volume_context=context), timeout=timeout)

        publish()
        step(f"NodePublishVolume: bind-mounted at {target}")
        payload = f"written by the swift-csi demo at {time.strftime('%H:%M:%S')}\n"
        (target / "hello.txt").write_text(payload)
        os.sync()
        step(f"wrote {target / 'hello.txt'}: {payload.strip()!r}")
        node.NodeUnpublishVolume(pb.NodeUnpublishVolumeRequest(volume_id=volume.volume_id, target_path=str(target)),
                                 timeout=timeout)
        step("NodeUnpublishVolume: unmounted the pod's path")
        publish()
        read = (target / "hello.txt").read_text()
        assert read == payload, f"read back {read!r}, expected {payload!r}"
        step(f"NodePublishVolume again and read it back: {read.strip()!r}")
        node.NodeUnpublishVolume(pb.NodeUnpublishVolumeRequest(volume_id=volume.volume_id, target_path=str(target)),
                                 timeout=timeout)
        node.NodeUnstageVolume(pb.NodeUnstageVolumeRequest(volume_id=volume.volume_id,
                                                           staging_target_path=str(staging)), timeout=timeout)
        step("NodeUnpublishVolume and NodeUnstageVolume: nothing mounted any more")
    finally:
        controller.DeleteVolume(pb.DeleteVolumeRequest(volume_id=volume.volume_id), timeout=timeout)
        step(f"DeleteVolume {volume.volume_id}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except grpc.RpcError as e:
        print(f"  ! the driver answered {e.code().name}: {e.details()}", file=sys.stderr)
        sys.exit(1)
