#!/usr/bin/env bash
# API documentation from the headers: doxygen (Debian's; scripts/setup.sh installs it)
# reads include/wtdatagram.h and the C++ wrapper with docs/Doxyfile and writes
# target/docs/html/index.html. Fails on any doxygen warning, and if a function of the
# header is missing from the output.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if ! command -v doxygen >/dev/null; then
  echo "docs: doxygen is missing: run scripts/setup.sh (or apt-get install doxygen)" >&2
  exit 1
fi
rm -rf target/docs
mkdir -p target/docs
if ! doxygen docs/Doxyfile; then
  cat target/docs/warnings.log >&2 || true
  exit 1
fi
# Every function the header declares has a page entry.
missing=0
for fn in $(grep -oE '\bwtd_[a-z0-9_]+\(' include/wtdatagram.h | tr -d '(' | sort -u); do
  if ! grep -rqs -- "$fn" target/docs/html/; then
    echo "docs: $fn is missing from the generated documentation" >&2
    missing=1
  fi
done
[ "$missing" = 0 ] || exit 1
echo "docs: target/docs/html/index.html ($(grep -oE '\bwtd_[a-z0-9_]+\(' include/wtdatagram.h | sort -u | wc -l) functions)"
