#!/usr/bin/env python3
"""A stand-in for the kubelet's plugin manager and its CSI plugin handler.

It watches a plugin registry directory the way the kubelet does and, for every
registration socket, performs the kubelet's registration sequence against it:

  1. ``pluginregistration.Registration/GetInfo`` on the registration socket;
  2. validation of type and versions (CSI handler: non-empty list, highest 1.x,
     not older than a driver of the same name that is already registered);
  3. ``csi.v1.Node/NodeGetInfo`` on the endpoint the plugin reported, dialled as a
     plain unix socket path;
  4. what the kubelet would write to the API server -- the CSINode ``spec.drivers[]``
     entry, the Node annotation ``csi.volume.kubernetes.io/nodeid`` and the topology
     labels -- as JSON files in a state directory;
  5. ``NotifyRegistrationStatus`` with the verdict.

When a registration socket (or a symlink to one) disappears, the plugin is
deregistered: its CSINode entry and its annotation entry are removed.

Behaviour follows kubelet's pkg/kubelet/pluginmanager (plugin watcher, desired /
actual state caches, reconciler, operation generator) and pkg/volume/csi
(RegistrationHandler, nodeinfomanager):

* directory events come from inotify (as fsnotify does); a Create event is examined
  once: the entry is stat()ed *following symlinks*, names starting with '.' are
  ignored, and only unix sockets are taken. A symlink that dangles when it is created
  is therefore ignored until it is created again. Remove events drop the socket from
  the desired state; renames (moves away) are not Remove events and are ignored, as
  in the kubelet. ``poll=True`` replaces inotify by a directory scan every
  ``poll_interval`` seconds (then a move away looks like a removal).
* the reconciler runs every ``loop_period`` seconds: deregistrations first, then
  registrations of sockets whose desired timestamp differs from the registered one.
* a registration that fails before the plugin is recorded (GetInfo failure, unknown
  type, validation failure, ``--reject``) is retried with exponential backoff
  (0.5 s doubling up to 122 s), as nestedpendingoperations does; one that fails
  after it (NodeGetInfo failure, empty node ID) is not retried until the socket is
  created again.
* an optional connection monitor (``monitor=True``) models the periodic GetInfo
  probe of newer kubelets: after ``monitor_failures`` consecutive failed probes of a
  registered plugin's socket, the socket is dropped from the desired state, which
  deregisters the plugin.

Module use::

    sim = KubeletSim(registry_dir, state_dir)
    sim.start()
    sim.wait_for(lambda s: "lvm.csi.swift-csi.io" in s.node_ids(), timeout=5)
    sim.csinode_drivers()   # list of CSINode spec.drivers entries
    sim.node_ids()          # the parsed nodeid annotation
    sim.stop()

CLI::

    python3 Tests/E2E/kubelet_sim.py --registry-dir /var/lib/kubelet/plugins_registry \\
        --state-dir /tmp/kubelet-state [--reject NAME] [--node-name NAME] [--poll] [-v N]
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import ctypes.util
import datetime as _dt
import importlib
import json
import os
import pathlib
import re
import select
import shutil
import signal
import socket as _socket
import stat
import struct
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CSI_PROTOS = REPO_ROOT / "Sources" / "CSI" / "Protos"

CSI_PLUGIN_TYPE = "CSIPlugin"
NODE_ID_ANNOTATION = "csi.volume.kubernetes.io/nodeid"
LOG_PREFIX = "kubernetes.io/csi: "

# Timeouts of the kubelet's operation generator and CSI handler, in seconds.
DIAL_TIMEOUT = 10.0
GET_INFO_TIMEOUT = 1.0
NOTIFY_TIMEOUT = 5.0
CSI_TIMEOUT = 120.0
# nestedpendingoperations' exponential backoff.
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 122.0
MAX_INT32 = 2**31 - 1


# --------------------------------------------------------------------------------------
# Python stubs generated at run time from the project's own .proto files.

_STUBS = None
_STUBS_LOCK = threading.Lock()


class Stubs:
    """The generated modules: ``csi_pb2``, ``csi_pb2_grpc``, ``reg_pb2``, ``reg_pb2_grpc``."""

    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        if out_dir not in sys.path:
            sys.path.insert(0, out_dir)
        self.csi_pb2 = importlib.import_module("csi_pb2")
        self.csi_pb2_grpc = importlib.import_module("csi_pb2_grpc")
        self.reg_pb2 = importlib.import_module("pluginregistration_pb2")
        self.reg_pb2_grpc = importlib.import_module("pluginregistration_pb2_grpc")


_STUB_DIRS: list[str] = []


def remove_temporary_files():
    """Removes the generated stubs' directory (at exit; a test session calls it before checking that
    nothing is left in its temporary directory). The modules stay imported."""
    while _STUB_DIRS:
        shutil.rmtree(_STUB_DIRS.pop(), ignore_errors=True)


def load_stubs(protos_dir: pathlib.Path = CSI_PROTOS) -> Stubs:
    """Generates (once per process) and imports Python stubs for csi.proto and
    pluginregistration.proto into a temporary directory."""
    global _STUBS
    with _STUBS_LOCK:
        if _STUBS is not None:
            return _STUBS
        import grpc_tools
        from grpc_tools import protoc

        out = tempfile.mkdtemp(prefix="kubelet-sim-stubs-")
        # Imported from there until the process ends; removed then.
        _STUB_DIRS.append(out)
        atexit.register(remove_temporary_files)
        well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
        for name in ("csi.proto", "pluginregistration.proto"):
            rc = protoc.main([
                "grpc_tools.protoc", f"-I{protos_dir}", f"-I{well_known}",
                f"--python_out={out}", f"--grpc_python_out={out}", str(protos_dir / name),
            ])
            if rc != 0:
                raise RuntimeError(f"grpc_tools.protoc failed on {protos_dir / name} (exit {rc})")
        _STUBS = Stubs(out)
        return _STUBS


# --------------------------------------------------------------------------------------
# Logging in klog's shape: I1124 19:16:29.123456   pid kubelet_sim] message


class Logger:
    def __init__(self, verbosity: int = 0, stream=None, sink: Optional[Callable[[str], None]] = None):
        self.verbosity = verbosity
        self.stream = stream if stream is not None else sys.stderr
        self.sink = sink
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def _emit(self, severity: str, msg: str):
        now = _dt.datetime.now()
        line = f"{severity}{now:%m%d %H:%M:%S.%f} {os.getpid():7d} kubelet_sim] {msg}"
        with self._lock:
            self.lines.append(line)
            if self.stream:
                print(line, file=self.stream, flush=True)
            if self.sink:
                self.sink(line)

    def info(self, msg: str, v: int = 0):
        if v <= self.verbosity:
            self._emit("I", msg)

    def error(self, msg: str):
        self._emit("E", msg)


# --------------------------------------------------------------------------------------
# Versions (k8s.io/apimachinery util/version ParseGeneric + HighestSupportedVersion).

_GENERIC = re.compile(r"^\s*v?([0-9]+(?:\.[0-9]+)*)(.*)$")


def parse_generic(text: str) -> tuple[int, ...]:
    m = _GENERIC.match(text)
    if not m:
        raise ValueError(f"could not parse {text!r} as version")
    parts = m.group(1).split(".")
    if len(parts) < 2:
        raise ValueError(f"illegal version string {text!r}")
    extra = m.group(2)
    if extra and not re.match(r"^[-+]", extra):
        raise ValueError(f"illegal version string {text!r}")
    return tuple(int(p) for p in parts)


def highest_supported_version(versions: list[str]) -> tuple[int, ...]:
    """Highest version with major <= 1; the kubelet supports CSI 1.x only."""
    if not versions:
        raise ValueError("empty array for supported versions")
    best = None
    last_err = None
    for v in reversed(versions):
        try:
            parsed = parse_generic(v)
        except ValueError as e:
            last_err = e
            continue
        if parsed[0] > 1:
            continue
        if best is None or best < parsed:
            best = parsed
    if best is None:
        raise ValueError(f"could not find a highest supported version from versions ({versions}) reported: {last_err}")
    return best


def _fmt_version(v: tuple[int, ...]) -> str:
    return ".".join(str(p) for p in v)


# --------------------------------------------------------------------------------------
# Caches: desired state (from directory events) and actual state (registered plugins).


@dataclass
class RegisteredPlugin:
    socket_path: str
    timestamp: float
    name: str
    endpoint: str
    versions: list[str]
    plugin_type: str


@dataclass
class _Backoff:
    timestamp: float
    next_try: float
    duration: float


class RegistrationError(Exception):
    """A registration step failed; ``recorded`` tells whether the plugin had already been
    recorded as registered (then the kubelet does not retry)."""

    def __init__(self, message: str, recorded: bool):
        super().__init__(message)
        self.recorded = recorded


# --------------------------------------------------------------------------------------
# The CSI plugin handler and node info manager.


class CSIHandler:
    """pkg/volume/csi RegistrationHandler with nodeinfomanager writing JSON files."""

    def __init__(self, sim: "KubeletSim"):
        self.sim = sim
        self.drivers: dict[str, tuple[str, tuple[int, ...]]] = {}  # name -> (endpoint, version)
        self._lock = threading.Lock()

    def _validate_versions(self, caller: str, name: str, versions: list[str]) -> tuple[int, ...]:
        if not versions:
            raise ValueError(f"{LOG_PREFIX}{caller} for CSI driver {name!r} failed. "
                             "Plugin returned an empty list for supported versions")
        try:
            newest = highest_supported_version(versions)
        except ValueError as e:
            raise ValueError(f"{LOG_PREFIX}{caller} for CSI driver {name!r} failed. "
                             f"None of the versions specified {versions} are supported. err={e}") from None
        with self._lock:
            existing = self.drivers.get(name)
        if existing is not None and not existing[1] < newest:
            raise ValueError(f"{LOG_PREFIX}{caller} for CSI driver {name!r} failed. Another driver with the same "
                             f"name is already registered with a higher supported version: {_fmt_version(existing[1])!r}")
        return newest

    def validate(self, name: str, endpoint: str, versions: list[str]):
        self.sim.log.info(f"{LOG_PREFIX}Trying to validate a new CSI Driver with name: {name} "
                          f"endpoint: {endpoint} versions: {','.join(versions)}")
        try:
            self._validate_versions("ValidatePlugin", name, versions)
            if name in self.sim.reject:
                raise ValueError(f"{LOG_PREFIX}driver {name!r} rejected by this kubelet (--reject)")
        except ValueError as e:
            raise ValueError(f"validation failed for CSI Driver {name} at endpoint {endpoint}: {e}") from None

    def register(self, name: str, endpoint: str, versions: list[str]):
        self.sim.log.info(f"{LOG_PREFIX}Register new plugin with name: {name} at endpoint: {endpoint}")
        newest = self._validate_versions("RegisterPlugin", name, versions)
        with self._lock:
            self.drivers[name] = (endpoint, newest)
        try:
            node_id, max_volumes, segments = self.sim.node_get_info(endpoint)
            self.sim.nodeinfo.install(name, node_id, max_volumes, segments)
        except Exception:
            self._unregister_driver(name)
            raise

    def deregister(self, name: str, endpoint: str):
        self.sim.log.info(f"{LOG_PREFIX}registrationHandler.DeRegisterPlugin request for plugin {name}, endpoint {endpoint}")
        self._unregister_driver(name)

    def _unregister_driver(self, name: str):
        with self._lock:
            self.drivers.pop(name, None)
        self.sim.nodeinfo.uninstall(name)


class NodeInfoFiles:
    """What nodeinfomanager would write to the API server, kept in ``state_dir``:

    * ``csinode.json``: a CSINode object (``metadata.name`` = node name, ``spec.drivers``);
    * ``node.json``: the Node's ``metadata.annotations`` and ``metadata.labels``;
    * ``events.jsonl``: one JSON object per registration step, for tests and operators.
    """

    def __init__(self, state_dir: pathlib.Path, node_name: str, labels: Optional[dict[str, str]] = None):
        self.dir = state_dir
        self.node_name = node_name
        self._lock = threading.Lock()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.csinode = {"apiVersion": "storage.k8s.io/v1", "kind": "CSINode",
                        "metadata": {"name": node_name}, "spec": {"drivers": []}}
        self.node = {"apiVersion": "v1", "kind": "Node",
                     "metadata": {"name": node_name, "annotations": {}, "labels": dict(labels or {})}}
        self._flush()
        (self.dir / "events.jsonl").write_text("")

    def _write(self, name: str, obj):
        tmp = self.dir / (name + ".tmp")
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.dir / name)

    def _flush(self):
        self._write("csinode.json", self.csinode)
        self._write("node.json", self.node)

    def event(self, kind: str, **fields):
        rec = {"time": time.time(), "event": kind, **fields}
        with self._lock:
            with open(self.dir / "events.jsonl", "a") as f:
                f.write(json.dumps(rec, sort_keys=True) + "\n")

    def node_ids(self) -> dict[str, str]:
        with self._lock:
            raw = self.node["metadata"]["annotations"].get(NODE_ID_ANNOTATION)
        return json.loads(raw) if raw else {}

    def drivers(self) -> list[dict]:
        with self._lock:
            return json.loads(json.dumps(self.csinode["spec"]["drivers"]))

    def labels(self) -> dict[str, str]:
        with self._lock:
            return dict(self.node["metadata"]["labels"])

    def install(self, driver: str, node_id: str, max_volumes: int, segments: dict[str, str]):
        if node_id == "":
            raise ValueError("error adding CSI driver node info: driverNodeID must not be empty")
        with self._lock:
            labels = self.node["metadata"]["labels"]
            for k, v in segments.items():
                if k in labels and labels[k] != v:
                    # Topology labels never change once written.
                    raise ValueError("error updating Node object with CSI driver node info: detected topology "
                                     f"value collision: driver reported {json.dumps(k)}:{json.dumps(v)} but "
                                     f"existing label is {json.dumps(k)}:{json.dumps(labels[k])}")
            ann = self.node["metadata"]["annotations"]
            ids = json.loads(ann.get(NODE_ID_ANNOTATION, "{}"))
            ids[driver] = node_id
            ann[NODE_ID_ANNOTATION] = json.dumps(ids, separators=(",", ":"), sort_keys=True)
            self.node["metadata"]["labels"].update(segments)
            entry = {"name": driver, "nodeID": node_id,
                     "topologyKeys": sorted(segments) if segments else None}
            if max_volumes > 0:
                entry["allocatable"] = {"count": min(max_volumes, MAX_INT32)}
            drivers = [d for d in self.csinode["spec"]["drivers"] if d["name"] != driver]
            drivers.append(entry)
            self.csinode["spec"]["drivers"] = drivers
            self._flush()

    def uninstall(self, driver: str):
        with self._lock:
            self.csinode["spec"]["drivers"] = [d for d in self.csinode["spec"]["drivers"] if d["name"] != driver]
            ann = self.node["metadata"]["annotations"]
            if NODE_ID_ANNOTATION in ann:
                ids = json.loads(ann[NODE_ID_ANNOTATION])
                ids.pop(driver, None)
                if ids:
                    ann[NODE_ID_ANNOTATION] = json.dumps(ids, separators=(",", ":"), sort_keys=True)
                else:
                    del ann[NODE_ID_ANNOTATION]
            self._flush()


# --------------------------------------------------------------------------------------
# Directory watching: inotify through libc, or polling.

IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_IGNORED = 0x00008000
IN_ISDIR = 0x40000000
_WATCH_MASK = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF
_EVENT_HEADER = struct.Struct("iIII")


class _Inotify:
    def __init__(self):
        libc_name = ctypes.util.find_library("c") or "libc.so.6"
        self.libc = ctypes.CDLL(libc_name, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self.paths: dict[int, str] = {}

    def add(self, path: str):
        wd = self.libc.inotify_add_watch(self.fd, os.fsencode(path), _WATCH_MASK)
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_add_watch {path}: {os.strerror(err)}")
        self.paths[wd] = path

    def read(self, timeout: float) -> list[tuple[str, str]]:
        """Events as (kind, path), kind in Create / Remove / Rename."""
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return []
        try:
            data = os.read(self.fd, 64 * 1024)
        except BlockingIOError:
            return []
        out = []
        off = 0
        while off + _EVENT_HEADER.size <= len(data):
            wd, mask, _cookie, length = _EVENT_HEADER.unpack_from(data, off)
            name = data[off + _EVENT_HEADER.size: off + _EVENT_HEADER.size + length].rstrip(b"\0")
            off += _EVENT_HEADER.size + length
            base = self.paths.get(wd)
            if base is None:
                continue
            if mask & IN_IGNORED:
                self.paths.pop(wd, None)
                continue
            path = os.path.join(base, os.fsdecode(name)) if name else base
            if mask & (IN_CREATE | IN_MOVED_TO):
                out.append(("Create", path))
            elif mask & (IN_DELETE | IN_DELETE_SELF):
                out.append(("Remove", path))
            elif mask & (IN_MOVED_FROM | IN_MOVE_SELF):
                out.append(("Rename", path))
        return out

    def close(self):
        os.close(self.fd)


def is_unix_socket(path: str) -> bool:
    """stat() following symlinks, as util.IsUnixDomainSocket does."""
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


# --------------------------------------------------------------------------------------
# The simulator.


class KubeletSim:
    """See the module documentation."""

    def __init__(self, registry_dir, state_dir, *, node_name: Optional[str] = None,
                 reject=(), loop_period: float = 1.0, poll: bool = False, poll_interval: float = 0.1,
                 monitor: bool = False, monitor_interval: float = 10.0, monitor_failures: int = 2,
                 node_labels: Optional[dict[str, str]] = None,
                 dial_timeout: float = DIAL_TIMEOUT, csi_timeout: float = CSI_TIMEOUT,
                 backoff_initial: float = BACKOFF_INITIAL, backoff_max: float = BACKOFF_MAX,
                 verbosity: int = 0, log_stream=None):
        self.registry_dir = str(pathlib.Path(registry_dir))
        self.state_dir = pathlib.Path(state_dir)
        self.node_name = node_name or _socket.gethostname()
        self.reject = set(reject)
        self.loop_period = loop_period
        self.poll = poll
        self.poll_interval = poll_interval
        self.monitor = monitor
        self.monitor_interval = monitor_interval
        self.monitor_failures = monitor_failures
        self.dial_timeout = dial_timeout
        self.csi_timeout = csi_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.log = Logger(verbosity, stream=log_stream)
        self.stubs = load_stubs()
        self.nodeinfo = NodeInfoFiles(self.state_dir, self.node_name, node_labels)
        self.handlers = {CSI_PLUGIN_TYPE: CSIHandler(self)}
        self.notifications: list[tuple[str, bool, str]] = []  # (socket, registered, error)

        self._lock = threading.RLock()
        self._desired: dict[str, float] = {}
        self._actual: dict[str, RegisteredPlugin] = {}
        self._pending: set[str] = set()
        self._backoff: dict[str, _Backoff] = {}
        self._probe_failures: dict[str, int] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # Registration and unregistration threads, joined by stop() so none outlives its test's directories.
        self._ops: list[threading.Thread] = []
        self._inotify: Optional[_Inotify] = None
        self._poll_seen: dict[str, tuple[int, int]] = {}
        self._passes = 0  # reconciler passes completed

    # ---- public view ------------------------------------------------------------------

    def node_ids(self) -> dict[str, str]:
        """The parsed ``csi.volume.kubernetes.io/nodeid`` annotation."""
        return self.nodeinfo.node_ids()

    def csinode_drivers(self) -> list[dict]:
        """The CSINode ``spec.drivers`` list."""
        return self.nodeinfo.drivers()

    def node_labels(self) -> dict[str, str]:
        return self.nodeinfo.labels()

    def registered(self) -> dict[str, RegisteredPlugin]:
        """Registered plugins by registration socket path."""
        with self._lock:
            return dict(self._actual)

    def desired(self) -> dict[str, float]:
        with self._lock:
            return dict(self._desired)

    def wait_for(self, predicate: Callable[["KubeletSim"], bool], timeout: float = 30.0, interval: float = 0.02) -> bool:
        """Polls until ``predicate(self)`` holds; False after ``timeout`` (generous: a loaded machine)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(interval)
        return predicate(self)

    def wait_for_passes(self, count: int = 2, timeout: float = 30.0) -> bool:
        """Waits until the reconciler has run ``count`` whole passes that began after this call:
        whatever the kubelet would do about the present state, it has done by then. The bound is
        generous for a loaded machine."""
        with self._lock:
            # The pass running now may have begun before the call: it does not count.
            target = self._passes + count + 1
        return self.wait_for(lambda sim: sim._reconcile_passes() >= target, timeout=timeout)

    def _reconcile_passes(self) -> int:
        with self._lock:
            return self._passes

    # ---- lifecycle --------------------------------------------------------------------

    def start(self):
        self.log.info(f"Plugin Watcher Start path={self.registry_dir}", v=2)
        os.makedirs(self.registry_dir, mode=0o755, exist_ok=True)
        if not self.poll:
            try:
                self._inotify = _Inotify()
            except OSError as e:
                self.log.error(f"inotify unavailable ({e}); polling {self.registry_dir} every {self.poll_interval}s")
                self.poll = True
        if self._inotify:
            self._traverse(self.registry_dir)
            self._spawn(self._watch_inotify, "watcher")
        else:
            self._poll_once()
            self._spawn(self._watch_poll, "watcher")
        self._spawn(self._reconcile_loop, "reconciler")
        if self.monitor:
            self._spawn(self._monitor_loop, "monitor")
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=max(self.dial_timeout, 2.0) + 1)
        with self._lock:
            ops, self._ops = self._ops, []
        for t in ops:
            t.join(timeout=self.dial_timeout + 2 * self.csi_timeout + 1)
        if self._inotify:
            self._inotify.close()
            self._inotify = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _spawn(self, fn, name):
        t = threading.Thread(target=fn, name=f"kubelet-sim-{name}", daemon=True)
        t.start()
        self._threads.append(t)

    # ---- plugin watcher -----------------------------------------------------------------

    def _traverse(self, directory: str):
        """traversePluginDir: watch the directory and every subdirectory; sockets found
        are handled as Create events."""
        try:
            self._inotify.add(directory)
        except OSError as e:
            self.log.error(f"failed to watch {directory}, err: {e}")
            return
        for root, dirs, files in os.walk(directory):
            for d in dirs:
                p = os.path.join(root, d)
                if os.path.islink(p):
                    continue
                try:
                    self._inotify.add(p)
                except OSError as e:
                    self.log.error(f"failed to watch {p}, err: {e}")
            for f in files:
                p = os.path.join(root, f)
                if is_unix_socket(p):
                    self._handle_create(p)
                else:
                    self.log.info(f"Ignoring file path={p}", v=5)

    def _handle_create(self, path: str):
        try:
            st = os.stat(path)
        except OSError as e:
            self.log.error(f"Error when handling create event: stat file {path} failed: {e}")
            return
        if os.path.basename(path).startswith("."):
            self.log.info(f"Ignoring file (starts with '.') path={os.path.basename(path)}", v=5)
            return
        if stat.S_ISDIR(st.st_mode):
            if self._inotify:
                self._traverse(path)
            return
        if not stat.S_ISSOCK(st.st_mode):
            self.log.info(f"Ignoring non socket file path={os.path.basename(path)}", v=5)
            return
        self.log.info(f"Adding socket path or updating timestamp to desired state cache path={path}", v=2)
        with self._lock:
            self._desired[path] = time.monotonic()
        self.nodeinfo.event("desired-add", socket=path)

    def _handle_remove(self, path: str):
        self.log.info(f"Removing socket path from desired state cache path={path}", v=2)
        with self._lock:
            existed = self._desired.pop(path, None) is not None
        if existed:
            self.nodeinfo.event("desired-remove", socket=path)

    def _watch_inotify(self):
        while not self._stop.is_set():
            for kind, path in self._inotify.read(0.1):
                if kind == "Create":
                    self._handle_create(path)
                elif kind == "Remove":
                    self._handle_remove(path)
                else:
                    self.log.info(f"Ignoring {kind} event path={path}", v=6)

    def _poll_once(self):
        seen: dict[str, tuple[int, int]] = {}
        for root, dirs, files in os.walk(self.registry_dir):
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
            for f in files:
                p = os.path.join(root, f)
                try:
                    lst = os.lstat(p)
                except OSError:
                    continue
                seen[p] = (lst.st_ino, lst.st_ctime_ns)
        for p, ident in seen.items():
            if self._poll_seen.get(p) != ident:
                self._handle_create(p)
        for p in set(self._poll_seen) - set(seen):
            self._handle_remove(p)
        self._poll_seen = seen

    def _watch_poll(self):
        while not self._stop.wait(self.poll_interval):
            self._poll_once()

    # ---- reconciler and operations ------------------------------------------------------

    def _reconcile_loop(self):
        while not self._stop.is_set():
            try:
                self._reconcile()
            except Exception as e:  # keep the loop alive like wait.Until does
                self.log.error(f"reconcile failed: {e!r}")
            with self._lock:
                self._passes += 1
            self._stop.wait(self.loop_period)

    def _reconcile(self):
        with self._lock:
            desired = dict(self._desired)
            actual = dict(self._actual)
        for path, plugin in actual.items():
            if path not in desired or desired[path] != plugin.timestamp:
                self._start_operation(path, lambda p=plugin: self._unregister(p))
        now = time.monotonic()
        for path, ts in desired.items():
            plugin = actual.get(path)
            if plugin is not None and plugin.timestamp == ts:
                continue
            if plugin is not None:
                continue  # unregistration of the old instance goes first
            with self._lock:
                b = self._backoff.get(path)
                if b is not None and b.timestamp == ts and now < b.next_try:
                    continue
            self._start_operation(path, lambda p=path, t=ts: self._register(p, t))

    def _start_operation(self, key: str, op: Callable[[], None]):
        with self._lock:
            if key in self._pending:
                return
            self._pending.add(key)

        def run():
            try:
                op()
            finally:
                with self._lock:
                    self._pending.discard(key)

        t = threading.Thread(target=run, name="kubelet-sim-op", daemon=True)
        with self._lock:
            self._ops = [o for o in self._ops if o.is_alive()]
            self._ops.append(t)
        t.start()

    def _unregister(self, plugin: RegisteredPlugin):
        with self._lock:
            self._actual.pop(plugin.socket_path, None)
        handler = self.handlers.get(plugin.plugin_type)
        if handler is not None:
            handler.deregister(plugin.name, plugin.endpoint)
        self.nodeinfo.event("deregistered", socket=plugin.socket_path, name=plugin.name)

    def _register(self, path: str, ts: float):
        try:
            self._register_plugin(path, ts)
        except RegistrationError as e:
            self.log.error(f"operationExecutor.RegisterPlugin failed for plugin at {path!r}: {e}")
            self.nodeinfo.event("register-failed", socket=path, error=str(e), retried=not e.recorded)
            with self._lock:
                if not e.recorded:
                    b = self._backoff.get(path)
                    dur = self.backoff_initial if b is None or b.timestamp != ts else min(b.duration * 2, self.backoff_max)
                    self._backoff[path] = _Backoff(ts, time.monotonic() + dur, dur)
            return
        with self._lock:
            self._backoff.pop(path, None)

    def _registration_channel(self, path: str):
        import grpc

        channel = grpc.insecure_channel(f"unix:{path}")
        try:
            grpc.channel_ready_future(channel).result(timeout=self.dial_timeout)
        except grpc.FutureTimeoutError:
            channel.close()
            raise RegistrationError(f"RegisterPlugin error -- dial failed at socket {path}, err: "
                                    f"failed to dial socket {path}, err: context deadline exceeded", False)
        return channel

    def _notify(self, stub, path: str, registered: bool, error: str):
        with self._lock:
            self.notifications.append((path, registered, error))
        self.nodeinfo.event("notify", socket=path, registered=registered, error=error)
        try:
            stub.NotifyRegistrationStatus(
                self.stubs.reg_pb2.RegistrationStatus(plugin_registered=registered, error=error),
                timeout=NOTIFY_TIMEOUT)
        except Exception as e:
            return f"{error}: {e}" if error else f"RegisterPlugin error -- failed to send registration status at socket {path}, err: {e}"
        return None

    def _register_plugin(self, path: str, ts: float):
        import grpc

        channel = self._registration_channel(path)
        try:
            stub = self.stubs.reg_pb2_grpc.RegistrationStub(channel)
            try:
                info = stub.GetInfo(self.stubs.reg_pb2.InfoRequest(), timeout=GET_INFO_TIMEOUT)
            except grpc.RpcError as e:
                raise RegistrationError(f"RegisterPlugin error -- failed to get plugin info using RPC GetInfo at "
                                        f"socket {path}, err: {e.code().name}: {e.details()}", False) from None
            self.nodeinfo.event("get-info", socket=path, type=info.type, name=info.name,
                                endpoint=info.endpoint, versions=list(info.supported_versions))
            handler = self.handlers.get(info.type)
            if handler is None:
                msg = f"RegisterPlugin error -- no handler registered for plugin type: {info.type} at socket {path}"
                failed = self._notify(stub, path, False, msg)
                raise RegistrationError(failed or msg, False)
            endpoint = info.endpoint or path
            versions = list(info.supported_versions)
            try:
                handler.validate(info.name, endpoint, versions)
            except Exception as e:
                msg = f"RegisterPlugin error -- plugin validation failed with err: {e}"
                self.log.error(str(e))
                failed = self._notify(stub, path, False, msg)
                raise RegistrationError(failed or "RegisterPlugin error -- pluginHandler.ValidatePluginFunc failed", False)
            # Recorded before the handler registers, so a removal during registration
            # is processed as a deregistration (and failures are not retried).
            with self._lock:
                self._actual[path] = RegisteredPlugin(path, ts, info.name, endpoint, versions, info.type)
            try:
                handler.register(info.name, endpoint, versions)
            except Exception as e:
                msg = f"RegisterPlugin error -- plugin registration failed with err: {e}"
                self.log.error(msg)
                failed = self._notify(stub, path, False, msg)
                raise RegistrationError(failed or msg, True)
            self.nodeinfo.event("registered", socket=path, name=info.name, endpoint=endpoint)
            failed = self._notify(stub, path, True, "")
            if failed:
                raise RegistrationError(failed, True)
        finally:
            channel.close()

    def node_get_info(self, endpoint: str) -> tuple[str, int, dict[str, str]]:
        """NodeGetInfo on the endpoint, dialled as a unix socket path exactly as given."""
        import grpc

        # The kubelet hands the endpoint string to a unix dialer unchanged, so
        # "unix:///x" is not understood; keep that observable.
        target = "unix:" + endpoint if endpoint.startswith("/") else "unix:" + os.path.abspath(endpoint)
        channel = grpc.insecure_channel(target)
        try:
            stub = self.stubs.csi_pb2_grpc.NodeStub(channel)
            try:
                resp = stub.NodeGetInfo(self.stubs.csi_pb2.NodeGetInfoRequest(), timeout=self.csi_timeout)
            except grpc.RpcError as e:
                raise RuntimeError(f"rpc error: code = {e.code().name} desc = {e.details()}") from None
        finally:
            channel.close()
        segments = dict(resp.accessible_topology.segments) if resp.HasField("accessible_topology") else {}
        self.nodeinfo.event("node-get-info", endpoint=endpoint, node_id=resp.node_id,
                            max_volumes_per_node=resp.max_volumes_per_node, segments=segments)
        return resp.node_id, resp.max_volumes_per_node, segments

    # ---- connection monitor -------------------------------------------------------------

    def _monitor_loop(self):
        while not self._stop.wait(self.monitor_interval):
            with self._lock:
                registered = [p for p in self._actual.values() if p.socket_path in self._desired]
            for plugin in registered:
                if self._probe(plugin.socket_path):
                    self._probe_failures[plugin.socket_path] = 0
                    continue
                n = self._probe_failures.get(plugin.socket_path, 0) + 1
                self._probe_failures[plugin.socket_path] = n
                if n >= self.monitor_failures:
                    self.log.error(f"Failure threshold reached, exiting plugin={plugin.name} socket={plugin.socket_path}")
                    self._probe_failures.pop(plugin.socket_path, None)
                    self._handle_remove(plugin.socket_path)
            # Sockets that are neither desired nor registered but answer again.
            for root, _dirs, files in os.walk(self.registry_dir):
                for f in files:
                    p = os.path.join(root, f)
                    with self._lock:
                        known = p in self._desired or p in self._actual
                    if not known and not f.startswith(".") and is_unix_socket(p) and self._probe(p):
                        self._handle_create(p)

    def _probe(self, path: str) -> bool:
        import grpc

        channel = grpc.insecure_channel(f"unix:{path}")
        try:
            stub = self.stubs.reg_pb2_grpc.RegistrationStub(channel)
            stub.GetInfo(self.stubs.reg_pb2.InfoRequest(), timeout=min(GET_INFO_TIMEOUT * 10, self.monitor_interval))
            return True
        except grpc.RpcError:
            return False
        finally:
            channel.close()


# --------------------------------------------------------------------------------------
# CLI


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Watch a kubelet plugin registry directory and register CSI "
                                             "plugins the way the kubelet does; writes CSINode / Node state as JSON.")
    ap.add_argument("--registry-dir", default="/var/lib/kubelet/plugins_registry",
                    help="directory the kubelet watches for registration sockets")
    ap.add_argument("--state-dir", required=True, help="where csinode.json, node.json and events.jsonl are written")
    ap.add_argument("--node-name", default=None, help="Node / CSINode name (default: host name)")
    ap.add_argument("--reject", action="append", default=[], metavar="NAME",
                    help="fail validation of this driver name, as a kubelet refusing it would (repeatable)")
    ap.add_argument("--node-label", action="append", default=[], metavar="KEY=VALUE",
                    help="a label the Node already has (a different topology value then collides; repeatable)")
    ap.add_argument("--poll", action="store_true", help="scan the directory instead of using inotify")
    ap.add_argument("--poll-interval", type=float, default=0.1)
    ap.add_argument("--loop-period", type=float, default=1.0, help="reconciler period in seconds (kubelet: 1)")
    ap.add_argument("--connection-monitor", action="store_true",
                    help="probe registered sockets with GetInfo and deregister after repeated failures")
    ap.add_argument("--monitor-interval", type=float, default=10.0)
    ap.add_argument("-v", "--verbosity", type=int, default=0, help="klog-style verbosity")
    args = ap.parse_args(argv)

    labels = {}
    for item in args.node_label:
        if "=" not in item:
            ap.error(f"--node-label expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        labels[k] = v
    sim = KubeletSim(args.registry_dir, args.state_dir, node_name=args.node_name, reject=args.reject,
                     node_labels=labels,
                     loop_period=args.loop_period, poll=args.poll, poll_interval=args.poll_interval,
                     monitor=args.connection_monitor, monitor_interval=args.monitor_interval,
                     verbosity=args.verbosity)
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    sim.start()
    done.wait()
    sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
