#!/usr/bin/env python3
"""Times upb (Python protobuf's C codec) on the same NodePublishVolumeRequest that
`protowire bench` uses, so the two can be compared on one machine in one run.

    python3 Benchmarks/Codec/upb_reference.py [iterations]

Needs the pip packages protobuf and grpcio-tools (scripts/install-deps.sh installs both).
"""
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def main() -> None:
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    with tempfile.TemporaryDirectory() as out:
        import grpc_tools
        well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
        subprocess.run(
            [sys.executable, "-m", "grpc_tools.protoc", "-I", os.path.join(ROOT, "Sources/CSI/Protos"),
             "-I", well_known, f"--python_out={out}", "csi.proto"],
            check=True)
        sys.path.insert(0, out)
        import csi_pb2  # noqa: E402
        from google.protobuf.internal import api_implementation

        r = csi_pb2.NodePublishVolumeRequest()
        r.volume_id = "pvc-5f1c2a9e-7d3b-4c8e-9a61-2b7f0d4e8c13"
        r.publish_context["devicePath"] = "/dev/csi-lvm/vg0/pvc-5f1c2a9e"
        r.publish_context["lvm.csi.io/vg"] = "vg0"
        r.staging_target_path = "/var/lib/kubelet/plugins/kubernetes.io/csi/lvm.csi.io/1b2c3d/globalmount"
        r.target_path = ("/var/lib/kubelet/pods/0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7/volumes/"
                         "kubernetes.io~csi/pvc-5f1c2a9e/mount")
        r.volume_capability.mount.fs_type = "ext4"
        r.volume_capability.mount.mount_flags.extend(["noatime", "nodiratime"])
        r.volume_capability.access_mode.mode = csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_WRITER
        r.readonly = True
        r.secrets["password"] = "s3cr3t-hunter2"
        r.secrets["username"] = "admin"
        r.volume_context["csi.storage.k8s.io/pod.name"] = "web-0"
        r.volume_context["csi.storage.k8s.io/pod.namespace"] = "default"
        r.volume_context["csi.storage.k8s.io/pod.uid"] = "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7"
        data = r.SerializeToString(deterministic=True)

        def best(fn) -> float:
            results = []
            for _ in range(7):
                start = time.perf_counter_ns()
                fn()
                results.append((time.perf_counter_ns() - start) / iterations)
            return min(results)

        def encode() -> None:
            for _ in range(iterations):
                r.SerializeToString()

        parse = csi_pb2.NodePublishVolumeRequest.FromString

        def decode() -> None:
            for _ in range(iterations):
                parse(data)

        def loop() -> None:
            for _ in range(iterations):
                pass

        overhead = best(loop)
        print(f"upb ({api_implementation.Type()}), NodePublishVolumeRequest, {len(data)} bytes, "
              f"best of 7 rounds x {iterations}:")
        print(f"  encode: {best(encode):.1f} ns (loop overhead {overhead:.1f} ns included)")
        print(f"  decode: {best(decode):.1f} ns")


if __name__ == "__main__":
    main()
