#!/usr/bin/env bash
# The main job: build, start a WebTransport echo server on loopback, and have a client
# exchange datagrams with it, printing what happens on both sides.
#
# Exits 0 only when every step worked: both clients succeeded and the server exited by
# itself, successfully, after their two sessions. Any failure exits nonzero, and the
# server is stopped.
#   WTD_DEMO_BIN=path/to/wtd   use this binary instead of building one (release)
#   WTD_DEMO_COUNT=N           datagrams of the bulk exchange (default 10000)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
count=${WTD_DEMO_COUNT:-10000}
if [ -n "${WTD_DEMO_BIN:-}" ]; then
    wtd=$WTD_DEMO_BIN
else
    echo "== building (release)"
    cargo build --release --quiet -p wtd --bin wtd
    wtd=$root/target/release/wtd
fi
log=$(mktemp)
spid=
# Runs on every exit, success or failure. It must not fail itself (under `set -e` a
# failing command here would replace the script's exit status): the server may have
# exited already, so `kill` is allowed to find nothing. The status the script was
# exiting with is kept.
cleanup() {
    local rc=$?
    if [ -n "$spid" ] && kill -0 "$spid" 2>/dev/null; then
        kill "$spid" 2>/dev/null || true
        wait "$spid" 2>/dev/null || true
    fi
    rm -f "$log"
    exit "$rc"
}
trap cleanup EXIT

echo "== starting: wtd serve --bind 127.0.0.1:0"
"$wtd" serve --bind 127.0.0.1:0 --max 2 >"$log" 2>&1 &
spid=$!
for _ in $(seq 1 200); do grep -q '^cert-sha256 ' "$log" && break; sleep 0.05; done
url=$(sed -n 's/^listening //p' "$log")
hash=$(sed -n 's/^cert-sha256 //p' "$log")
if [ -z "$url" ] || [ -z "$hash" ]; then
    echo "demo: the server did not start:" >&2
    cat "$log" >&2
    exit 1
fi
echo "server: listening $url (certificate sha256 $hash)"

echo "== client: three lines from stdin, each sent as a datagram"
printf 'hello from libwtdatagram\nsecond datagram\nthird ✓\n' | "$wtd" connect "${url}demo" --hash "$hash"

echo "== client: $count datagrams of 1000 bytes, echoed back"
"$wtd" connect "${url}bulk" --hash "$hash" --count "$count" --size 1000

# --max 2: the server exits by itself once both sessions closed. Wait for it (bounded)
# and take its exit status as part of the result.
for _ in $(seq 1 200); do kill -0 "$spid" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$spid" 2>/dev/null; then
    echo "demo: the server did not exit after its two sessions" >&2
    cat "$log" >&2
    exit 1
fi
src=0
wait "$spid" || src=$?
spid=
echo "== server log"
cat "$log"
if ((src != 0)); then
    echo "demo: the server exited with status $src" >&2
    exit 1
fi
echo "== demo finished: ok"
