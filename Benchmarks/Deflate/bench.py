#!/usr/bin/env python3
"""Compression speed and ratio of the Deflate module beside Python's zlib (the C zlib it links),
at levels 1 and 6, on payloads of the kinds gRPC carries here. Builds `deflate-bench` in release
(at nice 19) unless --no-build, writes the payloads to a temporary directory, prints a table.

    python3 Benchmarks/Deflate/bench.py [--no-build]
"""
import os
import pathlib
import random
import subprocess
import sys
import tempfile
import time
import zlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(num, payload):
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def payloads():
    rnd = random.Random(42)
    # A CSI ListVolumesResponse-like message: 2000 entries of volume id, capacity, context map, topology.
    entries = bytearray()
    for i in range(2000):
        vid = f"pvc-{rnd.getrandbits(128):032x}".encode()
        vol = (field(2, vid) + varint(1 << 3) + varint(rnd.randrange(1 << 30, 1 << 36))
               + field(3, field(1, b"vg") + field(2, b"data-vg0"))
               + field(3, field(1, b"fsType") + field(2, b"ext4"))
               + field(5, field(1, field(1, b"topology.lvm.csi.swift-csi.io/node") + field(2, f"node-{i % 7}".encode()))))
        entries += field(1, field(1, vol))
    yield "list-volumes.pb", bytes(entries)
    # One NodePublishVolumeRequest-sized message (~500 bytes): small messages compress little.
    yield "publish-request.pb", (field(1, b"pvc-0d6e4079-e3b4-4b5f-8c0b-17c9e1d0f5a2") + field(3, b"/var/lib/kubelet/plugins/kubernetes.io/csi/lvm.csi.swift-csi.io/0d6e/globalmount")
                                 + field(4, b"/var/lib/kubelet/pods/7f2b0c1e-8c41-4d55-9a4e-2b1f1c3f9e77/volumes/kubernetes.io~csi/pvc-0d6e4079/mount")
                                 + field(5, field(1, field(1, b"ext4") + field(2, b"noatime")) + field(2, varint(1 << 3) + varint(1)))
                                 + b"".join(field(7, field(1, k) + field(2, v)) for k, v in [(b"storage.kubernetes.io/csiProvisionerIdentity", b"1700000000000-8081-lvm.csi.swift-csi.io"), (b"csi.storage.k8s.io/pod.name", b"web-0"), (b"csi.storage.k8s.io/pod.namespace", b"default"), (b"csi.storage.k8s.io/pvc/name", b"data-web-0")]))
    # Log-like text.
    lines = []
    for i in range(20000):
        lines.append(f"2026-11-24T22:{i // 600 % 60:02d}:{i // 10 % 60:02d}.{i % 1000:03d}Z info NodePublishVolume volume=pvc-{rnd.getrandbits(32):08x} target=/var/lib/kubelet/pods/{rnd.getrandbits(32):08x}/volumes mount ok in {rnd.random() * 5:.3f} ms")
    yield "log.txt", "\n".join(lines).encode()
    # JSON-ish metrics.
    yield "metrics.json", ("[" + ",".join(f'{{"node":"node-{i % 13}","vg":"vg{i % 3}","free_bytes":{rnd.randrange(1 << 40)},"lvs":{rnd.randrange(100)},"healthy":{"true" if i % 17 else "false"}}}' for i in range(15000)) + "]").encode()
    # Incompressible bytes.
    yield "random.bin", bytes(rnd.getrandbits(8) for _ in range(1 << 20))


def best(fn, min_time=0.05):
    runs = 1
    while True:
        t = time.perf_counter()
        for _ in range(runs):
            fn()
        if time.perf_counter() - t > min_time:
            break
        runs *= 2
    b = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(runs):
            fn()
        b = min(b, (time.perf_counter() - t) / runs)
    return b


def main():
    if "--no-build" not in sys.argv:
        subprocess.run(["nice", "-n", "19", "swift", "build", "-c", "release", "--product", "deflate-bench"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    binary = ROOT / ".build" / "release" / "deflate-bench"
    with tempfile.TemporaryDirectory() as d:
        files = []
        for name, data in payloads():
            p = os.path.join(d, name)
            with open(p, "wb") as f:
                f.write(data)
            files.append((name, p, data))
        print(f"{'payload':<20}{'bytes':>9} {'lvl':>3} | {'ratio ours':>10} {'zlib':>6} | {'compress MB/s ours':>18} {'zlib':>6} | {'decompress MB/s ours':>20} {'zlib':>6}")
        rounds = 3
        for level in (1, 6):
            for name, path, data in files:
                # Alternate ours and zlib, `rounds` times, and keep the medians: the machine is shared.
                ours_c, ours_d, zlib_c, zlib_d = [], [], [], []
                z = zlib.compress(data, level)
                for _ in range(rounds):
                    line = subprocess.run([str(binary), str(level), path], capture_output=True, text=True, check=True).stdout.split()
                    clen = int(line[2])
                    ours_c.append(float(line[3]))
                    ours_d.append(float(line[4]))
                    zlib_c.append(len(data) / 1e6 / best(lambda: zlib.compress(data, level)))
                    zlib_d.append(len(data) / 1e6 / best(lambda: zlib.decompress(z)))
                med = lambda v: sorted(v)[len(v) // 2]
                print(f"{name:<20}{len(data):>9} {level:>3} | {len(data) / clen:>10.2f} {len(data) / len(z):>6.2f} | "
                      f"{med(ours_c):>18.0f} {med(zlib_c):>6.0f} | {med(ours_d):>20.0f} {med(zlib_d):>6.0f}", flush=True)

if __name__ == "__main__":
    main()
