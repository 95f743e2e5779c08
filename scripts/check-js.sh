#!/usr/bin/env bash
# The JS module (bindings/js): install the pinned TypeScript (npm ci, package-lock.json),
# compile, fail if the committed dist/ differs from what the source compiles to (wtd
# serve embeds dist/), then run the unit tests with Node's test runner.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/bindings/js"
[ -d node_modules/typescript ] || npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
if ! git -C "$root" diff --quiet -- bindings/js/dist; then
  git -C "$root" diff --stat -- bindings/js/dist
  echo "check-js: bindings/js/dist is stale: commit the output of 'npm run build'" >&2
  exit 1
fi
node --test test/*.test.mjs
