#!/usr/bin/env bash
# Regenerates Sources/CSI/Generated/*.swift from Sources/CSI/Protos/*.proto with Debian's protoc
# and protoc-gen-protowire.
#
#   bash scripts/generate.sh          # rewrite the committed generated sources
#   bash scripts/generate.sh --check  # regenerate into a temporary directory; fail if they differ
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
includes="${PROTOC_INCLUDE:-/usr/include}"
# Each set: proto directory, output directory, generator options.
sets=(
    "Sources/CSI/Protos Sources/CSI/Generated Namespace.pluginregistration=PluginRegistration"
    "Tests/ProtoWireTests/Protos Tests/ProtoWireTests/Generated Namespace.protowire.test=TestProtos"
    "Sources/H2/Protos Sources/H2/Generated Services=false,Namespace.grpc.health.v1=GRPCHealth,Namespace.grpc.reflection.v1=GRPCReflection"
)

check=0
if [ "${1:-}" = "--check" ]; then check=1; fi

if [ -z "${PROTOC_GEN_PROTOWIRE:-}" ]; then
    swift build --product protoc-gen-protowire >&2
    PROTOC_GEN_PROTOWIRE="$(swift build --show-bin-path)/protoc-gen-protowire"
fi

status=0
for set in "${sets[@]}"; do
    read -r protos generated options <<<"$set"
    out="$generated"
    if [ "$check" = 1 ]; then
        out="$(mktemp -d)"
        trap 'rm -rf "$out"' EXIT
    else
        mkdir -p "$generated"
        rm -f "$generated"/*.pb.swift
    fi
    for proto in "$protos"/*.proto; do
        protoc --plugin=protoc-gen-protowire="$PROTOC_GEN_PROTOWIRE" \
            -I "$protos" -I "$includes" \
            --protowire_out="$out" --protowire_opt="$options" \
            "$(basename "$proto")"
    done
    if [ "$check" = 1 ]; then
        if ! diff -ru "$generated" "$out" >&2; then
            echo "generate.sh --check: $generated is stale; run 'bash scripts/generate.sh' and commit the result" >&2
            status=1
        else
            echo "generate.sh --check: $generated is up to date" >&2
        fi
        rm -rf "$out"
    else
        echo "generate.sh: wrote $(ls "$generated"/*.pb.swift | tr '\n' ' ')" >&2
    fi
done
exit $status
