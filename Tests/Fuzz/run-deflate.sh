#!/usr/bin/env bash
# Builds the Deflate libFuzzer target and runs it.
#
#   bash Tests/Fuzz/run-deflate.sh [seconds]     # default 60; crashes land in ./crash-*
#
# The target links only the Deflate module, compiled with -sanitize=fuzzer,address. The corpus
# is seeded with streams from Python's zlib (raw, zlib, gzip; levels 1 and 9; fixed and
# Huffman-only) and kept in .build-fuzz/deflate-corpus between runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-60}"
work=".build-fuzz"
mkdir -p "$work/deflate-corpus"

flags=(-sanitize=fuzzer,address -parse-as-library -O -g -swift-version 6)
swiftc "${flags[@]}" -module-name Deflate -package-name swift_csi -emit-module -emit-module-path "$work/Deflate.swiftmodule" \
    -wmo -c Sources/Deflate/*.swift -o "$work/Deflate.o"
swiftc "${flags[@]}" -module-name FuzzDeflate -package-name swift_csi -I "$work" \
    Tests/Fuzz/FuzzDeflate.swift "$work/Deflate.o" -o "$work/fuzz-deflate"

python3 - "$work/deflate-corpus" <<'PY'
import gzip, sys, zlib
text = b"NodePublishVolume /var/lib/kubelet/pods/1234/volumes pvc-1 ext4 " * 20 + bytes(range(256))
for level in (1, 9):
    for wbits, name in ((-15, "raw"), (15, "zlib"), (31, "gzip")):
        for strategy, sname in ((zlib.Z_DEFAULT_STRATEGY, "default"), (zlib.Z_FIXED, "fixed"), (zlib.Z_HUFFMAN_ONLY, "huffman")):
            c = zlib.compressobj(level, zlib.DEFLATED, wbits, 8, strategy)
            open(f"{sys.argv[1]}/seed-{name}-{level}-{sname}", "wb").write(c.compress(text) + c.flush())
open(f"{sys.argv[1]}/seed-gzip-empty", "wb").write(gzip.compress(b""))
PY

"$work/fuzz-deflate" -max_total_time="$seconds" -max_len=8192 -print_final_stats=1 "$work/deflate-corpus"
