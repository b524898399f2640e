"""Idle memory of the release binaries: the driver with the loop file backend, the driver with the
LVM backend after a few calls, and the registrar once registered. Prints VmRSS, RssAnon, RssFile
and the thread count from /proc/PID/status. Needs root for the LVM case (a VG on a loop device,
removed afterwards). Usage: python3 Benchmarks/Memory/measure.py [BIN_DIR] (default .build/release)."""

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
BIN = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / ".build" / "release").resolve()
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


def csi_stubs():
    gen = conf.csi.__wrapped__()
    return next(gen), gen


def driver_case(csi, args, calls):
    workdir = tempfile.mkdtemp(prefix="mem-")
    driver = conf.Driver(str(BIN / "csi-lvm-driver"), csi, workdir, args)
    try:
        calls(driver)
        time.sleep(1.5)
        return status(driver.process.pid)
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
            print("driver, LVM backend, after 9 calls:  ", driver_case(
                csi, ["--backend", "lvm", "--volume-group", name, "--lvm-scan-device", loop], lvm_calls))
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
    finally:
        world.close()
    gen.close()


if __name__ == "__main__":
    main()
