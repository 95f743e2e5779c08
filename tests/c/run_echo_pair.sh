#!/usr/bin/env bash
# Runs examples/c/echo_server and echo_client against each other on loopback.
set -euo pipefail
server_bin=$1
client_bin=$2
dir=$(mktemp -d)
cleanup() { [ -n "${spid:-}" ] && kill "$spid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

"$server_bin" --port-file "$dir/port" --max-sessions 1 >"$dir/server.log" 2>&1 &
spid=$!
for _ in $(seq 1 100); do [ -s "$dir/port" ] && break; sleep 0.1; done
[ -s "$dir/port" ] || { echo "server did not start"; cat "$dir/server.log"; exit 1; }
read -r port hash <"$dir/port"

"$client_bin" "https://127.0.0.1:$port/echo" "$hash" 1000 | tee "$dir/client.log"
grep -q "^received 1000/1000 " "$dir/client.log"

# The server exits by itself once the session has closed.
for _ in $(seq 1 100); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$spid" 2>/dev/null; then echo "server still running"; cat "$dir/server.log"; exit 1; fi
wait "$spid"
spid=
cat "$dir/server.log"
grep -q "^session .* path=/echo" "$dir/server.log"
grep -q "^closed .* kind=remote code=7 reason=done" "$dir/server.log"
echo "echo pair OK"
