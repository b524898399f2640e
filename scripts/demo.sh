#!/usr/bin/env bash
# The main job: the seed's registration story on one machine, end to end, then a volume's life.
#
#   driver (csi-lvm-driver)  ->  /vdata-like custom plugins dir  (csi.sock)
#   registrar                ->  custom plugins_registry (<driver>-reg.sock), linked into the kubelet's registry
#   kubelet stand-in         ->  watches the kubelet's plugins_registry, writes CSINode + Node annotation as JSON
#
# Everything lives in a temporary workspace and is removed on exit, also on Ctrl-C or SIGTERM: processes
# are stopped, mounts under the workspace unmounted, loop devices detached, the volume group removed.
# Needs root (mounts, loop devices) on Debian; installs what it needs first.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DRIVER=${DEMO_DRIVER_NAME:-lvm.csi.swift-csi.io}
NODE=${DEMO_NODE_ID:-node0}
TOPOLOGY_KEY=openebs.io/nodename
PY=${PYTHON:-python3}

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
note() { printf '   %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
    echo "demo: run as root (it mounts file systems and attaches loop devices)" >&2
    exit 1
fi

WS=""
PIDS=()
LOOPS=()
VG=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -n "$WS" ] || exit $rc
    bold "Cleaning up $WS"
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    # Unmount deepest first anything under the workspace.
    if [ -d "$WS" ]; then
        awk -v ws="$WS" '$2 ~ "^"ws {print $2}' /proc/self/mounts | sort -r | while read -r m; do
            umount -l "$m" 2>/dev/null && note "unmounted $m"
        done
    fi
    if [ -n "$VG" ]; then
        vgremove -f "$VG" >/dev/null 2>&1 && note "removed volume group $VG" || true
    fi
    for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null && note "detached $l" || true; done
    # Loop devices the driver attached to files in the workspace.
    losetup -nO NAME,BACK-FILE 2>/dev/null | awk -v ws="$WS" 'index($2, ws) == 1 {print $1}' | while read -r l; do
        losetup -d "$l" 2>/dev/null && note "detached $l" || true
    done
    rm -rf "$WS"
    note "removed $WS"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bold "Installing dependencies and building (${DEMO_CONFIGURATION:-release})"
bash scripts/install-deps.sh
CONFIG=${DEMO_CONFIGURATION:-release}
build() {
    local product
    for product in csi-lvm-driver node-driver-registrar; do
        # Release binaries carry the Swift runtime (--static-swift-stdlib): ~1.5 MiB less RSS each.
        swift build -c "$1" $([ "$1" = release ] && echo --static-swift-stdlib) --product "$product" >"$BUILD_LOG" 2>&1 || return 1
        note "$(tail -n 1 "$BUILD_LOG")"
    done
}
BUILD_LOG=$(mktemp /tmp/swift-csi-demo-build-XXXXXX.log)
if ! build "$CONFIG"; then
    grep -E "error|While" "$BUILD_LOG" | head -n 5 | sed 's/^/   /'
    if [ "$CONFIG" = release ]; then
        note "the $CONFIG build failed (above); falling back to a debug build so the demo still runs"
        CONFIG=debug
        build debug || { tail -n 20 "$BUILD_LOG"; rm -f "$BUILD_LOG"; exit 1; }
    else
        rm -f "$BUILD_LOG"; exit 1
    fi
fi
rm -f "$BUILD_LOG"
BIN=$(swift build -c "$CONFIG" --show-bin-path)

WS=$(mktemp -d /tmp/swift-csi-demo-XXXXXX)
KUBELET=$WS/var/lib/kubelet
VDATA=$WS/vdata/storage
mkdir -p "$KUBELET/plugins_registry" "$KUBELET/plugins" "$VDATA/plugins" "$VDATA/plugins_registry" "$WS/state" "$WS/logs"
ENDPOINT=$VDATA/plugins/$DRIVER/csi.sock

bold "Storage"
BACKEND_FLAGS=()
if dmsetup version >/dev/null 2>&1; then
    VG=swiftcsi-demo-$(basename "$WS" | tr -dc 'a-zA-Z0-9' | tail -c 6)
    truncate -s 2G "$WS/pv.img"
    LOOP=$(losetup -f --show "$WS/pv.img"); LOOPS+=("$LOOP")
    pvcreate -q "$LOOP" >/dev/null
    vgcreate -q "$VG" "$LOOP" >/dev/null
    note "LVM: volume group $VG on $LOOP (2 GiB sparse file)"
    BACKEND_FLAGS=(--backend=lvm "--volume-group=$VG" "--lvm-scan-device=$LOOP")
else
    mkdir -p "$WS/loopfiles"
    note "device-mapper is not available in this kernel, so LVM cannot give a device node;"
    note "using the loop-file backend: sparse files in $WS/loopfiles on loop devices"
    BACKEND_FLAGS=(--backend=loopfile "--loopfile-dir=$WS/loopfiles")
fi

bold "Starting the driver, the registrar (custom directories + link flag) and the kubelet stand-in"
"$PY" Tests/E2E/kubelet_sim.py --registry-dir "$KUBELET/plugins_registry" --state-dir "$WS/state" \
    --node-name "$NODE" --loop-period 0.2 >"$WS/logs/kubelet.log" 2>&1 &
PIDS+=($!)
note "kubelet stand-in   pid $!  watching $KUBELET/plugins_registry"
HEALTH_PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN/node-driver-registrar" --csi-address="$ENDPOINT" --kubelet-registration-path="$ENDPOINT" \
    --plugin-registration-path="$VDATA/plugins_registry" --kubelet-registry-link-dir="$KUBELET/plugins_registry" \
    --http-endpoint="127.0.0.1:$HEALTH_PORT" >"$WS/logs/registrar.log" 2>&1 &
PIDS+=($!)
note "registrar          pid $!  (started before the driver: it waits instead of crash-looping)"
sleep 0.5
"$BIN/csi-lvm-driver" --endpoint="unix://$ENDPOINT" --driver-name="$DRIVER" --node-id="$NODE" \
    --topology-key="$TOPOLOGY_KEY" --kubelet-dir="$KUBELET" "${BACKEND_FLAGS[@]}" >"$WS/logs/driver.log" 2>&1 &
PIDS+=($!)
note "driver             pid $!  serving $ENDPOINT"

registered() {
    "$PY" - "$WS/state" "$DRIVER" <<'PY'
import json, sys, pathlib
state, name = pathlib.Path(sys.argv[1]), sys.argv[2]
try:
    node = json.loads((state / "node.json").read_text())
except Exception:
    sys.exit(1)
ids = json.loads(node["metadata"]["annotations"].get("csi.volume.kubernetes.io/nodeid", "{}"))
sys.exit(0 if name in ids else 1)
PY
}
for _ in $(seq 100); do registered && break; sleep 0.1; done
if ! registered; then
    echo "demo: the driver did not register within 10 s; logs:" >&2
    tail -n 20 "$WS"/logs/*.log >&2
    exit 1
fi

bold "Registration"
note "registrar log:"
grep -E "waiting for driver socket|CSI driver name|Registration Server started|linked|Received GetInfo|Received NotifyRegistrationStatus" \
    "$WS/logs/registrar.log" | sed 's/^/     /'
note "kubelet log:"
grep -E "Trying to validate|Register new plugin" "$WS/logs/kubelet.log" | sed 's/^/     /'
note "CSINode spec.drivers[] and the Node annotation, as the kubelet wrote them:"
"$PY" - "$WS/state" <<'PY'
import json, sys, pathlib
state = pathlib.Path(sys.argv[1])
csinode = json.loads((state / "csinode.json").read_text())
node = json.loads((state / "node.json").read_text())
for d in csinode["spec"]["drivers"]:
    print("     CSINode spec.drivers[]: " + json.dumps(d, sort_keys=True))
ann = node["metadata"]["annotations"]
print("     Node annotation csi.volume.kubernetes.io/nodeid: '" + ann["csi.volume.kubernetes.io/nodeid"] + "'")
print("     Node labels: " + json.dumps(node["metadata"]["labels"], sort_keys=True))
PY
note "/healthz: $(curl -s "http://127.0.0.1:$HEALTH_PORT/healthz" 2>/dev/null || "$PY" -c "import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1]).read().decode().strip())" "http://127.0.0.1:$HEALTH_PORT/healthz")"

bold "A volume's life through $ENDPOINT"
"$PY" scripts/demo_volume.py --endpoint "$ENDPOINT" --kubelet-dir "$KUBELET" --driver-name "$DRIVER"

bold "node-driver-registrar inspect --registry-dir $KUBELET/plugins_registry"
"$BIN/node-driver-registrar" inspect --registry-dir "$KUBELET/plugins_registry" | sed 's/^/   /'

bold "Stopping the registrar (SIGTERM): socket and link removed, the kubelet deregisters the driver"
kill -TERM "${PIDS[1]}"
wait "${PIDS[1]}" && note "registrar exited 0" || note "registrar exited $?"
for _ in $(seq 50); do registered || break; sleep 0.1; done
registered && note "still registered (unexpected)" || note "CSINode entry and annotation removed"
grep -E "removed link|removed registration socket" "$WS/logs/registrar.log" | sed 's/^/     /'
grep -E "DeRegisterPlugin" "$WS/logs/kubelet.log" | sed 's/^/     /'

bold "Done"
