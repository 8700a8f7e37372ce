#!/usr/bin/env bash
# First contact: `make demo` builds quietly (the build's output only when it fails),
# then shows the reference flows of the examples and of the sockit command, and says
# where the command is and how to put it on PATH, as README.md does.
set -uo pipefail

# shellcheck source=tests/e2e_common.bash
. "$(dirname "$0")/e2e_common.bash"
src_dir=${SOCKIT_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}

# The demo itself, against this build.
timeout 120 "$src_dir/scripts/demo.sh" "$build" >"$work/demo.out" 2>&1
rc=$?
out=$(cat "$work/demo.out")
if [ "$rc" -ne 0 ]; then
    fail demo "exit $rc"
else
    pass demo
fi
# Each section's lines, as the reference flow prints them.
for title in "TCP: tcp_client -> tcp_server" "UDP: udp_client -> udp_server" \
    "TCP: sockit tcp-client -> sockit tcp-server" "UDP: sockit udp-client -> sockit udp-server"; do
    section=$(awk -v t="== $title" '$0 == t {on=1; next} /^== / {on=0} on' <<<"$out")
    case $title in
    TCP*) want_client="client | Hello from server!" want_server="server | Received: Hello server!" ;;
    UDP*) want_client="client | Hello from UDP server!" want_server="Hello UDP server!" ;;
    esac
    if [[ $section == *"$want_client"* && $section == *"$want_server"* ]]; then
        pass "demo_shows ${title// /_}"
    else
        fail "demo_shows ${title// /_}" "section [$section]"
    fi
done
if [[ $out == *"The sockit command is $build/sockit"* && $out == *'export PATH='* ]]; then
    pass demo_says_where_sockit_is
else
    fail demo_says_where_sockit_is "no path or PATH hint in the demo's output"
fi
lines=$(wc -l <<<"$out")
if [ "$lines" -le 90 ]; then
    pass demo_is_short
else
    fail demo_is_short "$lines lines"
fi

# The README says the same.
readme=$(cat "$src_dir/README.md")
if [[ $readme == *'build/plain/sockit'* && $readme == *'export PATH="$PWD/build/plain:$PATH"'* ]]; then
    pass readme_says_where_sockit_is
else
    fail readme_says_where_sockit_is "README.md does not name build/plain/sockit and the PATH line"
fi

# The demo target builds through scripts/quiet.sh.
recipe=$(awk '/^demo:/{on=1; next} on && /^[^\t]/{exit} on' "$src_dir/Makefile")
if [[ $recipe == *"scripts/quiet.sh"*"build"* ]]; then
    pass make_demo_builds_quietly
else
    fail make_demo_builds_quietly "recipe [$recipe]"
fi
# quiet.sh: one line on success; everything, and the exit code, on failure.
ok=$("$src_dir/scripts/quiet.sh" title bash -c 'seq 300' 2>&1)
if [ "$ok" = "title: done" ]; then
    pass quiet_success_is_one_line
else
    fail quiet_success_is_one_line "said [$ok]"
fi
"$src_dir/scripts/quiet.sh" title bash -c 'seq 300; echo "error: boom" >&2; exit 3' \
    >"$work/quiet.stdout" 2>"$work/quiet.stderr"
rc=$?
if [ "$rc" -eq 3 ] && [ "$(grep -c . "$work/quiet.stderr")" -eq 302 ] &&
    grep -qx "error: boom" "$work/quiet.stderr" && [ ! -s "$work/quiet.stdout" ]; then
    pass quiet_failure_shows_everything
else
    fail quiet_failure_shows_everything "exit $rc, $(grep -c . "$work/quiet.stderr") lines on stderr"
fi

echo "e2e_demo: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
