#!/usr/bin/env bash
# Installs the Debian packages sockit's build and tests need, and only those that are
# missing. Safe to run again: with everything present it does nothing.
set -euo pipefail

need=(cmake make gcc clang clang-format pkg-config libcmocka-dev python3 ncat socat procps)
missing=()
for pkg in "${need[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$pkg")
done
# python3 may come from elsewhere (pyenv); what the tests need is the command.
if command -v python3 >/dev/null 2>&1; then
    missing=("${missing[@]/python3/}")
fi
read -r -a missing <<<"${missing[*]}"
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps.sh: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
