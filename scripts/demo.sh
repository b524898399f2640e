#!/usr/bin/env bash
# The main job: the registration story on one machine, end to end, then a real volume's life.
#
#   driver (csi-lvm-driver)  ->  /vdata-like custom plugins dir  (csi.sock)
#   registrar                ->  custom plugins_registry (<driver>-reg.sock), linked into the kubelet's registry
#   kubelet stand-in         ->  watches the kubelet's plugins_registry, writes CSINode + Node annotation as JSON
#
# Then, through the driver's socket (grpcio, scripts/demo_volume.py): a volume group and a thin pool,
# GetCapacity, a thin volume formatted, mounted, written, snapshotted, restored from the snapshot,
# grown online, unmounted and deleted, with `lvs` as the witness.
#
#   scripts/demo.sh             LVM: on this machine when its kernel has device-mapper (the volume group
#                               on a loop device), else in Tests/VM/vm (Debian's kernel under qemu, this
#                               machine's root read-only, the volume group on the VM's disk /dev/vda);
#                               the loop-file story when the VM cannot run either
#   scripts/demo.sh --loopfile  the loop-file backend (sparse files on loop devices), no LVM
#   scripts/demo.sh --in-vm     the LVM story inside the VM (what the first form boots)
#
# The binaries are built here (DEMO_CONFIGURATION, default release) before a VM boots: the guest runs
# them from this machine's .build. Everything lives in a temporary workspace and is removed on exit,
# also on Ctrl-C or SIGTERM: processes are stopped, mounts under the workspace unmounted, the volume
# group removed, loop devices detached. Needs root on Debian; installs what it needs first.
# DEMO_VM_CPUS (default 2) and DEMO_VM_BOOT_WAIT (seconds without a word from the guest before the VM
# counts as unable to run, default 180) tune the VM; the guest has no udev, so LVM's tools are told
# not to wait for it, as the driver tells itself.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DRIVER=${DEMO_DRIVER_NAME:-lvm.csi.swift-csi.io}
NODE=${DEMO_NODE_ID:-node0}
TOPOLOGY_KEY=openebs.io/nodename
# The interpreter itself, not a version manager's shim: each start of a shim costs seconds in the VM.
PY=$("${PYTHON:-python3}" -c 'import sys; print(sys.executable)')
export PYTHON=$PY
MODE=auto
for arg in "$@"; do
    case $arg in
        --loopfile) MODE=loopfile ;;
        --in-vm) MODE=in-vm ;;
        -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "demo: unknown argument $arg (see --help)" >&2; exit 2 ;;
    esac
done

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
note() { printf '   %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
    echo "demo: run as root (it mounts file systems and makes volume groups and loop devices)" >&2
    exit 1
fi

# --- progress ---------------------------------------------------------------------------------
# follow LABEL [DIR]: passes a long command's output on as progress. `[N/M] …` lines (swift build)
# become one line updated in place on a terminal, and elsewhere a line at most every 5 s; while the
# command is silent, the elapsed time (and DIR's size) is shown at least every 15 s. Other lines are
# printed as they come, except in build mode (FOLLOW_BUILD=1), where only SwiftPM's waiting notice
# is. Everything goes to FOLLOW_LOG when set.
follow() {
    local label=$1 dir=${2:-} tty=0 line="" part="" current="" shown=$SECONDS changed=0 start=$SECONDS cols=100 status
    [ -t 1 ] && tty=1 && cols=$(tput cols 2>/dev/null || echo 100)
    show() {  # $1: force a line in non-terminal mode
        local text="$label: ${current:-working}" extra=" ($((SECONDS - start)) s"
        [ -n "$dir" ] && [ -e "$dir" ] && extra+=", $(du -sm "$dir" 2>/dev/null | cut -f1) MiB in ${dir#"$ROOT"/}"
        text+="$extra)"
        if [ $tty = 1 ]; then
            printf '\r\033[K   %s' "${text:0:$((cols - 4))}"
        elif [ "$1" = 1 ]; then
            printf '   %s\n' "$text"; shown=$SECONDS; changed=0
        fi
    }
    clear_line() { [ $tty = 1 ] && printf '\r\033[K' || true; }
    while :; do
        IFS= read -r -t 1 line && status=0 || status=$?
        if [ $status -gt 128 ]; then  # a second without a whole line: keep what came, show the time
            part+=$line
            # SwiftPM says it waits for another build's lock without ending the line.
            if [[ $part == *"Another instance of SwiftPM"*"execution..." ]]; then
                clear_line; printf '   %s\n' "$part"; part=""; current="waiting for the other build"
            fi
            if [ $tty = 1 ]; then show 0
            elif [ $changed = 1 ] && [ $((SECONDS - shown)) -ge 5 ]; then show 1
            elif [ $((SECONDS - shown)) -ge 15 ]; then show 1; fi
            continue
        fi
        [ $status = 0 ] || [ -n "$part$line" ] || break
        line=$part$line; part=""
        [ -n "${FOLLOW_LOG:-}" ] && printf '%s\n' "$line" >>"$FOLLOW_LOG"
        if [[ $line =~ ^\[[0-9]+/[0-9]+\]\  ]]; then
            current=$line; changed=1
            if [ $tty = 1 ]; then show 0; elif [ $((SECONDS - shown)) -ge 5 ]; then show 1; fi
        elif [ "${FOLLOW_BUILD:-0}" != 1 ] || [[ $line == *"Another instance of SwiftPM"* ]]; then
            clear_line; printf '   %s\n' "$line"; [ $tty = 1 ] && show 0
        fi
        [ $status = 0 ] || break
    done
    clear_line
}

# --- build ------------------------------------------------------------------------------------
CONFIG=${DEMO_CONFIGURATION:-release}
build() {
    local product
    for product in csi-lvm-driver node-driver-registrar; do
        : >"$BUILD_LOG"
        # Release binaries are built as they ship (scripts/build-release.sh).
        if [ "$1" = release ]; then bash scripts/build-release.sh --product "$product"
        else swift build -c "$1" --product "$product"; fi 2>&1 \
            | FOLLOW_BUILD=1 FOLLOW_LOG=$BUILD_LOG follow "build $product"
        [ "${PIPESTATUS[0]}" = 0 ] || return 1
        note "$(tail -n 1 "$BUILD_LOG")"
    done
}

build_binaries() {
    bold "Installing dependencies and building ($CONFIG)"
    bash scripts/install-deps.sh
    BUILD_LOG=$(mktemp /tmp/swift-csi-demo-build-XXXXXX.log)
    trap 'rm -f "$BUILD_LOG"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
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
    trap - EXIT INT TERM
    BIN=$(swift build -c "$CONFIG" --show-bin-path)
}

device_mapper() { dmsetup version >/dev/null 2>&1 || { : </dev/mapper/control; } 2>/dev/null; }

# --- the VM -----------------------------------------------------------------------------------
# Line by line (Debian's awk, mawk, reads a pipe in blocks): the guest's stdout, noting in $1 that
# it began; its stderr, from the harness's "ended without an exit status" on kept in $1 instead.
guest_stdout() {
    local line
    while IFS= read -r line || [ -n "$line" ]; do
        [ -e "$1" ] || : >"$1"
        printf '%s\n' "$line"
    done
}
guest_stderr() {
    local line keep=0
    while IFS= read -r line || [ -n "$line" ]; do
        case $line in
            "qemu-system-x86_64: terminating on signal"*) continue ;;
            "vm: the guest ended without an exit status"*) keep=1 ;;
        esac
        if [ $keep = 1 ]; then printf '%s\n' "$line" >>"$1"; else printf '%s\n' "$line"; fi
    done
}

# Boots Tests/VM/vm with a 4 GiB disk and runs `demo.sh --in-vm` there; the guest's output streams
# back. Returns 3 (after one line saying why) when the VM cannot run, so the caller falls back.
run_in_vm() {
    bold "No device-mapper in this kernel ($(uname -r)): the LVM story runs in a VM"
    note "Tests/VM/vm: Debian's kernel under qemu, this machine's root read-only under a RAM overlay,"
    note "a fresh 4 GiB virtual disk as /dev/vda; the guest runs $(basename "$BIN") binaries from ${BIN#"$ROOT"/}"
    local t0=$SECONDS why
    why=$(mktemp /tmp/swift-csi-demo-vm-XXXXXX)
    Tests/VM/vm setup 2>&1 | follow "vm setup" "${SWIFT_CSI_VM_CACHE:-$ROOT/.vm}.tmp" | tee "$why"
    if [ "${PIPESTATUS[0]}" != 0 ]; then
        note "the VM cannot run: $(grep -v '^ *$' "$why" | tail -n 1 | sed 's/^ *//;s/^vm: //')"
        rm -f "$why"; return 3
    fi
    local cache=${SWIFT_CSI_VM_CACHE:-$ROOT/.vm}
    note "vm setup: ready in $((SECONDS - t0)) s (${cache#"$ROOT"/}: kernel $(cat "$cache/kernel/version"), busybox, udev)"
    # The guest's stderr passes through until the harness says the guest ended without a status;
    # its console tail after that is kept for the one line below. The VM runs in the background so
    # that a watchdog can stop a guest that never boots (an accelerator that hangs): a guest that
    # printed nothing within DEMO_VM_BOOT_WAIT seconds (default 180) did not boot.
    : >"$why"
    local rc=0 started=$why.started vmpid dog
    DEMO_BIN=$BIN Tests/VM/vm run --disk 4G --cpus "${DEMO_VM_CPUS:-2}" --timeout 900 -- bash scripts/demo.sh --in-vm \
        > >(guest_stdout "$started") 2> >(guest_stderr "$why" >&2) &
    vmpid=$!
    # A background job does not get the terminal's Ctrl-C: pass it on (the harness stops qemu).
    trap 'kill -TERM $vmpid 2>/dev/null; wait $vmpid || true; rm -f "$why" "$started"; exit 130' INT
    trap 'kill -TERM $vmpid 2>/dev/null; wait $vmpid || true; rm -f "$why" "$started"; exit 143' TERM
    (
        for _ in $(seq "${DEMO_VM_BOOT_WAIT:-180}"); do [ -e "$started" ] && exit 0; sleep 1; done
        echo "vm: the guest printed nothing within ${DEMO_VM_BOOT_WAIT:-180} s of starting qemu" >"$why"
        kill -TERM $vmpid
    ) 2>/dev/null &
    dog=$!
    wait $vmpid || rc=$?
    kill $dog 2>/dev/null || true
    wait $dog 2>/dev/null || true
    trap - INT TERM
    sleep 0.2  # let the output filters finish
    if [ ! -e "$started" ] && { [ $rc = 125 ] || [ $rc = 2 ] || [ $rc = 143 ] || [ $rc = 124 ]; }; then
        note "the VM could not run the story (exit $rc): $(head -n 1 "$why" | sed 's/^vm: //')$(grep -m1 -iE 'panic|error|fail' "$why" | sed 's/^/; console: /')"
        rm -f "$why" "$started"; return 3
    fi
    rm -f "$why" "$started"
    return $rc
}

# --- the story --------------------------------------------------------------------------------
WS=""
PIDS=()
LOOPS=()
VG=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -n "$WS" ] || exit $rc
    bold "Cleaning up the workspace $WS"
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    # Unmount deepest first anything under the workspace.
    if [ -d "$WS" ]; then
        awk -v ws="$WS" 'index($2, ws "/") == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
            umount -l "$m" 2>/dev/null && note "unmounted ${m#"$WS"/}"
        done
    fi
    if [ -n "$VG" ]; then
        lvm_cmd vgremove -f "$VG" >/dev/null 2>&1 && note "removed volume group $VG" || true
        [ -n "${PV:-}" ] && lvm_cmd pvremove -q "$PV" >/dev/null 2>&1 || true
    fi
    for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null && note "detached $l" || true; done
    # Loop devices the driver attached to files in the workspace.
    losetup -nO NAME,BACK-FILE 2>/dev/null | awk -v ws="$WS" 'index($2, ws) == 1 {print $1}' | while read -r l; do
        losetup -d "$l" 2>/dev/null && note "detached $l" || true
    done
    rm -rf "$WS"
    note "removed $WS"
    [ -z "${START:-}" ] || printf '\n   make demo: %s s in all\n' "$((SECONDS - START))"
    exit $rc
}

# LVM's command-line tools as an operator runs them; without udev they must not wait for it (the
# driver decides the same for itself).
lvm_cmd() {
    local verb=$1; shift
    if [ -e /run/udev/control ]; then LVM_SUPPRESS_FD_WARNINGS=1 lvm "$verb" "$@"
    else LVM_SUPPRESS_FD_WARNINGS=1 lvm "$verb" --config 'activation { udev_rules = 0 udev_sync = 0 }' "$@"; fi
}

# story KIND: lvm-disk (the VM's /dev/vda), lvm-loop (a loop device on this machine) or loopfile.
story() {
    local kind=$1
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    WS=$(mktemp -d /tmp/swift-csi-demo-XXXXXX)
    KUBELET=$WS/kubelet
    VDATA=$WS/vdata
    mkdir -p "$KUBELET/plugins_registry" "$KUBELET/plugins" "$VDATA/plugins" "$VDATA/plugins_registry" "$WS/state" "$WS/logs"
    ENDPOINT=$VDATA/plugins/$DRIVER/csi.sock

    bold "Storage"
    note "workspace $WS (paths below are relative to it)"
    local backend_flags=() volume_flags=()
    case $kind in
        lvm-disk|lvm-loop)
            if [ "$kind" = lvm-disk ]; then
                PV=${DEMO_DISK:-/dev/vda}
                VG=demovg
                note "disk $PV: the VM's virtual disk, $(($(blockdev --getsize64 "$PV") >> 20)) MiB"
            else
                VG=swiftcsi-demo-$(basename "$WS" | tr -dc 'a-zA-Z0-9' | tail -c 6)
                truncate -s 4G "$WS/pv.img"
                PV=$(losetup -f --show "$WS/pv.img"); LOOPS+=("$PV")
                note "disk $PV: a 4 GiB sparse file in the workspace on a loop device"
            fi
            lvm_cmd pvcreate -q "$PV" >/dev/null
            lvm_cmd vgcreate -q "$VG" "$PV" >/dev/null
            note "vgcreate $VG $PV"
            lvm_cmd lvcreate -q -y --type thin-pool -L 1G -n pool "$VG" >/dev/null
            note "lvcreate --type thin-pool -L 1G -n pool $VG"
            backend_flags=(--backend=lvm "--volume-group=$VG" "--lvm-scan-device=$PV" --overprovision-ratio=2)
            volume_flags=(--volume-group "$VG" --thin-pool pool)
            ;;
        loopfile)
            mkdir -p "$WS/loopfiles"
            note "the loop-file backend: each volume a sparse file in loopfiles/ on a loop device"
            backend_flags=(--backend=loopfile "--loopfile-dir=$WS/loopfiles")
            volume_flags=(--loopfile-dir "$WS/loopfiles")
            ;;
    esac
    note "driver flags: ${backend_flags[*]//"$WS"\//}"

    bold "Starting the driver, the registrar (custom directories + link flag) and the kubelet stand-in"
    "$PY" Tests/E2E/kubelet_sim.py --registry-dir "$KUBELET/plugins_registry" --state-dir "$WS/state" \
        --node-name "$NODE" --loop-period 0.2 >"$WS/logs/kubelet.log" 2>&1 &
    PIDS+=($!)
    note "kubelet stand-in   pid $!  watching kubelet/plugins_registry"
    # A free port for the registrar's /healthz (bash's /dev/tcp: nothing answers on it).
    HEALTH_PORT=$((20000 + RANDOM % 30000))
    while (: <"/dev/tcp/127.0.0.1/$HEALTH_PORT") 2>/dev/null; do HEALTH_PORT=$((20000 + RANDOM % 30000)); done
    "$BIN/node-driver-registrar" --csi-address="$ENDPOINT" --kubelet-registration-path="$ENDPOINT" \
        --plugin-registration-path="$VDATA/plugins_registry" --kubelet-registry-link-dir="$KUBELET/plugins_registry" \
        --http-endpoint="127.0.0.1:$HEALTH_PORT" >"$WS/logs/registrar.log" 2>&1 &
    PIDS+=($!)
    note "registrar          pid $!  (started before the driver: it waits instead of crash-looping)"
    sleep 0.5
    "$BIN/csi-lvm-driver" --endpoint="unix://$ENDPOINT" --driver-name="$DRIVER" --node-id="$NODE" \
        --topology-key="$TOPOLOGY_KEY" --kubelet-dir="$KUBELET" "${backend_flags[@]}" >"$WS/logs/driver.log" 2>&1 &
    PIDS+=($!)
    note "driver             pid $!  serving ${ENDPOINT#"$WS"/}"
    note "waiting for the kubelet stand-in to register the driver…"

    # registration WANT SECONDS: waits (one Python process) until the Node annotation names the driver
    # (WANT=1) or does not (WANT=0); the status says whether it came to that. Once registered, it
    # prints CSINode spec.drivers[] and the Node's annotation and labels.
    registration() {
        "$PY" - "$WS/state" "$DRIVER" "$1" "$2" <<'PY'
import json, sys, pathlib, time
state, name, want, deadline = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1", time.time() + float(sys.argv[4])
def registered():
    try:
        node = json.loads((state / "node.json").read_text())
    except Exception:
        return False
    return name in json.loads(node["metadata"]["annotations"].get("csi.volume.kubernetes.io/nodeid", "{}"))
while registered() != want and time.time() < deadline:
    time.sleep(0.1)
if registered() != want:
    sys.exit(1)
if want:
    csinode = json.loads((state / "csinode.json").read_text())
    node = json.loads((state / "node.json").read_text())
    for d in csinode["spec"]["drivers"]:
        print("     CSINode spec.drivers[]: " + json.dumps(d, sort_keys=True))
    ann = node["metadata"]["annotations"]
    print("     Node annotation csi.volume.kubernetes.io/nodeid: '" + ann["csi.volume.kubernetes.io/nodeid"] + "'")
    print("     Node labels: " + json.dumps(node["metadata"]["labels"], sort_keys=True))
PY
    }
    local written
    if ! written=$(registration 1 60); then
        echo "demo: the driver did not register within 60 s; logs:" >&2
        tail -n 20 "$WS"/logs/*.log >&2
        exit 1
    fi

    bold "Registration"
    note "registrar log:"
    grep -E "waiting for driver socket|CSI driver name|Registration Server started|linked|Received GetInfo|Received NotifyRegistrationStatus" \
        "$WS/logs/registrar.log" | sed "s#$WS/##g; s/^/     /"
    note "kubelet log:"
    grep -E "Trying to validate|Register new plugin" "$WS/logs/kubelet.log" | sed "s#$WS/##g; s/^/     /"
    note "CSINode spec.drivers[] and the Node annotation, as the kubelet wrote them:"
    printf '%s\n' "$written"
    # The registrar's /healthz probes the driver; like a liveness probe (failureThreshold 3), try thrice.
    local health code try
    for try in 1 2 3; do
        health=$(curl -s -w '\n%{http_code}' "http://127.0.0.1:$HEALTH_PORT/healthz" 2>/dev/null || true)
        code=${health##*$'\n'}; health=${health%$'\n'*}; health=${health%$'\n'}
        [ "$code" = 200 ] && break
        note "/healthz try $try: HTTP $code: ${health//"$WS"\//}"
        sleep 1
    done
    [ "$code" = 200 ] && note "/healthz: ${health//"$WS"\//}"

    bold "node-driver-registrar inspect --registry-dir kubelet/plugins_registry"
    "$BIN/node-driver-registrar" inspect --registry-dir "$KUBELET/plugins_registry" | sed "s#$WS/##g; s/^/   /"

    bold "A volume's life through ${ENDPOINT#"$WS"/} (grpcio)"
    "$PY" scripts/demo_volume.py --endpoint "$ENDPOINT" --kubelet-dir "$KUBELET" --driver-name "$DRIVER" \
        --workspace "$WS" "${volume_flags[@]}"

    bold "Stopping the registrar (SIGTERM): socket and link removed, the kubelet deregisters the driver"
    kill -TERM "${PIDS[1]}"
    wait "${PIDS[1]}" && note "registrar exited 0" || note "registrar exited $?"
    registration 0 10 && note "CSINode entry and annotation removed" || note "still registered (unexpected)"
    grep -E "removed link|removed registration socket" "$WS/logs/registrar.log" | sed "s#$WS/##g; s/^/     /"
    grep -E "DeRegisterPlugin" "$WS/logs/kubelet.log" | sed "s#$WS/##g; s/^/     /"
    if grep -qE "^[0-9T:.-]+Z (warning|error|critical) " "$WS/logs/driver.log"; then
        note "the driver logged warnings or errors:"
        grep -E "^[0-9T:.-]+Z (warning|error|critical) " "$WS/logs/driver.log" | sed "s#$WS/##g; s/^/     /" | tail -n 10
    fi

    bold "Done"
}

# --- main -------------------------------------------------------------------------------------
if [ "$MODE" = in-vm ]; then
    [ "${SWIFT_CSI_VM:-0}" = 1 ] || { echo "demo: --in-vm runs inside Tests/VM/vm (it wipes /dev/vda)" >&2; exit 2; }
    BIN=${DEMO_BIN:?DEMO_BIN: the directory of the built binaries}
    note "in the VM: kernel $(uname -r), device-mapper loads on first use, no udev (LVM told not to wait for it)"
    story lvm-disk
    exit 0
fi

START=$SECONDS
build_binaries
if [ "$MODE" = loopfile ]; then
    story loopfile
elif device_mapper; then
    story lvm-loop
else
    rc=0
    run_in_vm || rc=$?
    if [ $rc = 3 ]; then
        note "falling back to the loop-file story on this machine"
        story loopfile
    else
        printf '\n   make demo: %s s in all\n' "$((SECONDS - START))"
        exit $rc
    fi
fi
