#!/usr/bin/env bash
# Installs everything the build and the tests need on a fresh Debian machine with Rust,
# Python 3, gcc/g++ and network access to the package registries. Idempotent.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# C/C++ build tools for the examples and ctest; doxygen for the API documentation step;
# pkg-config for the install check.
missing=()
for tool in cmake ninja gcc g++ doxygen pkg-config; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  pkgs=()
  for t in "${missing[@]}"; do case $t in ninja) pkgs+=(ninja-build) ;; pkg-config) pkgs+=(pkgconf) ;; gcc) pkgs+=(gcc) ;; g++) pkgs+=(g++) ;; *) pkgs+=("$t") ;; esac; done
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi

# rustfmt and clippy for the lint steps.
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy

# cbindgen, pinned: the committed header must match what this version generates.
CBINDGEN_VERSION=0.29.4
if ! cbindgen --version 2>/dev/null | grep -q " $CBINDGEN_VERSION\$"; then
  echo "setup: installing cbindgen $CBINDGEN_VERSION"
  cargo install --quiet --locked --version "$CBINDGEN_VERSION" cbindgen
fi

# Interop peers.
bash "$root/scripts/setup-chromium.sh"
bash "$root/scripts/setup-firefox.sh"
# The JS module's pinned TypeScript (npm registry, package-lock.json).
if command -v npm >/dev/null; then
  (cd "$root/bindings/js" && [ -d node_modules/typescript ] || npm ci --no-audit --no-fund --loglevel=error)
fi
bash "$root/scripts/setup-python-peers.sh"
bash "$root/scripts/setup-pywebtransport.sh"
bash "$root/scripts/setup-go-peers.sh"
bash "$root/scripts/setup-rust-peers.sh"
# nats-server for the cluster tests and benchmark (issue 16).
bash "$root/scripts/setup-nats.sh" >/dev/null
echo "setup: done"
