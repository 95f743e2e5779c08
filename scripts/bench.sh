#!/usr/bin/env bash
# The benchmark command (README "Benchmarks"): builds everything in release mode, then,
# in this one invocation on loopback, measures raw quinn (the ceiling), the C ABI, the
# C++ wrapper, the Go binding, aioquic and (when its chroot exists) pywebtransport,
# prints a table with ratios to raw quinn and the targets (issues 7 and 14), and writes
# the results as JSON to target/bench/results-<timestamp>.json and
# target/bench/latest.json.
#
#   bash scripts/bench.sh              # all cases, 3 runs each (medians): a few minutes
#   WTD_BENCH_RUNS=5 WTD_BENCH_SECS=3 bash scripts/bench.sh
#   WTD_BENCH_ONLY="oneway rtt" bash scripts/bench.sh   # a subset: oneway rtt fanout cluster timeout sessions
#   WTD_BENCH_BASELINE=44a91d6 bash scripts/bench.sh    # also that commit's C and Go programs, interleaved
#
# WTD_BENCH_BASELINE=REV builds the library and the C and Go benchmark programs of REV
# (git archive into target/bench/baseline-REV, its own cargo target directory, built
# once) and runs them right after their current counterparts in every run, so "before"
# and "after" meet the same moments of the machine; the report adds a table of now/base.
#
# Every program runs client and server in one process (the sessions case forks its
# server) with the library's default settings; each run is bounded by `timeout`.
# Numbers are only comparable within one invocation (the machine may be shared).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

runs=${WTD_BENCH_RUNS:-3}
secs=${WTD_BENCH_SECS:-2}
pings=${WTD_BENCH_PINGS:-10000}
only=${WTD_BENCH_ONLY:-oneway rtt fanout cluster timeout sessions}
out=$root/target/bench
mkdir -p "$out"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
raw=$out/raw-$stamp.jsonl
: >"$raw"
declare -a skipped=()

log() { echo "bench: $*" >&2; }
want() { [[ " $only " == *" $1 "* ]]; }

# ---- build (release)
log "building (release)"
cargo build --release -j2 -p wtdatagram-ffi --quiet
CARGO_TARGET_DIR=$out/cargo cargo build --release -j2 --locked --quiet \
    --manifest-path bench/rust/Cargo.toml
quinn_bin=$out/cargo/release/bench-quinn
cc -O2 -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude bench/c/wtd_bench.c \
    -o "$out/wtd_bench" -L"$root/target/release" -lwtdatagram -lpthread \
    -Wl,-rpath,"$root/target/release"
c_bin=$out/wtd_bench
cpp_bin=
if command -v c++ >/dev/null 2>&1 && c++ -O2 -std=c++17 -Wall -Wextra -Werror -pedantic -Iinclude \
    -Ibindings/cpp/include bench/cpp/wtd_bench.cpp -o "$out/wtd_bench_cpp" -L"$root/target/release" \
    -lwtdatagram -lpthread -Wl,-rpath,"$root/target/release"; then
    cpp_bin=$out/wtd_bench_cpp
else
    skipped+=(--skipped "cpp=no C++17 compiler (c++) or the build failed")
fi
go_bin=
if command -v go >/dev/null 2>&1; then
    # The binding's development flags (tag wtd_dev) point at target/debug; ours come
    # first, so the release library is the one linked (and LD_LIBRARY_PATH makes it the
    # one loaded).
    if (cd bench/go && CGO_LDFLAGS="-L$root/target/release -Wl,-rpath,$root/target/release" \
        go build -tags wtd_dev -o "$out/wtdbench-go" .); then
        go_bin=$out/wtdbench-go
    else
        skipped+=(--skipped "go=go build failed")
    fi
else
    skipped+=(--skipped "go=go not installed")
fi
py=
if bash scripts/setup-python-peers.sh >/dev/null 2>&1; then
    py=$root/.venv-interop/bin/python
else
    skipped+=(--skipped "aioquic=scripts/setup-python-peers.sh failed")
fi
pwt=
if [ -f .peers/trixie/.wtd-pywebtransport-ready ] && [ -f scripts/run-in-trixie.sh ] \
    && [ -f tests/interop/pywebtransport_peer.py ]; then
    pwt=1
else
    skipped+=(--skipped "pywebtransport=no Debian trixie root with pywebtransport 0.21 (.peers/trixie: run scripts/setup-pywebtransport.sh as root)")
fi
# ---- the baseline (WTD_BENCH_BASELINE=REV): REV's own library and C/Go programs.
base_c=
base_go=
base_lib=
base_rev=
if [ -n "${WTD_BENCH_BASELINE:-}" ]; then
    base_rev=$(git rev-parse --short "$WTD_BENCH_BASELINE^{commit}")
    bdir=$out/baseline-$base_rev
    if [ ! -f "$bdir/.built" ]; then
        log "building the baseline $base_rev (release, $bdir)"
        rm -rf "$bdir"
        mkdir -p "$bdir/src"
        git archive "$base_rev" | tar -x -C "$bdir/src"
        # Inside this repository's tree, cargo would take REV's root crate for a member
        # of our workspace: a root manifest without a [workspace] table gets an empty one.
        grep -q '^\[workspace\]' "$bdir/src/Cargo.toml" || printf '\n[workspace]\n' >>"$bdir/src/Cargo.toml"
        # Before the workspace split (issue 12) the library was the root crate.
        if [ -d "$bdir/src/crates/ffi" ]; then what=(-p wtdatagram-ffi); else what=(--lib); fi
        (cd "$bdir/src" && CARGO_TARGET_DIR=$bdir/target cargo build --release -j2 --locked --quiet "${what[@]}")
        touch "$bdir/.built"
    fi
    base_lib=$bdir/target/release
    cc -O2 -std=c11 -Wall -Wextra -pedantic -I"$bdir/src/include" "$bdir/src/bench/c/wtd_bench.c" \
        -o "$bdir/wtd_bench" -L"$base_lib" -lwtdatagram -lpthread -Wl,-rpath,"$base_lib"
    base_c=$bdir/wtd_bench
    if [ -n "$go_bin" ] && (cd "$bdir/src/bench/go" && \
        CGO_LDFLAGS="-L$base_lib -Wl,-rpath,$base_lib" go build -tags wtd_dev -o "$bdir/wtdbench-go" .); then
        base_go=$bdir/wtdbench-go
    fi
fi
# base LIMIT CMD...: `run` for a baseline program: its own library, impl named "base:...".
base() { tag=base: LD_LIBRARY_PATH=$base_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} run "$@"; }

# The cluster case (issue 16): a nats-server on a free loopback port for this run.
nats_url=
if want cluster; then
    if nats_bin=$(bash scripts/setup-nats.sh 2>/dev/null); then
        nats_log=$out/nats-$stamp.log
        "$nats_bin" -a 127.0.0.1 -p -1 2>"$nats_log" &
        nats_pid=$!
        trap 'kill "$nats_pid" 2>/dev/null || true' EXIT
        for _ in $(seq 1 200); do
            port=$(sed -n 's/.*Listening for client connections on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$nats_log" | head -n 1)
            [ -n "$port" ] && break
            sleep 0.05
        done
        if [ -n "${port:-}" ]; then nats_url=nats://127.0.0.1:$port; else skipped+=(--skipped "cluster=nats-server did not start (see $nats_log)"); fi
    else
        skipped+=(--skipped "cluster=no nats-server (scripts/setup-nats.sh failed)")
    fi
fi
export LD_LIBRARY_PATH=$root/target/release${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

# run LIMIT_SECS CMD...: one measurement; its JSON lines go to $raw.
run() {
    local limit=$1
    shift
    local res
    if res=$(timeout "$limit" "$@" 2>"$out/last-stderr.txt"); then
        printf '%s\n' "$res" | grep '^{' | sed "s/\"impl\":\"/\"impl\":\"${tag:-}/" | tee -a "$raw" >&2 || true
    else
        log "FAILED ($?): $* -- $(tail -n 3 "$out/last-stderr.txt" | tr '\n' ' ')"
    fi
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average before the runs: $load_start"

# ---- one-way and echo RTT: the implementations interleaved within each run, so a
# busy moment of the machine hits them alike.
for ((r = 1; r <= runs; r++)); do
    if want oneway; then
        for size in 64 1200; do
            log "run $r/$runs: one-way $size B"
            run 60 "$quinn_bin" --case oneway --size "$size" --secs "$secs"
            run 60 "$c_bin" oneway "$size" "$secs" single
            run 60 "$c_bin" oneway "$size" "$secs" batch
            if [ -n "$base_c" ]; then base 60 "$base_c" oneway "$size" "$secs" single; fi
            if [ -n "$base_c" ]; then base 60 "$base_c" oneway "$size" "$secs" batch; fi
            if [ -n "$cpp_bin" ]; then run 60 "$cpp_bin" oneway "$size" "$secs" recv; fi
            if [ -n "$cpp_bin" ]; then run 60 "$cpp_bin" oneway "$size" "$secs" callback; fi
            if [ -n "$go_bin" ]; then run 60 "$go_bin" oneway "$size" "$secs" single; fi
            if [ -n "$go_bin" ]; then run 60 "$go_bin" oneway "$size" "$secs" batch; fi
            if [ -n "$base_go" ]; then base 60 "$base_go" oneway "$size" "$secs" single; fi
            if [ -n "$base_go" ]; then base 60 "$base_go" oneway "$size" "$secs" batch; fi
            if [ -n "$py" ]; then run 60 "$py" bench/py/aioquic_bench.py oneway "$size" "$secs"; fi
            if [ -n "$pwt" ]; then run 120 python3 bench/py/pywebtransport_bench.py oneway "$size" "$secs"; fi
        done
    fi
    if want rtt; then
        for size in 64 1200; do
            log "run $r/$runs: echo RTT $size B, $pings pings"
            run 120 "$quinn_bin" --case rtt --size "$size" --count "$pings"
            run 120 "$c_bin" rtt "$size" "$pings"
            if [ -n "$base_c" ]; then base 120 "$base_c" rtt "$size" "$pings"; fi
            if [ -n "$cpp_bin" ]; then run 120 "$cpp_bin" rtt "$size" "$pings" recv; fi
            if [ -n "$cpp_bin" ]; then run 120 "$cpp_bin" rtt "$size" "$pings" callback; fi
            if [ -n "$go_bin" ]; then run 120 "$go_bin" rtt "$size" "$pings" events; fi
            if [ -n "$go_bin" ]; then run 120 "$go_bin" rtt "$size" "$pings" direct; fi
            if [ -n "$base_go" ]; then base 120 "$base_go" rtt "$size" "$pings" events; fi
            if [ -n "$base_go" ]; then base 120 "$base_go" rtt "$size" "$pings" direct; fi
            if [ -n "$py" ]; then run 120 "$py" bench/py/aioquic_bench.py rtt "$size" "$pings"; fi
            if [ -n "$pwt" ]; then run 240 python3 bench/py/pywebtransport_bench.py rtt "$size" "$pings"; fi
        done
    fi
    if want fanout; then
        log "run $r/$runs: broadcast to 1000 sessions"
        run 120 "$c_bin" fanout 1000 50
        if [ -n "$base_c" ]; then base 120 "$base_c" fanout 1000 50; fi
    fi
    if want cluster && [ -n "$nats_url" ]; then
        # The single-node figure it is compared with comes from the same run.
        if ! want fanout; then
            log "run $r/$runs: broadcast to 1000 sessions (single node, for the cluster case)"
            run 120 "$c_bin" fanout 1000 50
        fi
        log "run $r/$runs: broadcast to 1000 sessions over 3 nodes joined through NATS"
        run 120 "$c_bin" cluster 1000 50 "$nats_url"
    fi
    if want timeout && [ -n "$go_bin" ]; then
        log "run $r/$runs: Go receive timeouts of 150 ms"
        run 120 "$go_bin" timeout 150 20
    fi
done
if want sessions; then
    log "10000 idle sessions, one per connection"
    run 240 "$c_bin" sessions 10000 1
    log "10000 idle sessions, 250 per connection"
    run 240 "$c_bin" sessions 10000 250
fi

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git status --porcelain 2>/dev/null | head -n 1)" ] && commit="$commit+dirty"
python3 bench/report.py "$raw" "$out/results-$stamp.json" \
    --meta "timestamp=$stamp" --meta "commit=$commit" --meta "runs=$runs" \
    --meta "secs=$secs" --meta "pings=$pings" --meta "cpus=$(nproc)" \
    --meta "load=$(cut -d' ' -f1-3 /proc/loadavg)" --meta "load_start=$load_start" \
    --meta "kernel=$(uname -r)" --meta "baseline=$base_rev" \
    "${skipped[@]}"
cp "$out/results-$stamp.json" "$out/latest.json"
