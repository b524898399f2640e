"""The registrar's own behaviour end to end: the link flag, clean exits, a crashed registrar's dangling
link, a driver that changes its name, a kubelet that refuses the registration, /healthz, the deprecated
flags, and `inspect` in each of these states."""

import os
import signal
import subprocess
import time

import pytest

from registrar_harness import (DRIVER, PATIENCE, REGISTRAR_BIN, deregistered, events, free_port, healthz,
                               needs_binaries, registered, socket_answers, wait_until)

pytestmark = needs_binaries


def custom_setup(world, *, extra=(), link=True, reject=()):
    """Driver and registrar in /vdata/storage, the link into the kubelet's registry, the kubelet watching it."""
    endpoint = world.driver_socket(world.custom_plugins)
    sim = world.start_kubelet(world.kubelet_registry, reject=reject)
    driver = world.start_driver(world.custom_plugins, extra=("--shutdown-grace=2",))
    registrar = world.start_registrar(endpoint, endpoint, world.custom_registry,
                                      link_dir=world.kubelet_registry if link else None, extra=extra)
    return endpoint, sim, driver, registrar


def test_link_flag_places_the_link_and_removes_it_on_sigterm(world):
    endpoint, sim, driver, registrar = custom_setup(world)
    link = world.kubelet_registry / f"{DRIVER}-reg.sock"
    sock = world.custom_registry / f"{DRIVER}-reg.sock"
    wait_until(lambda: registered(sim), PATIENCE, what=f"registration through the link\n{world.dump_logs()}")
    assert os.readlink(link) == str(sock)
    registrar.wait_log(f"linked {link} -> {sock}")

    registrar.signal(signal.SIGTERM)
    assert registrar.wait_exit() == 0, registrar.log()
    assert not os.path.lexists(link) and not os.path.lexists(sock)
    wait_until(lambda: deregistered(sim), PATIENCE, what="deregistration after SIGTERM")
    rc, report = world.inspect()
    assert rc == 0 and report["entries"] == []
    assert driver.running()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_removes_the_socket_in_the_default_layout(world, sig):
    endpoint = world.driver_socket(world.kubelet_plugins)
    sim = world.start_kubelet()
    world.start_driver(world.kubelet_plugins)
    registrar = world.start_registrar(endpoint, endpoint, world.kubelet_registry)
    wait_until(lambda: registered(sim), PATIENCE, what=f"registration\n{world.dump_logs()}")
    registrar.signal(sig)
    assert registrar.wait_exit() == 0, registrar.log()
    assert not os.path.lexists(world.kubelet_registry / f"{DRIVER}-reg.sock")
    wait_until(lambda: deregistered(sim), PATIENCE, what="deregistration")


def test_sigterm_while_waiting_for_the_driver_exits_cleanly(world):
    endpoint = world.driver_socket(world.custom_plugins)
    registrar = world.start_registrar(endpoint, endpoint, world.custom_registry, link_dir=world.kubelet_registry)
    registrar.wait_log(f"waiting for driver socket {endpoint}")
    registrar.signal(signal.SIGTERM)
    assert registrar.wait_exit() == 0, registrar.log()
    assert list(world.kubelet_registry.iterdir()) == []


def test_crashed_registrar_leaves_a_dangling_link_that_a_restart_replaces(world):
    endpoint, sim, driver, registrar = custom_setup(world)
    link = world.kubelet_registry / f"{DRIVER}-reg.sock"
    sock = world.custom_registry / f"{DRIVER}-reg.sock"
    wait_until(lambda: registered(sim), PATIENCE, what=f"registration\n{world.dump_logs()}")

    registrar.signal(signal.SIGKILL)
    registrar.wait_exit()
    # A crash leaves a stale socket behind the link: nothing answers on it.
    assert link.is_symlink() and sock.is_socket() and not socket_answers(sock)
    rc, report = world.inspect()
    assert rc == 1 and "nothing answers" in report["entries"][0]["reason"]
    # Whatever cleans the custom directory (a reboot of a tmpfs, an operator) leaves the link dangling.
    os.unlink(sock)
    rc, report = world.inspect()
    [entry] = report["entries"]
    assert rc == 1 and entry["kind"] == "dangling-link" and entry["linkTarget"] == str(sock)
    assert "dangling link" in world.inspect_text()

    restarted = world.start_registrar(endpoint, endpoint, world.custom_registry, link_dir=world.kubelet_registry)
    restarted.wait_log(f"replaced dangling link {link}")
    wait_until(lambda: registered(sim) and sum(e["event"] == "registered" for e in events(world)) >= 2, PATIENCE,
               what=f"registration by the restarted registrar\n{world.dump_logs()}")
    assert os.readlink(link) == str(sock) and socket_answers(sock)
    assert world.inspect()[0] == 0


def test_restart_after_a_crash_with_the_stale_socket_in_place(world):
    endpoint, sim, driver, registrar = custom_setup(world)
    sock = world.custom_registry / f"{DRIVER}-reg.sock"
    wait_until(lambda: registered(sim), PATIENCE, what=f"registration\n{world.dump_logs()}")
    registrar.signal(signal.SIGKILL)
    registrar.wait_exit()
    restarted = world.start_registrar(endpoint, endpoint, world.custom_registry, link_dir=world.kubelet_registry)
    restarted.wait_log(f"removing stale registration socket {sock}")
    wait_until(lambda: sum(e["event"] == "registered" for e in events(world)) >= 2, PATIENCE,
               what=f"a new registration after the restart\n{world.dump_logs()}")
    restarted.wait_log("Received NotifyRegistrationStatus call")


def test_link_flag_refuses_to_replace_another_registration(world):
    endpoint = world.driver_socket(world.custom_plugins)
    other = world.base / "other-reg.sock"
    other.write_text("not ours")
    os.symlink(other, world.kubelet_registry / f"{DRIVER}-reg.sock")
    world.start_driver(world.custom_plugins)
    registrar = world.start_registrar(endpoint, endpoint, world.custom_registry, link_dir=world.kubelet_registry)
    code = registrar.wait_exit()
    assert code == 1
    assert f"refusing to replace {world.kubelet_registry / (DRIVER + '-reg.sock')}" in registrar.log()
    assert str(other) in registrar.log()
    assert os.readlink(world.kubelet_registry / f"{DRIVER}-reg.sock") == str(other)


def test_a_live_registration_socket_is_not_stolen_and_a_file_is_an_error(world):
    endpoint = world.driver_socket(world.kubelet_plugins)
    world.start_driver(world.kubelet_plugins)
    first = world.start_registrar(endpoint, endpoint, world.kubelet_registry)
    sock = world.kubelet_registry / f"{DRIVER}-reg.sock"
    wait_until(sock.is_socket, PATIENCE, what=f"{sock}\n{world.dump_logs()}")
    second = world.start_registrar(endpoint, endpoint, world.kubelet_registry)
    assert second.wait_exit(10) == 1
    assert f"registration socket {sock} is served by another process" in second.log()
    assert first.running() and socket_answers(sock)

    first.signal(signal.SIGTERM)
    first.wait_exit()
    sock.write_text("a regular file")
    third = world.start_registrar(endpoint, endpoint, world.kubelet_registry)
    assert third.wait_exit(10) == 1
    assert f"cannot create registration socket {sock}: expected nothing or a stale socket there, found a regular file" in third.log()


def test_driver_name_mismatch_after_a_driver_restart(world):
    port = free_port()
    endpoint, sim, driver, registrar = custom_setup(world, extra=(f"--http-endpoint=127.0.0.1:{port}",))
    wait_until(lambda: registered(sim), PATIENCE, what=f"registration\n{world.dump_logs()}")
    wait_until(lambda: healthz(port)[0] == 200, PATIENCE, what=f"healthz 200\n{world.dump_logs()}")

    # The driver comes back under another name on the same socket.
    driver.signal(signal.SIGTERM)
    driver.wait_exit(15)
    renamed = world.start_driver(socket_path=endpoint, name="other.csi.example.com")
    registrar.wait_log('now reports the name "other.csi.example.com"')
    assert f'registered "{DRIVER}"' in registrar.log()
    code, body = wait_until(lambda: (lambda r: r[0] == 503 and r)(healthz(port)), PATIENCE, what="healthz 503")
    assert "other.csi.example.com" in body and str(endpoint) in body
    rc, report = world.inspect()
    assert any("differs from the registered name" in w for w in report["entries"][0].get("warnings", []))
    assert renamed.running() and registrar.running()


def test_a_restarted_driver_that_answers_late_is_asked_again(world):
    """The restarted driver accepts connections but does not answer GetPluginInfo at first (here: stopped
    with SIGSTOP right after it listens); the registrar must keep asking the same socket until it does."""
    endpoint, sim, driver, registrar = custom_setup(world)
    wait_until(lambda: registered(sim), PATIENCE, what=f"registration\n{world.dump_logs()}")
    driver.signal(signal.SIGTERM)
    driver.wait_exit(15)
    # Hold the registrar while the new driver comes up, so it first meets the new socket while the
    # driver cannot answer.
    registrar.signal(signal.SIGSTOP)
    try:
        renamed = world.start_driver(socket_path=endpoint, name="other.csi.example.com")
        wait_until(lambda: socket_answers(endpoint), PATIENCE, what=f"the restarted driver to listen\n{world.dump_logs()}")
        renamed.signal(signal.SIGSTOP)
    finally:
        registrar.signal(signal.SIGCONT)
    try:
        registrar.wait_log("restarted but did not answer GetPluginInfo")
    finally:
        renamed.signal(signal.SIGCONT)
    registrar.wait_log('now reports the name "other.csi.example.com"')
    assert renamed.running() and registrar.running()


def test_kubelet_that_rejects_the_registration(world):
    endpoint, sim, driver, registrar = custom_setup(world, reject=(DRIVER,))
    registrar.wait_log("Received NotifyRegistrationStatus call: registered=false error=\"")
    registrar.wait_log("failed")
    # The registrar recreates its socket and link so the kubelet tries again; the kubelet keeps refusing.
    registrar.wait_log("recreating")
    wait_until(lambda: sum(e["event"] == "get-info" for e in events(world)) >= 2, PATIENCE,
               what=f"a second registration attempt\n{world.dump_logs()}")
    assert deregistered(sim)
    assert any(e["event"] == "notify" and e["registered"] is False for e in events(world))
    # Once the kubelet accepts the driver, the next attempt registers it.
    sim.reject.discard(DRIVER)
    wait_until(lambda: registered(sim), PATIENCE, what=f"registration once the kubelet accepts\n{world.dump_logs()}")


def test_healthz_follows_the_registration(world):
    # On a host name, which goes through getaddrinfo (/etc/hosts): the static release build links it in too.
    port = free_port()
    endpoint = world.driver_socket(world.custom_plugins)
    registrar = world.start_registrar(endpoint, endpoint, world.custom_registry, link_dir=world.kubelet_registry,
                                      extra=(f"--http-endpoint=localhost:{port}",))
    registrar.wait_log("waiting for driver socket")
    # Before the driver: 503, saying what it waits for.
    status, body = healthz(port, "localhost")
    assert status == 503 and "waiting for the driver" in body, body
    sim = world.start_kubelet(world.kubelet_registry)
    driver = world.start_driver(world.custom_plugins, extra=("--shutdown-grace=2",))
    wait_until(lambda: registered(sim), PATIENCE, what=f"registration\n{world.dump_logs()}")
    status, body = wait_until(lambda: (lambda r: r[0] == 200 and r)(healthz(port, "localhost")), PATIENCE, what="healthz 200")
    assert DRIVER in body
    # The driver stops: Probe fails, the registration stays.
    driver.signal(signal.SIGTERM)
    driver.wait_exit(15)
    status, body = wait_until(lambda: (lambda r: r[0] == 503 and r)(healthz(port, "localhost")), PATIENCE, what="healthz 503")
    assert "Probe" in body and str(endpoint) in body
    assert registered(sim)


def test_explicit_connection_timeout_restores_exit_after_timeout(world):
    endpoint = world.driver_socket(world.custom_plugins)
    registrar = world.start_registrar(endpoint, endpoint, world.custom_registry, extra=("--connection-timeout=1s",))
    assert registrar.wait_exit() == 1
    assert f"error connecting to CSI driver at {endpoint}" in registrar.log()


@pytest.mark.parametrize("args,code,needle", [
    (["--mode=kubelet-registration-probe"], 0, "deprecated"),
    (["--csi-address=/tmp/x.sock"], 2, "--kubelet-registration-path is required"),
    (["-csi-address=/tmp/x.sock", "-kubelet-registration-path=/a/csi.sock", "--http-endpoint=:9809", "--health-port=9810"],
     2, "--health-port 9810"),
    (["--version"], 0, "2.17"),
])
def test_flags(args, code, needle):
    r = subprocess.run([str(REGISTRAR_BIN), *args], capture_output=True, text=True, timeout=10)
    assert r.returncode == code, r.stdout + r.stderr
    assert needle in r.stdout + r.stderr


def test_inspect_flags_non_sockets_and_names_the_directory(world):
    (world.kubelet_registry / "notes.txt").write_text("x")
    (world.kubelet_registry / ".hidden-reg.sock").write_text("x")
    rc, report = world.inspect()
    assert rc == 1
    [entry] = report["entries"]
    assert entry["file"] == "notes.txt" and entry["kind"] == "not-a-socket" and entry["registers"] is False
    r = subprocess.run([str(REGISTRAR_BIN), "inspect", "--registry-dir", str(world.base / "missing")],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and str(world.base / "missing") in r.stderr


def test_link_directory_created_later_is_waited_for(world):
    port = free_port()
    endpoint = world.driver_socket(world.custom_plugins)
    registry = world.base / "late-kubelet" / "plugins_registry"
    world.start_driver(world.custom_plugins)
    registrar = world.start_registrar(endpoint, endpoint, world.custom_registry, link_dir=registry,
                                      extra=(f"--http-endpoint=127.0.0.1:{port}",))
    registrar.wait_log(f"the kubelet registry directory {registry} does not exist")
    status, body = wait_until(lambda: (lambda r: r[0] == 503 and r)(healthz(port)), PATIENCE, what="healthz 503")
    assert str(registry) in body and registrar.running()
    # The kubelet starts and makes its registry: the link follows and the driver registers.
    registry.mkdir(parents=True)
    sim = world.start_kubelet(registry)
    wait_until(lambda: registered(sim), PATIENCE, what=f"registration once the registry exists\n{world.dump_logs()}")
    wait_until(lambda: healthz(port)[0] == 200, PATIENCE, what="healthz 200")
