#!/usr/bin/env bash
# Fails when include/wtdatagram.h differs from what cbindgen generates from crates/ffi now.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
cbindgen --quiet --config cbindgen.toml --crate wtdatagram-ffi --output "$tmp" crates/ffi
if ! diff -u include/wtdatagram.h "$tmp"; then
  echo "include/wtdatagram.h is stale: regenerate with"
  echo "  cbindgen --config cbindgen.toml --crate wtdatagram-ffi --output include/wtdatagram.h crates/ffi"
  exit 1
fi
echo "header: include/wtdatagram.h matches crates/ffi"
