#!/usr/bin/env bash
# The exit status of scripts/demo.sh (the README's main command), checked three ways:
#   1. a real run (the debug `wtd`, 500 datagrams): exits 0;
#   2. a client that fails while the server runs: exits nonzero, and its exit trap
#      stops the server;
#   3. a server that exits with an error after the clients succeeded: exits nonzero.
# 2 and 3 use a stand-in `wtd` (a shell script), so they take a second.
#   scripts/check-demo.sh [PATH_TO_WTD]   (default target/debug/wtd)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
wtd=${1:-$root/target/debug/wtd}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
bad() {
    echo "check-demo: FAILED: $*" >&2
    fails=$((fails + 1))
}

# 1. The real thing.
rc=0
WTD_DEMO_BIN=$wtd WTD_DEMO_COUNT=500 timeout 120 bash scripts/demo.sh >"$tmp/real.log" 2>&1 || rc=$?
if ((rc != 0)); then
    cat "$tmp/real.log" >&2
    bad "a successful demo run exited $rc"
elif ! grep -q '^closed 2 ' "$tmp/real.log"; then
    cat "$tmp/real.log" >&2
    bad "the demo exited 0 but its server log does not show the second session closing"
else
    echo "check-demo: a successful run exits 0"
fi

# A stand-in wtd: `serve` prints what the real one prints and records its pid;
# FAKE_MODE=client-fails: serve runs until killed, connect fails;
# FAKE_MODE=server-fails: connect works, serve exits 4 once both clients are done.
cat >"$tmp/wtd" <<'EOF'
#!/usr/bin/env bash
case "$1" in
serve)
    echo $$ >"$FAKE_DIR/server.pid"
    echo "listening https://127.0.0.1:9/"
    echo "cert-sha256 00"
    if [ "$FAKE_MODE" = client-fails ]; then exec sleep 60; fi
    for _ in $(seq 1 200); do [ -f "$FAKE_DIR/connect.2" ] && exit 4; sleep 0.02; done
    exit 0 ;;
connect)
    cat >/dev/null
    [ "$FAKE_MODE" = client-fails ] && exit 3
    n=1; [ -f "$FAKE_DIR/connect.1" ] && n=2
    : >"$FAKE_DIR/connect.$n"
    exit 0 ;;
esac
exit 2
EOF
chmod +x "$tmp/wtd"

for mode in client-fails server-fails; do
    rm -f "$tmp"/server.pid "$tmp"/connect.*
    rc=0
    FAKE_MODE=$mode FAKE_DIR=$tmp WTD_DEMO_BIN=$tmp/wtd timeout 60 bash scripts/demo.sh \
        >"$tmp/$mode.log" 2>&1 || rc=$?
    if ((rc == 0)); then
        cat "$tmp/$mode.log" >&2
        bad "$mode: the demo exited 0"
    elif ((rc == 124)); then
        bad "$mode: the demo hung (killed by timeout)"
    else
        echo "check-demo: $mode: exits $rc"
    fi
    if [ -f "$tmp/server.pid" ] && kill -0 "$(cat "$tmp/server.pid")" 2>/dev/null; then
        kill "$(cat "$tmp/server.pid")" 2>/dev/null || true
        bad "$mode: the server was left running"
    fi
done
((fails == 0))
