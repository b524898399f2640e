"""The four experiments of the seed's field notes, run with the real csi-lvm-driver (loop-file backend),
the real node-driver-registrar and the kubelet simulator, in temporary directories standing for
/var/lib/kubelet and /vdata/storage."""

import os
import time


from registrar_harness import (DRIVER, NODE, PATIENCE, TOPOLOGY_KEY, deregistered, events, needs_binaries, registered,
                               socket_answers, wait_until)

pytestmark = needs_binaries


def expected_entry():
    return {"name": DRIVER, "nodeID": NODE, "topologyKeys": [TOPOLOGY_KEY]}


def check_registered(world, sim, endpoint, registrar):
    """What the seed's operator saw once registration completed."""
    wait_until(lambda: registered(sim), PATIENCE, what=f"{DRIVER} in CSINode and the annotation\n{world.dump_logs()}")
    drivers = [d for d in sim.csinode_drivers() if d["name"] == DRIVER]
    assert drivers == [expected_entry()]
    assert sim.node_ids() == {DRIVER: NODE}
    assert sim.node_labels().get(TOPOLOGY_KEY) == NODE
    validate = f"kubernetes.io/csi: Trying to validate a new CSI Driver with name: {DRIVER} endpoint: {endpoint} versions: 1.0.0"
    assert any(validate in line for line in sim.log.lines), sim.log.lines
    registrar.wait_log("Received GetInfo call")
    registrar.wait_log("Received NotifyRegistrationStatus call: registered=true (peer pid")
    assert "RegistrationStatus(" not in registrar.log()


def check_inspect_registers(world, registry, endpoint):
    rc, report = world.inspect(registry)
    assert rc == 0, report
    [entry] = [e for e in report["entries"] if e["file"] == f"{DRIVER}-reg.sock"]
    assert entry["registers"] is True
    assert entry["getInfo"] == {"type": "CSIPlugin", "name": DRIVER, "endpoint": str(endpoint),
                                "supportedVersions": ["1.0.0"]}
    assert entry["endpoint"]["nodeID"] == NODE
    assert entry["csiNodeDriver"] == expected_entry()
    assert entry["annotation"] == {"csi.volume.kubernetes.io/nodeid": {DRIVER: NODE}}
    return entry


def test_experiment_1_default_directories(world):
    endpoint = world.driver_socket(world.kubelet_plugins)
    sim = world.start_kubelet()
    driver = world.start_driver(world.kubelet_plugins)
    registrar = world.start_registrar(endpoint, endpoint, world.kubelet_registry)
    check_registered(world, sim, endpoint, registrar)
    assert (world.kubelet_registry / f"{DRIVER}-reg.sock").is_socket()
    assert oct((world.kubelet_registry / f"{DRIVER}-reg.sock").stat().st_mode & 0o777) == oct(0o600)
    check_inspect_registers(world, world.kubelet_registry, endpoint)
    assert driver.running() and registrar.running()


def test_experiment_2_removing_sockets(world):
    endpoint = world.driver_socket(world.kubelet_plugins)
    reg_sock = world.kubelet_registry / f"{DRIVER}-reg.sock"
    sim = world.start_kubelet()
    world.start_driver(world.kubelet_plugins)
    registrar = world.start_registrar(endpoint, endpoint, world.kubelet_registry)
    check_registered(world, sim, endpoint, registrar)

    # Removing -reg.sock: the kubelet's plugin watcher deregisters the driver (the annotation entry and the
    # CSINode entry go). The registrar notices and recreates its socket, so the kubelet registers it again.
    os.unlink(reg_sock)
    wait_until(lambda: any(e["event"] == "deregistered" for e in events(world)), PATIENCE,
               what="the kubelet to deregister the driver after -reg.sock was removed")
    registrar.wait_log(f"registration socket {reg_sock} was removed by another process")
    wait_until(lambda: registered(sim) and sum(e["event"] == "registered" for e in events(world)) >= 2, PATIENCE,
               what="the registration to come back after the registrar recreated its socket")

    # Removing csi.sock changes nothing in CSINode or the annotation; inspect says why a new registration
    # would now fail.
    before = (sim.csinode_drivers(), sim.node_ids())
    os.unlink(endpoint)
    assert sim.wait_for_passes(3), "the kubelet simulator's reconciler stopped"
    assert (sim.csinode_drivers(), sim.node_ids()) == before
    assert registered(sim)
    rc, report = world.inspect()
    assert rc == 1
    [entry] = report["entries"]
    assert entry["registers"] is False
    assert f"the announced endpoint {endpoint} does not exist" in entry["reason"]


def test_experiment_3_custom_directories_driver_first(world):
    endpoint = world.driver_socket(world.custom_plugins)
    custom_sock = world.custom_registry / f"{DRIVER}-reg.sock"
    sim = world.start_kubelet(world.kubelet_registry)
    driver = world.start_driver(world.custom_plugins)
    wait_until(endpoint.is_socket, PATIENCE, what=f"the driver socket {endpoint}")
    registrar = world.start_registrar(endpoint, endpoint, world.custom_registry,
                                      extra=("--registration-ack-timeout=60s",))
    wait_until(custom_sock.is_socket, PATIENCE, what=f"the registration socket {custom_sock}")

    # Nothing registers: the kubelet does not look in /vdata/storage/plugins_registry.
    assert sim.wait_for_passes(3), "the kubelet simulator's reconciler stopped"
    assert deregistered(sim)
    rc, report = world.inspect(world.kubelet_registry)
    assert rc == 0 and report["entries"] == []
    check_inspect_registers(world, world.custom_registry, endpoint)

    # The operator's symlink; the kubelet validates the custom endpoint without a restart.
    os.symlink(custom_sock, world.kubelet_registry / f"{DRIVER}-reg.sock")
    check_registered(world, sim, endpoint, registrar)
    entry = check_inspect_registers(world, world.kubelet_registry, endpoint)
    assert entry["kind"] == "link" and entry["linkTarget"] == str(custom_sock)
    assert driver.running()


def test_experiment_4_custom_directories_registrar_first(world):
    endpoint = world.driver_socket(world.custom_plugins)
    link = world.kubelet_registry / f"{DRIVER}-reg.sock"
    sim = world.start_kubelet(world.kubelet_registry)
    # The registrar starts first; the driver's directory does not even exist yet.
    registrar = world.start_registrar(endpoint, endpoint, world.custom_registry, link_dir=world.kubelet_registry)
    registrar.wait_log(f"waiting for driver socket {endpoint}")
    time.sleep(1.5)
    # No crash loop: still running, still waiting, nothing registered.
    assert registrar.running(), registrar.log()
    assert "context deadline exceeded" not in registrar.log()
    assert deregistered(sim) and not link.exists()

    driver = world.start_driver(world.custom_plugins)
    t_ready = wait_until(lambda: socket_answers(endpoint) and time.monotonic(), PATIENCE, interval=0.002,
                         what=f"the driver socket {endpoint} to answer\n{world.dump_logs()}")
    # Generous bounds for a loaded machine: how fast this goes is printed below and measured by
    # the benchmarks, not asserted here.
    t_link = wait_until(lambda: link.is_symlink() and time.monotonic(), 30, interval=0.002,
                        what=f"the registrar's link {link}\n{world.dump_logs()}")
    t_registered = wait_until(lambda: registered(sim) and time.monotonic(), 30, interval=0.002,
                              what=f"registration after the driver started\n{world.dump_logs()}")
    print(f"\nexperiment 4: driver started -> its socket answers {1000 * (t_ready - driver.started):.0f} ms; "
          f"socket answers -> registrar's link in the kubelet registry {1000 * (t_link - t_ready):.0f} ms; "
          f"-> CSINode entry and annotation written {1000 * (t_registered - t_ready):.0f} ms "
          f"(kubelet simulator reconciling every 0.1 s)")
    check_registered(world, sim, endpoint, registrar)
    assert driver.running() and registrar.running()
    assert link.is_symlink() and os.readlink(link) == str(world.custom_registry / f"{DRIVER}-reg.sock")
    check_inspect_registers(world, world.kubelet_registry, endpoint)
