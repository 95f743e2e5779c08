#!/usr/bin/env bash
# Install the Python WebTransport peers used by the interop tests (tests/interop_*.rs)
# into $REPO/.venv-interop. Idempotent: a venv that already has the pinned versions is
# left as it is. Needs python3 (>= 3.8, with the venv module) and access to PyPI.
set -euo pipefail

AIOQUIC_VERSION="1.7.2"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv-interop"
py="$venv/bin/python"

have() {
    [ -x "$py" ] && "$py" - "$AIOQUIC_VERSION" <<'PY' >/dev/null 2>&1
import sys
from importlib.metadata import version
assert version("aioquic") == sys.argv[1]
import aioquic.h3.connection, aioquic.asyncio, cryptography  # noqa: F401
PY
}

if have; then
    exit 0
fi

if ! command -v python3 >/dev/null 2>&1; then
    echo "setup-python-peers: python3 not found" >&2
    exit 1
fi

# pip to install with: the venv's own, or (when the venv module cannot bootstrap pip,
# as on Debian without python3-venv) the system pip aimed at the venv (pip >= 22.3).
pip=("$py" -m pip)
if [ ! -x "$py" ] || ! "$py" -m pip --version >/dev/null 2>&1; then
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        rm -rf "$venv"
        if python3 -m venv --without-pip "$venv" >/dev/null 2>&1 \
            && python3 -m pip --python "$py" --version >/dev/null 2>&1; then
            pip=(python3 -m pip --python "$py")
        else
            rm -rf "$venv"
            echo "setup-python-peers: cannot create a venv with pip at $venv" \
                "(on Debian: apt-get install python3-venv)" >&2
            exit 1
        fi
    fi
fi

if ! "${pip[@]}" install --quiet --disable-pip-version-check "aioquic==$AIOQUIC_VERSION"; then
    echo "setup-python-peers: pip install aioquic==$AIOQUIC_VERSION failed" >&2
    exit 1
fi

if ! have; then
    echo "setup-python-peers: aioquic $AIOQUIC_VERSION is not importable from $venv" >&2
    exit 1
fi
