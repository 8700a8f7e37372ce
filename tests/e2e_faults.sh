#!/usr/bin/env bash
# The fault probes (issue 16, item 4) on `sockit echo` and `sockit listen -k`:
# tests/fault_probes.py says what each asserts. Each is bounded in time and count,
# on loopback only.
set -uo pipefail
: "${SOCKIT_BUILD_DIR:?SOCKIT_BUILD_DIR must name the build directory}"
exec python3 "$(dirname "$0")/fault_probes.py" "$@"
