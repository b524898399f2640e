#!/usr/bin/env bash
# Installs what building and testing swift-csi needs on a fresh Debian machine.
# Idempotent: packages already present are not fetched again.
set -euo pipefail

# libstdc++-12-dev: release executables link libstdc++.a (Linker/static-cxx).
apt_packages=(libnghttp2-dev zlib1g-dev liblvm2-dev lvm2 protobuf-compiler libprotobuf-dev e2fsprogs xfsprogs
              nghttp2-client util-linux pkg-config libstdc++-12-dev cryptsetup-bin)
pip_packages=(grpcio grpcio-tools protobuf h2 pytest grpcio-health-checking grpcio-reflection pyyaml prometheus-client
              kubernetes-validate)

missing=()
for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# One pip process for all of them (each start of pip costs seconds): the names it shows are installed.
normalize() { tr 'A-Z_.' 'a-z--'; }
installed=$(python3 -m pip show "${pip_packages[@]}" 2>/dev/null | sed -n 's/^Name: //p' | normalize)
pip_missing=()
for p in "${pip_packages[@]}"; do
    grep -qxF "$(normalize <<<"$p")" <<<"$installed" || pip_missing+=("$p")
done
if [ ${#pip_missing[@]} -gt 0 ]; then
    echo "install-deps: pip install ${pip_missing[*]}"
    python3 -m pip install -q "${pip_missing[@]}"
fi
