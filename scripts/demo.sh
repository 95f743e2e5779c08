#!/usr/bin/env bash
# The main job: build, start a WebTransport echo server on loopback, and have a client
# exchange datagrams with it, printing what happens on both sides.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
echo "== building (release)"
cargo build --release --quiet -p wtd --bin wtd
wtd=$root/target/release/wtd
log=$(mktemp)
cleanup() { [ -n "${spid:-}" ] && kill "$spid" 2>/dev/null; rm -f "$log"; }
trap cleanup EXIT

echo "== starting: wtd serve --bind 127.0.0.1:0"
"$wtd" serve --bind 127.0.0.1:0 --max 2 >"$log" 2>&1 &
spid=$!
for _ in $(seq 1 100); do grep -q '^cert-sha256 ' "$log" && break; sleep 0.05; done
url=$(sed -n 's/^listening //p' "$log")
hash=$(sed -n 's/^cert-sha256 //p' "$log")
echo "server: listening $url (certificate sha256 $hash)"

echo "== client: three lines from stdin, each sent as a datagram"
printf 'hello from libwtdatagram\nsecond datagram\nthird ✓\n' | "$wtd" connect "${url}demo" --hash "$hash"

echo "== client: 10000 datagrams of 1000 bytes, echoed back"
"$wtd" connect "${url}bulk" --hash "$hash" --count 10000 --size 1000

for _ in $(seq 1 100); do kill -0 "$spid" 2>/dev/null || break; sleep 0.05; done
echo "== server log"
cat "$log"
