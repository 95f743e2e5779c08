#!/usr/bin/env bash
# Print the interoperability matrix (issue 6) from the cells the interop tests wrote in
# target/interop-matrix: one line per peer × role × dialect with pass / fail / skip.
#   scripts/interop-matrix.sh            plain table (what scripts/test.sh prints)
#   scripts/interop-matrix.sh --markdown the table the README carries
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/target/interop-matrix"
md=0
[[ ${1:-} == --markdown ]] && md=1
shopt -s nullglob
cells=("$dir"/*)
if ((${#cells[@]} == 0)); then
    echo "interop matrix: no cells recorded (the interop tests did not run)"
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
awk -F'\t' '{n[$4]++} END {printf "interop matrix: %d pass, %d fail, %d skip\n", n["pass"], n["fail"], n["skip"]}' "${cells[@]}"
