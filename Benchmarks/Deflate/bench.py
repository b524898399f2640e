#!/usr/bin/env python3
"""Speed and ratio of H2's message compression (GRPCCompression over zlib, the `deflate` encoding)
beside Python's zlib (the same C zlib, called from Python), at levels 1 and 6, on payloads of the
kinds gRPC carries here. Builds `deflate-bench` in release (at nice 19) unless --no-build, writes
the payloads to a temporary directory, prints a table. With --baseline, another deflate-bench
binary (for example one built from an older commit) is run alternately with ours on the same
files, and the table gains its columns and ours ÷ its speed.

    python3 Benchmarks/Deflate/bench.py [--no-build] [--baseline PATH] [--rounds N]
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


def run_bench(binary, level, path):
    """(compressed bytes or None, compress MB/s, decompress MB/s or None) from one deflate-bench run."""
    line = subprocess.run([str(binary), str(level), path], capture_output=True, text=True, check=True).stdout.split()
    num = lambda v: None if v == "-" else float(v)
    return (None if line[2] == "-" else int(line[2])), float(line[3]), num(line[4])


def main():
    args = sys.argv[1:]
    baseline = args[args.index("--baseline") + 1] if "--baseline" in args else None
    rounds = int(args[args.index("--rounds") + 1]) if "--rounds" in args else 3
    if "--no-build" not in args:
        subprocess.run(["nice", "-n", "19", "swift", "build", "-c", "release", "--product", "deflate-bench"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    binary = ROOT / ".build" / "release" / "deflate-bench"
    med = lambda v: None if None in v else sorted(v)[len(v) // 2]
    fmt = lambda v, w, p=0: f"{'-':>{w}}" if v is None else f"{v:>{w}.{p}f}"
    with tempfile.TemporaryDirectory() as d:
        files = []
        for name, data in payloads():
            p = os.path.join(d, name)
            with open(p, "wb") as f:
                f.write(data)
            files.append((name, p, data))
        head = f"{'payload':<20}{'bytes':>9} {'lvl':>3} | {'ratio ours':>10}"
        head += f" {'base':>6}" if baseline else ""
        head += f" {'zlib':>6} | {'compress MB/s ours':>18}" + (f" {'base':>6}" if baseline else "") + f" {'zlib':>6}"
        head += f" | {'decompress MB/s ours':>20}" + (f" {'base':>6}" if baseline else "") + f" {'zlib':>6}"
        head += f" | {'ours/base c':>11} {'d':>5}" if baseline else ""
        print(head)
        for level in (1, 6):
            for name, path, data in files:
                # Alternate ours, the baseline and zlib, `rounds` times, and keep the medians: the machine is shared.
                ours_c, ours_d, base_c, base_d, zlib_c, zlib_d = [], [], [], [], [], []
                z = zlib.compress(data, level)
                ours_len = base_len = None
                for _ in range(rounds):
                    ours_len, c, dd = run_bench(binary, level, path)
                    ours_c.append(c)
                    ours_d.append(dd)
                    if baseline:
                        base_len, c, dd = run_bench(baseline, level, path)
                        base_c.append(c)
                        base_d.append(dd)
                    zlib_c.append(len(data) / 1e6 / best(lambda: zlib.compress(data, level)))
                    zlib_d.append(len(data) / 1e6 / best(lambda: zlib.decompress(z)))
                ratio = lambda n: None if n is None else len(data) / n
                line = f"{name:<20}{len(data):>9} {level:>3} | {fmt(ratio(ours_len), 10, 2)}"
                line += f" {fmt(ratio(base_len), 6, 2)}" if baseline else ""
                line += f" {len(data) / len(z):>6.2f} | {fmt(med(ours_c), 18)}" + (f" {fmt(med(base_c), 6)}" if baseline else "")
                line += f" {med(zlib_c):>6.0f} | {fmt(med(ours_d), 20)}" + (f" {fmt(med(base_d), 6)}" if baseline else "")
                line += f" {med(zlib_d):>6.0f}"
                if baseline:
                    q = lambda a, b: None if a is None or b is None else a / b
                    line += f" | {fmt(q(med(ours_c), med(base_c)), 11, 2)} {fmt(q(med(ours_d), med(base_d)), 5, 2)}"
                print(line, flush=True)


if __name__ == "__main__":
    main()
