#!/usr/bin/env bash
# Builds the ProtoWire libFuzzer target and runs it.
#
#   bash Tests/Fuzz/run.sh [seconds]     # default 60; crashes land in ./crash-*
#
# The target links ProtoWire and the CSI messages generated without services (so it needs
# neither H2 nor libnghttp2), compiled with -sanitize=fuzzer,address. The corpus is seeded with
# encodings of real CSI messages and kept in .build-fuzz/corpus between runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-60}"
work=".build-fuzz"
mkdir -p "$work/gen" "$work/corpus"

swift build --product protoc-gen-protowire >&2
plugin="$(swift build --show-bin-path)/protoc-gen-protowire"
rm -f "$work"/gen/*.swift
protoc --plugin=protoc-gen-protowire="$plugin" -I Sources/CSI/Protos -I /usr/include \
    --protowire_out="$work/gen" --protowire_opt=Services=false csi.proto
protoc --plugin=protoc-gen-protowire="$plugin" -I Tests/ProtoWireTests/Protos -I /usr/include \
    --protowire_out="$work/gen" --protowire_opt=Services=false,Namespace.protowire.test=TestProtos codec_test.proto

flags=(-sanitize=fuzzer,address -parse-as-library -O -g -swift-version 6)
# Every ProtoWire source, its generated well-known types (Sources/ProtoWire/Generated) included.
mapfile -t protowire_sources < <(find Sources/ProtoWire -name '*.swift' | sort)
swiftc "${flags[@]}" -module-name ProtoWire -emit-module -emit-module-path "$work/ProtoWire.swiftmodule" \
    -wmo -c "${protowire_sources[@]}" -o "$work/ProtoWire.o"
swiftc "${flags[@]}" -module-name FuzzProtoWire -I "$work" \
    Tests/Fuzz/FuzzProtoWire.swift "$work"/gen/*.swift "$work/ProtoWire.o" -o "$work/fuzz-protowire"

# Seed the corpus with real messages (protoc's own encoder).
seed() { protoc --encode="$1" -I Sources/CSI/Protos -I /usr/include csi.proto >"$work/corpus/seed-$2" <<<"$3"; }
seed csi.v1.NodePublishVolumeRequest publish 'volume_id: "pvc-1" publish_context { key: "devicePath" value: "/dev/x" } target_path: "/t" volume_capability { mount { fs_type: "ext4" mount_flags: "ro" } access_mode { mode: SINGLE_NODE_WRITER } } readonly: true secrets { key: "password" value: "p" } volume_context { key: "a" value: "b" }'
seed csi.v1.CreateVolumeRequest create 'name: "pvc-1" capacity_range { required_bytes: 1073741824 limit_bytes: -1 } volume_capabilities { block { } access_mode { mode: MULTI_NODE_MULTI_WRITER } } parameters { key: "vg" value: "vg0" } volume_content_source { snapshot { snapshot_id: "s" } } accessibility_requirements { requisite { segments { key: "zone" value: "a" } } }'
seed csi.v1.GetCapacityResponse capacity 'available_capacity: 42 maximum_volume_size { value: 7 } minimum_volume_size { }'
seed csi.v1.CreateSnapshotResponse snapshot 'snapshot { size_bytes: 1 snapshot_id: "s" source_volume_id: "v" creation_time { seconds: 1700000000 nanos: 5 } ready_to_use: true }'

"$work/fuzz-protowire" -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 "$work/corpus"
