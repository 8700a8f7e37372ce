#!/usr/bin/env bash
# The fault probes (issue 16, item 4) on the blocking server modes, where each
# applies (tests/probe_server.c per mode; tests/fault_probes.py's run_modes says
# which and why). Each is bounded in time and count, on loopback only.
set -uo pipefail
: "${SOCKIT_BUILD_DIR:?SOCKIT_BUILD_DIR must name the build directory}"
exec python3 "$(dirname "$0")/fault_probes.py" modes
