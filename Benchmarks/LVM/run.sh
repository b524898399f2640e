#!/usr/bin/env bash
# LVM latency benchmark (needs root): makes a volume group on a loop device, measures, removes it.
#   sudo Benchmarks/LVM/run.sh [iterations]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
iterations="${1:-20}"
export LVM_SUPPRESS_FD_WARNINGS=1
dm=()
if ! ( exec 3<>/dev/mapper/control ) 2>/dev/null; then dm=(--driverloaded n); fi

work="$(mktemp -d /var/tmp/lvm-bench.XXXXXX)"
vg="benchvg$RANDOM$RANDOM"
truncate -s 2G "$work/pv.img"
loop="$(losetup -f --show "$work/pv.img")"
cleanup() {
    lvm vgremove "${dm[@]}" -f "$vg" >/dev/null 2>&1 || true
    lvm pvremove "${dm[@]}" -ff -y "$loop" >/dev/null 2>&1 || true
    losetup -d "$loop" || true
    rm -rf "$work"
    rm -f "${LVM_SYSTEM_DIR:-/etc/lvm}/backup/$vg" "${LVM_SYSTEM_DIR:-/etc/lvm}/archive/${vg}"_*.vg
}
trap cleanup EXIT
lvm pvcreate "${dm[@]}" -q -y "$loop" >/dev/null
lvm vgcreate "${dm[@]}" -q "$vg" "$loop" >/dev/null

echo "== per-command cost in-process (liblvm2cmd, one handle), $iterations runs each"
gcc -O2 -o "$work/lvm2-probe" "$here/lvm2-probe.c" -llvm2cmd
host="${LVM_SYSTEM_DIR:-/etc/lvm}"
mkdir "$work/noaio"
for f in "$host"/*; do [ "$(basename "$f")" = lvm.conf ] || ln -s "$f" "$work/noaio/"; done
{ cat "$host/lvm.conf"; printf '\nglobal {\n    use_aio = 0\n}\n'; } > "$work/noaio/lvm.conf"
dmflag="${dm[*]:-}"
cmds=("lvs $dmflag $vg" "vgs $dmflag $vg" "lvcreate $dmflag -an -Zn -L 4m -n probe $vg" "lvremove $dmflag -f $vg/probe")
echo "host lvm.conf (use_aio = 1):"
"$work/lvm2-probe" "$iterations" "${cmds[@]}"
echo "with global/use_aio = 0 (what Storage.LVM uses):"
LVM_SYSTEM_DIR="$work/noaio" "$work/lvm2-probe" "$iterations" "${cmds[@]}"
echo "lvm executable, lvs with JSON report, host lvm.conf:"
start=$(date +%s%N); for i in $(seq 1 "$iterations"); do lvm lvs "${dm[@]}" --reportformat json "$vg" >/dev/null 2>&1; done
echo "  mean $(( ($(date +%s%N) - start) / iterations / 1000 )) us"

echo "== backend operations (release build)"
(cd "$here" && swift build -c release --product lvm-bench 2>&1 | tail -1)
"$here/.build/release/lvm-bench" "$vg" "$iterations"
echo "== the same with LVM's scan restricted to the volume group's device"
"$here/.build/release/lvm-bench" "$vg" "$iterations" "$loop"
