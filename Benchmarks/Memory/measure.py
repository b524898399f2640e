"""Idle memory of the release binaries: the driver with the loop file backend, the driver with the
LVM backend after a few calls (1.5 s after them, and 8 s after them, when the driver has closed its
liblvm2cmd handle), the registrar once registered (without, then with --http-endpoint after one
/healthz and one /metrics request), and (with --h2-server) the H2 benchmark server
at start, after one call and after a burst of calls. Prints VmRSS, RssAnon, RssFile and the thread
count from /proc/PID/status; with --mappings (always for the H2 server) also where the resident
pages are, per mapping (Benchmarks/Memory/smaps.py). Needs root for the LVM case (a VG on a loop
device, removed afterwards).

Usage: python3 Benchmarks/Memory/measure.py [BIN_DIR] [--mappings] [--h2-server PATH]
       [--only driver|registrar|h2]   (BIN_DIR default .build/release; `make bench-memory`,
       `make bench-memory-h2`)"""

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
import smaps  # noqa: E402

parser = argparse.ArgumentParser(description="Idle memory of the release binaries.")
parser.add_argument("bin_dir", nargs="?", default=str(ROOT / ".build" / "release"))
parser.add_argument("--h2-server", help="rpc-bench-server to measure as well")
parser.add_argument("--only", choices=["driver", "registrar", "h2"], action="append")
parser.add_argument("--mappings", action="store_true", help="per-mapping table for every process")
ARGS = parser.parse_args()
BIN = pathlib.Path(ARGS.bin_dir).resolve()
os.environ["SWIFT_CSI_BIN_DIR"] = str(BIN)
sys.path.insert(0, str(ROOT / "Tests" / "E2E"))


# The E2E harnesses, imported only for the driver and registrar cases (they need grpcio).
rh = conf = None


def wanted(case):
    return ARGS.only is None or case in ARGS.only


def status(pid):
    f = smaps.read_status(pid)
    line = "VmRSS %5.1f MiB  RssAnon %5.1f MiB  RssFile %5.1f MiB  threads %d" % (
        f["VmRSS"] / 1024, f["RssAnon"] / 1024, f["RssFile"] / 1024, f["Threads"])
    if ARGS.mappings:
        line += "\n" + "\n".join(smaps.report(pid).splitlines()[1:])
    return line


def h2_case(server):
    """The H2 benchmark server: idle after start, 2 s after one call, and 2 s after a burst of
    100,000 calls on 4 connections x 32 streams (h2load), with the peak during the burst."""
    sockdir = tempfile.mkdtemp(prefix="mem-h2-")
    sock = os.path.join(sockdir, "s.sock")
    body = os.path.join(sockdir, "request.bin")
    with open(body, "wb") as f:
        f.write(b"\x00" * 5)  # an empty NodeGetInfoRequest

    def call(n, conns, streams):
        subprocess.run(["h2load", "-B", f"unix:{sock}", "-n", str(n), "-c", str(conns), "-m", str(streams),
                        "-t", "1", "-H", "content-type: application/grpc", "-H", "te: trailers", "-d", body,
                        "http://localhost/csi.v1.Node/NodeGetInfo"], stdout=subprocess.DEVNULL, check=True)

    proc = subprocess.Popen([server, "--socket", sock])
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{server} did not start")
            time.sleep(0.01)
        time.sleep(1)
        print(smaps.report(proc.pid, "H2 server (rpc-bench-server), idle after start:"))
        call(1, 1, 1)
        time.sleep(2)
        print(smaps.report(proc.pid, "H2 server, 2 s after one call:"))
        call(100_000, 4, 32)
        time.sleep(2)
        print(smaps.report(proc.pid, "H2 server, 2 s after 100,000 calls at 4x32 (VmHWM: the peak):"))
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(sockdir, ignore_errors=True)


def csi_stubs():
    gen = conf.csi.__wrapped__()
    return next(gen), gen


def driver_case(csi, args, calls, later=None):
    """Status 1.5 s after the calls, and again `later` seconds after them when given."""
    workdir = tempfile.mkdtemp(prefix="mem-")
    driver = conf.Driver(str(BIN / "csi-lvm-driver"), csi, workdir, args)
    try:
        calls(driver)
        time.sleep(1.5)
        pid = driver.process.pid
        out = status(pid)
        if later:
            time.sleep(later - 1.5)
            out += "\n  %4.1f s after the calls:              %s" % (later, status(pid))
        return out
    finally:
        driver.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def lvm_calls(driver):
    pb = driver.csi.pb
    cap = pb.VolumeCapability(mount=pb.VolumeCapability.MountVolume(fs_type="ext4"),
                              access_mode=pb.VolumeCapability.AccessMode(mode=1))
    for i in range(3):
        driver.controller.GetCapacity(pb.GetCapacityRequest())
        v = driver.controller.CreateVolume(pb.CreateVolumeRequest(
            name="mem-%d" % i, capacity_range=pb.CapacityRange(required_bytes=8 << 20), volume_capabilities=[cap]))
        driver.controller.DeleteVolume(pb.DeleteVolumeRequest(volume_id=v.volume.volume_id))


def main():
    if ARGS.h2_server and wanted("h2"):
        h2_case(str(pathlib.Path(ARGS.h2_server).resolve()))
    if not (wanted("driver") or wanted("registrar")):
        return
    global rh, conf
    import registrar_harness as rh
    import test_csi_conformance as conf
    csi, gen = csi_stubs()
    print("binaries:", BIN)
    if wanted("driver"):
        loopfiles = tempfile.mkdtemp(prefix="mem-lf-")
        try:
            print("driver, loop file backend, idle:     ", driver_case(
                csi, ["--backend", "loopfile", "--loopfile-dir", loopfiles],
                lambda d: d.identity.Probe(d.csi.pb.ProbeRequest())))
            port = rh.free_port()

            def probe_and_scrape(d):
                d.identity.Probe(d.csi.pb.ProbeRequest())
                scrape(port)

            print("driver, loop file, /metrics scraped: ", driver_case(
                csi, ["--backend", "loopfile", "--loopfile-dir", loopfiles, "--metrics-address", f"127.0.0.1:{port}"],
                probe_and_scrape))
        finally:
            shutil.rmtree(loopfiles, ignore_errors=True)
    if wanted("driver") and os.geteuid() == 0 and shutil.which("lvm"):
        name = "memvg" + uuid.uuid4().hex[:6]
        image = tempfile.mktemp(prefix="mem-pv-")
        subprocess.run(["truncate", "-s", "256M", image], check=True)
        loop = subprocess.run(["losetup", "-f", "--show", image], capture_output=True, text=True, check=True).stdout.strip()
        try:
            conf.lvm("vgcreate", "-qq", name, loop)
            # The driver closes its liblvm2cmd handle 5 s after the last command (LVM.idleRelease).
            print("driver, LVM backend, after 9 calls:  ", driver_case(
                csi, ["--backend", "lvm", "--volume-group", name, "--lvm-scan-device", loop], lvm_calls, later=8))
        finally:
            conf.lvm("vgremove", "-ff", "-y", name)
            conf.lvm("pvremove", "-y", loop)
            subprocess.run(["losetup", "-d", loop], check=False)
            os.unlink(image)
    if not wanted("registrar"):
        gen.close()
        return
    for http in (False, True):
        world = rh.World()
        try:
            endpoint = world.driver_socket(world.kubelet_plugins)
            sim = world.start_kubelet()
            world.start_driver(world.kubelet_plugins)
            port = rh.free_port()
            extra = (f"--http-endpoint=127.0.0.1:{port}",) if http else ()
            registrar = world.start_registrar(endpoint, endpoint, world.kubelet_registry, extra=extra)
            rh.wait_until(lambda: rh.registered(sim), 10, what="registration")
            if http:
                # One health check and one scrape: the metrics' code and state are resident.
                rh.healthz(port)
                scrape(port)
            time.sleep(1.5)
            label = "registrar, registered, idle:         " if not http else \
                "registrar, /healthz + /metrics, idle:"
            print(label, status(registrar.popen.pid))
        finally:
            world.close()
    gen.close()


def scrape(port):
    """GET /metrics; a binary without metrics answers 404, which is fine here."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return r.read()
    except urllib.error.HTTPError:
        return b""


if __name__ == "__main__":
    main()
