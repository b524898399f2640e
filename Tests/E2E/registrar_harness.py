"""Shared pieces of the registrar's end-to-end tests: temporary directories standing for
/var/lib/kubelet and /vdata/storage, the real binaries as processes, the kubelet simulator,
and bounded waits. Every process started here is killed when the world closes."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Callable, Optional

import pytest

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
import kubelet_sim  # noqa: E402

BIN_DIR = pathlib.Path(os.environ.get("SWIFT_CSI_BIN_DIR", ROOT / ".build" / "debug"))
DRIVER_BIN = BIN_DIR / "csi-lvm-driver"
# SWIFT_CSI_REGISTRAR_BIN: another registrar build, such as the static release one (`make registrar-release-test`).
REGISTRAR_BIN = pathlib.Path(os.environ.get("SWIFT_CSI_REGISTRAR_BIN", BIN_DIR / "node-driver-registrar"))
DRIVER = "lvm.csi.swift-csi.io"
NODE = "node0"
TOPOLOGY_KEY = "openebs.io/nodename"


def binaries_missing() -> Optional[str]:
    for b in (DRIVER_BIN, REGISTRAR_BIN):
        if not b.exists():
            return f"{b} is not built (swift build)"
    return None


# The mark of the test modules that run the built binaries (`pytestmark = needs_binaries`): skipped,
# naming the missing one, until `swift build` has made them.
needs_binaries = pytest.mark.skipif(binaries_missing() is not None, reason=str(binaries_missing()))


# The bound for waits on conditions that come true in milliseconds on an idle machine: generous,
# so a loaded machine (other builds, another copy of the suite) does not fail them.
PATIENCE = 30.0


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.02, what: str = "condition"):
    """Polls `predicate` until it returns something truthy; raises AssertionError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Proc:
    """A started binary with its combined output in a log file."""

    def __init__(self, name: str, argv: list[str], log_path: pathlib.Path):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.log_file = open(log_path, "ab")
        self.started = time.monotonic()
        self.popen = subprocess.Popen(argv, stdout=self.log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, needle: str, timeout: float = PATIENCE) -> str:
        try:
            return wait_until(lambda: needle in self.log() and self.log(), timeout, what=f"{self.name} to log {needle!r}")
        except AssertionError as e:
            raise AssertionError(f"{e}; its log:\n{self.log()}") from None

    def running(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int):
        if self.running():
            self.popen.send_signal(sig)

    def wait_exit(self, timeout: float = PATIENCE) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not exit within {timeout}s; log:\n{self.log()}") from None

    def kill(self):
        if self.running():
            self.popen.kill()
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.log_file.close()


class World:
    """One node: a kubelet directory, a custom /vdata/storage, a state directory, processes."""

    def __init__(self):
        # Short paths: a Unix socket path is limited to 107 bytes.
        self.base = pathlib.Path(tempfile.mkdtemp(prefix="e2e-", dir="/tmp"))
        self.kubelet = self.base / "kubelet"
        self.kubelet_plugins = self.kubelet / "plugins"
        self.kubelet_registry = self.kubelet / "plugins_registry"
        self.vdata = self.base / "vdata" / "storage"
        self.custom_plugins = self.vdata / "plugins"
        self.custom_registry = self.vdata / "plugins_registry"
        self.state = self.base / "state"
        self.loopfiles = self.base / "loopfiles"
        self.logs = self.base / "logs"
        for d in (self.kubelet_plugins, self.kubelet_registry, self.custom_plugins, self.custom_registry,
                  self.state, self.loopfiles, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        self.procs: list[Proc] = []
        self.sims: list[kubelet_sim.KubeletSim] = []
        self.fake_kubelets: list[subprocess.Popen] = []
        self._counter = 0

    # ---- processes ----------------------------------------------------------------------

    def _log(self, name: str) -> pathlib.Path:
        self._counter += 1
        return self.logs / f"{self._counter:02d}-{name}.log"

    def driver_socket(self, plugins_dir: pathlib.Path, name: str = DRIVER) -> pathlib.Path:
        return plugins_dir / name / "csi.sock"

    def start_driver(self, plugins_dir: Optional[pathlib.Path] = None, name: str = DRIVER, node_id: str = NODE,
                     extra: tuple[str, ...] = (), socket_path: Optional[pathlib.Path] = None) -> Proc:
        socket_path = socket_path or self.driver_socket(plugins_dir or self.kubelet_plugins, name)
        argv = [str(DRIVER_BIN), f"--endpoint=unix://{socket_path}", f"--driver-name={name}",
                f"--node-id={node_id}", "--backend=loopfile", f"--loopfile-dir={self.loopfiles}",
                f"--kubelet-dir={self.kubelet}", f"--topology-key={TOPOLOGY_KEY}", *extra]
        p = Proc("driver", argv, self._log("driver"))
        self.procs.append(p)
        return p

    def start_registrar(self, csi_address: pathlib.Path, registration_path: pathlib.Path,
                        registry: pathlib.Path, link_dir: Optional[pathlib.Path] = None,
                        extra: tuple[str, ...] = ()) -> Proc:
        argv = [str(REGISTRAR_BIN), f"--csi-address={csi_address}",
                f"--kubelet-registration-path={registration_path}",
                f"--plugin-registration-path={registry}", *extra]
        if link_dir is not None:
            argv.append(f"--kubelet-registry-link-dir={link_dir}")
        p = Proc("registrar", argv, self._log("registrar"))
        self.procs.append(p)
        return p

    def start_kubelet(self, registry: Optional[pathlib.Path] = None, reject=(), **kw) -> kubelet_sim.KubeletSim:
        log_file = open(self._log("kubelet"), "a")
        sim = kubelet_sim.KubeletSim(str(registry or self.kubelet_registry), str(self.state), node_name=NODE,
                                     reject=reject, loop_period=kw.pop("loop_period", 0.1), log_stream=log_file,
                                     csi_timeout=kw.pop("csi_timeout", 5.0), dial_timeout=kw.pop("dial_timeout", 3.0), **kw)
        sim.start()
        self.sims.append(sim)
        return sim

    def start_fake_kubelet(self, *args: str) -> subprocess.Popen:
        """A process whose command line reads like a kubelet's (`kubelet <args>`), as the registrar finds
        the running kubelet in /proc; it only sleeps. Its argv[0] is `kubelet`, its program Python."""
        p = subprocess.Popen(["kubelet", "-c", "import time; time.sleep(600)", *args], executable=sys.executable,
                             stdin=subprocess.DEVNULL)
        self.fake_kubelets.append(p)
        return p

    def inspect(self, registry: Optional[pathlib.Path] = None) -> tuple[int, dict]:
        r = subprocess.run([str(REGISTRAR_BIN), "inspect", f"--registry-dir={registry or self.kubelet_registry}",
                            "--output=json"], capture_output=True, text=True, timeout=30)
        try:
            return r.returncode, json.loads(r.stdout)
        except json.JSONDecodeError:
            raise AssertionError(f"inspect printed no JSON (exit {r.returncode}):\n{r.stdout}\n{r.stderr}") from None

    def inspect_text(self, registry: Optional[pathlib.Path] = None) -> str:
        r = subprocess.run([str(REGISTRAR_BIN), "inspect", f"--registry-dir={registry or self.kubelet_registry}"],
                           capture_output=True, text=True, timeout=30)
        return r.stdout + r.stderr

    def close(self):
        for sim in self.sims:
            try:
                sim.stop()
            except Exception:
                pass
        for p in self.procs:
            p.kill()
        for p in self.fake_kubelets:
            p.kill()
            p.wait()
        if os.environ.get("E2E_KEEP"):
            print(f"kept {self.base}")
        else:
            shutil.rmtree(self.base, ignore_errors=True)

    def dump_logs(self) -> str:
        out = []
        for f in sorted(self.logs.glob("*.log")):
            out.append(f"----- {f.name}\n{f.read_text(errors='replace')[-4000:]}")
        return "\n".join(out)


def healthz(port: int, host: str = "127.0.0.1") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def registered(sim: kubelet_sim.KubeletSim, name: str = DRIVER) -> bool:
    return name in sim.node_ids() and any(d["name"] == name for d in sim.csinode_drivers())


def deregistered(sim: kubelet_sim.KubeletSim, name: str = DRIVER) -> bool:
    return name not in sim.node_ids() and not any(d["name"] == name for d in sim.csinode_drivers())


def events(world: World) -> list[dict]:
    path = world.state / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def socket_answers(path: pathlib.Path) -> bool:
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        s.close()
