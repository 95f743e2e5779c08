#!/usr/bin/env bash
# Every test: lints, header drift, Rust unit/integration/interop tests, C/C++ via ctest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}

step() { printf '\n==== %s\n' "$*"; }

step "setup"
bash scripts/setup.sh

step "format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings

step "generated header"
bash scripts/check-header.sh

step "Rust tests (unit, integration, interop: Chromium, aioquic)"
cargo test --all-targets

step "C and C++ (ctest)"
cmake -S . -B build -G Ninja -DWTD_CARGO_PROFILE=debug >/dev/null
cmake --build build -j2
(cd build && ctest --output-on-failure)

step "all tests passed"
