#!/usr/bin/env bash
# Times ProtoWire encoding and decoding of a ~500-byte CSI NodePublishVolumeRequest
# (maps, nested capability, secrets) in a release build.
#
#   bash Benchmarks/Codec/run.sh [iterations]
#
# Prints the best of 7 rounds in ns per message. Compare with upb (Python protobuf's C codec)
# on the same message: Benchmarks/Codec/upb_reference.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
swift build -c release --product protowire >&2
.build/release/protowire bench "${1:-200000}"
