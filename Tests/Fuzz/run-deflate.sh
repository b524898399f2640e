#!/usr/bin/env bash
# Builds the libFuzzer target for H2's message decompression (gzip and deflate over zlib) and runs it.
#
#   bash Tests/Fuzz/run-deflate.sh [seconds]     # default 60; crashes land in ./crash-*
#
# The target links H2 and ProtoWire compiled with -sanitize=fuzzer,address, CH2Sys with
# -fsanitize=address, and the system's libnghttp2 and zlib (zlib itself is not instrumented: what
# is fuzzed is H2's code around it). The corpus is seeded with streams from Python's zlib (zlib
# and gzip framing; levels 1 and 9; default, fixed and Huffman-only; small windows; concatenated
# gzip members; a bomb) and kept in .build-fuzz/deflate-corpus between runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-60}"
work=".build-fuzz/deflate"
mkdir -p "$work/CH2Sys" ".build-fuzz/deflate-corpus"

flags=(-sanitize=fuzzer,address -parse-as-library -O -g -swift-version 6 -package-name swift_csi
       -enable-upcoming-feature InternalImportsByDefault -enable-upcoming-feature ExistentialAny
       -enable-upcoming-feature MemberImportVisibility)
includes=(-I "$work" -I "$work/CH2Sys" -I Sources/CNGHTTP2 -I Sources/CZlib)

# CH2Sys is a C target: SwiftPM makes its module map, so here it is written by hand.
clang -O2 -g -fsanitize=address -I Sources/CH2Sys/include -c Sources/CH2Sys/sys.c -o "$work/ch2sys.o"
printf 'module CH2Sys {\n    header "%s"\n    export *\n}\n' "$PWD/Sources/CH2Sys/include/ch2sys.h" >"$work/CH2Sys/module.modulemap"

mapfile -t protowire_sources < <(find Sources/ProtoWire -name '*.swift' | sort)
swiftc "${flags[@]}" -module-name ProtoWire -emit-module -emit-module-path "$work/ProtoWire.swiftmodule" \
    -wmo -c "${protowire_sources[@]}" -o "$work/ProtoWire.o"
mapfile -t rpccore_sources < <(find Sources/RPCCore -name '*.swift' | sort)
swiftc "${flags[@]}" -module-name RPCCore -emit-module -emit-module-path "$work/RPCCore.swiftmodule" \
    -wmo -c "${rpccore_sources[@]}" -o "$work/RPCCore.o"
mapfile -t h2_sources < <(find Sources/H2 -name '*.swift' | sort)
swiftc "${flags[@]}" "${includes[@]}" -module-name H2 -emit-module -emit-module-path "$work/H2.swiftmodule" \
    -wmo -c "${h2_sources[@]}" -o "$work/H2.o"
swiftc "${flags[@]}" "${includes[@]}" -module-name FuzzDeflate \
    -use-ld=lld Tests/Fuzz/FuzzDeflate.swift "$work/H2.o" "$work/RPCCore.o" "$work/ProtoWire.o" "$work/ch2sys.o" -lnghttp2 -lz -o "$work/fuzz-deflate"

python3 - ".build-fuzz/deflate-corpus" <<'PY'
import gzip, sys, zlib
out = sys.argv[1]
text = b"NodePublishVolume /var/lib/kubelet/pods/1234/volumes pvc-1 ext4 " * 20 + bytes(range(256))
def write(name, data):
    open(f"{out}/seed-{name}", "wb").write(data)
for level in (1, 9):
    for wbits, name in ((15, "zlib"), (31, "gzip")):
        for strategy, sname in ((zlib.Z_DEFAULT_STRATEGY, "default"), (zlib.Z_FIXED, "fixed"), (zlib.Z_HUFFMAN_ONLY, "huffman")):
            c = zlib.compressobj(level, zlib.DEFLATED, wbits, 8, strategy)
            write(f"{name}-{level}-{sname}", c.compress(text) + c.flush())
for wbits in (9, 12, 25):
    c = zlib.compressobj(6, zlib.DEFLATED, wbits, 1)
    write(f"window-{wbits}", c.compress(text[:700]) + c.flush())
write("gzip-empty", gzip.compress(b""))
write("zlib-empty", zlib.compress(b""))
write("gzip-members", gzip.compress(text[:300]) + gzip.compress(text[300:900]))
write("zlib-bomb", zlib.compress(b"\0" * (1 << 20), 9))
PY

"$work/fuzz-deflate" -max_total_time="$seconds" -max_len=8192 -print_final_stats=1 ".build-fuzz/deflate-corpus"
