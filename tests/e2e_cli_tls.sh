#!/usr/bin/env bash
# The CLI's TLS: `sockit tls-cert` makes a self-signed pair (checked with openssl
# x509), the reference tcp-server/tcp-client exchange runs over it, listen/connect
# relay both ways (one client, -k, --broker, client certificates, half-close, 4 MiB
# each way), and they interoperate with openssl s_server/s_client and ncat --ssl.
# Failures are clear: an unverified self-signed server, a hostname mismatch, a peer
# that closes without close_notify, a handshake that never comes, usage errors.
# Every wait is bounded; every process dies with the script.
# shellcheck source=tests/e2e_cli_common.bash
source "$(dirname "$0")/e2e_cli_common.bash"

for tool in openssl ncat; do
    if ! command -v $tool >/dev/null; then
        echo "$suite: $tool is missing (scripts/deps.sh installs it)" >&2
        exit 1
    fi
done
if ! "$sockit" tls-cert --help >/dev/null 2>&1; then
    echo "$suite: this sockit has no tls-cert" >&2
    exit 1
fi
# A build without OpenSSL (SOCKIT_TLS=OFF, or no libssl-dev) is a configuration, not a
# failure: there is nothing to test.
mkdir "$work/probe"
if "$sockit" tls-cert --out "$work/probe" 2>&1 | grep -q 'built without OpenSSL'; then
    echo "$suite: skipped: this sockit was built without TLS (OpenSSL)"
    exit 0
fi

cert=$work/cert.pem
key=$work/key.pem
serve_tls=(--tls --cert "$cert" --key "$key")

# ---- sockit tls-cert -----------------------------------------------------------------------
name=tls_cert_writes_a_self_signed_pair_openssl_reads
"$sockit" tls-cert --out "$work" >"$work/$name.out" 2>"$work/$name.err"
rc=$?
openssl x509 -in "$cert" -noout -text >"$work/$name.text" 2>&1
x509_rc=$?
if [ "$rc" -ne 0 ] || [ ! -s "$cert" ] || [ ! -s "$key" ]; then
    fail $name "exit code $rc, want 0 and both files"
elif [ "$x509_rc" -ne 0 ]; then
    fail $name "openssl x509 cannot read the certificate"
elif ! grep -q 'DNS:localhost' "$work/$name.text" ||
    ! grep -q 'IP Address:127.0.0.1' "$work/$name.text" ||
    ! grep -q 'IP Address:0:0:0:0:0:0:0:1' "$work/$name.text"; then
    fail $name "the SANs lack localhost, 127.0.0.1 or ::1"
elif ! grep -q 'Subject: CN *= *localhost' "$work/$name.text" ||
    ! grep -q 'ASN1 OID: prime256v1' "$work/$name.text" ||
    ! grep -q 'ecdsa-with-SHA256' "$work/$name.text"; then
    fail $name "not a CN=localhost ECDSA P-256 SHA-256 certificate"
elif [ "$(stat -c %a "$key")" != 600 ]; then
    fail $name "key mode $(stat -c %a "$key"), want 600"
elif ! openssl pkey -in "$key" -noout 2>/dev/null; then
    fail $name "openssl pkey cannot read the key"
elif ! openssl verify -CAfile "$cert" -purpose sslserver "$cert" >/dev/null 2>&1; then
    fail $name "openssl verify does not trust it as its own CA for a server"
else
    pass $name
fi

name=tls_cert_adds_names_and_days
mkdir -p "$work/named"
"$sockit" tls-cert --cert "$work/named/c.pem" --key "$work/named/k.pem" --name extra.test \
    --name 10.9.8.7 --days 2 >"$work/$name.out" 2>"$work/$name.err"
rc=$?
openssl x509 -in "$work/named/c.pem" -noout -text >"$work/$name.text" 2>&1
if [ "$rc" -ne 0 ]; then
    fail $name "exit code $rc, want 0"
elif ! grep -q 'DNS:extra.test' "$work/$name.text" ||
    ! grep -q 'IP Address:10.9.8.7' "$work/$name.text" ||
    ! grep -q 'DNS:localhost' "$work/$name.text"; then
    fail $name "the SANs lack extra.test, 10.9.8.7 or localhost"
elif openssl x509 -in "$work/named/c.pem" -noout -checkend $((3 * 86400)) >/dev/null 2>&1 ||
    ! openssl x509 -in "$work/named/c.pem" -noout -checkend 86400 >/dev/null 2>&1; then
    fail $name "--days 2: want valid tomorrow, expired in 3 days"
else
    pass $name
fi

expect_error tls_cert_refuses_to_overwrite 1 'cert.pem exists .*--force' \
    "$sockit" tls-cert --out "$work"
expect_error tls_cert_rejects_a_bad_name 2 "^sockit tls-cert: --name 'a,DNS:evil': not a DNS name" \
    "$sockit" tls-cert --out "$work/nowhere" --name 'a,DNS:evil'
expect_error tls_cert_cert_needs_key 2 '^sockit tls-cert: --cert and --key go together' \
    "$sockit" tls-cert --cert "$work/only.pem"

# ---- the reference exchange over TLS -------------------------------------------------------
# start_ref NAME ARGS...: `sockit tcp-server --port 0 ARGS...`; sets ref_pid and
# ref_port from its "Listening on" line.
start_ref() {
    local name=$1
    shift
    spawn 20 "$sockit" tcp-server --port 0 "$@" </dev/null >"$work/$name.server.out" \
        2>"$work/$name.server.err"
    ref_pid=$spawn_pid
    ref_port=""
    wait_match "$work/$name.server.out" '^Listening on ' || return 1
    ref_port=$(port_of "$matched")
}

name=tcp_server_tls_answers_tcp_client_tls
if start_ref $name --count 1 "${serve_tls[@]}"; then
    timeout 10 "$sockit" tcp-client --port "$ref_port" --tls --ca "$cert" \
        >"$work/$name.client.out" 2>"$work/$name.client.err"
    client_rc=$?
    wait_exit "$ref_pid" 10
    if [ "$client_rc" -ne 0 ] || [ "$exit_rc" -ne 0 ]; then
        fail $name "exit codes: client $client_rc, server $exit_rc (want 0 and 0)"
    elif [ "$(cat "$work/$name.client.out")" != "Hello from server!" ]; then
        fail $name "client said [$(cat "$work/$name.client.out")], want the reference reply"
    elif ! grep -q '^Received: Hello server!$' "$work/$name.server.out" ||
        ! grep -Eq '^tls: TLSv1\.3 TLS_' "$work/$name.server.out"; then
        fail $name "the server did not print the message and its 'tls: TLSv1.3' line"
    elif [ -s "$work/$name.client.err" ] || [ -s "$work/$name.server.err" ]; then
        fail $name "unexpected output on stderr"
    else
        pass $name
    fi
else
    fail $name "tcp-server --tls did not listen"
fi

name=tcp_client_tls_json_tells_version_cipher_and_peer
if start_ref $name --count 1 "${serve_tls[@]}"; then
    timeout 10 "$sockit" tcp-client --port "$ref_port" --ca "$cert" --json \
        >"$work/$name.client.out" 2>"$work/$name.client.err"
    client_rc=$?
    wait_exit "$ref_pid" 10
    if [ "$client_rc" -ne 0 ]; then
        fail $name "client exit code $client_rc, want 0"
    elif ! why=$(json_check "$work/$name.client.out" 'connected reply exit' \
        connected.tls_version=TLSv1.3 connected.tls_cipher='*' connected.tls_alpn='*' \
        connected.tls_peer=CN=localhost reply.text='Hello from server!' 2>&1); then
        fail $name "$why"
    else
        pass $name
    fi
else
    fail $name "tcp-server --tls did not listen"
fi

name=tcp_server_tls_survives_a_client_that_does_not_trust_it
if start_ref $name --count 1 "${serve_tls[@]}"; then
    timeout 10 "$sockit" tcp-client --port "$ref_port" --tls \
        >"$work/$name.bad.out" 2>"$work/$name.bad.err"
    bad_rc=$?
    timeout 10 "$sockit" tcp-client --port "$ref_port" --ca "$cert" \
        >"$work/$name.client.out" 2>"$work/$name.client.err"
    client_rc=$?
    wait_exit "$ref_pid" 10
    if [ "$bad_rc" -ne 1 ] || ! grep -Eq 'self[- ]signed' "$work/$name.bad.err"; then
        fail $name "untrusting client: exit $bad_rc, want 1 naming the self-signed certificate"
    elif [ "$client_rc" -ne 0 ] || [ "$exit_rc" -ne 0 ] ||
        [ "$(cat "$work/$name.client.out")" != "Hello from server!" ]; then
        fail $name "the next client: exit $client_rc, server $exit_rc, want the reply and 0, 0"
    elif ! grep -q '^sockit: tls handshake' "$work/$name.server.err"; then
        fail $name "the server did not say the handshake failed"
    else
        pass $name
    fi
else
    fail $name "tcp-server --tls did not listen"
fi

# ---- listen and connect --------------------------------------------------------------------
# start_listen NAME STDIN ARGS...: `sockit listen -v ARGS... 127.0.0.1 0`; sets
# listen_pid and listen_port from its "listening on" line.
start_listen() {
    local name=$1 input=$2
    shift 2
    spawn 30 "$sockit" listen -v "$@" 127.0.0.1 0 <"$input" >"$work/$name.listen.out" \
        2>"$work/$name.listen.err"
    listen_pid=$spawn_pid
    listen_port=""
    wait_match "$work/$name.listen.err" '^listening on ' || return 1
    listen_port=$(port_of "$matched")
}

printf 'from listen\n' >"$work/from_listen.txt"
printf 'from connect\n' >"$work/from_connect.txt"

name=listen_tls_and_connect_tls_relay_a_line_both_ways
if start_listen $name "$work/from_listen.txt" "${serve_tls[@]}"; then
    timeout 10 "$sockit" connect -v --tls --ca "$cert" localhost "$listen_port" \
        <"$work/from_connect.txt" >"$work/$name.connect.out" 2>"$work/$name.connect.err"
    connect_rc=$?
    wait_exit "$listen_pid" 10
    if [ "$connect_rc" -ne 0 ] || [ "$exit_rc" -ne 0 ]; then
        fail $name "exit codes: connect $connect_rc, listen $exit_rc (want 0 and 0)"
    elif [ "$(cat "$work/$name.connect.out")" != "from listen" ] ||
        [ "$(cat "$work/$name.listen.out")" != "from connect" ]; then
        fail $name "the lines did not cross intact"
    elif ! grep -Eq '^tls: TLSv1\.3 TLS_[A-Z0-9_]+, peer CN=localhost$' \
        "$work/$name.connect.err"; then
        fail $name "connect -v did not say 'tls: TLSv1.3 ... peer CN=localhost'"
    elif ! grep -Eq '^tls: TLSv1\.3 TLS_' "$work/$name.listen.err"; then
        fail $name "listen -v did not say 'tls: TLSv1.3'"
    else
        pass $name
    fi
else
    fail $name "listen --tls did not listen"
fi

name=connect_tls_json_connected_event_has_the_tls_fields
if start_listen $name "$work/from_listen.txt" "${serve_tls[@]}" --alpn h2,http/1.1; then
    timeout 10 "$sockit" connect --json --ca "$cert" --alpn http/1.1 127.0.0.1 "$listen_port" \
        <"$work/from_connect.txt" >"$work/$name.connect.out" 2>"$work/$name.json"
    connect_rc=$?
    wait_exit "$listen_pid" 10
    if [ "$connect_rc" -ne 0 ]; then
        fail $name "exit code $connect_rc, want 0"
    elif ! why=$(json_check "$work/$name.json" 'connected closed exit' \
        connected.tls_version=TLSv1.3 connected.tls_cipher='*' connected.tls_alpn=http/1.1 \
        connected.tls_peer=CN=localhost 2>&1); then
        fail $name "$why"
    elif ! grep -q '^tls: TLSv1.3 .*, alpn http/1.1$' "$work/$name.listen.err"; then
        fail $name "listen -v did not name the ALPN protocol"
    else
        pass $name
    fi
else
    fail $name "listen --tls did not listen"
fi

file=$work/file.bin
head -c $((4 * 1024 * 1024)) /dev/urandom >"$file"
file2=$work/file2.bin
head -c $((3 * 1024 * 1024 + 17)) /dev/urandom >"$file2"
name=tls_relay_moves_megabytes_each_way_byte_exact
if start_listen $name "$file2" "${serve_tls[@]}"; then
    timeout 20 "$sockit" connect --ca "$cert" localhost "$listen_port" <"$file" \
        >"$work/$name.connect.out" 2>"$work/$name.connect.err"
    connect_rc=$?
    wait_exit "$listen_pid" 10
    if [ "$connect_rc" -ne 0 ] || [ "$exit_rc" -ne 0 ]; then
        fail $name "exit codes: connect $connect_rc, listen $exit_rc (want 0 and 0)"
    elif ! cmp -s "$file" "$work/$name.listen.out" || ! cmp -s "$file2" "$work/$name.connect.out"; then
        fail $name "the files did not arrive byte-exact"
    else
        pass $name
    fi
else
    fail $name "listen --tls did not listen"
fi

# The listener's stdin ends first: its close_notify half-closes, and what connect
# sends afterwards still arrives; then the other way round.
name=tls_half_close_lets_the_other_side_answer
if start_listen $name /dev/null "${serve_tls[@]}"; then
    { sleep 0.5; echo late answer; } |
        timeout 10 "$sockit" connect --ca "$cert" localhost "$listen_port" \
            >"$work/$name.connect.out" 2>"$work/$name.connect.err"
    connect_rc=$?
    wait_exit "$listen_pid" 10
    if [ "$connect_rc" -ne 0 ] || [ "$exit_rc" -ne 0 ] ||
        [ "$(cat "$work/$name.listen.out")" != "late answer" ]; then
        fail $name "exit codes $connect_rc/$exit_rc, listen got [$(cat "$work/$name.listen.out")]"
    else
        pass $name
    fi
else
    fail $name "listen --tls did not listen"
fi

name=listen_k_tls_serves_clients_and_drops_a_failed_handshake
if start_listen $name /dev/null -k "${serve_tls[@]}"; then
    echo plain | timeout 5 "$sockit" connect 127.0.0.1 "$listen_port" >/dev/null 2>&1
    rcs=()
    for i in 1 2; do
        echo "client $i" | timeout 10 "$sockit" connect --ca "$cert" localhost "$listen_port" \
            >/dev/null 2>"$work/$name.c$i.err"
        rcs+=($?)
    done
    wait_match "$work/$name.listen.out" '^client 2$' 5
    kill -TERM "$listen_pid"
    wait_exit "$listen_pid" 5
    if [ "${rcs[0]}" -ne 0 ] || [ "${rcs[1]}" -ne 0 ]; then
        fail $name "client exit codes ${rcs[*]}, want 0"
    elif [ "$(sort "$work/$name.listen.out")" != "client 1"$'\n'"client 2" ]; then
        fail $name "listen -k printed [$(cat "$work/$name.listen.out")], want both clients' lines"
    elif grep -q plain "$work/$name.listen.out" ||
        ! grep -q '^sockit: tls handshake' "$work/$name.listen.err"; then
        fail $name "the plain client was not refused with a message"
    elif [ "$exit_rc" -ne 0 ]; then
        fail $name "listen -k exit code $exit_rc after SIGTERM, want 0"
    else
        pass $name
    fi
else
    fail $name "listen -k --tls did not listen"
fi

name=listen_broker_tls_passes_a_line_between_clients
if start_listen $name /dev/null --broker "${serve_tls[@]}"; then
    # a's stdin stays open: a client that closes its side is closed by the broker.
    spawn 15 "$sockit" connect --ca "$cert" localhost "$listen_port" < <(sleep 10) \
        >"$work/$name.a.out" 2>"$work/$name.a.err"
    a_pid=$spawn_pid
    wait_match "$work/$name.listen.err" '^tls: ' 5
    { echo "hello from b"; sleep 1; } |
        timeout 10 "$sockit" connect --ca "$cert" localhost "$listen_port" >/dev/null \
            2>"$work/$name.b.err"
    wait_match "$work/$name.a.out" '^hello from b$' 5
    got=$(cat "$work/$name.a.out")
    {
        kill_tree "$a_pid"
        wait "$a_pid"
    } 2>/dev/null
    kill -TERM "$listen_pid"
    wait_exit "$listen_pid" 5
    if [ "$got" != "hello from b" ]; then
        fail $name "client a got [$got], want b's line"
    else
        pass $name
    fi
else
    fail $name "listen --broker --tls did not listen"
fi

name=listen_tls_ca_requires_and_shows_the_client_certificate
if start_listen $name "$work/from_listen.txt" "${serve_tls[@]}" --ca "$cert"; then
    timeout 10 "$sockit" connect --ca "$cert" --cert "$cert" --key "$key" localhost \
        "$listen_port" <"$work/from_connect.txt" >"$work/$name.connect.out" \
        2>"$work/$name.connect.err"
    connect_rc=$?
    wait_exit "$listen_pid" 10
    if [ "$connect_rc" -ne 0 ] || [ "$exit_rc" -ne 0 ]; then
        fail $name "exit codes: connect $connect_rc, listen $exit_rc (want 0 and 0)"
    elif ! grep -q '^tls: TLSv1.3 .*, peer CN=localhost$' "$work/$name.listen.err"; then
        fail $name "listen -v did not show the client's certificate"
    else
        pass $name
    fi
else
    fail $name "listen --tls --ca did not listen"
fi

name=listen_tls_ca_refuses_a_client_without_certificate
if start_listen $name "$work/from_listen.txt" "${serve_tls[@]}" --ca "$cert"; then
    timeout 10 "$sockit" connect --ca "$cert" localhost "$listen_port" \
        <"$work/from_connect.txt" >"$work/$name.connect.out" 2>"$work/$name.connect.err"
    connect_rc=$?
    wait_exit "$listen_pid" 10
    if [ "$exit_rc" -ne 1 ] || ! grep -q 'did not return a certificate' "$work/$name.listen.err"; then
        fail $name "listen exit $exit_rc, want 1 saying the peer sent no certificate"
    elif [ "$connect_rc" -ne 1 ] || ! grep -q 'certificate required' "$work/$name.connect.err"; then
        fail $name "connect exit $connect_rc, want 1 naming the alert"
    else
        pass $name
    fi
else
    fail $name "listen --tls --ca did not listen"
fi

# ---- interoperability ----------------------------------------------------------------------
# start_other NAME CMD...: a foreign TLS listener (stdin: a line, then 2 s of
# silence) whose port is found from its socket; sets other_pid and other_port.
start_other() {
    local name=$1
    shift
    spawn 20 "$@" < <(
        echo "from $name"
        sleep 2
    ) >"$work/$name.other.out" 2>"$work/$name.other.err"
    other_pid=$spawn_pid
    other_port=""
    bound_port "$other_pid" tcp || return 1
    other_port=$found_port
}

# check_relay NAME CONNECT_RC OTHER_OUT SOCKIT_OUT: sockit exited 0, each side got
# the other's line.
check_relay() {
    if [ "$2" -ne 0 ]; then
        fail "$1" "sockit exit code $2, want 0"
    elif ! grep -qx 'from connect' "$3"; then
        fail "$1" "the other side got [$(cat "$3")], want 'from connect'"
    elif ! grep -qx "from $1" "$4"; then
        fail "$1" "sockit got [$(cat "$4")], want 'from $1'"
    else
        pass "$1"
    fi
}

name=connect_tls_to_openssl_s_server
if start_other $name openssl s_server -quiet -naccept 1 -alpn h2 -cert "$cert" -key "$key" \
    -accept 127.0.0.1:0; then
    timeout 10 "$sockit" connect -v --ca "$cert" --alpn h2 localhost "$other_port" \
        <"$work/from_connect.txt" >"$work/$name.connect.out" 2>"$work/$name.connect.err"
    connect_rc=$?
    wait_exit "$other_pid" 5
    if ! grep -q '^tls: TLSv1.3 .*, alpn h2, peer CN=localhost$' "$work/$name.connect.err"; then
        fail $name "connect -v did not say the ALPN s_server chose"
    else
        check_relay $name $connect_rc "$work/$name.other.out" "$work/$name.connect.out"
    fi
else
    fail $name "openssl s_server did not listen"
fi

name=connect_tls_to_ncat_ssl_listener
if start_other $name ncat --ssl --ssl-cert "$cert" --ssl-key "$key" -l 127.0.0.1 0; then
    timeout 10 "$sockit" connect --ca "$cert" 127.0.0.1 "$other_port" \
        <"$work/from_connect.txt" >"$work/$name.connect.out" 2>"$work/$name.connect.err"
    connect_rc=$?
    wait_exit "$other_pid" 5
    check_relay $name $connect_rc "$work/$name.other.out" "$work/$name.connect.out"
else
    fail $name "ncat --ssl did not listen"
fi

# s_client ends when it reads the listener's close_notify, so the listener answers
# only once s_client's line has come (a fixed pause is too short on a loaded machine).
name=openssl_s_client_verifies_sockit_listen_tls
if start_listen $name <(
    wait_match "$work/$name.listen.out" '^from connect$' 10
    echo "from listen"
) "${serve_tls[@]}"; then
    { echo "from connect"; sleep 2; } |
        timeout 10 openssl s_client -quiet -verify_return_error -CAfile "$cert" \
            -verify_hostname localhost -connect "127.0.0.1:$listen_port" \
            >"$work/$name.s_client.out" 2>"$work/$name.s_client.err"
    other_rc=$?
    wait_exit "$listen_pid" 10
    if [ "$other_rc" -ne 0 ] || [ "$exit_rc" -ne 0 ]; then
        fail $name "exit codes: s_client $other_rc, listen $exit_rc (want 0 and 0)"
    elif [ "$(cat "$work/$name.s_client.out")" != "from listen" ] ||
        [ "$(cat "$work/$name.listen.out")" != "from connect" ]; then
        fail $name "the lines did not cross intact"
    else
        pass $name
    fi
else
    fail $name "listen --tls did not listen"
fi

# ncat closes its TLS connection without close_notify, which sockit reports (the
# stream could have been cut): the data must have crossed; exit 0, or 1 naming that.
name=ncat_ssl_verify_connects_to_sockit_listen_tls
if start_listen $name "$work/from_listen.txt" "${serve_tls[@]}"; then
    { echo "from connect"; sleep 1; } |
        timeout 10 ncat --ssl --ssl-verify --ssl-trustfile "$cert" localhost "$listen_port" \
            >"$work/$name.ncat.out" 2>"$work/$name.ncat.err"
    other_rc=$?
    wait_exit "$listen_pid" 10
    if [ "$other_rc" -ne 0 ]; then
        fail $name "ncat exit code $other_rc, want 0"
    elif [ "$(cat "$work/$name.ncat.out")" != "from listen" ] ||
        [ "$(cat "$work/$name.listen.out")" != "from connect" ]; then
        fail $name "the lines did not cross intact"
    elif [ "$exit_rc" -ne 0 ] && { [ "$exit_rc" -ne 1 ] ||
        ! grep -q 'without close_notify' "$work/$name.listen.err"; }; then
        fail $name "listen exit code $exit_rc, want 0, or 1 naming the missing close_notify"
    else
        pass $name
    fi
else
    fail $name "listen --tls did not listen"
fi

name=ncat_ssl_verify_refuses_a_name_the_certificate_lacks
if start_listen $name /dev/null "${serve_tls[@]}"; then
    timeout 10 ncat --ssl --ssl-verify --ssl-trustfile "$cert" --ssl-servername other.test \
        127.0.0.1 "$listen_port" </dev/null >/dev/null 2>"$work/$name.ncat.err"
    other_rc=$?
    wait_exit "$listen_pid" 10
    if [ "$other_rc" -eq 0 ] || [ "$exit_rc" -ne 1 ]; then
        fail $name "exit codes: ncat $other_rc, listen $exit_rc (want non-zero and 1)"
    else
        pass $name
    fi
else
    fail $name "listen --tls did not listen"
fi

# ---- failures ------------------------------------------------------------------------------
name=connect_tls_without_ca_refuses_the_self_signed_server
if start_listen $name /dev/null "${serve_tls[@]}"; then
    timeout 10 "$sockit" connect --tls localhost "$listen_port" </dev/null \
        >"$work/$name.connect.out" 2>"$work/$name.connect.err"
    connect_rc=$?
    wait_exit "$listen_pid" 10
    if [ "$connect_rc" -ne 1 ]; then
        fail $name "exit code $connect_rc, want 1"
    elif ! grep -Eq '^sockit: tls handshake with localhost .*self[- ]signed' \
        "$work/$name.connect.err"; then
        fail $name "the message does not name the self-signed certificate"
    elif [ -s "$work/$name.connect.out" ]; then
        fail $name "want nothing on stdout"
    else
        pass $name
    fi
else
    fail $name "listen --tls did not listen"
fi

name=connect_tls_names_a_hostname_mismatch
if start_listen $name /dev/null "${serve_tls[@]}"; then
    timeout 10 "$sockit" connect --ca "$cert" --sni other.test 127.0.0.1 "$listen_port" </dev/null \
        >"$work/$name.connect.out" 2>"$work/$name.connect.err"
    connect_rc=$?
    wait_exit "$listen_pid" 10
    if [ "$connect_rc" -ne 1 ] || ! grep -q 'hostname mismatch' "$work/$name.connect.err"; then
        fail $name "exit code $connect_rc, want 1 saying 'hostname mismatch'"
    else
        pass $name
    fi
else
    fail $name "listen --tls did not listen"
fi

name=connect_insecure_accepts_and_warns
if start_listen $name "$work/from_listen.txt" "${serve_tls[@]}"; then
    timeout 10 "$sockit" connect --insecure 127.0.0.1 "$listen_port" <"$work/from_connect.txt" \
        >"$work/$name.connect.out" 2>"$work/$name.connect.err"
    connect_rc=$?
    wait_exit "$listen_pid" 10
    if [ "$connect_rc" -ne 0 ] || [ "$(cat "$work/$name.connect.out")" != "from listen" ]; then
        fail $name "exit code $connect_rc, stdout [$(cat "$work/$name.connect.out")]"
    elif [ "$(head -n 1 "$work/$name.connect.err")" != \
        "warning: --insecure: the server's certificate is not verified" ]; then
        fail $name "no --insecure warning first on stderr"
    else
        pass $name
    fi
else
    fail $name "listen --tls did not listen"
fi

# A TLS server that closes without close_notify (Python's SSLSocket.close sends
# none): the stream may have been cut short, so connect says so and exits 1.
cat >"$work/ragged.py" <<'PY'
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(1)
print("port", s.getsockname()[1], flush=True)
s.settimeout(15)
c, _ = s.accept()
t = ctx.wrap_socket(c, server_side=True)
t.sendall(b"partial\n")
t.close()
PY
name=connect_tls_reports_a_close_without_close_notify
spawn 20 python3 -u "$work/ragged.py" "$cert" "$key" </dev/null >"$work/$name.peer" 2>&1
ragged_pid=$spawn_pid
if wait_match "$work/$name.peer" '^port [0-9]+$'; then
    { sleep 2; } | timeout 10 "$sockit" connect --ca "$cert" 127.0.0.1 "${matched#port }" \
        >"$work/$name.connect.out" 2>"$work/$name.connect.err"
    connect_rc=$?
    wait_exit "$ragged_pid" 5
    if [ "$connect_rc" -ne 1 ] || ! grep -q 'without close_notify' "$work/$name.connect.err"; then
        fail $name "exit code $connect_rc, want 1 naming the missing close_notify"
    elif [ "$(cat "$work/$name.connect.out")" != "partial" ]; then
        fail $name "what came before the cut was not printed"
    else
        pass $name
    fi
else
    fail $name "the python TLS server did not listen"
fi

name=listen_tls_gives_up_on_a_silent_client
if start_listen $name /dev/null "${serve_tls[@]}" -w 1; then
    spawn 10 "$sockit" connect 127.0.0.1 "$listen_port" < <(sleep 5) >/dev/null 2>&1
    silent_pid=$spawn_pid
    wait_exit "$listen_pid" 6
    {
        kill_tree "$silent_pid"
        wait "$silent_pid"
    } 2>/dev/null
    if [ "$exit_rc" -ne 1 ] || ! grep -q 'tls handshake' "$work/$name.listen.err"; then
        fail $name "exit code $exit_rc, want 1 naming the handshake"
    else
        pass $name
    fi
else
    fail $name "listen --tls did not listen"
fi

# shellcheck disable=SC2016 # the backquotes are the message's own
usage_cert='--tls needs --cert \(and --key\) on a server; make a pair with `sockit tls-cert`'
expect_error listen_tls_without_cert_is_a_usage_error 2 "^sockit listen: $usage_cert" \
    "$sockit" listen --tls 0
expect_error tcp_server_tls_without_cert_is_a_usage_error 2 "^sockit tcp-server: $usage_cert" \
    "$sockit" tcp-server --tls --port 0
expect_error listen_sni_is_a_usage_error 2 '^sockit listen: --sni is for a client' \
    "$sockit" listen "${serve_tls[@]}" --sni x 0
expect_error connect_insecure_with_ca_is_a_usage_error 2 \
    '^sockit connect: --insecure and --ca exclude each other' \
    "$sockit" connect --insecure --ca "$cert" localhost 1
expect_error connect_udp_tls_is_a_usage_error 2 '^sockit connect: --tls: TLS runs over a stream' \
    "$sockit" connect -u --tls localhost 1
expect_error connect_unix_tls_needs_sni 2 '^sockit connect: --ca to a unix: socket: give --sni' \
    "$sockit" connect --ca "$cert" "unix:$work/none.sock"
expect_error udp_client_has_no_tls 2 "^sockit udp-client: unknown option '--tls'" \
    "$sockit" udp-client --tls
expect_error connect_bad_alpn_is_a_usage_error 2 "^sockit connect: --alpn 'h2,,x'" \
    "$sockit" connect --alpn h2,,x localhost 1
expect_error listen_missing_cert_file_fails 1 "^sockit: tls certificate $work/none.pem" \
    "$sockit" listen --tls --cert "$work/none.pem" 0

finish
