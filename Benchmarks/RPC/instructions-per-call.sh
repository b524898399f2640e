#!/usr/bin/env bash
# Instructions per call of an rpc-bench-server binary, counted by callgrind: the server runs under
# valgrind twice, h2load sends N1 and then N2 NodeGetInfo calls, and the difference of the two
# totals divided by N2 - N1 is what one call costs, start-up and shutdown cancelled out. Unlike
# CPU time this does not move with the other load on the machine, so two builds compare exactly.
#
#   bash Benchmarks/RPC/instructions-per-call.sh BINARY [CONNECTIONS STREAMS N1 N2]
#   (defaults: 4 32 2000 12000; valgrind and h2load installed)
#
# valgrind cannot read the DWARF 5 of the release binaries: a copy without debug info is measured.
set -euo pipefail
bin=$1 c=${2:-4} m=${3:-32} n1=${4:-2000} n2=${5:-12000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
strip --strip-debug -o "$work/server" "$bin"
printf '\0\0\0\0\0' >"$work/body"  # an uncompressed, empty NodeGetInfoRequest

instructions() {
    local n=$1
    local sock=$work/s-$n.sock out=$work/cg-$n.out
    valgrind --tool=callgrind --callgrind-out-file="$out" "$work/server" --socket "$sock" >/dev/null 2>"$work/vg-$n.log" &
    local pid=$!
    for _ in $(seq 1 900); do [ -S "$sock" ] && break; sleep 0.1; done
    sleep 0.5
    h2load -B "unix:$sock" -n "$n" -c "$c" -m "$m" -t 1 -H 'content-type: application/grpc' -H 'te: trailers' \
        -d "$work/body" http://localhost/csi.v1.Node/NodeGetInfo >"$work/h2-$n.log" 2>&1
    grep -q "$n succeeded" "$work/h2-$n.log" || { echo "instructions-per-call: h2load failed:" >&2; cat "$work/h2-$n.log" >&2; exit 1; }
    kill -TERM "$pid"
    wait "$pid" || true
    awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

a=$(instructions "$n1")
b=$(instructions "$n2")
echo "$bin ${c}x${m}: $(( (b - a) / (n2 - n1) )) instructions per call ($n1 calls: $a, $n2 calls: $b)"
