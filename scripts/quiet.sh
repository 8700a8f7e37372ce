#!/usr/bin/env bash
# Runs a command with its output held back: one line when it succeeds, its whole
# output (and its exit code) when it fails, so a newcomer's `make demo` shows the demo
# rather than hundreds of lines of CMake, and a broken build still shows every error.
#   scripts/quiet.sh TITLE CMD...
set -uo pipefail

if [ $# -lt 2 ]; then
    echo "usage: scripts/quiet.sh TITLE CMD..." >&2
    exit 2
fi
title=$1
shift
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$@" >"$log" 2>&1
rc=$?
if [ "$rc" -ne 0 ]; then
    cat "$log" >&2
    echo "$title: failed (exit $rc): $*" >&2
    exit "$rc"
fi
echo "$title: done"
