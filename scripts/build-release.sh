#!/usr/bin/env bash
# Builds release executables the way they ship: the Swift runtime linked in (--static-swift-stdlib),
# and node-driver-registrar a static PIE with the C library too (Package.swift, `staticRegistrar`),
# which needs the build without SwiftPM's $ORIGIN run path. Arguments go to `swift build`, e.g.
#   scripts/build-release.sh --product node-driver-registrar [--scratch-path DIR]
set -euo pipefail
exec env SWIFT_CSI_STATIC_REGISTRAR=1 "${SWIFT:-swift}" build -c release --static-swift-stdlib --disable-local-rpath "$@"
