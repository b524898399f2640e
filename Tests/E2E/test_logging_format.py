"""--logging-format on both executables: text as before, or one JSON object a line in the Kubernetes
components' shape (ts, msg, v or level, key/values). Each executable runs a short while in each format
(the driver on loop files, the registrar registering it with the kubelet simulator, then SIGTERM) and
every line either wrote is parsed."""

import json
import re
import signal

import pytest

from registrar_harness import DRIVER, PATIENCE, needs_binaries, registered, wait_until

pytestmark = needs_binaries

# Today's text lines: the driver's `2026-11-24T21:46:21.123Z info csi-lvm-driver: …`, the registrar's klog
# `I 21:46:27.010 …`.
TEXT = {
    "driver": re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (trace|debug|info|notice|warning|error|critical) csi-lvm-driver: \S"),
    "registrar": re.compile(r"^[DIWE] \d\d:\d\d:\d\d\.\d{3} \S"),
}


def run_both(world, fmt):
    """Driver and registrar in the kubelet's directories, registered, then stopped by SIGTERM."""
    endpoint = world.driver_socket(world.kubelet_plugins)
    sim = world.start_kubelet()
    driver = world.start_driver(world.kubelet_plugins, extra=(f"--logging-format={fmt}", "-v", "debug"))
    registrar = world.start_registrar(endpoint, endpoint, world.kubelet_registry,
                                      extra=(f"-logging-format={fmt}", "-v=5"))
    wait_until(lambda: registered(sim), PATIENCE, what=f"registration\n{world.dump_logs()}")
    registrar.wait_log("Received NotifyRegistrationStatus call")
    for p in (registrar, driver):
        p.signal(signal.SIGTERM)
        assert p.wait_exit() == 0, p.log()
    return driver.log().splitlines(), registrar.log().splitlines()


def test_json_lines(world):
    started = __import__("time").time()
    driver, registrar = run_both(world, "json")
    for name, lines in (("driver", driver), ("registrar", registrar)):
        assert len(lines) >= 3, f"{name} logged almost nothing: {lines}"
        records = []
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise AssertionError(f"{name} wrote a line that is not JSON: {line!r}") from None
            assert isinstance(record, dict), line
            assert isinstance(record["ts"], float) and started - 5 < record["ts"] < started + 600, line
            assert isinstance(record["msg"], str) and record["msg"], line
            if "level" in record:
                assert record["level"] in ("warning", "error") and "v" not in record, line
            else:
                assert record["v"] in (0, 3, 5), line
            assert all(isinstance(v, str) for k, v in record.items() if k not in ("ts", "v")), line
            records.append(record)
        assert [r["ts"] for r in records] == sorted(r["ts"] for r in records), f"{name}: time goes backwards"
        if name == "driver":
            assert any(r.get("v") == 3 for r in records), f"{name} wrote no debug record at a debug verbosity"

    registrar_records = [json.loads(line) for line in registrar]
    start = next(r for r in registrar_records if r["msg"].startswith("node-driver-registrar "))
    assert start["csi-address"].endswith(f"{DRIVER}/csi.sock") and start["v"] == 0
    assert any(r["msg"].startswith("Received NotifyRegistrationStatus call") for r in registrar_records)


def test_text_lines(world):
    driver, registrar = run_both(world, "text")
    for name, lines in (("driver", driver), ("registrar", registrar)):
        assert len(lines) >= 3, f"{name} logged almost nothing: {lines}"
        for line in lines:
            assert TEXT[name].match(line), f"{name} wrote a line that is not its text format: {line!r}"
            assert not line.startswith("{"), line


@pytest.mark.parametrize("binary", ["driver", "registrar"])
def test_unknown_format_is_a_usage_error(world, binary):
    import subprocess
    from registrar_harness import DRIVER_BIN, REGISTRAR_BIN

    argv = [str(DRIVER_BIN if binary == "driver" else REGISTRAR_BIN), "--logging-format=yaml"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert r.returncode == 64, r
    assert "logging-format" in r.stderr and "yaml" in r.stderr, r.stderr
