#!/usr/bin/env bash
# Fuzzing (fuzz/, cargo-fuzz + libFuzzer): builds every target and runs each for a short
# time; exits nonzero if any target crashed (an assertion or a panic: each target checks
# round trips and whole-vs-chunked decoding, not only the absence of panics), or did not
# build or run.
#
#   bash scripts/fuzz.sh                       # every target, WTD_FUZZ_SECS (10) s each
#   bash scripts/fuzz.sh qpack capsule         # some targets
#   WTD_FUZZ_SECS=3600 WTD_FUZZ_SANITIZER=address bash scripts/fuzz.sh qpack   # a long run
#
# cargo-fuzz needs nightly compiler flags; the stable compiler accepts them with
# RUSTC_BOOTSTRAP=1 (set here). The sanitizer defaults to none: the parsers are safe Rust,
# and without AddressSanitizer the build and the runs are several times faster; ask for
# one (address) on long runs. New inputs go to target/fuzz-corpus/<target> (kept between
# runs, not committed); fuzz/corpus/<target> holds the committed seeds, read only.
# A crash leaves its input in fuzz/artifacts/<target>/; reproduce it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -s none <target> fuzz/artifacts/<target>/<file>
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export RUSTC_BOOTSTRAP=1
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
secs=${WTD_FUZZ_SECS:-10}
sanitizer=${WTD_FUZZ_SANITIZER:-none}
cargo_fuzz_version=0.13.1

if ! cargo fuzz --version 2>/dev/null | grep -q " $cargo_fuzz_version\$"; then
    echo "fuzz: installing cargo-fuzz $cargo_fuzz_version" >&2
    cargo install cargo-fuzz --locked --version "$cargo_fuzz_version" --quiet
fi

mapfile -t all < <(cargo fuzz list)
targets=("$@")
((${#targets[@]})) || targets=("${all[@]}")
if ((${#targets[@]} == 0)); then
    echo "fuzz: no targets found in fuzz/" >&2
    exit 1
fi

echo "fuzz: building (sanitizer: $sanitizer)"
cargo fuzz build -s "$sanitizer"

failed=()
for t in "${targets[@]}"; do
    work=target/fuzz-corpus/$t
    seeds=fuzz/corpus/$t
    mkdir -p "$work"
    dirs=("$work")
    [ -d "$seeds" ] && dirs+=("$seeds")
    log=target/fuzz-logs/$t.log
    mkdir -p target/fuzz-logs
    if cargo fuzz run -s "$sanitizer" "$t" "${dirs[@]}" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        echo "fuzz: $t: ok (${runs:-?} inputs in ${secs} s)"
    else
        echo "fuzz: $t: FAILED (log: $log)" >&2
        grep -E "panicked|assert|ERROR|SUMMARY|Test unit written" "$log" | head -n 20 >&2 || tail -n 30 "$log" >&2
        failed+=("$t")
    fi
done
echo "fuzz: $((${#targets[@]} - ${#failed[@]})) targets passed, ${#failed[@]} failed${failed:+: ${failed[*]}}"
((${#failed[@]} == 0))
