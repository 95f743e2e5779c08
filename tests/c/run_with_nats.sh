#!/usr/bin/env bash
# run_with_nats.sh PROGRAM [ARGS...]: starts nats-server on a free loopback port, runs
# PROGRAM with WTD_NATS_URL=nats://127.0.0.1:PORT, stops the server; PROGRAM's exit
# status is the script's. nats-server comes from scripts/setup-nats.sh (or
# WTD_NATS_SERVER); without it this fails and says so.
set -euo pipefail
bin=${WTD_NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}
if [ ! -x "$bin" ]; then
    echo "run_with_nats: nats-server not found: run scripts/setup-nats.sh or set WTD_NATS_SERVER" >&2
    exit 1
fi
log=$(mktemp)
"$bin" -a 127.0.0.1 -p -1 2>"$log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
port=
for _ in $(seq 1 200); do
    port=$(sed -n 's/.*Listening for client connections on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -n 1)
    [ -n "$port" ] && grep -q "Server is ready" "$log" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
done
if [ -z "$port" ]; then
    echo "run_with_nats: nats-server did not start listening:" >&2
    cat "$log" >&2
    exit 1
fi
WTD_NATS_URL="nats://127.0.0.1:$port" "$@"
