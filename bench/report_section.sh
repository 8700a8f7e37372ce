#!/usr/bin/env bash
# Puts one section into REPORT.md, replacing the section of the same heading from an
# earlier run, so the figures of each benchmark program sit in the one report.
#   bench/report_section.sh REPORT HEADING BODY_FILE [--code]
# HEADING is the section's title without "## "; --code sets the body in a code block.
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: bench/report_section.sh REPORT HEADING BODY_FILE [--code]" >&2
    exit 2
fi
report=$1 heading=$2 body=$3 code=${4:-}
[ -f "$report" ] || : >"$report"
new=$(mktemp)
trap 'rm -f "$new"' EXIT
{
    # Every section but this one, as it was.
    awk -v h="## $heading" '$0 == h {skip=1; next} skip && /^## / {skip=0} !skip' "$report"
    printf '\n## %s\n\n' "$heading"
    if [ "$code" = --code ]; then echo '```'; fi
    cat "$body"
    if [ "$code" = --code ]; then echo '```'; fi
} | cat -s >"$new"
cp "$new" "$report"
