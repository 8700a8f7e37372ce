#!/usr/bin/env bash
# The library's man page keeps up with the headers: every function sockit.h,
# sockit_proxy.h and sockit_tls.h export is
# named in docs/sockit.3, and the page's EXAMPLE, compiled and run against a port
# nobody listens on, prints the error message the page says it prints.
set -uo pipefail

# shellcheck source=tests/e2e_common.bash
. "$(dirname "$0")/e2e_common.bash"
src_dir=${SOCKIT_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
header="$src_dir/include/sockit.h"
page="$src_dir/docs/sockit.3"

# The names come from the declarations themselves: SOCKIT_API, then the return type,
# then the name before '('. A declaration may wrap, so the header is read whole.
exported=$(cat "$header" "$src_dir/include/sockit_proxy.h" "$src_dir/include/sockit_tls.h" | tr '\n' ' ' | grep -oE 'SOCKIT_API [^;(]*\bsockit_[a-z0-9_]+ *\(' |
    grep -oE 'sockit_[a-z0-9_]+ *\($' | tr -d '( ' | sort -u)
count=$(wc -w <<<"$exported")
if [ "$count" -lt 60 ]; then
    fail header_exports_found "found only $count exported functions in sockit.h"
else
    pass header_exports_found
fi
missing=()
for fn in $exported; do
    grep -qw -- "$fn" "$page" || missing+=("$fn")
done
if [ ${#missing[@]} -eq 0 ]; then
    pass every_exported_function_is_in_sockit_3
else
    fail every_exported_function_is_in_sockit_3 "missing: ${missing[*]}"
fi

# The EXAMPLE section's code, between .nf and .fi, with troff's \e for a backslash.
example=$(awk '/^\.SH EXAMPLE/{on=1; next} on && /^\.nf/{code=1; next}
    code && /^\.fi/{exit} code{print}' "$page" | sed 's/\\e/\\/g')
# A port nobody listens on: bound, not listening, held for the run.
python3 -c '
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
time.sleep(30)
' >"$work/port" &
pids+=($!)
refused_port=""
for _ in $(seq 100); do # 100 x 0.1 s
    refused_port=$(head -n 1 "$work/port")
    [ -n "$refused_port" ] && break
    sleep 0.1
done
cat >"$work/example.c" <<C
#include <sockit.h>
#include <stdio.h>
int main(void)
{
${example//12345/$refused_port}
    (void)n;
    return 0;
}
C
cache_value() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt"; }
cc=$(cache_value CMAKE_C_COMPILER)
sanitize=()
[ "$(cache_value SOCKIT_SANITIZE)" = ON ] && sanitize=("-fsanitize=address,undefined")
[ "$(cache_value SOCKIT_TSAN)" = ON ] && sanitize=(-fsanitize=thread)
if "${cc:-cc}" "${sanitize[@]}" -std=c11 -Wall -Wextra -Werror -I"$src_dir/include" \
    "$work/example.c" -o "$work/example" "$build/libsockit.a" -lpthread >"$work/example_compiles.cc" 2>&1; then
    pass example_compiles
else
    fail example_compiles "the EXAMPLE of sockit.3 does not compile"
fi
said=$(timeout 10 "$work/example" 2>&1)
rc=$?
# The page's own words for the one-address case, with the port this run used.
promised=$(awk '/^\.SH DESCRIPTION/{on=1} on && /^connect to localhost:12345/{print; exit}' "$page")
promised=${promised//12345/$refused_port}
addresses=$(getent ahosts localhost | awk '$2 == "STREAM"' | wc -l)
if [ -z "$promised" ]; then
    fail example_prints_what_the_page_says "sockit.3 no longer quotes the message"
elif [ "$rc" -ne 1 ]; then
    fail example_prints_what_the_page_says "exit $rc, want 1; it said [$said]"
elif [ "$addresses" -eq 1 ] && [ "$said" != "$promised" ]; then
    fail example_prints_what_the_page_says "said [$said], the page says [$promised]"
elif [ "$addresses" -gt 1 ] && ! [[ $said == "connect to localhost:$refused_port (tried "*"): Connection refused" ]]; then
    fail example_prints_what_the_page_says "said [$said], want the (tried ...) form"
else
    pass example_prints_what_the_page_says
fi

echo "e2e_docs: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
