#!/usr/bin/env bash
# Regenerates the committed Sources/*/Generated/*.pb.swift (and the test protos' Swift) from .proto
# files with Debian's protoc and protoc-gen-protowire.
#
#   bash scripts/generate.sh          # rewrite the committed generated sources
#   bash scripts/generate.sh --check  # regenerate into a temporary directory; fail if they differ
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
includes="${PROTOC_INCLUDE:-/usr/include}"
# Each set: proto directory (-I), output directory, generator options, then the .proto files
# (paths under the proto directory; all of its *.proto when none are named). Several sets may
# write into one output directory.
sets=(
    "Sources/CSI/Protos Sources/CSI/Generated Namespace.pluginregistration=PluginRegistration"
    "Tests/ProtoWireTests/Protos Tests/ProtoWireTests/Generated Namespace.protowire.test=TestProtos"
    "Sources/H2/Protos Sources/H2/Generated Services=false,Namespace.grpc.health.v1=GRPCHealth,Namespace.grpc.reflection.v1=GRPCReflection health.proto reflection.proto"
    "Sources/H2/Protos Sources/H2/Generated Messages=false reflection_v1alpha.proto"
    "$includes Sources/ProtoWire/Generated Messages=false,Module=ProtoWire google/protobuf/descriptor.proto google/protobuf/timestamp.proto google/protobuf/wrappers.proto google/protobuf/duration.proto google/protobuf/empty.proto"
)

check=0
if [ "${1:-}" = "--check" ]; then check=1; fi

if [ -z "${PROTOC_GEN_PROTOWIRE:-}" ]; then
    swift build --product protoc-gen-protowire >&2
    PROTOC_GEN_PROTOWIRE="$(swift build --show-bin-path)/protoc-gen-protowire"
fi

# Generate everything into a scratch tree first, then compare or replace directory by directory.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
outputs=()
for set in "${sets[@]}"; do
    read -r protos generated options files <<<"$set"
    out="$scratch/$generated"
    mkdir -p "$out"
    [[ " ${outputs[*]} " == *" $generated "* ]] || outputs+=("$generated")
    if [ -z "$files" ]; then
        files="$(cd "$protos" && ls *.proto)"
    fi
    for proto in $files; do
        protoc --plugin=protoc-gen-protowire="$PROTOC_GEN_PROTOWIRE" \
            -I "$protos" -I "$includes" \
            --protowire_out="$out" --protowire_opt="$options" \
            "$proto"
    done
done

status=0
for generated in "${outputs[@]}"; do
    if [ "$check" = 1 ]; then
        if ! diff -ru "$generated" "$scratch/$generated" >&2; then
            echo "generate.sh --check: $generated is stale; run 'bash scripts/generate.sh' and commit the result" >&2
            status=1
        else
            echo "generate.sh --check: $generated is up to date" >&2
        fi
    else
        mkdir -p "$generated"
        rm -f "$generated"/*.pb.swift
        cp "$scratch/$generated"/*.pb.swift "$generated"/
        echo "generate.sh: wrote $(ls "$generated"/*.pb.swift | tr '\n' ' ')" >&2
    fi
done
exit $status
