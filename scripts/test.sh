#!/usr/bin/env bash
# Every test: lints, header drift, Rust unit/integration/interop tests, C/C++ via ctest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}

step() { printf '\n==== %s\n' "$*"; }
log=$(mktemp)
golog=$(mktemp)
jslog=$(mktemp)
# On failure the interop matrix is still printed: it says which peer pair broke.
trap 'rc=$?; if ((rc != 0)); then bash scripts/interop-matrix.sh || true; fi; rm -f "$log" "$golog" "$jslog"' EXIT

# Interop matrix cells are written by this run only (setup may add "skip" cells).
rm -rf target/interop-matrix

step "setup"
bash scripts/setup.sh

step "format and lints"
cargo fmt --all -- --check
cargo fmt --manifest-path tests/interop/rust-peers/Cargo.toml -- --check
cargo clippy --all-targets --quiet -- -D warnings

step "generated header"
bash scripts/check-header.sh

step "JS module (bindings/js: compile, dist drift, node --test)"
bash scripts/check-js.sh 2>&1 | tee "$jslog"
js_passed=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$jslog" | tail -1)

step "Rust tests (unit, integration; interop: Chromium, Firefox ESR, aioquic, pywebtransport, wtransport, web-transport-quinn, h3-webtransport; JS module in both browsers)"
cargo test --all-targets 2>&1 | tee -a "$log"

step "C and C++ (ctest)"
cmake -S . -B build -G Ninja -DWTD_CARGO_PROFILE=debug >/dev/null
cmake --build build -j2
(cd build && ctest --output-on-failure) 2>&1 | tee -a "$log"

step "Go bindings (bindings/go: vet, go test -race, GC stress; examples/go as processes)"
# The GC-stress run (a collection at almost every allocation, cgo pointer checks)
# catches Go memory the library would still use after a call returned.
(cd bindings/go && export GOFLAGS=-mod=mod && go vet ./... && go test -race -count=1 -v ./... &&
  GOGC=1 GODEBUG=cgocheck=1 go test -count=1 ./... &&
  cd ../../examples/go && go vet ./... && go test -count=1 -v ./...) 2>&1 | tee "$golog"
step "Go interop: webtransport-go v0.9.0 and v0.13.0 (bindings/go/interop{,/v013}, go test -race)"
for m in bindings/go/interop bindings/go/interop/v013; do (cd "$m" && GOFLAGS=-mod=mod go vet ./... && GOFLAGS=-mod=mod go test -race -count=1 -v ./...) || exit 1; done 2>&1 | tee -a "$golog"
go_passed=$(grep -c -- '^--- PASS' "$golog" || true)

# One closing line for the whole run: Rust test counts plus ctest's plus Go's.
rust_passed=$(sed -n 's/^test result: ok\. \([0-9]*\) passed.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
ctest_total=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\)/\2/p' "$log" | tail -1)
step "benchmark programs still build (scripts/bench.sh runs them)"
cc -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude bench/c/wtd_bench.c -o target/wtd_bench_check \
    -Ltarget/debug -lwtdatagram -lpthread
(cd bench/go && GOFLAGS=-mod=mod go vet ./...)
CARGO_TARGET_DIR=target/bench/check cargo check -j2 --locked --quiet --manifest-path bench/rust/Cargo.toml

step "interoperability matrix"
bash scripts/interop-matrix.sh
step "summary"
echo "$((rust_passed + ctest_total + go_passed + ${js_passed:-0})) passed, 0 failed"
