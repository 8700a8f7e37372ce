#!/usr/bin/env bash
# Every way the sockit command can be told no: bad usage exits 2 with the offending
# text and the usage line on stderr, a network or system failure exits 1 with
# "sockit: <what failed>: <why>", and --help / --version exit 0 on stdout. Nothing
# here may print on stdout except --help, --version and --json error events.
# shellcheck source=tests/e2e_cli_common.bash
source "$(dirname "$0")/e2e_cli_common.bash"

# expect_usage NAME SUB PATTERN ARGS...: `sockit SUB ARGS...` exits 2, nothing on
# stdout, stderr is "sockit SUB: <PATTERN>" then "usage: sockit SUB ...".
expect_usage() {
    local name=$1 sub=$2 pattern=$3
    shift 3
    timeout 10 "$sockit" "$sub" "$@" </dev/null >"$work/$name.out" 2>"$work/$name.err"
    local rc=$? first second
    first=$(sed -n 1p "$work/$name.err")
    second=$(sed -n 2p "$work/$name.err")
    if [ "$rc" -ne 2 ]; then
        fail "$name" "exit code $rc, want 2"
    elif [ -s "$work/$name.out" ]; then
        fail "$name" "want nothing on stdout"
    elif ! [[ $first =~ ^sockit\ $sub:\ $pattern ]]; then
        fail "$name" "stderr [$first] does not match [sockit $sub: $pattern]"
    elif ! [[ $second =~ ^usage:\ sockit\ $sub\  ]]; then
        fail "$name" "second stderr line [$second] is not the usage line"
    else
        pass "$name"
    fi
}

# expect_help NAME PATTERN ARGS...: exits 0, stdout's first line matches PATTERN,
# nothing on stderr.
expect_help() {
    local name=$1 pattern=$2
    shift 2
    timeout 10 "$sockit" "$@" </dev/null >"$work/$name.out" 2>"$work/$name.err"
    local rc=$? first
    first=$(head -n 1 "$work/$name.out")
    if [ "$rc" -ne 0 ]; then
        fail "$name" "exit code $rc, want 0"
    elif [ -s "$work/$name.err" ]; then
        fail "$name" "want nothing on stderr"
    elif ! [[ $first =~ $pattern ]]; then
        fail "$name" "stdout [$first] does not match [$pattern]"
    else
        pass "$name"
    fi
}

subcommands=(tcp-server tcp-client udp-server udp-client listen connect tls-cert)

# ---- help and version ------------------------------------------------------------------
expect_help top_level_help_prints_usage '^usage: sockit SUBCOMMAND' --help
expect_help top_level_h_prints_usage '^usage: sockit SUBCOMMAND' -h
expect_help top_level_help_word_prints_usage '^usage: sockit SUBCOMMAND' help
name=top_level_help_lists_every_subcommand
for sub in "${subcommands[@]}"; do
    grep -qE "^  $sub " "$work/top_level_help_prints_usage.out" || break
done
if grep -qE "^  $sub " "$work/top_level_help_prints_usage.out" &&
    grep -q 'exit status: 0 ok, 1 network or system failure, 2 bad usage' \
        "$work/top_level_help_prints_usage.out"; then
    pass $name
else
    fail $name "'$sub' or the exit status line is missing from --help"
fi
for sub in "${subcommands[@]}"; do
    expect_help "${sub//-/_}_help_prints_its_usage" "^usage: sockit $sub " "$sub" --help
    expect_help "${sub//-/_}_short_help_prints_its_usage" "^usage: sockit $sub " "$sub" -h
done

version=$(sed -nE 's/^project\(sockit VERSION ([0-9.]+).*/\1/p' "$source_dir/CMakeLists.txt")
expect_help version_prints_the_project_version "^sockit ${version//./\\.}\$" --version
expect_help short_version_prints_the_project_version "^sockit ${version//./\\.}\$" -V

# After the version, one line per feature: built or not, usable or not, and why.
version_out=$work/version_prints_the_project_version.out
name=version_lists_every_feature_once_in_its_form
bad=""
for feature in tls io_uring ipv6 dualstack_ipv6 reuseport tcp_fastopen ktls; do
    [ "$(grep -c "^$feature: " "$version_out")" = 1 ] || bad="$bad $feature(count)"
done
while IFS= read -r line; do
    [[ $line =~ ^[a-z_0-9]+:\ (built,\ usable|built,\ not\ usable\ \(.+\)|not\ built\ \(.+\))$ ]] ||
        bad="$bad [$line]"
done < <(tail -n +2 "$version_out")
[ "$(wc -l <"$version_out")" = 8 ] || bad="$bad (want 8 lines)"
if [ -z "$bad" ]; then pass $name; else fail $name "bad feature lines:$bad"; fi
# What the build found decides "built"; python3 binding ::1 decides IPv6's "usable".
name=version_features_agree_with_the_build_and_the_kernel
want_tls="not built"
grep -q '^OPENSSL_FOUND:INTERNAL=1$' "$build/CMakeCache.txt" && want_tls="built"
want_uring="not built"
grep -q '^LIBURING_FOUND:INTERNAL=1$' "$build/CMakeCache.txt" && want_uring="built"
want_ipv6="built, not usable"
python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null &&
    want_ipv6="built, usable"
if ! grep -q "^tls: $want_tls" "$version_out"; then
    fail $name "want 'tls: $want_tls'"
elif ! grep -q "^io_uring: $want_uring" "$version_out"; then
    fail $name "want 'io_uring: $want_uring'"
elif ! grep -q "^ipv6: $want_ipv6" "$version_out"; then
    fail $name "want 'ipv6: $want_ipv6'"
else
    pass $name
fi

# ---- top-level usage errors ------------------------------------------------------------
expect_error no_subcommand_exits_2_with_usage 2 '^usage: sockit SUBCOMMAND' "$sockit"
expect_error unknown_subcommand_exits_2 2 "^sockit: unknown subcommand 'frobnicate'\$" \
    "$sockit" frobnicate
expect_error unknown_top_level_option_exits_2 2 "^sockit: unknown subcommand '--frob'\$" \
    "$sockit" --frob
expect_error unknown_subcommand_is_named_on_one_line 2 "^sockit: unknown subcommand 'a\\\\nb'\$" \
    "$sockit" $'a\nb'

# An operand with a newline or another control character is named escaped: the error
# stays one line (expect_usage reads the usage line as the second).
expect_usage newline_in_an_operand_is_escaped forward "'tcp:a\\\\nb': no port\$" $'tcp:a\nb' stdio
expect_usage control_byte_in_an_option_is_escaped listen "--allow '1\\\\x01': not an IPv4" \
    --allow $'1\x01' 0
name=unknown_host_with_a_newline_is_one_line
"$sockit" connect $'bad\nhost.invalid' 1 </dev/null >"$work/$name.out" 2>"$work/$name.err"
if [ "$(wc -l <"$work/$name.err")" -eq 1 ] && grep -q '^sockit: connect to bad\\nhost\.invalid:1: ' "$work/$name.err"; then
    pass $name
else
    fail $name "stderr [$(cat "$work/$name.err")] is not one line naming bad\\nhost.invalid"
fi

# ---- usage errors of the reference subcommands -----------------------------------------
for sub in tcp-server tcp-client udp-server udp-client; do
    id=${sub//-/_}
    expect_usage "${id}_unknown_option" $sub "unknown option '--frob'\$" --frob
    expect_usage "${id}_unknown_short_option" $sub "unknown option '-z'\$" -z
    expect_usage "${id}_port_abc" $sub "port 'abc': " --port abc
    # 70000 must be refused, never wrapped to 70000 - 65536 = 4464.
    expect_usage "${id}_port_70000_never_wrapped" $sub "port '70000': " --port 70000
    expect_usage "${id}_port_65536_never_wrapped" $sub "port '65536': " --port 65536
    expect_usage "${id}_negative_port" $sub "port '-1': " --port -1
    expect_usage "${id}_missing_port_value" $sub "option '--port' needs a value\$" --port
    expect_usage "${id}_missing_host_value" $sub "option '--host' needs a value\$" --host
    expect_usage "${id}_unexpected_argument" $sub "unexpected argument 'extra'\$" extra
done
for sub in tcp-server udp-server; do
    id=${sub//-/_}
    expect_usage "${id}_count_zero" $sub "--count '0': not a whole number 1-" --count 0
    expect_usage "${id}_count_not_a_number" $sub "--count 'x': not a whole number" --count x
    expect_usage "${id}_missing_reply_value" $sub "option '--reply' needs a value\$" --reply
done
for sub in tcp-client udp-client; do
    id=${sub//-/_}
    expect_usage "${id}_port_zero" $sub "port '0': must be 1-65535\$" --port 0
    expect_usage "${id}_negative_timeout" $sub "--timeout '-1': not a number of seconds" \
        --timeout -1
    expect_usage "${id}_timeout_not_a_number" $sub "--timeout 'soon': not a number" \
        --timeout soon
    expect_usage "${id}_missing_send_value" $sub "option '--send' needs a value\$" --send
done

# ---- network failures of the reference subcommands -------------------------------------
# A port that was just free: bound by us, then closed.
closed_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
expect_error tcp_client_connection_refused_exits_1 1 \
    "^sockit: connect to localhost:$closed_port .*: Connection refused\$" \
    "$sockit" tcp-client --port "$closed_port"
expect_error tcp_client_ipv6_connection_refused_exits_1 1 \
    "^sockit: connect to .*::1.*:$closed_port.*: Connection refused\$" \
    "$sockit" tcp-client --host ::1 --port "$closed_port"

name=tcp_client_json_reports_the_error_as_an_event
timeout 10 "$sockit" tcp-client --port "$closed_port" --json >"$work/$name.out" 2>"$work/$name.err"
rc=$?
if [ $rc -ne 1 ]; then
    fail $name "exit code $rc, want 1"
elif ! grep -q 'Connection refused$' "$work/$name.err"; then
    fail $name "no message on stderr"
elif ! why=$(json_check "$work/$name.out" "error" "error.code=ECONNREFUSED" \
    "error.message=connect to localhost:$closed_port (127.0.0.1:$closed_port): Connection refused" \
    2>&1); then
    fail $name "$why"
else
    pass $name
fi

expect_error tcp_client_unknown_host_exits_1 1 "^sockit: connect to nonexistent\\.invalid:12345: " \
    "$sockit" tcp-client --host nonexistent.invalid
expect_error tcp_server_unknown_host_exits_1 1 "^sockit: create_server nonexistent\\.invalid:0: " \
    "$sockit" tcp-server --host nonexistent.invalid --port 0

# A silent server: the client's --timeout bounds the whole exchange.
for kind in tcp udp; do
    name=${kind}_client_timeout_bounds_a_silent_server
    if ! peer $name hold-$kind; then
        fail $name "python peer did not start"
        continue
    fi
    start=$(date +%s%N)
    timeout 10 "$sockit" $kind-client --port "$peer_port" --timeout 0.5 \
        >"$work/$name.out" 2>"$work/$name.err"
    rc=$?
    ms=$((($(date +%s%N) - start) / 1000000))
    if [ $rc -ne 1 ]; then
        fail $name "exit code $rc, want 1"
    elif [ $ms -lt 400 ] || [ $ms -gt 3000 ]; then
        fail $name "gave up after $ms ms, want about 500"
    elif ! grep -qE '^sockit: recv(from)? .*: Timed out: the deadline passed$' "$work/$name.err" || [ -s "$work/$name.out" ]; then
        fail $name "want one 'Timed out' message on stderr and nothing on stdout"
    else
        pass $name
    fi
    kill_tree "$peer_pid"

    name=${kind}_server_port_in_use_exits_1
    if peer $name hold-$kind; then
        expect_error $name 1 "^sockit: create_server 127\\.0\\.0\\.1:$peer_port: Address already in use\$" \
            "$sockit" $kind-server --host 127.0.0.1 --port "$peer_port"
        kill_tree "$peer_pid"
    else
        fail $name "python peer did not start"
    fi
done

# ---- listen and connect ----------------------------------------------------------------
for sub in listen connect; do
    id=$sub
    expect_usage "${id}_unknown_option" $sub "unknown option '--frob'\$" --frob 127.0.0.1 1
    expect_usage "${id}_unknown_short_option" $sub "unknown option '-Z'\$" -Z 127.0.0.1 1
    expect_usage "${id}_port_abc" $sub "port 'abc': " 127.0.0.1 abc
    expect_usage "${id}_port_70000_never_wrapped" $sub "port '70000': " 127.0.0.1 70000
    expect_usage "${id}_missing_w_value" $sub "option '-w' needs a value\$" -w
    expect_usage "${id}_bad_w_value" $sub "-w 'abc': not a number of seconds" -w abc 127.0.0.1 1
    expect_usage "${id}_negative_i_value" $sub "-i '-1': not a number of seconds" -i -1 127.0.0.1 1
    expect_usage "${id}_bad_q_value" $sub "-q 'x': not a number of seconds" -q x 127.0.0.1 1
    expect_usage "${id}_too_many_arguments" $sub "unexpected argument 'extra'\$" 127.0.0.1 1 extra
    expect_usage "${id}_unix_takes_no_port" $sub "unix:$work/s: a unix: host takes no PORT" \
        "unix:$work/s" 1
    expect_usage "${id}_4_and_6_together" $sub "-4 and -6 exclude each other\$" -4 -6 127.0.0.1 1
    expect_usage "${id}_4_with_a_unix_host" $sub "-4/-6 do not apply to a unix: host\$" -4 \
        "unix:$work/s"
done
expect_usage listen_missing_port listen "missing PORT\$"
expect_usage connect_missing_host_and_port connect "missing HOST and PORT\$"
expect_usage connect_missing_port connect "missing PORT after HOST '127.0.0.1'\$" 127.0.0.1
expect_usage connect_port_zero connect "port '0': must be 1-65535\$" 127.0.0.1 0
expect_usage connect_has_no_k connect "unknown option '-k'\$" -k 127.0.0.1 1
expect_usage connect_has_no_m connect "unknown option '-m'\$" -m 2 127.0.0.1 1
expect_usage listen_max_zero listen "-m '0': not a whole number 1-" -k -m 0 127.0.0.1 0

expect_error connect_connection_refused_exits_1 1 \
    "^sockit: connect to 127\\.0\\.0\\.1:$closed_port.*: Connection refused\$" \
    "$sockit" connect 127.0.0.1 "$closed_port"
expect_error connect_ipv6_connection_refused_exits_1 1 \
    "^sockit: connect to .*::1.*:$closed_port.*: Connection refused\$" \
    "$sockit" connect ::1 "$closed_port"
expect_error connect_missing_unix_socket_exits_1 1 \
    "^sockit: connect to unix:$work/nowhere.*: No such file or directory\$" \
    "$sockit" connect "unix:$work/nowhere"
expect_error connect_unknown_host_exits_1 1 "^sockit: connect to nonexistent\\.invalid:80" \
    "$sockit" connect nonexistent.invalid 80
name=connect_u_reports_an_icmp_refusal
# shellcheck disable=SC2016 # $1 and $2 belong to the inner shell
expect_error $name 1 "^sockit: recvfrom \\(peer 127\\.0\\.0\\.1:$closed_port\\): Connection refused\$" \
    bash -c 'printf "x\n" | "$1" connect -u -q 5 127.0.0.1 "$2"' _ "$sockit" "$closed_port"
expect_error listen_w_without_a_client_exits_1 1 '^sockit: accept .*127\.0\.0\.1:[0-9]+.*: Timed out' \
    "$sockit" listen -w 0.2 127.0.0.1 0
expect_error listen_u_w_without_a_datagram_exits_1 1 '^sockit: no datagram within 0\.2 s \(-w\)$' \
    "$sockit" listen -u -w 0.2 127.0.0.1 0
name=listen_port_in_use_exits_1
if peer $name hold-tcp; then
    expect_error $name 1 "^sockit: .*127\\.0\\.0\\.1:$peer_port: Address already in use\$" \
        "$sockit" listen 127.0.0.1 "$peer_port"
    kill_tree "$peer_pid"
else
    fail $name "python peer did not start"
fi

# ---- issue 9, items 20-22 and 24: addresses the tool prints are read back; bad ones
# are usage errors that say why; a file in a socket's place is named for what it is.
long_path=unix:/$(printf 'p%.0s' $(seq 107)) # 108 bytes after "unix:"
for sub in listen connect; do
    expect_usage "${sub}_unix_without_a_path_is_bad_usage" $sub "'unix:': no path after unix:\$" unix:
    expect_usage "${sub}_unix_path_over_107_bytes_is_bad_usage" $sub \
        "'unix:/p+\\.\\.\\.': a Unix socket path of 108 bytes, at most 107\$" "$long_path"
    expect_usage "${sub}_port_given_twice_is_bad_usage" $sub \
        "port given twice: 5 in 127\\.0\\.0\\.1:5, and '6'\$" 127.0.0.1:5 6
    expect_usage "${sub}_bracketed_port_given_twice_is_bad_usage" $sub \
        "port given twice: 5 in \\[::1\\]:5, and '6'\$" '[::1]:5' 6
    expect_usage "${sub}_unclosed_bracket_is_bad_usage" $sub "'\\[::1': '\\[' without '\\]'\$" '[::1' 5
done
expect_usage connect_negative_port_is_out_of_range connect "port '-1': out of range 1-65535\$" \
    127.0.0.1 -1
expect_usage listen_negative_port_is_out_of_range listen "port '-1': out of range 0-65535\$" \
    127.0.0.1 -1
expect_usage connect_bare_ipv6_alone_lacks_a_port connect "missing PORT after HOST '::1'\$" ::1
expect_usage bench_port_given_twice_is_bad_usage bench "port given twice" 127.0.0.1:5 6
expect_usage bench_negative_port_is_out_of_range bench "port '-1': out of range 1-65535\$" \
    127.0.0.1 -1
for sub in tcp-client udp-client tcp-server udp-server; do
    expect_usage "${sub//-/_}_port_in_host_and_port_option_is_bad_usage" $sub \
        "port given twice: 5 in --host \\[::1\\]:5, and '6'\$" --host '[::1]:5' --port 6
done

expect_usage udp_server_has_no_timeout udp-server "unknown option '--timeout'\$" --timeout 1
name=connect_help_documents_no_k
timeout 10 "$sockit" connect --help >"$work/$name.out" 2>&1
if grep -qE -- '(^|[^a-z])-k([^a-z]|$)' "$work/$name.out"; then
    fail $name "connect --help mentions -k, which connect does not have: $(grep -- '-k' "$work/$name.out")"
else
    pass $name
fi
name=listen_help_documents_k_offsets
timeout 10 "$sockit" listen --help >"$work/$name.out" 2>&1
if grep -q 'With -x and -k the offsets' "$work/$name.out"; then pass $name; else fail $name "no -x -k note"; fi

: >"$work/regular-file"
for sub in listen connect; do
    expect_error "${sub}_regular_file_as_unix_path_says_it_is_not_a_socket" 1 \
        "^sockit: unix:$work/regular-file: the path exists and is a regular file, not a socket \\(left alone\\)\$" \
        "$sockit" $sub "unix:$work/regular-file"
done
mkdir -p "$work/a-directory"
expect_error listen_directory_as_unix_path_says_it_is_not_a_socket 1 \
    "^sockit: unix:$work/a-directory: the path exists and is a directory, not a socket" \
    "$sockit" listen "unix:$work/a-directory"
name=regular_file_as_unix_path_is_left_alone
if [ -f "$work/regular-file" ] && [ ! -S "$work/regular-file" ]; then pass $name; else
    fail $name "the file was replaced or removed"
fi

# ---- issue 9, item 18: 0 has one meaning, said on every help page that takes a time.
for sub in tcp-client udp-client tcp-server listen connect; do
    name=${sub//-/_}_help_says_what_0_means
    timeout 10 "$sockit" $sub --help >"$work/$name.out" 2>&1
    if grep -qE '0: (no limit|none)|0 for -w or -i means no limit' "$work/$name.out"; then
        pass $name
    else
        fail $name "--help does not say what 0 means for its time options"
    fi
done
expect_usage bench_timeout_zero_says_why bench \
    "--timeout '0': must be more than 0 seconds: it also ends the wait for replies after -d\$" \
    --timeout 0 127.0.0.1 1
expect_usage bench_d_zero_says_why bench "-d '0': must be more than 0 seconds: a run needs an end\$" \
    -d 0 127.0.0.1 1

# ---- review of issue 9: the reference servers name a file in a Unix socket's place
# too (item 20), and answer nothing to an unnamed Unix sender, saying why (item 23).
for sub in tcp-server udp-server; do
    expect_error "${sub//-/_}_regular_file_as_unix_path_says_it_is_not_a_socket" 1 \
        "^sockit: unix:$work/regular-file: the path exists and is a regular file, not a socket \\(left alone\\)\$" \
        "$sockit" $sub --host "unix:$work/regular-file"
done
expect_error connect_char_device_as_unix_path_is_named 1 \
    "^sockit: unix:/dev/null: the path exists and is a character device, not a socket" \
    "$sockit" connect unix:/dev/null
expect_usage connect_port_above_65535_is_out_of_range connect "port '70000': out of range 1-65535\$" \
    127.0.0.1 70000
name=udp_server_names_an_unnamed_unix_sender_and_cannot_answer_it
spawn 10 "$sockit" udp-server --host "unix:$work/d.sock" --count 1 >"$work/$name.out" 2>"$work/$name.err"
server=$spawn_pid
for _ in $(seq 50); do [ -S "$work/d.sock" ] && break; sleep 0.1; done
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.sendto(b"hey", sys.argv[1])' "$work/d.sock"
wait_exit "$server" 10
if [ "$exit_rc" -ne 0 ]; then
    fail $name "exit $exit_rc"
elif ! grep -qx 'Received from unix:(unnamed): hey' "$work/$name.out"; then
    fail $name "stdout [$(cat "$work/$name.out")]"
elif ! grep -q '^sockit: no reply to unix:(unnamed): the sender did not bind its socket' "$work/$name.err"; then
    fail $name "stderr [$(cat "$work/$name.err")]"
else
    pass $name
fi

finish
