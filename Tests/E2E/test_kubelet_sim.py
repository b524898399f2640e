"""Tests of the kubelet simulator itself, against a small Python registrar and CSI node
server (the project's real binaries are tested against the simulator elsewhere)."""

import json
import os
import pathlib
import sys
import tempfile
import threading
from concurrent import futures

import grpc
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import kubelet_sim  # noqa: E402

DRIVER = "lvm.csi.swift-csi.io"
stubs = kubelet_sim.load_stubs()


class FakeRegistrar(stubs.reg_pb2_grpc.RegistrationServicer):
    def __init__(self, info):
        self.info = info
        self.get_info_calls = 0
        self.statuses = []
        self.cond = threading.Condition()

    def GetInfo(self, request, context):
        with self.cond:
            self.get_info_calls += 1
        return self.info

    def NotifyRegistrationStatus(self, request, context):
        with self.cond:
            self.statuses.append((request.plugin_registered, request.error))
            self.cond.notify_all()
        return stubs.reg_pb2.RegistrationStatusResponse()

    def wait_status(self, n=1, timeout=30.0):
        with self.cond:
            self.cond.wait_for(lambda: len(self.statuses) >= n, timeout)
            return list(self.statuses)


class FakeNode(stubs.csi_pb2_grpc.NodeServicer):
    def __init__(self, response):
        self.response = response
        self.calls = 0

    def NodeGetInfo(self, request, context):
        self.calls += 1
        return self.response


def serve(path, add, servicer):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    add(servicer, server)
    server.add_insecure_port(f"unix:{path}")
    server.start()
    return server


@pytest.fixture
def world():
    """Short paths (unix socket paths are limited to 107 bytes): registry, plugin and state dirs."""
    base = pathlib.Path(tempfile.mkdtemp(prefix="ks-", dir="/tmp"))
    dirs = {k: base / k for k in ("reg", "plugins", "state", "custom")}
    for d in dirs.values():
        d.mkdir()
    servers = []
    sims = []

    class World:
        pass

    w = World()
    w.__dict__.update(dirs)
    w.base = base

    def node(node_id="node0", max_volumes=0, segments=None, path=None):
        path = str(path or dirs["plugins"] / "csi.sock")
        resp = stubs.csi_pb2.NodeGetInfoResponse(node_id=node_id, max_volumes_per_node=max_volumes)
        if segments is not None:
            resp.accessible_topology.segments.update(segments)
        fake = FakeNode(resp)
        servers.append(serve(path, stubs.csi_pb2_grpc.add_NodeServicer_to_server, fake))
        return fake, path

    def registrar(endpoint, name=DRIVER, versions=("1.0.0",), ptype="CSIPlugin", path=None):
        path = str(path or dirs["reg"] / f"{name}-reg.sock")
        info = stubs.reg_pb2.PluginInfo(type=ptype, name=name, endpoint=endpoint, supported_versions=list(versions))
        fake = FakeRegistrar(info)
        server = serve(path, stubs.reg_pb2_grpc.add_RegistrationServicer_to_server, fake)
        servers.append(server)
        return fake, path, server

    def sim(**kw):
        kw.setdefault("loop_period", 0.05)
        kw.setdefault("node_name", "node0")
        kw.setdefault("dial_timeout", 2.0)
        kw.setdefault("backoff_initial", 0.1)
        kw.setdefault("log_stream", False)
        s = kubelet_sim.KubeletSim(dirs["reg"], dirs["state"], **kw).start()
        sims.append(s)
        return s

    w.node, w.registrar, w.sim = node, registrar, sim
    yield w
    for s in sims:
        s.stop()
    for srv in servers:
        srv.stop(None)
    import shutil
    shutil.rmtree(base, ignore_errors=True)


def registered(sim):
    return DRIVER in sim.node_ids()


def test_register_writes_csinode_and_annotation(world):
    _, csi_sock = world.node(segments={"openebs.io/nodename": "node0", "topology.kubernetes.io/zone": "z1"},
                             max_volumes=5)
    reg, _, _ = world.registrar(csi_sock)
    sim = world.sim()
    assert sim.wait_for(registered)
    assert reg.wait_status() == [(True, "")]
    assert sim.node_ids() == {DRIVER: "node0"}
    assert sim.csinode_drivers() == [{
        "name": DRIVER, "nodeID": "node0",
        "topologyKeys": ["openebs.io/nodename", "topology.kubernetes.io/zone"],
        "allocatable": {"count": 5},
    }]
    assert sim.node_labels()["openebs.io/nodename"] == "node0"
    # The same facts are on disk, in the shape the API objects have.
    node = json.loads((world.state / "node.json").read_text())
    assert json.loads(node["metadata"]["annotations"][kubelet_sim.NODE_ID_ANNOTATION]) == {DRIVER: "node0"}
    csinode = json.loads((world.state / "csinode.json").read_text())
    assert csinode["metadata"]["name"] == "node0"
    assert csinode["spec"]["drivers"][0]["nodeID"] == "node0"
    assert any(f"Trying to validate a new CSI Driver with name: {DRIVER} endpoint: {csi_sock} versions: 1.0.0" in line
               for line in sim.log.lines)


def test_no_topology_and_no_limit(world):
    _, csi_sock = world.node()
    world.registrar(csi_sock)
    sim = world.sim()
    assert sim.wait_for(registered)
    assert sim.csinode_drivers() == [{"name": DRIVER, "nodeID": "node0", "topologyKeys": None}]


def test_existing_socket_found_at_start_and_deregistered_on_removal(world):
    _, csi_sock = world.node()
    reg, reg_path, _ = world.registrar(csi_sock)
    sim = world.sim()
    assert sim.wait_for(registered)
    os.unlink(reg_path)
    assert sim.wait_for(lambda s: not registered(s))
    assert sim.csinode_drivers() == []
    node = json.loads((world.state / "node.json").read_text())
    assert kubelet_sim.NODE_ID_ANNOTATION not in node["metadata"]["annotations"]


def test_removing_csi_sock_changes_nothing(world):
    _, csi_sock = world.node()
    world.registrar(csi_sock)
    sim = world.sim()
    assert sim.wait_for(registered)
    os.unlink(csi_sock)
    assert not sim.wait_for(lambda s: not registered(s), timeout=0.5)
    assert sim.node_ids() == {DRIVER: "node0"}


def test_symlinked_socket_registers_and_link_removal_deregisters(world):
    _, csi_sock = world.node(path=world.custom / "csi.sock")
    reg, real_reg, _ = world.registrar(csi_sock, path=world.custom / f"{DRIVER}-reg.sock")
    sim = world.sim()
    assert not sim.wait_for(registered, timeout=0.3)  # nothing in the watched directory yet
    link = world.reg / f"{DRIVER}-reg.sock"
    os.symlink(real_reg, link)
    assert sim.wait_for(registered)
    assert sim.csinode_drivers()[0]["nodeID"] == "node0"
    assert str(link) in sim.registered()
    os.unlink(link)
    assert sim.wait_for(lambda s: not registered(s))
    assert os.path.exists(real_reg)


def test_dangling_link_is_ignored_until_created_again(world):
    target = world.custom / f"{DRIVER}-reg.sock"
    link = world.reg / f"{DRIVER}-reg.sock"
    os.symlink(target, link)
    sim = world.sim()
    _, csi_sock = world.node(path=world.custom / "csi.sock")
    world.registrar(csi_sock, path=target)
    assert not sim.wait_for(registered, timeout=0.5)
    os.unlink(link)
    os.symlink(target, link)
    assert sim.wait_for(registered)


def test_poll_mode_registers_and_deregisters(world):
    _, csi_sock = world.node()
    sim = world.sim(poll=True, poll_interval=0.05)
    _, reg_path, _ = world.registrar(csi_sock)
    assert sim.wait_for(registered)
    os.unlink(reg_path)
    assert sim.wait_for(lambda s: not registered(s))


def test_reject_notifies_failure_and_retries_with_backoff(world):
    fake_node, csi_sock = world.node()
    reg, _, _ = world.registrar(csi_sock)
    sim = world.sim(reject=[DRIVER])
    statuses = reg.wait_status(2)
    assert len(statuses) >= 2, "validation failures are retried"
    assert all(not ok for ok, _ in statuses)
    assert "plugin validation failed" in statuses[0][1] and "--reject" in statuses[0][1]
    assert sim.node_ids() == {} and sim.csinode_drivers() == []
    assert fake_node.calls == 0, "a rejected plugin's endpoint is never dialled"


@pytest.mark.parametrize("versions,needle", [
    ((), "empty list for supported versions"),
    (("2.0.0",), "None of the versions specified"),
])
def test_unsupported_versions_fail_validation(world, versions, needle):
    _, csi_sock = world.node()
    reg, _, _ = world.registrar(csi_sock, versions=versions)
    sim = world.sim()
    status = reg.wait_status(1)
    assert status and status[0][0] is False and needle in status[0][1]
    assert sim.node_ids() == {}


def test_highest_1x_version_is_chosen():
    assert kubelet_sim.highest_supported_version(["0.3.0", "1.0.0", "1.2", "2.0.0"]) == (1, 2)
    with pytest.raises(ValueError):
        kubelet_sim.highest_supported_version(["3.0.0"])
    with pytest.raises(ValueError):
        kubelet_sim.highest_supported_version(["x"])


def test_wrong_plugin_type_is_refused(world):
    _, csi_sock = world.node()
    reg, _, _ = world.registrar(csi_sock, ptype="DevicePluginX")
    world.sim()
    status = reg.wait_status(1)
    assert status[0][0] is False and "no handler registered for plugin type: DevicePluginX" in status[0][1]


def test_empty_node_id_fails_registration_without_retry(world):
    _, csi_sock = world.node(node_id="")
    reg, _, _ = world.registrar(csi_sock)
    sim = world.sim()
    status = reg.wait_status(1)
    assert status[0][0] is False
    assert "driverNodeID must not be empty" in status[0][1]
    assert not sim.wait_for(lambda s: len(reg.statuses) > 1, timeout=0.6), "registration failures are not retried"
    assert sim.node_ids() == {} and sim.csinode_drivers() == []


def test_missing_endpoint_fails_registration(world):
    missing = str(world.plugins / "nothing-here.sock")
    reg, reg_path, server = world.registrar(missing)
    sim = world.sim()
    status = reg.wait_status(1)
    assert status[0][0] is False and "plugin registration failed" in status[0][1]
    assert "UNAVAILABLE" in status[0][1]
    assert sim.node_ids() == {}
    # Recreating the registration socket is what makes the kubelet try again.
    _, csi_sock = world.node(path=missing)
    server.stop(None)
    if os.path.exists(reg_path):
        os.unlink(reg_path)
    reg2, _, _ = world.registrar(missing)
    assert sim.wait_for(registered)
    assert reg2.wait_status(1)[-1] == (True, "")


def test_unix_scheme_endpoint_is_not_understood(world):
    _, csi_sock = world.node()
    reg, _, _ = world.registrar("unix://" + csi_sock)
    sim = world.sim()
    status = reg.wait_status(1)
    assert status[0][0] is False
    assert sim.node_ids() == {}


def test_dot_files_and_non_sockets_are_ignored(world):
    _, csi_sock = world.node()
    (world.reg / "notes.txt").write_text("x")
    reg, _, _ = world.registrar(csi_sock, path=world.reg / f".{DRIVER}-reg.sock")
    sim = world.sim()
    assert not sim.wait_for(registered, timeout=0.4)
    assert reg.get_info_calls == 0
    assert sim.desired() == {}


def test_topology_label_collision_fails_registration(world):
    _, csi_sock = world.node(segments={"topology.lvm.csi.swift-csi.io/node": "node0"})
    reg, _, _ = world.registrar(csi_sock)
    sim = world.sim(node_labels={"topology.lvm.csi.swift-csi.io/node": "old-name"})
    status = reg.wait_status(1)
    assert status[0][0] is False
    assert 'detected topology value collision: driver reported "topology.lvm.csi.swift-csi.io/node":"node0" ' \
           'but existing label is "topology.lvm.csi.swift-csi.io/node":"old-name"' in status[0][1]
    assert sim.node_ids() == {} and sim.node_labels() == {"topology.lvm.csi.swift-csi.io/node": "old-name"}


def test_two_drivers_share_the_annotation(world):
    _, a_sock = world.node(path=world.plugins / "a.sock", node_id="node0")
    _, b_sock = world.node(path=world.plugins / "b.sock", node_id="i-123")
    world.registrar(a_sock, name="a.example.com")
    _, b_reg, _ = world.registrar(b_sock, name="b.example.com")
    sim = world.sim()
    assert sim.wait_for(lambda s: len(s.node_ids()) == 2)
    assert sim.node_ids() == {"a.example.com": "node0", "b.example.com": "i-123"}
    os.unlink(b_reg)
    assert sim.wait_for(lambda s: s.node_ids() == {"a.example.com": "node0"})
    assert [d["name"] for d in sim.csinode_drivers()] == ["a.example.com"]


def test_connection_monitor_deregisters_dead_registrar(world):
    _, csi_sock = world.node()
    _, reg_path, server = world.registrar(csi_sock)
    sim = world.sim(monitor=True, monitor_interval=0.1, monitor_failures=2)
    assert sim.wait_for(registered)
    server.stop(None)  # the socket file may stay behind, but nobody answers
    assert sim.wait_for(lambda s: not registered(s), timeout=5)


def test_cli_runs_and_writes_state(world):
    import signal
    import subprocess
    import time

    _, csi_sock = world.node()
    world.registrar(csi_sock)
    proc = subprocess.Popen([sys.executable, kubelet_sim.__file__, "--registry-dir", str(world.reg),
                             "--state-dir", str(world.state), "--node-name", "node0", "--loop-period", "0.05"],
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        ids = {}
        while time.monotonic() < deadline:
            try:
                node = json.loads((world.state / "node.json").read_text())
                ids = json.loads(node["metadata"]["annotations"].get(kubelet_sim.NODE_ID_ANNOTATION, "{}"))
            except (OSError, ValueError):
                pass
            if ids:
                break
            time.sleep(0.05)
        assert ids == {DRIVER: "node0"}
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "Trying to validate a new CSI Driver with name: " + DRIVER in err
