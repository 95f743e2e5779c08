#!/usr/bin/env bash
# Run a Python script with the pywebtransport venv of the Debian trixie root that
# scripts/setup-pywebtransport.sh builds in $REPO/.peers/trixie:
#
#   scripts/run-in-trixie.sh <python-script> [args...]
#
# The script's directory is bind-mounted read-only at /wtd/script inside the root; /proc,
# /dev and a fresh /tmp (tmpfs) are mounted too. All of it happens in a private mount
# namespace, so the mounts go away with the process whatever way it ends (nothing to
# unmount, nothing left behind). The network namespace is the host's: 127.0.0.1 is the
# same loopback. Every exec replaces the previous program, so the pid the caller started
# is the Python process itself (killing it ends the peer). stdin/stdout/stderr and the
# exit status pass through. Environment: a clean one, plus WTD_*, RUST_LOG and
# RUST_BACKTRACE from the caller. Needs root.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
root="$repo/.peers/trixie"
py=/opt/pywebtransport/bin/python

if [ $# -lt 1 ]; then
    echo "usage: $0 <python-script> [args...]" >&2
    exit 2
fi
if [ ! -f "$root/.wtd-pywebtransport-ready" ] || [ ! -x "$root$py" ]; then
    echo "run-in-trixie: the pywebtransport peer is not installed in $root;" \
        "run scripts/setup-pywebtransport.sh (as root)" >&2
    exit 127
fi
script="$(realpath -e "$1")"
shift
dir="$(dirname "$script")"
name="$(basename "$script")"

envs=(PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1)
for k in $(compgen -e); do
    case $k in
    WTD_* | RUST_LOG | RUST_BACKTRACE) envs+=("$k=${!k}") ;;
    esac
done

exec unshare --mount --propagation private -- /bin/sh -c '
    r=$1; d=$2; shift 2
    mount -o bind,ro "$d" "$r/wtd/script" &&
        mount -t proc proc "$r/proc" &&
        mount --rbind /dev "$r/dev" &&
        mount -t tmpfs -o size=64m,mode=1777 tmpfs "$r/tmp" || {
        echo "run-in-trixie: mounting inside $r failed" >&2
        exit 97
    }
    exec chroot "$r" /usr/bin/env -i "$@"
' sh "$root" "$dir" "${envs[@]}" "$py" "/wtd/script/$name" "$@"
