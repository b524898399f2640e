"""The driver's thin pool metrics on real thin pools: size, data and metadata usage, what is
promised and what is still available, against `lvs` and GetCapacity."""

import os
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from conftest import POOL, TINY_POOL, VG, RATIO, lvs, start_driver
from csi_support import MIB, create, mount_cap

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "E2E"))
from registrar_harness import free_port  # noqa: E402


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_thin_pool_gauges_match_lvs_and_get_capacity(csi, volume_group):
    port = free_port()
    d = start_driver(csi, ["--metrics-address", f"127.0.0.1:{port}"])
    vol = None
    try:
        pb = d.csi.pb
        vol = create(d, 96 * MIB, cap=mount_cap(d.csi, "ext4"), parameters={"thinPool": POOL})
        samples = scrape(port)
        for pool in (POOL, TINY_POOL):
            row = lvs(pool)
            labels = (("thin_pool", pool), ("volume_group", VG))
            assert samples[("csi_lvm_driver_thin_pool_size_bytes", labels)] == row["lv_size"]
            assert abs(samples[("csi_lvm_driver_thin_pool_data_percent", labels)] - float(row["data_percent"] or 0)) < 0.01
            assert abs(samples[("csi_lvm_driver_thin_pool_metadata_percent", labels)] - float(row["metadata_percent"] or 0)) < 0.01
        labels = (("thin_pool", POOL), ("volume_group", VG))
        promised = sum(r["lv_size"] for r in lvs() if r["pool_lv"] == POOL)
        assert promised >= vol.capacity_bytes
        assert samples[("csi_lvm_driver_thin_pool_promised_bytes", labels)] == promised
        capacity = d.controller.GetCapacity(pb.GetCapacityRequest(parameters={"thinPool": POOL})).available_capacity
        assert samples[("csi_lvm_driver_thin_pool_overprovisioned_available_bytes", labels)] == capacity
        assert capacity == lvs(POOL)["lv_size"] * RATIO - promised
    finally:
        if vol is not None:
            d.controller.DeleteVolume(d.csi.pb.DeleteVolumeRequest(volume_id=vol.volume_id))
        d.stop()
