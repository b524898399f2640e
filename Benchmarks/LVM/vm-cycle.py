#!/usr/bin/env python3
"""A volume's node cycle through csi-lvm-driver, in-process liblvm2cmd against the `lvm` executable.

Runs where device-mapper works (inside Tests/VM/vm; `Benchmarks/LVM/vm-cycle.sh` boots it) on a
disk it may wipe. Two csi-lvm-driver processes from the same release binary serve one volume group,
both finding lvm2cmd-exec.c (built as liblvm2cmd.so.2.03) first through LD_LIBRARY_PATH:

  A  lvm2cmd-exec forwards every call to the real liblvm2cmd: LVM runs in-process, as shipped;
  B  lvm2cmd-exec runs every LVM command the driver issues as one `lvm` process.

Both log each command's time (and each handle opening, as "lvm2_init") the same way, so the two
sides differ only in how a command runs.
Each cycle is, over gRPC as a CO and kubelet call it: CreateVolume (ext4, thick), NodeStageVolume
(mkfs.ext4, mount), NodePublishVolume (bind mount), NodeUnpublishVolume, NodeUnstageVolume
(unmounts), DeleteVolume. Rounds alternate A, B, A, B, ... so drift falls on both sides alike.
Reported per side: min and median of the whole cycle, of the LVM commands in it, of the rest (gRPC,
mkfs, mounts, the driver's own work: the control, which should come out near 1), of each step and
of lvcreate -ay + lvremove, with the ratio B/A of the medians and the median of the rounds' own
ratios; then each LVM command's median, the commands each step ran, and, from `--lvm-rounds` more
rounds, CreateVolume + DeleteVolume alone.
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "Tests", "E2E"))
import csi_support  # noqa: E402

VG = "cyclevg"
MIB = 1 << 20
STEPS = ["create", "stage", "publish", "unpublish", "unstage", "delete"]
SHIM = "liblvm2cmd.so.2.03"
INIT = "lvm2_init"  # lvm2cmd-exec logs opening a handle as this command


def lvm(*args):
    words = ["lvm", args[0]]
    if not os.path.exists("/run/udev/control"):
        words += ["--config", "activation { udev_rules = 0 udev_sync = 0 }"]
    env = dict(os.environ, LVM_SUPPRESS_FD_WARNINGS="1")
    subprocess.run(words + list(args[1:]), env=env, check=True, capture_output=True)


def real_liblvm2cmd():
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.strip().startswith(SHIM + " ") and "=>" in line:
            return line.split("=>")[1].strip()
    raise SystemExit("ldconfig does not know %s (Debian: liblvm2cmd2.03)" % SHIM)


class Side:
    """One csi-lvm-driver process, its LVM command log and what was measured."""

    def __init__(self, label, binary, csi, base, env):
        self.label = label
        self.csi = csi
        self.workdir = os.path.join(base, label)
        self.kubelet = os.path.join(self.workdir, "kubelet")
        os.makedirs(self.kubelet)
        self.socket = os.path.join(self.workdir, "csi.sock")
        self.command_log = os.path.join(self.workdir, "lvm-commands.log")
        env = dict(env, LVM2CMD_LOG=self.command_log)
        # Driver names of the same length, so the LVM command lines (tags) are the same length.
        args = [binary, "--endpoint", "unix://" + self.socket, "--driver-name", label.lower() + ".cycle.csi.swift-csi.io",
                "--node-id", "node0", "--kubelet-dir", self.kubelet, "--backend", "lvm", "--volume-group", VG,
                "--log-level", "info"]
        self.log = open(os.path.join(self.workdir, "driver.log"), "wb")
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + 60
        while not os.path.exists(self.socket):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("driver %s did not start:\n%s" % (label, self.output()))
            time.sleep(0.05)
        import grpc
        self.channel = grpc.insecure_channel("unix://" + self.socket)
        grpc.channel_ready_future(self.channel).result(timeout=60)
        self.controller = csi.grpc.ControllerStub(self.channel)
        self.node = csi.grpc.NodeStub(self.channel)
        self.cycles = []   # per cycle: {step: (seconds, [(verb, seconds), ...])}
        self.pairs = []    # per CreateVolume + DeleteVolume round alone: seconds
        self.loaded = {}   # call -> [whether liblvm2cmd was loaded when it began]

    def output(self):
        self.log.flush()
        with open(os.path.join(self.workdir, "driver.log"), "rb") as f:
            return f.read().decode(errors="replace")[-4000:]

    def libraries(self):
        """The liblvm2cmd files mapped in the driver now (none while the driver has it unloaded)."""
        with open("/proc/%d/maps" % self.process.pid) as f:
            return sorted({line.split()[-1] for line in f if "liblvm2cmd" in line})

    def commands(self):
        """[(verb, seconds, line)] of every LVM command so far."""
        if not os.path.exists(self.command_log):
            return []
        with open(self.command_log) as f:
            rows = [line.rstrip("\n").split(" ", 2) for line in f]
        return [(line.split(" ", 1)[0], int(us) / 1e6, line) for us, rc, line in rows]

    def call(self, name, function, record):
        """Runs one gRPC call; its time and the LVM commands it ran."""
        loaded = bool(self.libraries())
        before = len(self.commands())
        s = time.perf_counter()
        result = function()
        elapsed = time.perf_counter() - s
        ran = [(verb, t) for verb, t, _ in self.commands()[before:]]
        if record:
            self.loaded.setdefault(name, []).append(loaded)
        return result, elapsed, ran

    def cycle(self, size, record=True):
        pb = self.csi.pb
        cap = csi_support.mount_cap(self.csi, "ext4")
        pod = os.path.join(self.kubelet, "pods", uuid.uuid4().hex)
        staging = os.path.join(pod, "globalmount")
        target = os.path.join(pod, "volumes", "mnt")
        os.makedirs(staging)
        steps = {}
        vol, *steps["create"] = self.call("create", lambda: self.controller.CreateVolume(pb.CreateVolumeRequest(
            name="pvc-" + uuid.uuid4().hex, capacity_range=pb.CapacityRange(required_bytes=size),
            volume_capabilities=[cap])).volume, record)
        vid = vol.volume_id
        _, *steps["stage"] = self.call("stage", lambda: self.node.NodeStageVolume(pb.NodeStageVolumeRequest(
            volume_id=vid, staging_target_path=staging, volume_capability=cap)), record)
        _, *steps["publish"] = self.call("publish", lambda: self.node.NodePublishVolume(pb.NodePublishVolumeRequest(
            volume_id=vid, staging_target_path=staging, target_path=target, volume_capability=cap)), record)
        if not os.path.ismount(target):
            raise SystemExit("%s: %s is not mounted after NodePublishVolume" % (self.label, target))
        _, *steps["unpublish"] = self.call("unpublish", lambda: self.node.NodeUnpublishVolume(
            pb.NodeUnpublishVolumeRequest(volume_id=vid, target_path=target)), record)
        _, *steps["unstage"] = self.call("unstage", lambda: self.node.NodeUnstageVolume(
            pb.NodeUnstageVolumeRequest(volume_id=vid, staging_target_path=staging)), record)
        _, *steps["delete"] = self.call("delete", lambda: self.controller.DeleteVolume(
            pb.DeleteVolumeRequest(volume_id=vid)), record)
        shutil.rmtree(pod, ignore_errors=True)
        if record:
            self.cycles.append(steps)

    def create_delete(self, size):
        pb = self.csi.pb
        cap = csi_support.mount_cap(self.csi, "ext4")

        def pair():
            vol = self.controller.CreateVolume(pb.CreateVolumeRequest(
                name="pvc-" + uuid.uuid4().hex, capacity_range=pb.CapacityRange(required_bytes=size),
                volume_capabilities=[cap])).volume
            self.controller.DeleteVolume(pb.DeleteVolumeRequest(volume_id=vol.volume_id))

        _, elapsed, _ = self.call("create alone", pair, True)
        self.pairs.append(elapsed)

    def stop(self):
        self.channel.close()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()

    # Per-cycle figures, in seconds.
    def whole(self):
        return [sum(t for t, _ in c.values()) for c in self.cycles]

    def in_lvm(self, verbs=None):
        return [sum(t for _, ran in c.values() for v, t in ran if verbs is None or v in verbs) for c in self.cycles]

    def step(self, name):
        return [c[name][0] for c in self.cycles]

    def trimmed(self, fewest):
        """Per cycle: the whole cycle less the time of the commands each step ran beyond `fewest`
        (step -> commands); None when a step did not begin with those."""
        out = []
        for c in self.cycles:
            extra = 0.0
            for name in STEPS:
                ran = [(v, t) for v, t in c[name][1] if v != INIT]
                if [v for v, _ in ran[:len(fewest[name])]] != fewest[name]:
                    return None
                extra += sum(t for _, t in ran[len(fewest[name]):])
            out.append(sum(t for t, _ in c.values()) - extra)
        return out

    def verbs(self, name):
        """The distinct command sequences step `name` ran."""
        return sorted({" ".join(v for v, _ in c[name][1]) or "-" for c in self.cycles})


def row(label, a, b):
    """min and median of each side in ms, the ratio of the medians and the median of the rounds' ratios."""
    ma, mb = statistics.median(a), statistics.median(b)
    paired = statistics.median(y / x for x, y in zip(a, b))
    print("%-38s %8.0f %8.0f   %8.0f %8.0f   %6.2fx %6.2fx"
          % (label, 1e3 * min(a), 1e3 * ma, 1e3 * min(b), 1e3 * mb, mb / ma, paired))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--disk", default="/dev/vda", help="block device to make the volume group on (wiped)")
    ap.add_argument("--driver", required=True, help="csi-lvm-driver binary")
    ap.add_argument("--shim", required=True, help="directory holding lvm2cmd-exec.c built as " + SHIM)
    ap.add_argument("--rounds", type=int, default=8, help="rounds of the whole cycle (each runs A once and B once)")
    ap.add_argument("--lvm-rounds", type=int, default=4, help="rounds of CreateVolume + DeleteVolume alone")
    ap.add_argument("--size-mib", type=int, default=64, help="volume size")
    args = ap.parse_args()
    shim = os.path.abspath(args.shim)
    if not os.path.exists(os.path.join(shim, SHIM)):
        raise SystemExit("no %s in %s" % (SHIM, shim))
    real = real_liblvm2cmd()
    size = args.size_mib * MIB

    start = time.monotonic()
    lvm("pvcreate", "-q", "-y", args.disk)
    lvm("vgcreate", "-q", VG, args.disk)
    os.makedirs("/run/swift-csi-bench", exist_ok=True)
    base = tempfile.mkdtemp(prefix="cycle-", dir="/run/swift-csi-bench")
    csi, stubs = csi_support.generate_stubs()
    env = dict(os.environ, LD_LIBRARY_PATH=shim)
    sides = []
    try:
        sides.append(Side("A", args.driver, csi, base, dict(env, LVM2CMD_FORWARD=real)))
        sides.append(Side("B", args.driver, csi, base, env))
        # One unrecorded cycle each (page cache, first mkfs). The driver unloads liblvm2cmd 5 s
        # after its last command: see what each maps right after its cycle.
        for side, expected in zip(sides, ([os.path.join(shim, SHIM), os.path.realpath(real)], [os.path.join(shim, SHIM)])):
            side.cycle(size, record=False)
            mapped = [os.path.realpath(p) if "lvm2cmd-exec" not in p else p for p in side.libraries()]
            if sorted(mapped) != sorted(expected) or not side.commands():
                raise SystemExit("%s maps %s, expected %s" % (side.label, mapped, expected))
        setup = time.monotonic() - start

        t0 = time.monotonic()
        for _ in range(args.rounds):
            for side in sides:
                side.cycle(size)
        cycles_time = time.monotonic() - t0
        t0 = time.monotonic()
        for _ in range(args.lvm_rounds):
            for side in sides:
                side.create_delete(size)
        pairs_time = time.monotonic() - t0

        a, b = sides
        uname = os.uname()
        print("volume group %s on %s; %d MiB ext4 thick volumes; kernel %s; %d CPUs; udev %s"
              % (VG, args.disk, args.size_mib, uname.release, os.cpu_count(),
                 "running" if os.path.exists("/run/udev/control") else "absent"))
        print("A: in-process, %s forwarding to %s" % (SHIM, real))
        print("B: each LVM command an `lvm` process (lvm2cmd-exec)")
        print("%d rounds of the cycle (%.0f s), %d of CreateVolume + DeleteVolume alone (%.0f s), set-up %.0f s"
              % (args.rounds, cycles_time, args.lvm_rounds, pairs_time, setup))
        print()
        print("%-38s %17s   %17s   %14s" % ("ms per cycle", "A in-process", "B lvm executable", "B/A"))
        print("%-38s %8s %8s   %8s %8s   %7s %7s" % ("", "min", "median", "min", "median", "median", "paired"))
        row("whole cycle", a.whole(), b.whole())
        # A state read is cached for 0.9 s from its start; a read slower than that (an `lvm`
        # process under emulation) is stale on arrival and the next call reads again. The same
        # cycles less the commands beyond the fewest any cycle ran in each step:
        fewest = {name: min(([v for v, _ in c[name][1] if v != INIT] for s in sides for c in s.cycles), key=len)
                  for name in STEPS}
        ta, tb = a.trimmed(fewest), b.trimmed(fewest)
        if ta is not None and tb is not None and (ta != a.whole() or tb != b.whole()):
            row("  without repeated state reads", ta, tb)
        row("  LVM in it (commands, handle opens)", a.in_lvm(), b.in_lvm())
        row("  the rest (gRPC, mkfs, mounts)", [w - l for w, l in zip(a.whole(), a.in_lvm())],
            [w - l for w, l in zip(b.whole(), b.in_lvm())])
        for name in STEPS:
            row("    " + name, a.step(name), b.step(name))
        row("lvcreate -ay + lvremove", a.in_lvm({"lvcreate", "lvremove"}), b.in_lvm({"lvcreate", "lvremove"}))
        row("CreateVolume + DeleteVolume (RPCs)", [x + y for x, y in zip(a.step("create"), a.step("delete"))],
            [x + y for x, y in zip(b.step("create"), b.step("delete"))])
        if args.lvm_rounds:
            row("the same alone, %d rounds" % args.lvm_rounds, a.pairs, b.pairs)
        print()
        print("ms per LVM command, median (count)")
        verbs = sorted({v for s in sides for v, _, _ in s.commands()} - {INIT})
        per = [{v: [t for w, t, _ in s.commands() if w == v] for v in verbs + [INIT]} for s in sides]
        for v in verbs:
            if per[0][v] and per[1][v]:
                print("  %-10s A %7.1f (%3d)   B %7.1f (%3d)   %6.2fx" % (
                    v, 1e3 * statistics.median(per[0][v]), len(per[0][v]), 1e3 * statistics.median(per[1][v]),
                    len(per[1][v]), statistics.median(per[1][v]) / statistics.median(per[0][v])))
        if per[0][INIT] and per[1][INIT]:
            print("  %-10s A %7.1f (%3d)   B %7.1f (%3d)   (A loads liblvm2cmd; B only records the executable)" % (
                INIT, 1e3 * statistics.median(per[0][INIT]), len(per[0][INIT]),
                1e3 * statistics.median(per[1][INIT]), len(per[1][INIT])))
        print()
        print("LVM commands per step (A | B):")
        for name in STEPS:
            print("  %-9s %s | %s" % (name, " / ".join(a.verbs(name)), " / ".join(b.verbs(name))))
        print("liblvm2cmd loaded in A when the call began (unloaded after 5 s without a command): "
              + ", ".join("%s %d/%d" % (k, sum(v), len(v)) for k, v in a.loaded.items() if k in ("create", "delete", "create alone")))
    finally:
        for side in sides:
            side.stop()
        csi_support.unmount_all_under(base)
        shutil.rmtree(stubs, ignore_errors=True)
        lvm("vgremove", "-ff", "-y", VG)
    for side in sides:
        if side.process.returncode != 0:
            raise SystemExit("driver %s exited with %s:\n%s" % (side.label, side.process.returncode, side.output()))


if __name__ == "__main__":
    main()
