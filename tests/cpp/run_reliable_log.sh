#!/usr/bin/env bash
# Runs examples/cpp/reliable_log as server and sender on loopback: 500 log lines, each
# delivered exactly once with a Delivered report, and the sender's close seen.
set -euo pipefail
bin=$1
n=500
dir=$(mktemp -d)
cleanup() { [ -n "${spid:-}" ] && kill "$spid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- server log"; cat "$dir/server.log"; exit 1; }

"$bin" serve --port-file "$dir/port" --messages "$n" >"$dir/server.log" 2>&1 &
spid=$!
for _ in $(seq 1 100); do [ -s "$dir/port" ] && break; sleep 0.1; done
[ -s "$dir/port" ] || fail "server did not start"
read -r port hash <"$dir/port"

timeout 60 "$bin" send "https://127.0.0.1:$port/log" "$hash" "$n" >"$dir/send.log" 2>&1 || {
    cat "$dir/send.log"; fail "sender failed"; }
cat "$dir/send.log"
grep -Eq "^delivered $n/$n given_up 0 retransmissions [0-9]+$" "$dir/send.log" || fail "not all delivered"

# The server exits by itself once it has N messages and the sender closed.
for _ in $(seq 1 100); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$spid" 2>/dev/null && fail "server still running"
rc=0; wait "$spid" || rc=$?
spid=
[ "$rc" = 0 ] || fail "server exited with $rc"
grep -v '^log ' "$dir/server.log"
grep -q "^session .* path=/log$" "$dir/server.log" || fail "no session line"
grep -Eq "^received $n/$n duplicates [0-9]+$" "$dir/server.log" || fail "server count"
# Every line exactly once, with its content.
[ "$(grep -c '^log seq=' "$dir/server.log")" = "$n" ] || fail "log line count"
[ "$(grep '^log seq=' "$dir/server.log" | sort -u | wc -l)" = "$n" ] || fail "duplicate log lines"
for i in 0 1 $((n / 2)) $((n - 1)); do
    grep -q "^log seq=$i level=[a-z]* host=sensor-$((i % 4)) " "$dir/server.log" || fail "line $i missing"
done
grep -q "^closed .* kind=remote code=200 reason=log shipped$" "$dir/server.log" || fail "close not seen"
echo "reliable log OK"
