#!/usr/bin/env bash
# Every test: lints, header drift, the JS module, Rust unit/integration/interop tests
# (browsers included), C/C++ via ctest, Go, the install (C, C++ and Go programs built
# against it outside the tree), the demo's exit status, short fuzzing runs, and the
# interoperability matrix.
#
# Every step runs even when an earlier one failed (setup excepted: without it nothing
# else can), so one run shows everything that is broken. The closing line counts for
# real: the tests each runner reports (cargo test, ctest, go test, node --test) plus one
# check for each step that is not a test runner; a step that fails without a failed test
# of its own (a build error, a crash) counts as one failure. The script exits 1 when
# anything failed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
total_passed=0
total_failed=0
declare -a summary=()
declare -a failed_logs=()

# step NAME KIND FUNCTION: runs FUNCTION in a subshell with `set -e` in force (so a
# failing command inside it ends it) and its output copied to $logs/<n>.log; then counts.
# KIND: cargo | ctest | go | node (count that runner's tests) or check (the step is one check).
n_step=0
step() {
    local name=$1 kind=$2 fn=$3 rc=0
    n_step=$((n_step + 1))
    local log=$logs/$n_step.log
    printf '\n==== %s\n' "$name"
    set +e
    (set -eo pipefail; "$fn") 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    set -e
    local p=0 f=0
    case $kind in
    cargo)
        # "test result: ok. 12 passed; 0 failed; ..." / "test result: FAILED. 11 passed; 1 failed; ..."
        p=$(sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
        f=$(sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\2/p' "$log" | awk '{s+=$1} END {print s+0}')
        ;;
    ctest)
        # "97% tests passed, 1 tests failed out of 31"
        local line
        line=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' "$log" | tail -n 1 || true)
        if [ -n "$line" ]; then
            f=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<<"$line")
            p=$(($(sed -E 's/.* tests failed out of ([0-9]+).*/\1/' <<<"$line") - f))
        fi
        ;;
    go)
        p=$(grep -c -- '^--- PASS' "$log" || true)
        f=$(grep -c -- '^--- FAIL' "$log" || true)
        ;;
    node)
        # node --test's closing counts: "# pass 42" / "# fail 0"
        p=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$log" | tail -n 1)
        f=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$log" | tail -n 1)
        p=${p:-0} f=${f:-0}
        ;;
    check)
        if ((rc == 0)); then p=1; else f=1; fi
        ;;
    esac
    # A runner that failed without reporting a failed test (it did not build, it
    # crashed, or a command around it failed) is one failure more.
    if ((rc != 0 && f == 0)); then f=1; fi
    # A runner that reported nothing at all did not test anything.
    if [ "$kind" != check ] && ((rc == 0 && p == 0)); then
        echo "step \"$name\": no test ran" >&2
        f=1
    fi
    total_passed=$((total_passed + p))
    total_failed=$((total_failed + f))
    local verdict=PASS
    ((f == 0)) || verdict=FAIL
    ((f == 0)) || failed_logs+=("$name|$log")
    if [ "$kind" = check ]; then
        summary+=("$(printf '%-4s  %s' "$verdict" "$name")")
    else
        summary+=("$(printf '%-4s  %s: %d passed, %d failed' "$verdict" "$name" "$p" "$f")")
    fi
    return 0
}

# Interop matrix cells are written by this run only (setup may add "skip" cells).
rm -rf target/interop-matrix

printf '\n==== setup\n'
bash scripts/setup.sh

s_fmt() {
    cargo fmt --all -- --check
    cargo fmt --manifest-path tests/interop/rust-peers/Cargo.toml -- --check
    cargo fmt --manifest-path fuzz/Cargo.toml -- --check
}
s_layers() { python3 scripts/check-layers.py; }
s_clippy() { cargo clippy --workspace --all-targets --quiet -- -D warnings -D clippy::undocumented_unsafe_blocks -D unsafe_op_in_unsafe_fn; }
s_header() { bash scripts/check-header.sh; }
s_docs() { bash scripts/docs.sh; }
# The JS module: pinned TypeScript, compile, committed dist/ drift, node --test.
s_js() { bash scripts/check-js.sh; }
s_rust() { cargo test --workspace --all-targets --no-fail-fast; }
s_ctest() {
    cmake -S . -B build -G Ninja -DWTD_CARGO_PROFILE=debug >/dev/null
    cmake --build build -j2
    cd build && ctest --output-on-failure
}
# The GC-stress run (a collection at almost every allocation, cgo pointer checks)
# catches Go memory the library would still use after a call returned. In the
# repository the binding links target/debug (build tag wtd_dev); without the tag it
# links the installed library (pkg-config), which s_install checks.
s_go() {
    export GOFLAGS="-mod=mod -tags=wtd_dev"
    (cd bindings/go && go vet ./... && go test -race -count=1 -v ./...)
    (cd bindings/go && GOGC=1 GODEBUG=cgocheck=1 go test -count=1 ./...)
    (cd examples/go && go vet ./... && go test -count=1 -v ./...)
}
s_go_interop() {
    export GOFLAGS="-mod=mod -tags=wtd_dev"
    for m in bindings/go/interop bindings/go/interop/v013; do
        (cd "$m" && go vet ./... && go test -race -count=1 -v ./...)
    done
}
# The README's install into a temporary prefix (a release build of the library), and
# C (pkg-config, find_package), C++ (find_package) and Go (own module) programs built
# against it outside the tree, exchanging datagrams with the installed echo server.
s_install() { bash scripts/check-install.sh; }
s_demo() { bash scripts/check-demo.sh target/debug/wtd; }
s_fuzz() { bash scripts/fuzz.sh; }
s_bench_build() {
    cc -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude bench/c/wtd_bench.c -o target/wtd_bench_check \
        -Ltarget/debug -lwtdatagram -lpthread
    (cd bench/go && GOFLAGS="-mod=mod -tags=wtd_dev" go vet ./...)
    CARGO_TARGET_DIR=target/bench/check cargo check -j2 --locked --quiet --manifest-path bench/rust/Cargo.toml
}
s_matrix() { bash scripts/interop-matrix.sh --require-cells; }

step "format" check s_fmt
step "lints (clippy -D warnings)" check s_clippy
step "generated header" check s_header
step "API documentation (doxygen from the headers, no warnings: scripts/docs.sh)" check s_docs
step "layers (no import cycles; the protocol crate has no I/O dependencies)" check s_layers
step "JS module (bindings/js: compile, dist drift, node --test)" node s_js
step "Rust tests (unit, integration; interop: Chromium, Firefox ESR, aioquic, pywebtransport, wtransport, web-transport-quinn, h3-webtransport; JS module in both browsers)" cargo s_rust
step "C and C++ (ctest)" ctest s_ctest
step "Go bindings (bindings/go: vet, go test -race, GC stress; examples/go as processes)" go s_go
step "Go interop: webtransport-go v0.9.0 and v0.13.0 (bindings/go/interop{,/v013}, go test -race)" go s_go_interop
step "install: cmake --install into a temporary prefix; C via pkg-config, C and C++ via find_package, Go in its own module (scripts/check-install.sh)" check s_install
step "demo: scripts/demo.sh exits 0 on success, nonzero on failure (scripts/check-demo.sh)" check s_demo
step "fuzzing: every target for a short run (scripts/fuzz.sh)" check s_fuzz
step "benchmark programs still build (scripts/bench.sh runs them)" check s_bench_build
step "interoperability matrix (no cell may be fail)" check s_matrix

# The end of each failed step's output again, with the disk's state, so that whoever
# reads only the last lines of a run (a CI log's tail) still sees why it failed.
for entry in "${failed_logs[@]}"; do
    printf '\n==== failed: %s (its last lines)\n' "${entry%%|*}"
    tail -n 25 "${entry#*|}"
done
if ((${#failed_logs[@]})); then
    printf '\n==== disk\n'
    df -h "$root" || true
fi

printf '\n==== summary\n'
printf '%s\n' "${summary[@]}"
echo "$total_passed passed, $total_failed failed"
((total_failed == 0))
