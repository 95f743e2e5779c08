#!/usr/bin/env bash
# Runs examples/cpp/game_fanout: a server with 3 players and 100 ticks on loopback.
# Every player gets every tick, in order up to the last, and sees the server's close.
set -euo pipefail
bin=$1
k=3
ticks=100
dir=$(mktemp -d)
pids=()
cleanup() {
    for p in ${spid:-} "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    echo "--- server log"; cat "$dir/server.log"
    for i in $(seq 1 $k); do echo "--- player $i log"; cat "$dir/join$i.log" 2>/dev/null || true; done
    exit 1
}

"$bin" serve --clients "$k" --ticks "$ticks" --interval-ms 10 --port-file "$dir/port" >"$dir/server.log" 2>&1 &
spid=$!
for _ in $(seq 1 100); do [ -s "$dir/port" ] && break; sleep 0.1; done
[ -s "$dir/port" ] || fail "server did not start"
read -r port hash <"$dir/port"

for i in $(seq 1 $k); do
    timeout 60 "$bin" join "https://127.0.0.1:$port/game" "$hash" >"$dir/join$i.log" 2>&1 &
    pids+=($!)
done
for i in $(seq 1 $k); do
    rc=0; wait "${pids[$((i - 1))]}" || rc=$?
    [ "$rc" = 0 ] || fail "player $i exited with $rc"
done
pids=()

for _ in $(seq 1 100); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$spid" 2>/dev/null && fail "server still running"
rc=0; wait "$spid" || rc=$?
spid=
[ "$rc" = 0 ] || fail "server exited with $rc"

cat "$dir/server.log"
for i in $(seq 1 $k); do
    echo "--- player $i"; cat "$dir/join$i.log"
    grep -q "^ticks $ticks last $ticks$" "$dir/join$i.log" || fail "player $i missed ticks"
    grep -q "^closed kind=remote code=4 reason=game over$" "$dir/join$i.log" || fail "player $i: no close"
    grep -q "^bad " "$dir/join$i.log" && fail "player $i: bad datagrams"
done
[ "$(grep -c '^player [0-9]* joined session ' "$dir/server.log")" = "$k" ] || fail "join count"
grep -q "^broadcast $ticks ticks to $k players dropped 0$" "$dir/server.log" || fail "drops"
[ "$(grep -c "^player [0-9]* session [0-9]* got $ticks/$ticks$" "$dir/server.log")" = "$k" ] || fail "answers"
echo "game fanout OK"
