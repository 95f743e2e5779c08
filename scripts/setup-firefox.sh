#!/bin/sh
# Install Debian's Firefox ESR for the browser tests (tests/interop_firefox.rs and the JS
# module's end-to-end tests). Idempotent: does nothing when /usr/bin/firefox-esr is
# already there. Exits nonzero on failure.
set -eu

FIREFOX=/usr/bin/firefox-esr

if [ -x "$FIREFOX" ]; then
    echo "firefox-esr already installed: $("$FIREFOX" --version 2>/dev/null || echo "$FIREFOX")"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "setup-firefox: not root and sudo is not available; cannot install firefox-esr" >&2
    exit 1
fi

$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq firefox-esr

if [ ! -x "$FIREFOX" ]; then
    echo "setup-firefox: apt-get finished but $FIREFOX is missing" >&2
    exit 1
fi
echo "firefox-esr installed: $("$FIREFOX" --version 2>/dev/null || echo "$FIREFOX")"
