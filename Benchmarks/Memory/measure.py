"""Idle memory of the release binaries: the driver with the loop file backend, the driver with the
LVM backend after a few calls (1.5 s after them, and 8 s after them, when the driver has closed its
liblvm2cmd handle), and the registrar once registered. Prints VmRSS, RssAnon, RssFile
and the thread count from /proc/PID/status; with --mappings also the resident memory of each mapped
file (from /proc/PID/smaps). Needs root for the LVM case (a VG on a loop device, removed afterwards).
Usage: python3 Benchmarks/Memory/measure.py [--mappings] [BIN_DIR] (default .build/release)."""

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
DETAIL = "--mappings" in sys.argv[1:]
ARGS = [a for a in sys.argv[1:] if a != "--mappings"]
BIN = pathlib.Path(ARGS[0] if ARGS else ROOT / ".build" / "release").resolve()
os.environ["SWIFT_CSI_BIN_DIR"] = str(BIN)
sys.path.insert(0, str(ROOT / "Tests" / "E2E"))
import registrar_harness as rh  # noqa: E402
import test_csi_conformance as conf  # noqa: E402


def status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "Threads"):
                fields[key] = value.split()[0]
    return "VmRSS %5.1f MiB  RssAnon %5.1f MiB  RssFile %5.1f MiB  threads %s" % (
        int(fields["VmRSS"]) / 1024, int(fields["RssAnon"]) / 1024, int(fields["RssFile"]) / 1024, fields["Threads"])


def mappings(pid, top=14):
    """Resident memory per mapped file (anonymous mappings as [heap], [stack], [anon]), largest first."""
    sizes = {}
    name = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and ":" not in parts[0]:
                name = parts[5] if len(parts) > 5 else "[anon]"
                name = name.rsplit("/", 1)[-1] if name.startswith("/") else name
            elif parts[0] in ("Rss:", "Anonymous:"):
                entry = sizes.setdefault(name, [0, 0])
                entry[0 if parts[0] == "Rss:" else 1] += int(parts[1])
    rows = sorted(sizes.items(), key=lambda kv: -kv[1][0])[:top]
    return "\n".join("      %-34s %6.2f MiB (anon %5.2f)" % (n, r / 1024, a / 1024) for n, (r, a) in rows)


def csi_stubs():
    gen = conf.csi.__wrapped__()
    return next(gen), gen


def driver_case(csi, args, calls, later=None):
    """Status 1.5 s after the calls, and again `later` seconds after them when given."""
    workdir = tempfile.mkdtemp(prefix="mem-")
    driver = conf.Driver(str(BIN / "csi-lvm-driver"), csi, workdir, args)
    try:
        calls(driver)
        pid = driver.process.pid
        time.sleep(1.5)
        out = status(pid) + ("\n" + mappings(pid) if DETAIL else "")
        if later:
            time.sleep(later - 1.5)
            out += "\n  %4.1f s after the calls:              %s" % (later, status(pid))
            out += "\n" + mappings(pid) if DETAIL else ""
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
    csi, gen = csi_stubs()
    print("binaries:", BIN)
    print("driver, loop file backend, idle:     ", driver_case(
        csi, ["--backend", "loopfile", "--loopfile-dir", tempfile.mkdtemp(prefix="mem-lf-")],
        lambda d: d.identity.Probe(d.csi.pb.ProbeRequest())))
    if os.geteuid() == 0 and shutil.which("lvm"):
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
    world = rh.World()
    try:
        endpoint = world.driver_socket(world.kubelet_plugins)
        sim = world.start_kubelet()
        world.start_driver(world.kubelet_plugins)
        registrar = world.start_registrar(endpoint, endpoint, world.kubelet_registry)
        rh.wait_until(lambda: rh.registered(sim), 10, what="registration")
        time.sleep(1.5)
        print("registrar, registered, idle:         ", status(registrar.popen.pid))
        if DETAIL:
            print(mappings(registrar.popen.pid))
    finally:
        world.close()
    gen.close()


if __name__ == "__main__":
    main()
