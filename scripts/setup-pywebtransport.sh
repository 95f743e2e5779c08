#!/usr/bin/env bash
# Install the pywebtransport 0.21 peer (tests/interop_pywebtransport.rs, benchmarks).
#
# pywebtransport 0.21 needs Python >= 3.12 and this machine (Debian bookworm) has 3.11, so
# this builds a minimal Debian trixie root (Python 3.13) in $REPO/.peers/trixie with
# debootstrap, and a venv in it (/opt/pywebtransport) with the exact versions of
# tests/interop/pywebtransport-requirements.txt from PyPI. scripts/run-in-trixie.sh runs
# a Python script there. Idempotent: a root whose marker matches the requirements file is
# left as it is (well under a second); from scratch it takes about 40 s.
#
# Needs root (debootstrap, chroot, mount namespaces). If the peer cannot be installed this
# writes a "skip" cell of the interop matrix with the reason and exits 0; the Rust test
# then fails and says to run this script.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
peers="$repo/.peers"
root="$peers/trixie"
reqs="$repo/tests/interop/pywebtransport-requirements.txt"
venv=/opt/pywebtransport
marker="$root/.wtd-pywebtransport-ready"
mirror="${WTD_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
cell="$repo/target/interop-matrix/pywebtransport-0.21__any__draft-15"
log="$peers/setup-pywebtransport.log"
started=$(date +%s)

want="$(sha256sum <"$reqs" | cut -d' ' -f1)"
if [ -f "$marker" ] && [ "$(cat "$marker")" = "$want" ] && [ -x "$root$venv/bin/python" ]; then
    rm -f "$cell"
    exit 0
fi

skip() {
    echo "setup-pywebtransport: SKIP: $*" >&2
    mkdir -p "$(dirname "$cell")"
    printf 'pywebtransport 0.21\tclient+server\tdraft-15\tskip\t%s\n' "$*" >"$cell"
    exit 0
}

[ "$(id -u)" = 0 ] || skip "needs root (debootstrap, chroot, mount namespace); run scripts/setup-pywebtransport.sh as root"
for tool in unshare chroot flock mount; do
    command -v "$tool" >/dev/null || skip "$tool not found (util-linux/coreutils)"
done
mkdir -p "$peers"
exec 9>"$peers/.setup-pywebtransport.lock"
flock -w 600 9 || skip "another setup-pywebtransport.sh held the lock for 10 minutes"
: >"$log"

# Run a command inside the root, in a private mount namespace: /proc and /dev are mounted
# there and vanish with the namespace, so nothing stays mounted on the host.
in_root() {
    unshare --mount --propagation private -- /bin/sh -c '
        r=$1; shift
        mount -t proc proc "$r/proc" && mount --rbind /dev "$r/dev" || exit 97
        exec chroot "$r" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 "$@"
    ' sh "$root" "$@"
}

# Remove a (partial) root. It was only ever mounted on inside namespaces that are gone,
# but never cross into another file system whatever happens.
remove_root() {
    local dir=$1
    [ -e "$dir" ] || return 0
    if grep -q " $dir/" /proc/self/mounts; then
        skip "$dir has file systems mounted on it; unmount them and run again"
    fi
    rm -rf --one-file-system "$dir"
}

# 1. debootstrap (from bookworm's own archive).
if ! command -v debootstrap >/dev/null; then
    echo "setup-pywebtransport: installing debootstrap"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >>"$log" 2>&1; then
        apt-get update -qq >>"$log" 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >>"$log" 2>&1 ||
            skip "apt-get install debootstrap failed: $(tail -n 1 "$log")"
    fi
fi
[ -f /usr/share/debootstrap/scripts/trixie ] ||
    skip "this debootstrap ($(debootstrap --version 2>/dev/null || echo '?')) has no trixie script"

# 2. The trixie root: python3 (3.13), its venv module, CA certificates.
if [ ! -f "$root/.wtd-base-done" ]; then
    echo "setup-pywebtransport: debootstrap trixie into $root (about 40 s)"
    remove_root "$root"
    remove_root "$root.new"
    if ! unshare --mount --propagation private -- debootstrap --variant=minbase \
        --include=python3,python3-venv,ca-certificates \
        trixie "$root.new" "$mirror" >>"$log" 2>&1; then
        reason="debootstrap trixie from $mirror failed: $(grep -E '^(E|W):' "$log" | tail -n 1)"
        remove_root "$root.new"
        skip "$reason"
    fi
    mkdir -p "$root.new/wtd/script"
    touch "$root.new/.wtd-base-done"
    mv "$root.new" "$root"
fi

# 3. The venv with the pinned pywebtransport. pip inside the root trusts what pip on this
#    machine trusts (a copy of its CA bundle) and uses the same index settings.
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
cp "$reqs" "$root/wtd/requirements.txt"
pip_env=()
for ca in "${PIP_CERT:-}" "${REQUESTS_CA_BUNDLE:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
    if [ -n "$ca" ] && [ -f "$ca" ]; then
        cp "$ca" "$root/wtd/host-ca-bundle.pem"
        pip_env+=(PIP_CERT=/wtd/host-ca-bundle.pem)
        break
    fi
done
for k in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST PIP_DEFAULT_TIMEOUT \
    http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    if [ -n "${!k:-}" ]; then pip_env+=("$k=${!k}"); fi
done
if [ ! -x "$root$venv/bin/python" ]; then
    in_root python3 -m venv "$venv" >>"$log" 2>&1 ||
        skip "python3 -m venv in the trixie root failed: $(tail -n 1 "$log")"
fi
if ! in_root "${pip_env[@]}" "$venv/bin/pip" install --no-input --disable-pip-version-check \
    --only-binary=:all: -r /wtd/requirements.txt >>"$log" 2>&1; then
    skip "pip install -r tests/interop/pywebtransport-requirements.txt failed: $(grep -E 'ERROR' "$log" | tail -n 1)"
fi
pinned=$(sed -n 's/^pywebtransport==\([^ ]*\).*/\1/p' "$reqs")
got=$(in_root "$venv/bin/python" -c 'import pywebtransport; print(pywebtransport.__version__)' 2>>"$log") ||
    skip "pywebtransport does not import in the trixie root: $(tail -n 1 "$log")"
[ "$got" = "$pinned" ] || skip "pywebtransport $got installed, $pinned pinned"

echo "$want" >"$marker"
rm -f "$cell"
echo "setup-pywebtransport: pywebtransport $got ready in $root$venv ($(($(date +%s) - started)) s)"
