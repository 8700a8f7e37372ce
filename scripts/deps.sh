#!/usr/bin/env bash
# Installs the Debian packages sockit's build and tests need, and only those that are
# missing. Safe to run again: with everything present it does nothing.
# Usage: scripts/deps.sh [--bench]   --bench adds what `make bench` needs (the libuv and
# libevent peers, uvloop, iperf3, gnuplot for the charts, taskset for pinning).
set -euo pipefail

need=(cmake make gcc clang clang-format pkg-config libcmocka-dev liburing-dev libjansson-dev libssl-dev openssl python3 ncat socat procps strace curl dante-server microsocks tinyproxy)
case "${1:-}" in
"") ;;
--bench) need+=(libuv1-dev libevent-dev python3-uvloop iperf3 gnuplot-nox util-linux) ;;
*)
    echo "usage: scripts/deps.sh [--bench]" >&2
    exit 2
    ;;
esac
missing=()
for pkg in "${need[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$pkg")
done
# python3 may come from elsewhere (pyenv); what the tests need is the command. (The
# bench's python3-uvloop is for Debian's own /usr/bin/python3, so it stays.)
if command -v python3 >/dev/null 2>&1; then
    kept=()
    for pkg in "${missing[@]}"; do
        [ "$pkg" = python3 ] || kept+=("$pkg")
    done
    missing=("${kept[@]}")
fi
# The proxy's API tests drive it with a toxiproxy client from the npm registry: the
# machine's Node.js and npm do (nodesource's nodejs brings its own npm); else Debian's.
command -v npm >/dev/null 2>&1 || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps.sh: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
