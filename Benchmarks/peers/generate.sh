#!/usr/bin/env bash
# Regenerates peers/PeerMessages/csi_bench.pb.swift (committed) from peers/csi_bench.proto with
# Debian's protoc and swift-protobuf's protoc-gen-swift, built once from the version Package.swift pins.
set -euo pipefail
cd "$(dirname "$0")/.."
nice -n 19 swift package resolve
plugin_build=.build/protoc-gen-swift
(cd .build/checkouts/swift-protobuf &&
    nice -n 19 swift build -c release --product protoc-gen-swift --scratch-path "$OLDPWD/$plugin_build")
protoc -I peers --plugin=protoc-gen-swift="$plugin_build/release/protoc-gen-swift" \
    --swift_opt=Visibility=Public --swift_out=peers/PeerMessages peers/csi_bench.proto
echo "peers/generate.sh: wrote peers/PeerMessages/csi_bench.pb.swift"
