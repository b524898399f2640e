"""Regenerates Linker/order.txt, the list of functions the release linker places first (lld
--symbol-ordering-file): every function of the executable that runs while the H2 benchmark server
and the driver start, answer calls under load and shut down, and while the registrar registers the
driver with the kubelet simulator (Tests/E2E), answers /healthz and stops, as callgrind records them. Laid out
together they share a few hundred KiB of pages; scattered, start-up alone faults in most of the
text (docs/PERFORMANCE.md, "Memory"). The list is grouped by which binaries run a function, those all three run
first, then those the registrar runs with another, the registrar's own (without --http-endpoint, then what
that endpoint adds), then the rest: each
binary's functions stand together, the registrar's (the smallest process) most tightly. The registrar
is a static PIE (scripts/build-release.sh), so the C library functions it runs are laid out with them. Names
missing from a later build are ignored by the linker, so a stale list costs memory, never
correctness.

Needs valgrind, h2load, the E2E tests' Python packages and release builds of the three binaries:
  cd Benchmarks && for p in rpc-bench-server csi-lvm-driver node-driver-registrar; do
      bash ../scripts/build-release.sh --scratch-path .build-static --product $p; done
  python3 Benchmarks/Memory/order.py Benchmarks/.build-static/release
The linker does not know the list is an input: delete the binaries before building them again.
The binaries are profiled as copies without debug information (objcopy --strip-debug): valgrind
cannot read the DWARF this toolchain writes, and the function names come from the symbol table.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(ROOT, "Linker", "order.txt")

# (service/method, request count) per scenario; every request body is an empty message.
DRIVER_CALLS = ["/csi.v1.Identity/GetPluginInfo", "/csi.v1.Identity/GetPluginCapabilities",
                "/csi.v1.Identity/Probe", "/csi.v1.Node/NodeGetInfo", "/csi.v1.Node/NodeGetCapabilities",
                "/csi.v1.Controller/ControllerGetCapabilities", "/grpc.health.v1.Health/Check"]


def h2load(sock, body, path, n, conns, streams):
    subprocess.run(["h2load", "-B", f"unix:{sock}", "-n", str(n), "-c", str(conns), "-m", str(streams), "-t", "1",
                    "-H", "content-type: application/grpc", "-H", "te: trailers", "-d", body,
                    f"http://localhost{path}"], stdout=subprocess.DEVNULL, check=True)


def functions(profile, binary):
    """Names of the functions callgrind saw run in `binary` (object ids resolved, names as linked)."""
    objects, names, seen = {}, {}, set()
    current, called = None, None
    with open(profile, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = re.match(r"^(c?ob)=\((\d+)\)(?: (.*))?$", line)
            if m:
                if m.group(3):
                    objects[m.group(2)] = m.group(3)
                if m.group(1) == "ob":
                    current = objects.get(m.group(2))
                else:
                    called = objects.get(m.group(2))
                continue
            m = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", line)
            if m:
                if m.group(3):
                    names[m.group(2)] = m.group(3)
                obj = current if m.group(1) == "fn" else (called or current)
                if obj == binary and not names[m.group(2)].startswith("0x"):
                    seen.add(names[m.group(2)])
                if m.group(1) == "fn":
                    called = None
    return seen


def profile(argv, sock, scenario, workdir):
    """Runs argv under callgrind, plays the scenario against sock, stops it with SIGTERM."""
    out = os.path.join(workdir, "callgrind.out")
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--demangle=no", f"--callgrind-out-file={out}"] + argv,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{argv[0]} did not start under valgrind")
            time.sleep(0.1)
        scenario()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return functions(out, os.path.realpath(argv[0]))


def profile_registrar(bin_dir, workdir, http=True):
    """The registrar under callgrind (through a wrapper script in the harness's place), registered
    by the kubelet simulator, asked for /healthz (with `http`), left idle for a while (supervision
    ticks, the heap trim), then stopped with SIGTERM."""
    os.environ["SWIFT_CSI_BIN_DIR"] = bin_dir
    sys.path.insert(0, os.path.join(ROOT, "Tests", "E2E"))
    import registrar_harness as rh
    out = os.path.join(workdir, "callgrind-registrar.out")
    real = os.path.join(bin_dir, "node-driver-registrar")
    wrapper = os.path.join(workdir, "node-driver-registrar")
    with open(wrapper, "w") as f:
        f.write(f"#!/bin/sh\nexec valgrind --tool=callgrind --demangle=no --callgrind-out-file={out} {real} \"$@\"\n")
    os.chmod(wrapper, 0o755)
    rh.REGISTRAR_BIN = wrapper
    world = rh.World()
    try:
        endpoint = world.driver_socket(world.kubelet_plugins)
        sim = world.start_kubelet()
        world.start_driver(world.kubelet_plugins)
        port = rh.free_port()
        registrar = world.start_registrar(endpoint, endpoint, world.kubelet_registry,
                                          extra=(f"--http-endpoint=127.0.0.1:{port}",) if http else ())
        rh.wait_until(lambda: rh.registered(sim), 120, what="registration under valgrind")
        for _ in range(3 if http else 0):
            rh.wait_until(lambda: rh.healthz(port)[0] == 200, 60, what="/healthz")
        time.sleep(10)
        registrar.signal(signal.SIGTERM)
        registrar.wait_exit(timeout=60)
    finally:
        world.close()
    return functions(out, os.path.realpath(real))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for tool in ("valgrind", "h2load", "objcopy"):
        if not shutil.which(tool):
            sys.exit(f"order.py: {tool} is needed")
    workdir = tempfile.mkdtemp(prefix="swift-csi-order-")
    bin_dir = os.path.join(workdir, "bin")
    os.makedirs(bin_dir)
    for name in ("rpc-bench-server", "csi-lvm-driver", "node-driver-registrar"):
        subprocess.run(["objcopy", "--strip-debug", os.path.join(os.path.abspath(sys.argv[1]), name),
                        os.path.join(bin_dir, name)], check=True)
    body = os.path.join(workdir, "request.bin")
    with open(body, "wb") as f:
        f.write(b"\x00" * 5)
    ran = {}
    try:
        sock = os.path.join(workdir, "bench.sock")

        def bench():
            h2load(sock, body, "/csi.v1.Node/NodeGetInfo", 1, 1, 1)
            h2load(sock, body, "/csi.v1.Node/NodeGetInfo", 3000, 4, 32)
            h2load(sock, body, "/csi.v1.Node/NodeGetInfo", 20, 1, 1)
        found = profile([os.path.join(bin_dir, "rpc-bench-server"), "--socket", sock], sock, bench, workdir)
        print(f"order.py: rpc-bench-server ran {len(found)} functions", file=sys.stderr)
        ran["bench"] = found

        sock = os.path.join(workdir, "csi.sock")
        state = os.path.join(workdir, "driver")
        os.makedirs(os.path.join(state, "kubelet"))

        def driver():
            for path in DRIVER_CALLS:
                h2load(sock, body, path, 1, 1, 1)
            h2load(sock, body, "/csi.v1.Node/NodeGetInfo", 2000, 4, 32)
        found = profile([os.path.join(bin_dir, "csi-lvm-driver"), "--endpoint", sock, "--backend", "loopfile",
                         "--loopfile-dir", os.path.join(state, "loopfile"), "--kubelet-dir",
                         os.path.join(state, "kubelet"), "--node-id", "node-1", "--log-level", "warning"],
                        sock, driver, workdir)
        print(f"order.py: csi-lvm-driver ran {len(found)} functions", file=sys.stderr)
        ran["driver"] = found

        found = profile_registrar(bin_dir, workdir, http=False)
        print(f"order.py: node-driver-registrar ran {len(found)} functions", file=sys.stderr)
        ran["registrar"] = found
        found = profile_registrar(bin_dir, workdir, http=True)
        print(f"order.py: node-driver-registrar with --http-endpoint ran {len(found)} functions", file=sys.stderr)
        ran["registrar-http"] = found - ran["registrar"]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    # The registrar as deployed by default (no --http-endpoint) first, then what its HTTP endpoint
    # adds (/healthz, /metrics), then the rest.
    groups = [("registrar", "driver", "bench"), ("registrar", "driver"), ("registrar", "bench"), ("registrar",),
              ("registrar-http", "driver", "bench"), ("registrar-http", "driver"), ("registrar-http", "bench"),
              ("registrar-http",), ("driver", "bench"), ("driver",), ("bench",)]
    everything = set().union(*ran.values())
    ordered = []
    for group in groups:
        ordered += sorted(n for n in everything if {b for b in ran if n in ran[b]} == set(group))
    with open(OUT, "w") as f:
        f.write("\n".join(ordered) + "\n")
    print(f"order.py: {len(ordered)} functions written to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
