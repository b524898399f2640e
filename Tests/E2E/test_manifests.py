"""Consistency checks of deploy/: every manifest parses, socket paths agree between
the driver, the registrar, the sidecars, the volume mounts and the systemd units, and
every flag given to this project's binaries is one they define."""

import os
import pathlib
import re
import shlex
import shutil
import subprocess

import copy

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
SYSTEMD = DEPLOY / "systemd"

DRIVER_NAME = "lvm.csi.swift-csi.io"
KUBELET_DIR = "/var/lib/kubelet"

# The flags of this project's binaries, in one place. Long names without dashes; a
# single letter is a short option. Compared with `--help` of the built binaries below.
OUR_FLAGS = {
    "csi-lvm-driver": {
        "endpoint", "driver-name", "node-id", "volume-group", "vg-pattern", "thin-pool",
        "overprovision-ratio", "topology-key", "max-volumes-per-node", "mode", "kubelet-dir",
        "backend", "loopfile-dir", "socket-mode", "shutdown-grace", "log-level", "v", "lvm-scan-device",
        "logging-format", "metrics-address", "luks-pbkdf-memory", "luks-iter-time", "state-dir", "cgroup-root",
    },
    "node-driver-registrar": {
        # upstream v2.17 compatible
        "csi-address", "kubelet-registration-path", "plugin-registration-path", "timeout",
        "http-endpoint", "health-port", "mode", "connection-timeout", "v", "logging-format",
        # this project's own
        "kubelet-registry-link-dir", "registration-ack-timeout",
    },
}
OUR_IMAGES = {"swift-csi/csi-lvm-driver": "csi-lvm-driver", "swift-csi/node-driver-registrar": "node-driver-registrar"}


def flag_names(args):
    """Names of the flags in an argument list: --name=value, --name value, -v."""
    out = []
    for a in args:
        m = re.match(r"^--([A-Za-z0-9][A-Za-z0-9-]*)(=.*)?$", a)
        if m:
            out.append(m.group(1))
            continue
        m = re.match(r"^-([A-Za-z])(=.*)?$", a)
        if m:
            out.append(m.group(1))
    return out


def flag_value(args, name):
    for i, a in enumerate(args):
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
        if a == f"--{name}" and i + 1 < len(args) and not args[i + 1].startswith("-"):
            return args[i + 1]
    return None


def unix_path(address):
    return address[len("unix://"):] if address.startswith("unix://") else address


# --- Kubernetes ---------------------------------------------------------------------

def load_k8s():
    docs = []
    for f in sorted(K8S.glob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text()):
            if d is not None:
                docs.append((f.name, d))
    return docs


@pytest.fixture(scope="module")
def k8s():
    docs = load_k8s()
    assert docs, "no manifests under deploy/kubernetes"
    return docs


def by_kind(docs, kind):
    return [d for _, d in docs if d.get("kind") == kind]


@pytest.fixture(scope="module")
def pod(k8s):
    (ds,) = by_kind(k8s, "DaemonSet")
    return ds["spec"]["template"]["spec"]


def container(pod, name):
    for c in pod["containers"]:
        if c["name"] == name:
            return c
    raise AssertionError(f"DaemonSet has no container {name}")


def host_path_of(pod, c, path):
    """The host path behind `path` inside container c, through its hostPath mounts."""
    volumes = {v["name"]: v for v in pod["volumes"]}
    best = None
    for m in c.get("volumeMounts", []):
        mp = m["mountPath"].rstrip("/")
        if path == mp or path.startswith(mp + "/"):
            if best is None or len(mp) > len(best[0]):
                best = (mp, m)
    assert best is not None, f"{path} in container {c['name']} is on no volume mount"
    mp, m = best
    vol = volumes[m["name"]]
    assert "hostPath" in vol, f"volume {m['name']} of {c['name']} is not a hostPath"
    return vol["hostPath"]["path"].rstrip("/") + path[len(mp):]


def test_every_manifest_parses_and_has_kind(k8s):
    for name, d in k8s:
        assert "apiVersion" in d and "kind" in d, name


# The Kubernetes versions whose OpenAPI schemas every manifest must satisfy, offline (PyPI's
# kubernetes-validate carries them): the oldest it ships and the newest.
SCHEMA_VERSIONS = sorted({all_versions()[0], kubernetes_validate.latest_version()})


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_manifests_match_the_official_schemas(k8s, version):
    """Every document, strictly: unknown fields, wrong types and missing required fields all fail."""
    failures = []
    for name, d in k8s:
        try:
            kubernetes_validate.validate(d, version, strict=True)
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as e:
            failures.append(f"{name} {d.get('kind')}/{d.get('metadata', {}).get('name')}: {e}")
    assert not failures, f"against Kubernetes {version}:\n" + "\n".join(failures)


def test_schema_validation_catches_mistakes(k8s):
    """The check above can fail: a misspelled field and a wrong type in the DaemonSet are refused."""
    (ds,) = by_kind(k8s, "DaemonSet")
    version = kubernetes_validate.latest_version()
    misspelled = copy.deepcopy(ds)
    misspelled["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelled, version, strict=True)
    wrong_type = copy.deepcopy(ds)
    wrong_type["spec"]["template"]["spec"]["containers"][0]["args"] = "--v=5"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, version, strict=True)


def test_csidriver(k8s):
    (drv,) = by_kind(k8s, "CSIDriver")
    assert drv["metadata"]["name"] == DRIVER_NAME
    spec = drv["spec"]
    assert spec["attachRequired"] is False
    assert spec["podInfoOnMount"] is True
    assert spec["volumeLifecycleModes"] == ["Persistent"]
    assert spec["storageCapacity"] is True


def test_storageclass(k8s):
    (sc,) = by_kind(k8s, "StorageClass")
    assert sc["provisioner"] == DRIVER_NAME
    assert sc["volumeBindingMode"] == "WaitForFirstConsumer"
    assert sc["allowVolumeExpansion"] is True
    params = sc["parameters"]
    assert params["csi.storage.k8s.io/fstype"] in ("ext4", "xfs")
    # Keys the LVM backend accepts (others it rejects).
    for key in params:
        assert key.startswith("csi.storage.k8s.io/") or key in ("volumeGroup", "vgPattern", "thinPool"), key


def test_socket_paths_agree(pod):
    driver = container(pod, "csi-lvm-driver")
    registrar = container(pod, "node-driver-registrar")
    endpoint = unix_path(flag_value(driver["args"], "endpoint"))
    host_sock = host_path_of(pod, driver, endpoint)
    assert host_sock == f"{KUBELET_DIR}/plugins/{DRIVER_NAME}/csi.sock"
    assert flag_value(driver["args"], "driver-name") == DRIVER_NAME

    # The registrar dials the same socket and tells the kubelet its host path.
    csi_address = unix_path(flag_value(registrar["args"], "csi-address"))
    assert host_path_of(pod, registrar, csi_address) == host_sock
    assert flag_value(registrar["args"], "kubelet-registration-path") == host_sock
    reg_dir = flag_value(registrar["args"], "plugin-registration-path")
    assert host_path_of(pod, registrar, reg_dir) == f"{KUBELET_DIR}/plugins_registry"

    # Every sidecar talks to that socket too.
    for c in pod["containers"]:
        if c["name"] in ("csi-lvm-driver", "node-driver-registrar"):
            continue
        addr = flag_value(c["args"], "csi-address")
        assert addr, f"{c['name']} has no --csi-address"
        assert host_path_of(pod, c, unix_path(addr)) == host_sock, c["name"]


def test_driver_sees_kubelet_paths_with_bidirectional_propagation(pod):
    driver = container(pod, "csi-lvm-driver")
    kubelet_dir = flag_value(driver["args"], "kubelet-dir")
    assert host_path_of(pod, driver, kubelet_dir) == KUBELET_DIR
    mount = next(m for m in driver["volumeMounts"] if m["mountPath"].rstrip("/") == kubelet_dir.rstrip("/"))
    assert mount.get("mountPropagation") == "Bidirectional"
    assert driver["securityContext"]["privileged"] is True


def test_our_containers_use_only_known_flags(pod):
    for c in pod["containers"]:
        image = c["image"].rsplit(":", 1)[0]
        if image not in OUR_IMAGES:
            continue
        binary = OUR_IMAGES[image]
        for name in flag_names(c["args"]):
            assert name in OUR_FLAGS[binary], f"{c['name']}: --{name} is not a flag of {binary}"


def test_sidecar_modes(pod):
    prov = container(pod, "csi-provisioner")["args"]
    assert flag_value(prov, "node-deployment") == "true"
    assert flag_value(prov, "enable-capacity") == "true"
    assert flag_value(prov, "capacity-ownerref-level") == "1", "a DaemonSet owns the capacity objects"
    env = {e["name"] for e in container(pod, "csi-provisioner")["env"]}
    assert {"NODE_NAME", "POD_NAME", "NAMESPACE"} <= env
    snap = container(pod, "csi-snapshotter")
    assert flag_value(snap["args"], "node-deployment") == "true"
    assert "NODE_NAME" in {e["name"] for e in snap["env"]}
    # Without a node mode, the resizer must elect a single leader.
    assert flag_value(container(pod, "csi-resizer")["args"], "leader-election") == "true"


def test_ports_unique_and_probes_resolve(pod):
    ports = {}
    for c in pod["containers"]:
        for p in c.get("ports", []):
            assert p["containerPort"] not in ports.values(), f"port {p['containerPort']} used twice"
            ports[p["name"]] = p["containerPort"]
    for c in pod["containers"]:
        probe = c.get("livenessProbe")
        if probe:
            port = probe["httpGet"]["port"]
            assert port in ports or port in ports.values(), f"{c['name']}: probe port {port} is declared nowhere"
    # The livenessprobe sidecar serves the driver's health port.
    lp = container(pod, "liveness-probe")["args"]
    assert flag_value(lp, "http-endpoint").rsplit(":", 1)[1] == str(ports["healthz"])
    reg = container(pod, "node-driver-registrar")["args"]
    assert flag_value(reg, "http-endpoint").rsplit(":", 1)[1] == str(ports["registrar-hz"])


# --- the images (deploy/images, `make images`) -------------------------------------------

IMAGES = DEPLOY / "images"


def containerfile(name):
    """(base image, packages apt installs, COPY lines, ENTRYPOINT) of deploy/images/NAME.Containerfile."""
    text = (IMAGES / f"{name}.Containerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    base = next(line.split()[1] for line in lines if line.startswith("FROM "))
    packages = set()
    for line in lines:
        m = re.search(r"apt-get install (.*?)(&&|$)", line)
        if m:
            packages |= {w for w in m.group(1).split() if not w.startswith("-")}
    copies = [line.split()[1:] for line in lines if line.startswith("COPY ")]
    entry = next(line for line in lines if line.startswith("ENTRYPOINT "))
    return base, packages, copies, entry


def makefile_variable(name):
    m = re.search(rf"^{name} \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert m, f"Makefile sets no {name}"
    return m.group(1)


def owning_package(pattern):
    """The Debian package that holds a file matching `pattern` on this machine (dpkg -S), or None."""
    r = subprocess.run(["dpkg", "-S", pattern], capture_output=True, text=True)
    return r.stdout.split(":")[0].strip() if r.returncode == 0 and r.stdout else None


def test_daemonset_images_are_what_make_images_tags(pod):
    version = makefile_variable("IMAGE_VERSION")
    for name in ("csi-lvm-driver", "node-driver-registrar"):
        assert container(pod, name)["image"] == f"swift-csi/{name}:{version}"
        assert (IMAGES / f"{name}.Containerfile").is_file()


def test_registrar_image_holds_only_the_static_binary():
    base, packages, copies, entry = containerfile("node-driver-registrar")
    assert base == "scratch" and not packages
    assert copies == [["node-driver-registrar", "/node-driver-registrar"]]
    assert '"/node-driver-registrar"' in entry


def test_driver_image_has_what_the_driver_runs_and_loads():
    base, packages, copies, entry = containerfile("csi-lvm-driver")
    assert base == "debian:bookworm-slim"  # glibc 2.36, what the release binary is built against
    assert copies == [["csi-lvm-driver", "/usr/bin/csi-lvm-driver"]] and '"/usr/bin/csi-lvm-driver"' in entry
    sources = "\n".join(p.read_text() for p in (ROOT / "Sources").rglob("*.swift"))
    programs = set(re.findall(r"run(?:Program|Checked)\(\s*\"([\w.+-]+)\"", sources))
    assert {"mkfs.ext4", "mkfs.xfs", "resize2fs", "xfs_growfs", "blkid", "cryptsetup"} <= programs, programs
    shim = (ROOT / "Sources" / "CLVM2Cmd" / "shim.h").read_text()
    libraries = set(re.findall(r'dlopen\("(lib[\w.+-]+\.so\.[\d.]+)"', shim)) | {"libnghttp2.so.14", "libz.so.1"}
    assert "liblvm2cmd.so.2.03" in libraries
    missing = []
    for what, pattern in [(p, f"*bin/{p}") for p in sorted(programs)] + [(l, f"*/{l}") for l in sorted(libraries)]:
        package = owning_package(pattern)
        assert package, f"no Debian package on this machine holds {what} (scripts/install-deps.sh installs them)"
        if package not in packages:
            missing.append(f"{what} ({package})")
    assert not missing, f"deploy/images/csi-lvm-driver.Containerfile installs none of: {', '.join(missing)}"


def test_rbac_covers_the_sidecars(k8s, pod):
    (ds,) = by_kind(k8s, "DaemonSet")
    sa = pod["serviceAccountName"]
    ns = ds["metadata"]["namespace"]
    assert any(d["metadata"]["name"] == sa and d["metadata"]["namespace"] == ns for d in by_kind(k8s, "ServiceAccount"))
    rules = []
    roles = {(d["kind"], d["metadata"]["name"]): d for d in by_kind(k8s, "ClusterRole") + by_kind(k8s, "Role")}
    for b in by_kind(k8s, "ClusterRoleBinding") + by_kind(k8s, "RoleBinding"):
        if any(s["kind"] == "ServiceAccount" and s["name"] == sa and s["namespace"] == ns for s in b["subjects"]):
            rules += roles[(b["roleRef"]["kind"], b["roleRef"]["name"])]["rules"]

    def allowed(group, resource, verb):
        return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules)

    for group, resource, verb in [
        ("", "persistentvolumes", "create"), ("", "persistentvolumes", "delete"),
        ("", "persistentvolumeclaims", "update"), ("storage.k8s.io", "storageclasses", "watch"),
        ("storage.k8s.io", "csistoragecapacities", "create"), ("apps", "daemonsets", "get"),
        ("", "persistentvolumeclaims/status", "patch"), ("coordination.k8s.io", "leases", "update"),
        ("snapshot.storage.k8s.io", "volumesnapshotcontents/status", "update"), ("", "events", "create"),
    ]:
        assert allowed(group, resource, verb), f"no rule lets {sa} {verb} {group or 'core'}/{resource}"


# --- systemd ------------------------------------------------------------------------

def parse_env_file(path):
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        k, v = line.split("=", 1)
        env[k] = v
    return env


def parse_unit(path):
    """Sections to lists of (key, value), joining backslash continuations."""
    sections = {}
    cur = None
    pending = ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            cur = sections.setdefault(line.strip("[]"), [])
            continue
        k, v = line.split("=", 1)
        cur.append((k.strip(), v.strip()))
    return sections


def expand_exec(cmd, env):
    """systemd's rules: ${VAR} keeps one word, $VAR alone splits on whitespace."""
    words = []
    for w in shlex.split(cmd.lstrip("+-@:!")):
        m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", w)
        if m:
            words += env.get(m.group(1), "").split()
            continue
        words.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), w))
    return words


@pytest.fixture(scope="module")
def units():
    env = parse_env_file(SYSTEMD / "swift-csi.env")
    out = {}
    for name in ("csi-lvm-driver", "node-driver-registrar"):
        unit = parse_unit(SYSTEMD / f"{name}.service")
        service = dict(unit["Service"])
        assert service["EnvironmentFile"].lstrip("-") == "/etc/default/swift-csi"
        out[name] = (unit, expand_exec(service["ExecStart"], env))
    return env, out


def test_systemd_custom_directories(units):
    env, u = units
    assert env["CSI_PLUGIN_DIR"] == "/vdata/storage/plugins"
    assert env["CSI_REGISTRY_DIR"] == "/vdata/storage/plugins_registry"
    assert env["KUBELET_REGISTRY_DIR"] == "/var/lib/kubelet/plugins_registry"
    assert env["CSI_DRIVER_NAME"] == DRIVER_NAME


def test_systemd_paths_agree(units):
    env, u = units
    driver = u["csi-lvm-driver"][1]
    registrar = u["node-driver-registrar"][1]
    sock = unix_path(flag_value(driver, "endpoint"))
    assert sock == f"/vdata/storage/plugins/{DRIVER_NAME}/csi.sock"
    assert flag_value(driver, "driver-name") == DRIVER_NAME
    assert unix_path(flag_value(registrar, "csi-address")) == sock
    # No container in between: the kubelet dials the very same path.
    assert flag_value(registrar, "kubelet-registration-path") == sock
    assert flag_value(registrar, "plugin-registration-path") == "/vdata/storage/plugins_registry"
    assert flag_value(registrar, "kubelet-registry-link-dir") == "/var/lib/kubelet/plugins_registry"


def test_systemd_flags_known(units):
    _, u = units
    for binary, (_, argv) in u.items():
        assert pathlib.Path(argv[0]).name == binary
        for name in flag_names(argv[1:]):
            assert name in OUR_FLAGS[binary], f"{binary}.service: --{name} is not a flag of {binary}"


def test_systemd_ordering_and_restart(units):
    _, u = units
    reg_unit = dict(u["node-driver-registrar"][0]["Unit"])
    assert "csi-lvm-driver.service" in reg_unit["After"].split()
    assert "csi-lvm-driver.service" in reg_unit["Wants"].split()
    assert "Requires" not in reg_unit and "BindsTo" not in reg_unit, "the registrar must also start alone"
    for binary, (unit, _) in u.items():
        assert dict(unit["Service"])["Restart"] == "on-failure", binary


def test_driver_unit_keeps_host_mount_namespace(units):
    _, u = units
    keys = {k for k, _ in u["csi-lvm-driver"][0]["Service"]}
    namespacing = {"PrivateTmp", "PrivateDevices", "PrivateMounts", "ProtectSystem", "ProtectHome",
                   "ReadOnlyPaths", "ReadWritePaths", "InaccessiblePaths", "TemporaryFileSystem",
                   "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
                   "ProtectControlGroups", "ProtectProc", "BindPaths", "BindReadOnlyPaths",
                   "RootDirectory", "RootImage", "MountAPIVFS"}
    assert not keys & namespacing, f"mounts would stay invisible to the kubelet: {keys & namespacing}"
    caps = dict(u["csi-lvm-driver"][0]["Service"])["CapabilityBoundingSet"].split()
    assert "CAP_SYS_ADMIN" in caps
    assert dict(u["csi-lvm-driver"][0]["Service"])["NoNewPrivileges"] == "yes"


def test_systemd_analyze_verify(tmp_path):
    """Syntax check with systemd-analyze; missing binaries are expected here."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed")
    env = tmp_path / "swift-csi.env"
    shutil.copy(SYSTEMD / "swift-csi.env", env)
    for name in ("csi-lvm-driver.service", "node-driver-registrar.service"):
        (tmp_path / name).write_text((SYSTEMD / name).read_text().replace("/etc/default/swift-csi", str(env)))
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no",
                           str(tmp_path / "csi-lvm-driver.service"), str(tmp_path / "node-driver-registrar.service")],
                          capture_output=True, text=True, timeout=60)
    problems = [line for line in (proc.stdout + proc.stderr).splitlines()
                if line.strip() and "is not executable" not in line and "Failed to prepare filename" not in line]
    assert not problems, "\n".join(problems)


# --- the built binaries -------------------------------------------------------------

def help_flags(binary):
    """Long flags named in `--help` of a built binary, or None when it is not built or
    does not answer with a flag list yet."""
    candidates = [ROOT / ".build" / "debug" / binary, ROOT / ".build" / "release" / binary]
    exe = next((c for c in candidates if c.exists() and os.access(c, os.X_OK)), None)
    if exe is None:
        return None
    texts = []
    for argv in ([str(exe), "--help"], [str(exe), "help", "serve"]):
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        texts.append(proc.stdout + proc.stderr)
    found = set()
    for t in texts:
        found |= set(re.findall(r"(?<![\w-])--([a-z][a-z0-9-]+)", t))
        found |= set(re.findall(r"(?<![\w-])-([a-zA-Z])\b[ ,]", t))
    found.discard("help")
    return found or None


@pytest.mark.parametrize("binary", sorted(OUR_FLAGS))
def test_flag_list_matches_binary_help(binary):
    found = help_flags(binary)
    if found is None:
        pytest.skip(f"{binary} is not built (.build/debug/{binary}) or prints no flag list; "
                    "flags checked against OUR_FLAGS only")
    used = set()
    for _, d in load_k8s():
        if d.get("kind") == "DaemonSet":
            for c in d["spec"]["template"]["spec"]["containers"]:
                if OUR_IMAGES.get(c["image"].rsplit(":", 1)[0]) == binary:
                    used |= set(flag_names(c["args"]))
    env = parse_env_file(SYSTEMD / "swift-csi.env")
    service = dict(parse_unit(SYSTEMD / f"{binary}.service")["Service"])
    used |= set(flag_names(expand_exec(service["ExecStart"], env)[1:]))
    missing_in_binary = {f for f in used if f not in found}
    assert not missing_in_binary, f"{binary} --help does not list flags the manifests use: {sorted(missing_in_binary)}"
    long_flags = {f for f in found if len(f) > 1 and f != "version"}
    assert long_flags <= OUR_FLAGS[binary] | {"version", "help"}, \
        f"OUR_FLAGS[{binary!r}] lacks flags the binary has: {sorted(long_flags - OUR_FLAGS[binary])}"
