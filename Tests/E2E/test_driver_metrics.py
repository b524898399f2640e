"""The driver's Prometheus metrics at --metrics-address: every CSI call it served, by method and gRPC
code, and the process's own, parsed with prometheus_client's parser and checked against the calls
this test made (loop-file backend)."""

import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from csi_support import BINARY, Driver, create, delete, expect_code, generate_stubs
from registrar_harness import free_port
from test_csi_conformance import PHYSICAL_VOLUMES, lvm, volume_group  # noqa: F401 (a fixture)

pytestmark = pytest.mark.skipif(not os.path.exists(BINARY), reason=f"{BINARY} is not built (swift build)")
DRIVER_NAME = "metrics.csi.swift-csi.io"


@pytest.fixture(scope="module")
def csi():
    stubs, out = generate_stubs()
    yield stubs
    shutil.rmtree(out, ignore_errors=True)


@pytest.fixture
def driver(csi):
    workdir = tempfile.mkdtemp(prefix="csi-metrics-")
    port = free_port()
    d = Driver(BINARY, csi, workdir, ["--backend", "loopfile", "--loopfile-dir", os.path.join(workdir, "volumes"),
                                      "--metrics-address", f"127.0.0.1:{port}"], driver_name=DRIVER_NAME)
    d.metrics_port = port
    try:
        yield d
    finally:
        d.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200
        text = r.read().decode()
    samples, families = {}, {}
    for family in text_string_to_metric_families(text):
        families[family.name] = family
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, families


def calls(samples, method, code):
    key = ("csi_operations_seconds_count", (("driver_name", DRIVER_NAME), ("grpc_status_code", code),
                                            ("method_name", method)))
    return samples.get(key, 0)


def test_driver_counts_the_calls_it_served(driver):
    pb = driver.csi.pb
    for _ in range(2):
        driver.identity.GetPluginInfo(pb.GetPluginInfoRequest())
    driver.identity.Probe(pb.ProbeRequest())
    driver.node.NodeGetInfo(pb.NodeGetInfoRequest())
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, driver.controller.CreateVolume, pb.CreateVolumeRequest(name=""))
    volume = create(driver)
    delete(driver, volume.volume_id)
    expect_code(grpc.StatusCode.NOT_FOUND, driver.controller.ControllerGetVolume,
                pb.ControllerGetVolumeRequest(volume_id="no-such-volume"))

    samples, families = scrape(driver.metrics_port)
    assert families["csi_operations_seconds"].type == "histogram"
    assert families["csi_operations_seconds"].documentation
    assert calls(samples, "/csi.v1.Identity/GetPluginInfo", "OK") == 2
    assert calls(samples, "/csi.v1.Identity/Probe", "OK") == 1
    assert calls(samples, "/csi.v1.Node/NodeGetInfo", "OK") == 1
    assert calls(samples, "/csi.v1.Controller/CreateVolume", "InvalidArgument") == 1
    assert calls(samples, "/csi.v1.Controller/CreateVolume", "OK") == 1
    assert calls(samples, "/csi.v1.Controller/DeleteVolume", "OK") == 1
    assert calls(samples, "/csi.v1.Controller/ControllerGetVolume", "NotFound") == 1
    served = sum(v for (name, _), v in samples.items() if name == "csi_operations_seconds_count")
    assert served == 8, sorted(k for k in samples if k[0] == "csi_operations_seconds_count")
    # Every call finished within the largest bucket, and the sum of durations is positive.
    inf = sum(v for (name, labels), v in samples.items()
              if name == "csi_operations_seconds_bucket" and ("le", "+Inf") in labels)
    assert inf == served
    assert sum(v for (name, _), v in samples.items() if name == "csi_operations_seconds_sum") > 0

    pid = driver.process.pid
    with open(f"/proc/{pid}/status") as f:
        rss_kib = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    rss = samples[("process_resident_memory_bytes", ())]
    assert 0.5 * rss_kib * 1024 < rss < 2 * rss_kib * 1024, (rss, rss_kib)
    assert samples[("process_open_fds", ())] >= 3
    assert samples[("process_threads", ())] >= 2
    assert "metrics served at http://127.0.0.1:" in driver.output()


def test_metrics_address_that_cannot_be_bound_stops_the_driver(csi):
    workdir = tempfile.mkdtemp(prefix="csi-metrics-")
    try:
        r = subprocess.run([BINARY, "--endpoint", "unix://" + os.path.join(workdir, "csi.sock"), "--backend", "loopfile",
                            "--loopfile-dir", os.path.join(workdir, "v"), "--kubelet-dir", workdir,
                            "--metrics-address", "not-an-address"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 1, r
        assert "--metrics-address" in r.stderr and "not-an-address" in r.stderr, r.stderr
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_driver_reports_what_its_backend_holds(driver):
    pb = driver.csi.pb
    kept = [create(driver) for _ in range(2)]
    gone = create(driver)
    delete(driver, gone.volume_id)
    driver.controller.CreateSnapshot(pb.CreateSnapshotRequest(name="snap-metrics", source_volume_id=kept[0].volume_id))
    samples, families = scrape(driver.metrics_port)
    listed = driver.controller.ListVolumes(pb.ListVolumesRequest()).entries
    assert samples[("csi_lvm_driver_volumes", ())] == len(listed) == 2
    assert samples[("csi_lvm_driver_snapshots", ())] == 1
    assert families["csi_lvm_driver_volumes"].type == "gauge" and families["csi_lvm_driver_volumes"].documentation
    # The loop-file backend has no volume groups.
    assert not [k for k in samples if k[0].startswith("csi_lvm_driver_volume_group")]


def test_driver_reports_its_volume_groups(csi, volume_group):
    workdir = tempfile.mkdtemp(prefix="csi-metrics-")
    port = free_port()
    d = Driver(BINARY, csi, workdir, ["--backend", "lvm", "--volume-group", volume_group,
                                      "--lvm-scan-device", PHYSICAL_VOLUMES[volume_group],
                                      "--metrics-address", f"127.0.0.1:{port}"], driver_name=DRIVER_NAME)
    try:
        samples, _ = scrape(port)
        report = lvm("vgs", "--noheadings", "--units", "b", "--nosuffix", "-o", "vg_size,vg_free", volume_group)
        assert report.returncode == 0, report.stderr
        size, free = (int(float(x)) for x in report.stdout.split())
        labels = (("volume_group", volume_group),)
        assert samples[("csi_lvm_driver_volume_group_size_bytes", labels)] == size
        assert samples[("csi_lvm_driver_volume_group_free_bytes", labels)] == free
        assert samples[("csi_lvm_driver_volumes", ())] == 0
    finally:
        d.stop()
        shutil.rmtree(workdir, ignore_errors=True)
