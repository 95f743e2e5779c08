#!/usr/bin/env bash
# Build the Rust WebTransport interop peers used by tests/interop_rust_peers.rs: the
# package tests/interop/rust-peers (wtransport, web-transport-quinn, h3-webtransport
# from crates.io, pinned in its committed Cargo.lock) into $REPO/.peers/rust-target.
# Idempotent: cargo's own freshness check makes a repeat run take about a second.
# Needs cargo and access to crates.io (or a filled cargo cache).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="$repo/.peers/rust-target"
bin="$CARGO_TARGET_DIR/debug/rust-peer"

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup-rust-peers: cargo not found" >&2
    exit 1
fi

start=$SECONDS
if ! cargo build -j2 --locked --quiet --manifest-path "$repo/tests/interop/rust-peers/Cargo.toml"; then
    echo "setup-rust-peers: building tests/interop/rust-peers failed" >&2
    exit 1
fi
if [ ! -x "$bin" ]; then
    echo "setup-rust-peers: $bin was not built" >&2
    exit 1
fi
if ((SECONDS - start > 5)); then
    echo "setup-rust-peers: built $bin in $((SECONDS - start)) s"
fi
