#!/usr/bin/env bash
# Installs nats-server for the cluster tests and the cluster benchmark (issue 16):
# Debian's `nats-server` package (bookworm ships 2.9.10). Idempotent. Prints the path of
# the binary on stdout. WTD_NATS_SERVER, if set, names a binary to use instead.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ -n "${WTD_NATS_SERVER:-}" ]; then
    if [ -x "$WTD_NATS_SERVER" ]; then echo "$WTD_NATS_SERVER"; exit 0; fi
    echo "setup-nats: WTD_NATS_SERVER=$WTD_NATS_SERVER is not an executable" >&2
    exit 1
fi
if ! command -v nats-server >/dev/null 2>&1; then
    echo "setup-nats: installing Debian's nats-server" >&2
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq nats-server >/dev/null
fi
bin=$(command -v nats-server)
# The package starts no service of its own that the tests rely on; they start their own
# server on a free loopback port.
"$bin" --version >&2
echo "$bin"
