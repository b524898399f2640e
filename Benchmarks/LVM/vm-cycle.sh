#!/usr/bin/env bash
# A volume's create → stage → publish → delete cycle through csi-lvm-driver on a real kernel
# (Tests/VM/vm), with in-process liblvm2cmd against every LVM command run as the `lvm` executable.
#   Benchmarks/LVM/vm-cycle.sh [vm-cycle.py options, e.g. --rounds 8 --lvm-rounds 4]
# Builds the release driver in Benchmarks/LVM/.build and lvm2cmd-exec.c beside it, boots the VM
# with a fresh 4 GiB disk and runs vm-cycle.py there. The report is printed and kept in
# Benchmarks/LVM/.build/vm-cycle-<UTC time>.txt. Needs root (Tests/VM/vm setup uses apt).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
Tests/VM/vm setup
# The driver as `make release` builds it, in this package's own build directory, unless
# VM_CYCLE_DRIVER names a csi-lvm-driver binary to measure instead.
driver="${VM_CYCLE_DRIVER:-}"
if [ -z "$driver" ]; then
    mkdir -p "$here/.build"
    if ! (cd "$here" && swift build -c release --static-swift-stdlib --product csi-lvm-driver) > "$here/.build/vm-cycle-build.log" 2>&1; then
        tail -30 "$here/.build/vm-cycle-build.log" >&2
        exit 1
    fi
    driver="$here/.build/release/csi-lvm-driver"
fi
driver="$(realpath -e "$driver")"
shim="$here/.build/lvm2cmd-exec"
mkdir -p "$shim"
gcc -O2 -Wall -shared -fPIC -o "$shim/liblvm2cmd.so.2.03" "$here/lvm2cmd-exec.c" -ldl
report="$here/.build/vm-cycle-$(date -u +%Y%m%dT%H%M%SZ).txt"
start=$(date +%s)
Tests/VM/vm run --disk 4G --cpus "${VM_CYCLE_CPUS:-2}" --timeout 1200 -- \
    python3 "$here/vm-cycle.py" --driver "$driver" --shim "$shim" "$@" | tee "$report"
echo "vm-cycle: $(( $(date +%s) - start )) s with the VM's boot; report in ${report#$root/}"
