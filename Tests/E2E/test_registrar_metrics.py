"""The registrar's Prometheus metrics at /metrics on --http-endpoint, parsed with prometheus_client's
parser and checked against what the test made happen: a registration, /healthz probes, a kubelet that
refuses, a registration socket someone removed."""

import os
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from registrar_harness import DRIVER, PATIENCE, events, free_port, healthz, needs_binaries, registered, wait_until

pytestmark = needs_binaries


def scrape(port: int) -> dict:
    """Every sample, by (name, sorted labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200
        text = r.read().decode()
    samples = {}
    families = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = family
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in samples, f"sample {key} twice"
            samples[key] = s.value
    samples["__families__"] = families
    return samples


def value(samples, name, **labels):
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, f"no sample {key}; have {sorted(k for k in samples if k != '__families__')}"
    return samples[key]


def start(world, reject=(), extra=()):
    port = free_port()
    endpoint = world.driver_socket(world.kubelet_plugins)
    sim = world.start_kubelet(reject=reject)
    world.start_driver(world.kubelet_plugins)
    registrar = world.start_registrar(endpoint, endpoint, world.kubelet_registry,
                                      extra=(f"--http-endpoint=127.0.0.1:{port}", *extra))
    registrar.wait_log("metrics at /metrics")
    return port, sim, registrar


STATES = ("waiting_for_driver", "pending", "registered", "refused")


def test_metrics_of_a_registration(world):
    port, sim, registrar = start(world)
    wait_until(lambda: registered(sim), PATIENCE, what=f"registration\n{world.dump_logs()}")
    registrar.wait_log("Received NotifyRegistrationStatus call: registered=true")
    probes = 3
    for _ in range(probes):
        assert healthz(port)[0] == 200

    m = scrape(port)
    families = m["__families__"]
    for name, kind in [("node_driver_registrar_registration_state", "gauge"),
                       ("node_driver_registrar_kubelet_get_info_calls", "counter"),
                       ("node_driver_registrar_kubelet_notifications", "counter"),
                       ("node_driver_registrar_reregistrations", "counter"),
                       ("csi_sidecar_operations_seconds", "histogram"),
                       ("process_resident_memory_bytes", "gauge")]:
        assert families[name].type == kind, (name, families[name].type)
        assert families[name].documentation, f"{name} has no HELP"

    assert {s: value(m, "node_driver_registrar_registration_state", state=s) for s in STATES} == \
        {"waiting_for_driver": 0, "pending": 0, "registered": 1, "refused": 0}
    kubelet_get_infos = sum(e["event"] == "get-info" for e in events(world))
    assert kubelet_get_infos >= 1
    assert value(m, "node_driver_registrar_kubelet_get_info_calls_total") == kubelet_get_infos
    assert value(m, "node_driver_registrar_kubelet_notifications_total", registered="true") == 1
    assert value(m, "node_driver_registrar_kubelet_notifications_total", registered="false") == 0
    for reason in ("refused", "ack_timeout", "removed"):
        assert value(m, "node_driver_registrar_reregistrations_total", reason=reason) == 0
    assert value(m, "node_driver_registrar_build_info", version=registrar_version()) == 1

    # Calls to the driver, as the sidecars count them: the first GetPluginInfo before the name was
    # known, then one Probe per /healthz.
    ok = dict(grpc_status_code="OK")
    assert value(m, "csi_sidecar_operations_seconds_count", driver_name="unknown",
                 method_name="/csi.v1.Identity/GetPluginInfo", **ok) >= 1
    assert value(m, "csi_sidecar_operations_seconds_count", driver_name=DRIVER,
                 method_name="/csi.v1.Identity/Probe", **ok) == probes
    assert value(m, "csi_sidecar_operations_seconds_bucket", driver_name=DRIVER,
                 method_name="/csi.v1.Identity/Probe", le="+Inf", **ok) == probes

    # The process's own, against /proc.
    with open(f"/proc/{registrar.pid}/status") as f:
        rss_kib = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    rss = value(m, "process_resident_memory_bytes")
    assert 0.5 * rss_kib * 1024 < rss < 2 * rss_kib * 1024, (rss, rss_kib)
    fds = len(os.listdir(f"/proc/{registrar.pid}/fd"))
    assert abs(value(m, "process_open_fds") - fds) <= 4, (value(m, "process_open_fds"), fds)
    assert value(m, "process_threads") == len(os.listdir(f"/proc/{registrar.pid}/task")) or \
        value(m, "process_threads") >= 2


def test_metrics_of_a_kubelet_that_refuses(world):
    port, sim, registrar = start(world, reject=(DRIVER,))
    registrar.wait_log("Received NotifyRegistrationStatus call: registered=false")
    registrar.wait_log("recreating")
    wait_until(lambda: scrape(port)[("node_driver_registrar_reregistrations_total", (("reason", "refused"),))] >= 1,
               PATIENCE, what="a re-registration counted as refused")
    m = scrape(port)
    refusals = value(m, "node_driver_registrar_kubelet_notifications_total", registered="false")
    assert refusals >= 1
    assert value(m, "node_driver_registrar_kubelet_notifications_total", registered="true") == 0
    # One re-registration per refusal, at most one refusal not yet followed by its re-registration.
    assert refusals - 1 <= value(m, "node_driver_registrar_reregistrations_total", reason="refused") <= refusals
    states = {s: value(m, "node_driver_registrar_registration_state", state=s) for s in STATES}
    assert sum(states.values()) == 1 and states["registered"] == 0, states


def test_metrics_count_a_removed_socket(world):
    port, sim, registrar = start(world)
    wait_until(lambda: registered(sim), PATIENCE, what=f"registration\n{world.dump_logs()}")
    os.unlink(world.kubelet_registry / f"{DRIVER}-reg.sock")
    registrar.wait_log("was removed by another process")
    wait_until(lambda: registered(sim) and value(scrape(port), "node_driver_registrar_kubelet_notifications_total",
                                                 registered="true") == 2,
               PATIENCE, what=f"the second registration\n{world.dump_logs()}")
    m = scrape(port)
    assert value(m, "node_driver_registrar_reregistrations_total", reason="removed") == 1
    assert value(m, "node_driver_registrar_reregistrations_total", reason="refused") == 0
    assert value(m, "node_driver_registrar_registration_state", state="registered") == 1


def test_no_metrics_without_the_http_endpoint(world):
    endpoint = world.driver_socket(world.kubelet_plugins)
    world.start_driver(world.kubelet_plugins)
    registrar = world.start_registrar(endpoint, endpoint, world.kubelet_registry)
    registrar.wait_log("Registration Server started")
    assert "metrics at /metrics" not in registrar.log()


def registrar_version() -> str:
    import subprocess
    from registrar_harness import REGISTRAR_BIN

    return subprocess.run([str(REGISTRAR_BIN), "--version"], capture_output=True, text=True, timeout=30).stdout.split()[-1]
