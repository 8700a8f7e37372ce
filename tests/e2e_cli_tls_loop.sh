#!/usr/bin/env bash
# TLS in the commands built on the event loop: `sockit echo --tls` echoes through TLS
# to sockit bench --tls (every byte checked), to openssl s_client and to socat's
# OPENSSL address; `sockit bench --tls` also drives a socat OPENSSL-LISTEN relay and
# fails with the certificate's reason when it cannot verify; `sockit proxy`
# terminates TLS from its clients and originates it to its upstream, on either side
# or both. Usage errors are one line and exit 2. Loopback only, ports 0, every wait
# bounded.
# shellcheck source=tests/e2e_cli_common.bash
source "$(dirname "$0")/e2e_cli_common.bash"

for tool in openssl socat; do
    if ! command -v $tool >/dev/null; then
        echo "$suite: $tool is missing (scripts/deps.sh installs it)" >&2
        exit 1
    fi
done
if ! "$sockit" tls-cert --out "$work" >/dev/null 2>"$work/tls-cert.err"; then
    echo "$suite: sockit tls-cert failed: $(cat "$work/tls-cert.err")" >&2
    exit 1
fi
cert=$work/cert.pem
key=$work/key.pem

# start NAME SECS CMD...: a server in the background; sets port from its first line
# ("Listening on HOST:PORT"; the proxy's "listening on HOST:PORT, relaying ..." or,
# with --json, its "bound" event).
start() {
    local name=$1 secs=$2
    shift 2
    spawn "$secs" "$@" >"$work/$name.server" 2>"$work/$name.server-err"
    if ! wait_match "$work/$name.server" '[Ll]istening on |"event":"bound"' 10; then
        fail "$name" "the server did not say where it listens"
        return 1
    fi
    [[ $matched =~ :([0-9]+)(,|\"|$) ]] && port=${BASH_REMATCH[1]}
}

# ---- sockit echo --tls and sockit bench --tls ----------------------------------------------
name=bench_tls_against_echo_tls_checks_every_byte
if start $name 30 "$sockit" echo --tls --cert "$cert" --key "$key" 127.0.0.1 0; then
    echo_port=$port
    timeout 20 "$sockit" bench --tls --ca "$cert" -c 10 -d 1 -m 1000 --json localhost "$echo_port" \
        >"$work/$name.out" 2>"$work/$name.err"
    rc=$?
    if [ $rc -ne 0 ]; then
        fail $name "sockit bench exit code $rc"
    elif ! python3 -c 'import json,sys; r=json.load(open(sys.argv[1]));
sys.exit(0 if r["requests"] > 0 and r["errors"] == 0 else 1)' "$work/$name.out" \
        2>"$work/$name.json-err"; then
        fail $name "no requests, or errors, in the result"
    else
        pass $name
    fi

    name=bench_tls_without_the_ca_says_why
    expect_error $name 1 'unable to get local issuer certificate|self-signed' \
        "$sockit" bench --tls -c 2 -d 1 localhost "$echo_port"

    name=openssl_s_client_through_echo_tls
    printf 'over s_client\n' | timeout 5 openssl s_client -quiet -CAfile "$cert" \
        -verify_return_error -connect "127.0.0.1:$echo_port" -servername localhost \
        >"$work/$name.out" 2>"$work/$name.err"
    if grep -qx 'over s_client' "$work/$name.out"; then
        pass $name
    else
        fail $name "s_client did not get its line back"
    fi

    name=socat_openssl_through_echo_tls
    printf 'over socat\n' | timeout 5 socat -t 2 - \
        "OPENSSL:127.0.0.1:$echo_port,cafile=$cert,verify=1,commonname=localhost" \
        >"$work/$name.out" 2>"$work/$name.err"
    if grep -qx 'over socat' "$work/$name.out"; then
        pass $name
    else
        fail $name "socat did not get its line back"
    fi
fi

# ---- sockit bench --tls against socat OPENSSL-LISTEN relaying to a plain echo ---------------
name=bench_tls_against_socat_openssl_listen
if start ${name}_echo 30 "$sockit" echo 127.0.0.1 0; then
    plain_port=$port
    relay_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    spawn 30 socat "OPENSSL-LISTEN:$relay_port,bind=127.0.0.1,fork,reuseaddr,cert=$cert,key=$key,verify=0" \
        "TCP:127.0.0.1:$plain_port" >"$work/$name.socat" 2>&1
    for _ in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$relay_port") 2>/dev/null && break
        sleep 0.1
    done
    timeout 20 "$sockit" bench --tls --ca "$cert" -c 4 -d 1 localhost "$relay_port" \
        >"$work/$name.out" 2>"$work/$name.err"
    rc=$?
    if [ $rc -eq 0 ] && grep -q 'errors *none' "$work/$name.out"; then
        pass $name
    else
        fail $name "sockit bench exit code $rc"
    fi
fi

# ---- sockit proxy: TLS on either side --------------------------------------------------------
if [ -n "${echo_port:-}" ] && [ -n "${plain_port:-}" ]; then
    name=proxy_originates_tls_to_its_upstream
    if start $name 30 "$sockit" proxy --upstream-tls --upstream-ca "$cert" --upstream-sni localhost \
        127.0.0.1:0 "127.0.0.1:$echo_port"; then
        (printf 'plain in, tls out\n'; sleep 0.5) | timeout 5 "$sockit" connect 127.0.0.1 "$port" \
            >"$work/$name.out" 2>"$work/$name.err"
        if grep -qx 'plain in, tls out' "$work/$name.out"; then
            pass $name
        else
            fail $name "the line did not come back through the proxy"
        fi
    fi

    name=proxy_terminates_tls_from_its_clients
    if start $name 30 "$sockit" proxy --tls --cert "$cert" --key "$key" 127.0.0.1:0 \
        "127.0.0.1:$plain_port"; then
        printf 'tls in, plain out\n' | timeout 5 openssl s_client -quiet -CAfile "$cert" \
            -verify_return_error -connect "127.0.0.1:$port" >"$work/$name.out" 2>"$work/$name.err"
        if grep -qx 'tls in, plain out' "$work/$name.out"; then
            pass $name
        else
            fail $name "s_client did not get its line back through the proxy"
        fi
    fi

    name=proxy_with_tls_on_both_sides_and_a_toxic
    if start $name 30 "$sockit" proxy --latency 10ms --tls --cert "$cert" --key "$key" \
        --upstream-tls --upstream-ca "$cert" --upstream-sni localhost 127.0.0.1:0 \
        "127.0.0.1:$echo_port"; then
        timeout 20 "$sockit" bench --tls --ca "$cert" -c 2 -d 1 localhost "$port" \
            >"$work/$name.out" 2>"$work/$name.err"
        rc=$?
        if [ $rc -eq 0 ] && grep -q 'errors *none' "$work/$name.out"; then
            pass $name
        else
            fail $name "sockit bench through the proxy: exit code $rc"
        fi
    fi

    name=proxy_upstream_certificate_is_verified
    if start $name 30 "$sockit" proxy --json --upstream-tls 127.0.0.1:0 "127.0.0.1:$echo_port"; then
        (printf 'x\n'; sleep 0.5) | timeout 5 "$sockit" connect 127.0.0.1 "$port" \
            >"$work/$name.out" 2>"$work/$name.err"
        if wait_match "$work/$name.server" '"event":"(refused|close)".*(certificate|verif)' 5; then
            pass $name
        else
            fail $name "no event naming the upstream's certificate failure"
        fi
    fi
fi

# ---- usage errors ----------------------------------------------------------------------------
expect_error echo_tls_without_cert_is_usage 2 'cert' "$sockit" echo --tls 127.0.0.1 0
expect_error echo_tls_with_udp_is_usage 2 'udp|-u|DTLS' \
    "$sockit" echo -u --tls --cert "$cert" --key "$key" 127.0.0.1 0
expect_error bench_no_resume_without_tls_is_usage 2 'no-resume' \
    "$sockit" bench --no-resume 127.0.0.1 9
expect_error proxy_tls_with_udp_is_usage 2 'TCP|udp' \
    "$sockit" proxy --udp --tls --cert "$cert" --key "$key" 127.0.0.1:0 127.0.0.1:9
expect_error proxy_listen_insecure_is_usage 2 'upstream-insecure' \
    "$sockit" proxy --insecure 127.0.0.1:0 127.0.0.1:9

finish
