#!/usr/bin/env bash
# Install the Debian packages the build needs (idempotent; skips what is already there).
set -euo pipefail
pkgs=(cmake g++ make pkg-config libgtest-dev libbenchmark-dev libpcre2-dev nlohmann-json3-dev
      libcli11-dev libboost-context-dev libopenmpi-dev openmpi-bin clang libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
