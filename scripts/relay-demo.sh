#!/usr/bin/env bash
# Three `wtd serve --relay` nodes relaying to each other through NATS, on loopback, in
# about ten seconds (README "Scaling"). A listening client sits on nodes 2 and 3; a
# client on node 1 says something three times: with the bus up, with NATS killed (only
# node 1's own client hears it), and after NATS was restarted (everyone again, without
# touching the nodes). Every wait is bounded; everything it starts is stopped at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
nats=$(bash scripts/setup-nats.sh 2>/dev/null)
cargo build --quiet -p wtd
wtd=$root/target/debug/wtd
dir=$(mktemp -d)
pids=()
cleanup() {
    touch "$dir/done"
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

# wait_for FILE PATTERN [COUNT]: until FILE has COUNT lines matching PATTERN (10 s at most).
wait_for() {
    local n=${3:-1}
    for _ in $(seq 1 200); do
        [ "$(grep -c -- "$2" "$1" 2>/dev/null || true)" -ge "$n" ] && return 0
        sleep 0.05
    done
    echo "relay-demo: no '$2' in $1" >&2
    cat "$1" >&2
    exit 1
}

start_nats() { # on the port of the first start (-1: a free one)
    "$nats" -a 127.0.0.1 -p "${1:--1}" 2>"$dir/nats.log" &
    nats_pid=$!
    pids+=("$nats_pid")
    wait_for "$dir/nats.log" "Server is ready"
    port=$(sed -n 's/.*Listening for client connections on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$dir/nats.log" | head -n 1)
}
start_nats
echo "== nats-server on 127.0.0.1:$port"

for i in 1 2 3; do
    "$wtd" serve --bind 127.0.0.1:0 --nats "nats://127.0.0.1:$port" --relay demo >"$dir/node$i.log" 2>&1 &
    pids+=($!)
done
for i in 1 2 3; do
    wait_for "$dir/node$i.log" "bus ready"
    url[$i]=$(sed -n 's/^listening \(.*\)$/\1/p' "$dir/node$i.log")
    echo "== node $i: ${url[$i]} $(grep '^relay ' "$dir/node$i.log")"
done

# Listeners on nodes 2 and 3: their input ends when the file "done" appears.
for i in 2 3; do
    (while [ ! -e "$dir/done" ]; do sleep 0.1; done) |
        "$wtd" connect "${url[$i]}" --insecure >"$dir/client$i.log" 2>&1 &
    pids+=($!)
    wait_for "$dir/node$i.log" "^session "
done

say() { # say N TEXT: a client on node 1 sends TEXT (it hears the relay too)
    echo "== client on node 1 says: $2"
    echo "$2" | "$wtd" connect "${url[1]}" --insecure | sed 's/^/   node-1 client: /'
}

say 1 "hello from node 1 (bus up)"
wait_for "$dir/client2.log" "bus up"
wait_for "$dir/client3.log" "bus up"

kill "$nats_pid"
wait "$nats_pid" 2>/dev/null || true
for i in 1 2 3; do wait_for "$dir/node$i.log" "^bus down"; done
echo "== NATS killed: every node says 'bus down'"
say 1 "hello again (NATS is down: node 1 only)"

start_nats "$port"
for i in 1 2 3; do wait_for "$dir/node$i.log" "^bus ready reconnects=1"; done
echo "== NATS restarted on the same port: every node says 'bus ready reconnects=1'"
say 1 "hello once more (bus back)"
wait_for "$dir/client2.log" "bus back"
wait_for "$dir/client3.log" "bus back"

touch "$dir/done"
for i in 2 3; do wait_for "$dir/client$i.log" "^stats "; done
for i in 2 3; do
    echo "== listener on node $i heard:"
    sed 's/^/   /' "$dir/client$i.log"
done
for i in 1 2 3; do
    echo "== node $i, last stats: $(grep '^stats ' "$dir/node$i.log" | tail -n 1)"
done
