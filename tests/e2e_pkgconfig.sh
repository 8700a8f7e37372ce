#!/usr/bin/env bash
# A user's program builds against an installed sockit with nothing but pkg-config:
# the build is installed into a temporary prefix, examples/tcp_client.c and
# examples/tcp_server.c are compiled outside the tree with the flags pkg-config gives
# (shared, then static), and they talk over loopback, run each way README.md's
# "Linking" section shows: shared with an rpath, shared with LD_LIBRARY_PATH, static.
set -uo pipefail

build=${SOCKIT_BUILD_DIR:?SOCKIT_BUILD_DIR must name the build directory}
src_dir=${SOCKIT_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0
pass() {
    echo "PASS $1"
    passed=$((passed + 1))
}
fail() {
    echo "FAIL $1: $2"
    for f in "$work/$1".*; do [ -s "$f" ] && sed "s|^|    ${f##*/}: |" "$f"; done
    failed=$((failed + 1))
}
finish() {
    echo "e2e_pkgconfig: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

# The compiler and sanitizer of the build: an ASan library only links into an ASan
# program built by the same compiler.
cache_value() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt"; }
cc=$(cache_value CMAKE_C_COMPILER)
cc=${cc:-cc}
sanitize=()
[ "$(cache_value SOCKIT_SANITIZE)" = ON ] && sanitize=("-fsanitize=address,undefined")
[ "$(cache_value SOCKIT_TSAN)" = ON ] && sanitize=(-fsanitize=thread)

prefix="$work/prefix"
if cmake --install "$build" --prefix "$prefix" >"$work/install.out" 2>&1; then
    pass install
else
    fail install "cmake --install $build --prefix $prefix failed"
    finish
fi
# GNUInstallDirs picks lib, lib64 or lib/<multiarch>: find where the .pc went.
pc=$(find "$prefix" -name sockit.pc -path '*/pkgconfig/*' | head -n 1)
if [ -z "$pc" ]; then
    fail pc_installed "no pkgconfig/sockit.pc under $prefix"
    finish
fi
pass pc_installed
export PKG_CONFIG_PATH=${pc%/*}
# A relocatable .pc says ${pcfiledir}/../../lib: compare paths, not spellings.
libdir=$(realpath -m "$(pkg-config --variable=libdir sockit)")
read -r -a cflags <<<"$(pkg-config --cflags sockit)"
read -r -a libs <<<"$(pkg-config --libs sockit)"
read -r -a static_libs <<<"$(pkg-config --static --libs sockit)"
if [ "$libdir" != "$(realpath -m "${pc%/pkgconfig/*}")" ] || [[ " ${libs[*]} " != *" -lsockit "* ]]; then
    fail pc_points_at_prefix "libdir '$libdir', libs '${libs[*]}'"
    finish
fi
pass pc_points_at_prefix

# compile NAME SOURCE ARGS...: builds the example outside the tree.
compile() {
    local name=$1 source=$2
    shift 2
    if "$cc" "${sanitize[@]}" -std=c11 -Wall -Wextra -Werror "${cflags[@]}" \
        "$src_dir/examples/$source" -o "$work/$name" "$@" >"$work/$name.cc" 2>&1; then
        pass "compile_$name"
        return 0
    fi
    fail "compile_$name" "$cc ${cflags[*]} examples/$source $*"
    return 1
}

# The shared library is found through an rpath, as a user of a private prefix would.
compile tcp_client_shared tcp_client.c "${libs[@]}" "-Wl,-rpath,$libdir" || finish
compile tcp_client_no_rpath tcp_client.c "${libs[@]}" || finish
# -l:libsockit.a names the archive even though libsockit.so sits beside it; the rest
# of --static's flags bring the library's own dependencies.
static_flags=()
for flag in "${static_libs[@]}"; do
    [ "$flag" = -lsockit ] && flag=-l:libsockit.a
    static_flags+=("$flag")
done
compile tcp_server_static tcp_server.c "${static_flags[@]}" || finish

# Outputs are captured before grep: grep -q stops at its first match, and with
# pipefail the writer's SIGPIPE would fail the pipeline now and then.
static_dynamic=$(readelf -d "$work/tcp_server_static")
shared_dynamic=$(readelf -d "$work/tcp_client_shared")
shared_ldd=$(env -u LD_LIBRARY_PATH ldd "$work/tcp_client_shared")
if grep -q 'NEEDED.*libsockit' <<<"$static_dynamic"; then
    fail static_has_no_libsockit_so "tcp_server_static still needs libsockit.so"
else
    pass static_has_no_libsockit_so
fi
if ! grep -q 'NEEDED.*libsockit\.so' <<<"$shared_dynamic"; then
    fail shared_needs_libsockit_so "tcp_client_shared does not link libsockit.so"
elif ! grep -q "libsockit\.so.* => $libdir/" <<<"$shared_ldd"; then
    fail shared_needs_libsockit_so "libsockit.so does not resolve into $libdir"
else
    pass shared_needs_libsockit_so
fi

# README.md must show the commands this test runs, word for word.
readme=$(cat "$src_dir/README.md")
for line in 'cc app.c $(pkg-config --cflags --libs sockit) -Wl,-rpath,$(pkg-config --variable=libdir sockit)' \
    'LD_LIBRARY_PATH=$(pkg-config --variable=libdir sockit) ./a.out' \
    'libsockit.so.0.2: cannot open shared object file'; do
    if ! grep -qF -- "$line" <<<"$readme"; then
        fail readme_shows_how_to_run "README.md lacks: $line"
        finish
    fi
done
pass readme_shows_how_to_run

# Without an rpath or LD_LIBRARY_PATH the loader cannot find the library, as the
# README warns.
no_path=$(env -u LD_LIBRARY_PATH "$work/tcp_client_no_rpath" 1 2>&1)
if [[ $no_path == *"libsockit.so.0.2: cannot open shared object file"* ]]; then
    pass no_rpath_fails_as_readme_says
else
    fail no_rpath_fails_as_readme_says "got [$no_path]"
fi

# The programs built from the installed files talk: port 0, two connections (the
# rpath client, then the LD_LIBRARY_PATH one).
timeout 20 "$work/tcp_server_static" 0 2 >"$work/exchange.server" 2>"$work/exchange.server.err" &
server_pid=$!
pids+=("$server_pid")
port=""
for _ in $(seq 100); do # 100 x 0.1 s
    if [[ $(head -n 1 "$work/exchange.server" 2>/dev/null) =~ ^Listening\ on\ 127\.0\.0\.1:([0-9]+)$ ]]; then
        port=${BASH_REMATCH[1]}
        break
    fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$port" ]; then
    fail exchange "installed tcp_server did not print its port"
    finish
fi
reply=$(timeout 10 "$work/tcp_client_shared" "$port" 2>"$work/exchange.client.err")
client_rc=$?
reply2=$(LD_LIBRARY_PATH=$libdir timeout 10 "$work/tcp_client_no_rpath" "$port" 2>>"$work/exchange.client.err")
client2_rc=$?
[ "$client_rc" -eq 0 ] && client_rc=$client2_rc
# A client that failed will not release the server: do not wait out its timeout.
[ "$client_rc" -ne 0 ] && kill "$server_pid" 2>/dev/null
wait "$server_pid"
server_rc=$?
if [ "$client_rc" -ne 0 ] || [ "$server_rc" -ne 0 ]; then
    fail exchange "exit codes: client $client_rc, server $server_rc (want 0 and 0)"
elif [ "$reply" != "Hello from server!" ] || [ "$reply2" != "Hello from server!" ]; then
    fail exchange "clients said [$reply] and [$reply2], want [Hello from server!]"
elif ! grep -qx 'Received: Hello server!' "$work/exchange.server"; then
    fail exchange "server did not print 'Received: Hello server!'"
else
    pass exchange
fi
finish
