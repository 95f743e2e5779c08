#!/usr/bin/env bash
# The README's install, checked as a user outside the repository would use it:
#
#   cmake -S . -B BUILD && cmake --build BUILD && cmake --install BUILD --prefix PREFIX
#
# into a temporary PREFIX (the release library), then checks the installed tree (files
# and links, SONAME, no RUNPATH, no debug info, one version everywhere) and builds, in a
# temporary folder outside the source tree and against the installed files only:
#   - examples/c/echo_server.c and echo_client.c through pkg-config (shared library),
#     and echo_client.c linked statically (pkg-config's Libs.private);
#   - a CMake project (tests/install/CMakeLists.txt): find_package(wtdatagram CONFIG),
#     echo_client.c with wtdatagram::wtdatagram and with wtdatagram::static,
#     examples/cpp/echo_client.cpp with wtdatagram::cpp;
#   - examples/go/echo_client in a Go module of its own, requiring the binding (a copy
#     outside the repository, as the module cache would hold it) with no build tag:
#     #cgo pkg-config, PKG_CONFIG_PATH=PREFIX/lib/pkgconfig; then again from a vendor
#     folder with the copy gone; and the Go program of the README, by its commands.
# Every client then exchanges datagrams with the installed echo server and must get
# every one back intact ("received N/N"); the server must see each session close with
# the client's code and reason, and exit by itself after the last one.
#
#   scripts/check-install.sh [BUILD_DIR]   (default target/cmake-release)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${1:-$root/target/cmake-release}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
unset LD_LIBRARY_PATH
count=300
tmp=$(mktemp -d)
spid=
cleanup() {
    local rc=$?
    if [ -n "$spid" ] && kill -0 "$spid" 2>/dev/null; then
        kill "$spid" 2>/dev/null || true
        wait "$spid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
fail() {
    echo "check-install: FAILED: $*" >&2
    exit 1
}
t0=$SECONDS
phase() { echo "== $* (at ${SECONDS}s: $((SECONDS - t0))s in)"; }

# ---- install
phase "cmake build and install (release library) into a temporary prefix"
prefix=$tmp/prefix
cmake -S . -B "$build" -DWTD_BUILD_TESTS=OFF >/dev/null
cmake --build "$build"
cmake --install "$build" --prefix "$prefix"
(cd "$prefix" && find . | sort)

version=$(sed -n 's/^version = "\([0-9.]*\)"$/\1/p' Cargo.toml | head -n 1)
major=${version%%.*}
lib=$prefix/lib
[ -f "$lib/libwtdatagram.so.$version" ] && [ ! -L "$lib/libwtdatagram.so.$version" ] ||
    fail "lib/libwtdatagram.so.$version is not a file"
[ "$(readlink "$lib/libwtdatagram.so.$major")" = "libwtdatagram.so.$version" ] ||
    fail "lib/libwtdatagram.so.$major is not a link to libwtdatagram.so.$version"
[ "$(readlink "$lib/libwtdatagram.so")" = "libwtdatagram.so.$major" ] ||
    fail "lib/libwtdatagram.so is not a link to libwtdatagram.so.$major"
for f in lib/libwtdatagram.a include/wtdatagram.h include/wtdatagram.hpp lib/pkgconfig/wtdatagram.pc \
    lib/cmake/wtdatagram/wtdatagramConfig.cmake lib/cmake/wtdatagram/wtdatagramConfigVersion.cmake \
    share/doc/wtdatagram/LICENSE-MIT share/doc/wtdatagram/LICENSE-APACHE share/doc/wtdatagram/CHANGELOG.md; do
    [ -f "$prefix/$f" ] || fail "$f is not installed"
done
cmp -s include/wtdatagram.h "$prefix/include/wtdatagram.h" || fail "the installed wtdatagram.h differs from include/"

readelf -d "$lib/libwtdatagram.so.$version" | tee "$tmp/dynamic.txt" | grep -E 'SONAME|RPATH|RUNPATH' || true
grep -q "Library soname: \[libwtdatagram.so.$major\]" "$tmp/dynamic.txt" || fail "SONAME is not libwtdatagram.so.$major"
! grep -qE 'RPATH|RUNPATH' "$tmp/dynamic.txt" || fail "the installed library has an RPATH/RUNPATH"
for f in "$lib/libwtdatagram.so.$version" "$lib/libwtdatagram.a"; do
    if readelf -S -W "$f" | grep -q ' \.debug_'; then fail "$f carries debug info"; fi
done
ls -l "$lib"

export PKG_CONFIG_PATH=$lib/pkgconfig
[ "$(pkg-config --modversion wtdatagram)" = "$version" ] || fail "pkg-config version is not $version"
echo "pkg-config: $(pkg-config --cflags --libs wtdatagram) | static: $(pkg-config --static --libs wtdatagram)"

# ---- consumers, outside the source tree
work=$tmp/work
mkdir -p "$work/pc" "$work/cmake" "$work/go/app" "$work/go/wtdatagram-go"

phase "C through pkg-config"
cflags=$(pkg-config --cflags wtdatagram)
libdir=$(pkg-config --variable=libdir wtdatagram)
cp examples/c/echo_server.c examples/c/echo_client.c "$work/pc/"
# shellcheck disable=SC2086 # word splitting of pkg-config output is intended
(
    cd "$work/pc"
    warn="-std=c11 -Wall -Wextra -Werror -pedantic"
    cc $warn $cflags echo_server.c -o echo_server $(pkg-config --libs wtdatagram) -Wl,-rpath,"$libdir"
    cc $warn $cflags echo_client.c -o echo_client $(pkg-config --libs wtdatagram) -Wl,-rpath,"$libdir"
    # Static: the archive itself, then what Libs.private lists (pkg-config --static).
    static_libs=$(pkg-config --static --libs-only-l wtdatagram | sed 's/-lwtdatagram//')
    cc $warn $cflags echo_client.c -o echo_client_static "$libdir/libwtdatagram.a" $static_libs
    # A program built against this header agrees with the library it loads.
    printf '#include <stdio.h>\n#include <string.h>\n#include "wtdatagram.h"\nint main(void) { printf("%%s %%s\\n", WTD_VERSION_STRING, wtd_version()); return strcmp(WTD_VERSION_STRING, wtd_version()) != 0; }\n' >version.c
    cc $warn $cflags version.c -o version $(pkg-config --libs wtdatagram) -Wl,-rpath,"$libdir"
)
[ "$("$work/pc/version")" = "$version $version" ] || fail "WTD_VERSION_STRING / wtd_version() are not $version: $("$work/pc/version")"

phase "C and C++ through find_package(wtdatagram CONFIG)"
cp tests/install/CMakeLists.txt examples/c/echo_client.c examples/cpp/echo_client.cpp "$work/cmake/"
cmake -S "$work/cmake" -B "$work/cmake/build" -DCMAKE_PREFIX_PATH="$prefix" | grep 'found wtdatagram'
cmake --build "$work/cmake/build"

phase "Go module of its own, binding through pkg-config"
# The binding's package files, as a module cache holds them (no nested modules).
find bindings/go -maxdepth 1 -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) \
    -exec cp {} "$work/go/wtdatagram-go/" \;
cp examples/go/echo_client/main.go "$work/go/app/"
cat >"$work/go/app/go.mod" <<'GOMOD'
module example.com/wtdconsumer

go 1.22

require github.com/libwtdatagram/libwtdatagram/bindings/go v0.1.0

replace github.com/libwtdatagram/libwtdatagram/bindings/go => ../wtdatagram-go
GOMOD
(
    cd "$work/go/app"
    export CGO_LDFLAGS="-Wl,-rpath,$libdir"
    GOFLAGS=-mod=mod go build -o echo_client_go .
    # The same program from a vendor folder, the binding's copy gone.
    GOFLAGS=-mod=mod go mod vendor
    mv ../wtdatagram-go ../wtdatagram-go.gone
    GOFLAGS=-mod=vendor go build -o echo_client_go_vendor .
    mv ../wtdatagram-go.gone ../wtdatagram-go
)

phase "the README's Go program, in a module of its own made by the README's commands"
mkdir -p "$work/go/readme"
awk '/check-install.sh builds and runs this program/ {on = 1; next}
     on && /^```go$/ {copy = 1; next}
     copy && /^```$/ {exit}
     copy {print}' README.md >"$work/go/readme/main.go"
grep -q '^package main$' "$work/go/readme/main.go" || fail "no Go program found in README.md"
(
    cd "$work/go/readme"
    unset GOFLAGS
    go mod init example.com/app 2>/dev/null
    go mod edit -require=github.com/libwtdatagram/libwtdatagram/bindings/go@v0.1.0 \
        -replace=github.com/libwtdatagram/libwtdatagram/bindings/go="$work/go/wtdatagram-go"
    go mod tidy
    export CGO_LDFLAGS="-Wl,-rpath,$libdir"
    go build -o app .
)
out=$("$work/go/readme/app") || { echo "$out" >&2; fail "the README's Go program failed"; }
echo "README program: $out"
[ "$out" = "libwtdatagram $version: echo \"hello\"" ] || fail "the README's Go program printed '$out'"

# ---- every program links the installed library
phase "linkage"
dyn_clients=("$work/pc/echo_client" "$work/cmake/build/echo_client_c" "$work/cmake/build/echo_client_cpp"
    "$work/go/app/echo_client_go" "$work/go/app/echo_client_go_vendor")
static_clients=("$work/pc/echo_client_static" "$work/cmake/build/echo_client_c_static")
for p in "$work/pc/echo_server" "${dyn_clients[@]}" "$work/go/readme/app"; do
    readelf -d "$p" | grep -q "Shared library: \[libwtdatagram.so.$major\]" ||
        fail "$p does not record libwtdatagram.so.$major"
    resolved=$(ldd "$p" | sed -n 's/^\s*libwtdatagram\.so\.[0-9]* => \(\S*\) .*/\1/p')
    [ -n "$resolved" ] && [ "$(readlink -f "$resolved")" = "$(readlink -f "$lib/libwtdatagram.so.$major")" ] ||
        fail "$p loads '$resolved', not $lib/libwtdatagram.so.$major"
    echo "$(basename "$p"): libwtdatagram.so.$major => $resolved"
done
for p in "${static_clients[@]}"; do
    ! readelf -d "$p" | grep -q 'libwtdatagram' || fail "$p is not linked statically"
    echo "$(basename "$p"): static"
done

# ---- run them against the installed echo server
phase "datagrams: ${#dyn_clients[@]} + ${#static_clients[@]} clients against the installed echo server"
clients=("${dyn_clients[@]}" "${static_clients[@]}")
"$work/pc/echo_server" --port-file "$tmp/port" --max-sessions "${#clients[@]}" >"$tmp/server.log" 2>&1 &
spid=$!
for _ in $(seq 1 200); do
    if [ -s "$tmp/port" ]; then
        read -r port hash <"$tmp/port" || true
        [ "${#hash}" = 64 ] && break
    fi
    kill -0 "$spid" 2>/dev/null || break
    sleep 0.05
done
[ "${#hash}" = 64 ] || { cat "$tmp/server.log" >&2; fail "the echo server did not start"; }
for p in "${clients[@]}"; do
    out=$("$p" "https://127.0.0.1:$port/$(basename "$p")" "$hash" "$count") ||
        { echo "$out" >&2; fail "$(basename "$p") failed"; }
    echo "$(basename "$p"): $(grep '^received' <<<"$out")"
    grep -q "^received $count/$count " <<<"$out" || { echo "$out" >&2; fail "$(basename "$p"): not every echo came back"; }
done
# --max-sessions: the server exits by itself once every session has closed.
for _ in $(seq 1 200); do kill -0 "$spid" 2>/dev/null || break; sleep 0.05; done
kill -0 "$spid" 2>/dev/null && { cat "$tmp/server.log" >&2; fail "the echo server did not exit after ${#clients[@]} sessions"; }
src=0
wait "$spid" || src=$?
spid=
((src == 0)) || { cat "$tmp/server.log" >&2; fail "the echo server exited with $src"; }
for p in "${clients[@]}"; do
    grep -q "^session [0-9]* path=/$(basename "$p")\$" "$tmp/server.log" ||
        { cat "$tmp/server.log" >&2; fail "the server did not see $(basename "$p")'s session"; }
done
closes=$(grep -c "^closed .*kind=remote code=7 reason=done" "$tmp/server.log" || true)
((closes == ${#clients[@]})) || { cat "$tmp/server.log" >&2; fail "the server saw $closes closes, not ${#clients[@]}"; }
phase "install: ok"
