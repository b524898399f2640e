"""The registrar and `inspect` find the running kubelet's root directory (its --root-dir, or rootDir in its
--config file) and say when the registry they use is not the one that kubelet watches, or when the kubelet
cannot reach --kubelet-registration-path. The kubelet here is a sleeping process whose command line reads
like a kubelet's."""

import json

import pytest

from registrar_harness import DRIVER, PATIENCE, needs_binaries, wait_until

pytestmark = needs_binaries


def start(world, registry, registration_path=None, extra=()):
    """Driver in the kubelet's plugins directory, registrar serving in `registry`."""
    endpoint = world.driver_socket(world.kubelet_plugins)
    world.start_driver(world.kubelet_plugins)
    registrar = world.start_registrar(endpoint, registration_path or endpoint, registry, extra=extra)
    wait_until(lambda: (registry / f"{DRIVER}-reg.sock").is_socket(), PATIENCE,
               what=f"the registration socket in {registry}\n{world.dump_logs()}")
    return endpoint, registrar


def warnings(registrar):
    return [line for line in registrar.log().splitlines() if line.startswith("W ")]


def test_kubelet_watching_the_registry_gives_no_warning(world):
    kubelet = world.start_fake_kubelet(f"--root-dir={world.kubelet}", "--v=2")
    endpoint, registrar = start(world, world.kubelet_registry)
    registrar.wait_log(f"the running kubelet (pid {kubelet.pid}, root directory {world.kubelet} (from --root-dir)) "
                       f"watches {world.kubelet_registry}")
    assert not [w for w in warnings(registrar) if "kubelet" in w], registrar.log()

    rc, report = world.inspect(world.kubelet_registry)
    assert rc == 0, report
    assert report["watchedByKubelet"] is True and "verdict" not in report
    assert [k["pid"] for k in report["kubelets"]] == [kubelet.pid]
    assert report["kubelets"][0]["rootDir"] == str(world.kubelet)
    assert report["kubelets"][0]["registryDirectory"] == str(world.kubelet_registry)
    assert [e["registers"] for e in report["entries"]] == [True]


@pytest.mark.parametrize("config_format", ["yaml", "json"])
def test_kubelet_with_another_root_dir_in_its_config_file(world, config_format):
    other = world.base / "other-kubelet"
    (other / "plugins_registry").mkdir(parents=True)
    config = world.base / f"kubelet-config.{config_format}"
    if config_format == "yaml":
        config.write_text("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
                          f"authentication:\n  anonymous:\n    enabled: false\nrootDir: \"{other}\"  # the data disk\n")
    else:
        config.write_text(json.dumps({"kind": "KubeletConfiguration", "rootDir": str(other)}, indent=2))
    kubelet = world.start_fake_kubelet("--config", str(config))
    endpoint, registrar = start(world, world.kubelet_registry)
    watched = other / "plugins_registry"
    expected = (f"the running kubelet (pid {kubelet.pid}, root directory {other} (from rootDir in {config})) watches "
                f"{watched}, not {world.kubelet_registry}: it will never see the registration socket this registrar "
                f"serves in {world.kubelet_registry} (--plugin-registration-path); "
                f"expected --plugin-registration-path={watched}")
    registrar.wait_log(expected)
    assert any(expected in w for w in warnings(registrar)), registrar.log()

    # inspect: the directory the registrar serves in is not watched, so nothing in it registers.
    rc, report = world.inspect(world.kubelet_registry)
    assert rc == 1, report
    assert report["watchedByKubelet"] is False
    assert f"watches {watched}, not {world.kubelet_registry}" in report["verdict"]
    assert [e["registers"] for e in report["entries"]] == [False]
    text = world.inspect_text(world.kubelet_registry)
    assert "verdict:         NOT watched by the kubelet" in text, text
    # The directory the kubelet does watch is empty, and watched.
    rc, report = world.inspect(watched)
    assert rc == 0 and report["watchedByKubelet"] is True and report["entries"] == []


def test_registration_path_the_kubelet_cannot_reach(world):
    world.start_fake_kubelet(f"--root-dir={world.kubelet}")
    unreachable = world.base / "nowhere" / "csi.sock"
    endpoint, registrar = start(world, world.kubelet_registry, registration_path=unreachable)
    registrar.wait_log(f"--kubelet-registration-path {unreachable} is not reachable by the kubelet")
    assert any(f"cannot reach {unreachable}" in w for w in warnings(registrar)), registrar.log()
    rc, report = world.inspect(world.kubelet_registry)
    assert rc == 1
    [entry] = report["entries"]
    # inspect, in the kubelet's file system here, finds nothing at the endpoint either.
    assert entry["registers"] is False and f"{unreachable} does not exist" in entry["reason"], entry


def test_without_a_kubelet_nothing_is_claimed(world):
    endpoint, registrar = start(world, world.kubelet_registry)
    registrar.wait_log("no running kubelet found in /proc")
    rc, report = world.inspect(world.kubelet_registry)
    assert report["kubelets"] == [] and report["watchedByKubelet"] is None
