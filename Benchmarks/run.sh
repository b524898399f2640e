#!/usr/bin/env bash
# Builds every benchmark server and tool (release), then runs bench.py, which prints the RPC table
# and the codec table. Arguments go to bench.py (--rounds N, --seconds S, --only NAME, --no-python,
# --no-codec, --no-rpc). BENCH_SKIP_BUILD=1 reuses what is built. Builds run at nice 19.
set -euo pipefail
cd "$(dirname "$0")"
here=$PWD

need_apt=()
command -v h2load >/dev/null || need_apt+=(nghttp2-client)
command -v protoc >/dev/null || need_apt+=(protobuf-compiler)
command -v go >/dev/null || need_apt+=(golang-go)
[ -d /usr/share/gocode/src/google.golang.org/grpc ] || need_apt+=(golang-google-grpc-dev)
command -v protoc-gen-go >/dev/null || need_apt+=(golang-goprotobuf-dev)
pkg-config --exists libnghttp2 2>/dev/null || need_apt+=(libnghttp2-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "run.sh: apt-get install ${need_apt[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
python3 -c 'import grpc, grpc_tools, google.protobuf' 2>/dev/null || python3 -m pip install -q grpcio grpcio-tools protobuf

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    echo "run.sh: building the Swift servers and tools (release)" >&2
    build() {  # build one product (more swift build flags may follow); errors go to stderr
        local log
        log=$(mktemp)
        if nice -n 19 swift build -c release --product "$@" >"$log" 2>&1; then
            tail -1 "$log" >&2
            rm -f "$log"
        else
            grep -E "error:" "$log" | head -5 >&2
            rm -f "$log"
            return 1
        fi
    }
    # protowire (from the main package) carries ProtoWire's own codec benchmark.
    for p in grpc-swift-bench-server uds-pingpong codec-bench protowire; do build "$p"; done
    # Ours are built the way `make release` builds the executables: Swift runtime linked in and the
    # release linker settings, in a scratch directory of their own (other flags, other objects).
    if grep -q '"rpc-bench-server"' Package.swift; then
        build rpc-bench-server --static-swift-stdlib --scratch-path .build-static
    fi
    # The real driver (loop-file backend) joins the table when it builds in release.
    build csi-lvm-driver --static-swift-stdlib --scratch-path .build-static || {
        rm -f .build-static/release/csi-lvm-driver
        echo "run.sh: csi-lvm-driver did not build in release; its row is left out" >&2
    }

    echo "run.sh: building the grpc-go server (GOPATH mode, Debian's grpc-go)" >&2
    gopath=$here/.build/gopath
    mkdir -p "$gopath/src/csibench/server" "$gopath/bin"
    protoc -I peers --go_out=plugins=grpc:"$gopath/src" peers/csi_bench.proto
    cp peers/grpc-go/server.go "$gopath/src/csibench/server/server.go"
    (cd "$gopath/src/csibench/server" &&
        GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" GOCACHE="$here/.build/go-cache" \
            nice -n 19 go build -o "$gopath/bin/grpc-go-bench-server" .)

    echo "run.sh: generating the Python modules" >&2
    python3 -c "import sys; sys.path.insert(0, 'peers/python'); import gen; gen.load('$here/.build/python')"
fi

exec python3 bench.py "$@"
