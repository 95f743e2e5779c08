#!/usr/bin/env bash
# Print the interoperability matrix (issue 6) from the cells the interop tests wrote in
# target/interop-matrix: one line per peer × role × dialect with pass / fail / skip.
#   scripts/interop-matrix.sh            plain table (what scripts/test.sh prints)
#   scripts/interop-matrix.sh --markdown the table the README carries
# Exits 1 when any cell is "fail" (a pair that broke, or a test that did not finish),
# and 2 with --require-cells when no cell was recorded at all. "skip" cells (a peer that
# could not be installed, or a pair that cannot work, with the reason) do not fail the
# run; each is listed again below the table, on stderr, so none goes unnoticed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/target/interop-matrix"
md=0
require=0
for a in "$@"; do
    case $a in
    --markdown) md=1 ;;
    --require-cells) require=1 ;;
    *) echo "usage: $0 [--markdown] [--require-cells]" >&2; exit 2 ;;
    esac
done
shopt -s nullglob
cells=("$dir"/*)
if ((${#cells[@]} == 0)); then
    echo "interop matrix: no cells recorded (the interop tests did not run)"
    ((require)) && exit 2
    exit 0
fi
if ((md)); then
    echo "| peer | peer's role | dialect | result | detail |"
    echo "|---|---|---|---|---|"
    cat "${cells[@]}" | sort | awk -F'\t' '{printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5}'
else
    { printf 'PEER\tPEER ROLE\tDIALECT\tRESULT\tDETAIL\n'; cat "${cells[@]}" | sort; } |
        awk -F'\t' '{printf "%-34s %-10s %-9s %-6s %s\n", $1, $2, $3, $4, $5}'
fi
awk -F'\t' '$4 == "skip" {printf "interop matrix: SKIPPED: %s, peer as %s, %s: %s\n", $1, $2, $3, $5}' "${cells[@]}" >&2
awk -F'\t' '$4 == "fail" {printf "interop matrix: FAILED: %s, peer as %s, %s: %s\n", $1, $2, $3, $5}' "${cells[@]}" >&2
awk -F'\t' '{n[$4]++} END {printf "interop matrix: %d pass, %d fail, %d skip\n", n["pass"], n["fail"], n["skip"]}' "${cells[@]}"
# A cell is "pass", "fail" or "skip"; anything else is a broken cell, counted as a fail.
bad=$(awk -F'\t' '$4 != "pass" && $4 != "skip" {n++} END {print n + 0}' "${cells[@]}")
((bad == 0))
