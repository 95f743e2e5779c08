#!/usr/bin/env bash
# Fetch the Go peers of the interop tests: bindings/go/interop pins webtransport-go
# v0.9.0 (quic-go v0.53.0) and bindings/go/interop/v013 webtransport-go v0.13.0
# (quic-go v0.62.0) in their go.mod; this downloads them, and the binding's own
# dependencies (which scripts/check-install.sh's modules need too), through the Go
# module proxy into Go's default module cache and checks that the test packages
# resolve. Idempotent and fast once cached. Needs Go >= 1.26 (v013's go line; an
# older go fetches that toolchain through the proxy, GOTOOLCHAIN=auto).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if ! command -v go >/dev/null 2>&1; then
    echo "setup-go-peers: go not found; install Go (https://go.dev/dl) for the Go binding" \
        "and its webtransport-go interop tests" >&2
    exit 1
fi

export GOFLAGS="-mod=mod -tags=wtd_dev"
for mod in "$repo/bindings/go" "$repo/bindings/go/interop" "$repo/bindings/go/interop/v013"; do
    cd "$mod"
    if ! go mod download; then
        echo "setup-go-peers: go mod download failed in $mod (Go module proxy reachable?)" >&2
        exit 1
    fi
    # Every package the tests import, with its dependencies, must now resolve offline.
    if ! go list -deps -test ./... >/dev/null; then
        echo "setup-go-peers: the packages of $mod do not resolve" >&2
        exit 1
    fi
done
