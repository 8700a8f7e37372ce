#!/usr/bin/env bash
# Clients through real proxies the test starts on loopback: microsocks (SOCKS5,
# with and without a user and password) and tinyproxy (HTTP CONNECT), in front of
# a sockit echo server. bench --proxy runs its load through each and every reply
# checks; refusals say why without printing the password; bad URLs are usage
# errors.
# shellcheck source=tests/e2e_cli_common.bash
source "$(dirname "$0")/e2e_cli_common.bash"

for tool in microsocks tinyproxy; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "$suite: $tool is missing (scripts/deps.sh installs it)" >&2
        exit 1
    fi
done

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

spawn 60 "$sockit" echo 127.0.0.1 0 </dev/null >"$work/echo.out" 2>"$work/echo.err"
wait_match "$work/echo.out" '^Listening on 127\.0\.0\.1:[0-9]+$' || {
    fail echo_server_starts "no Listening line"
    finish
    exit 1
}
echo_port=$(port_of "$matched")

spawn 60 microsocks -i 127.0.0.1 -p 0 </dev/null >/dev/null 2>&1
bound_port "$spawn_pid" tcp && socks_port=$found_port
spawn 60 microsocks -i 127.0.0.1 -p 0 -u bob -P 's3cr@t' </dev/null >/dev/null 2>&1
bound_port "$spawn_pid" tcp && auth_port=$found_port
http_port=$(free_port)
printf 'Port %s\nListen 127.0.0.1\nAllow 127.0.0.1\nLogLevel Critical\nMaxClients 100\n' \
    "$http_port" >"$work/tinyproxy.conf"
spawn 60 tinyproxy -d -c "$work/tinyproxy.conf" </dev/null >"$work/tinyproxy.log" 2>&1
bound_port "$spawn_pid" tcp 10 || true
if [ -z "${socks_port:-}" ] || [ -z "${auth_port:-}" ] || [ "${found_port:-}" != "$http_port" ]; then
    fail proxies_start "socks ${socks_port:-none}, auth ${auth_port:-none}, http ${found_port:-none}"
    finish
    exit 1
fi
pass proxies_start

# bench_through NAME URL HOST: 300 echoed requests through URL, every byte checked.
bench_through() {
    local name=$1 url=$2 host=$3
    timeout 30 "$sockit" bench -c 4 -n 300 -d 10 --json --proxy "$url" "$host" "$echo_port" \
        </dev/null >"$work/$name.out" 2>"$work/$name.err"
    local rc=$?
    if [ "$rc" -eq 0 ] && python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
ok = r["requests"] == 300 and r["errors"] == 0 and r["bytes_in"] == r["bytes_out"]
sys.exit(0 if ok and r["target"].endswith(" via 127.0.0.1:" + sys.argv[2]) else 1)
' "$work/$name.out" "$(port_of "${url%%/}")" 2>/dev/null; then
        pass "$name"
    else
        fail "$name" "exit $rc"
    fi
}
bench_through bench_socks5 "socks5://127.0.0.1:$socks_port" 127.0.0.1
bench_through bench_socks5h_by_name "socks5h://127.0.0.1:$socks_port" localhost
bench_through bench_socks5_with_password "socks5://bob:s3cr%40t@127.0.0.1:$auth_port" localhost
bench_through bench_http_connect "http://127.0.0.1:$http_port" 127.0.0.1

# Wrong credentials: one line naming the user, never the password, exit 1.
timeout 10 "$sockit" bench -c 1 -d 2 --proxy "socks5://bob:wr0ng@127.0.0.1:$auth_port" \
    127.0.0.1 "$echo_port" </dev/null >"$work/bench_wrong_password.out" 2>"$work/bench_wrong_password.err"
rc=$?
if [ "$rc" -eq 1 ] && grep -q "refused user 'bob'" "$work/bench_wrong_password.err" &&
    ! grep -q 'wr0ng' "$work/bench_wrong_password.err"; then
    pass bench_wrong_password
else
    fail bench_wrong_password "exit $rc"
fi
# The proxy reaches nobody: its refusal, said as the proxy said it.
closed=$(free_port)
expect_error bench_target_refused 1 "the proxy says: connection refused" \
    "$sockit" bench -c 1 -d 2 --proxy "socks5://127.0.0.1:$socks_port" 127.0.0.1 "$closed"
expect_error bench_bad_url 2 "--proxy: proxy 'ftp://x'" \
    "$sockit" bench --proxy ftp://x 127.0.0.1 "$echo_port"
expect_error bench_bad_proxy_port 2 "port '0' not in 1-65535" \
    "$sockit" bench --proxy socks5://127.0.0.1:0 127.0.0.1 "$echo_port"
expect_error bench_proxy_not_udp 2 "--proxy: a proxy tunnels TCP, not -u" \
    "$sockit" bench -u --proxy "socks5://127.0.0.1:$socks_port" 127.0.0.1 "$echo_port"

# tcp-client through each proxy to a tcp-server that serves one request: the reply
# comes back, and the server saw the proxy's connection, not ours (it prints its
# peer; microsocks and tinyproxy connect from 127.0.0.1 too, so the count of
# requests is what tells: the server takes exactly one).
client_through() {
    local name=$1 url=$2 host=$3
    spawn 20 "$sockit" tcp-server --port 0 --count 1 </dev/null >"$work/$name.server" 2>&1
    if ! wait_match "$work/$name.server" '^Listening on 127\.0\.0\.1:[0-9]+$'; then
        fail "$name" "tcp-server did not start"
        return
    fi
    local port
    port=$(port_of "$matched")
    timeout 10 "$sockit" tcp-client --host "$host" --port "$port" --proxy "$url" \
        </dev/null >"$work/$name.out" 2>"$work/$name.err"
    local rc=$?
    if [ "$rc" -eq 0 ] && [ "$(cat "$work/$name.out")" = "Hello from server!" ] &&
        wait_match "$work/$name.server" '^Received: Hello server!$' 5; then
        pass "$name"
    else
        fail "$name" "exit $rc"
    fi
}
client_through tcp_client_socks5 "socks5://127.0.0.1:$socks_port" 127.0.0.1
client_through tcp_client_socks5h "socks5h://bob:s3cr%40t@127.0.0.1:$auth_port" localhost
client_through tcp_client_http "http://127.0.0.1:$http_port" localhost
# connect (netcat) through each proxy. stdin stays open a moment after the message:
# microsocks ends both directions when the client shuts down its side.
connect_through() {
    local name=$1 url=$2 host=$3
    spawn 20 "$sockit" tcp-server --port 0 --count 1 </dev/null >"$work/$name.server" 2>&1
    if ! wait_match "$work/$name.server" '^Listening on 127\.0\.0\.1:[0-9]+$'; then
        fail "$name" "tcp-server did not start"
        return
    fi
    local port
    port=$(port_of "$matched")
    (
        printf 'Hello server!'
        sleep 1
    ) | timeout 10 "$sockit" connect --proxy "$url" "$host" "$port" >"$work/$name.out" 2>"$work/$name.err"
    local rc=$?
    if [ "$rc" -eq 0 ] && [ "$(cat "$work/$name.out")" = "Hello from server!" ]; then
        pass "$name"
    else
        fail "$name" "exit $rc"
    fi
}
connect_through connect_socks5 "socks5://127.0.0.1:$socks_port" 127.0.0.1
connect_through connect_socks5h_password "socks5h://bob:s3cr%40t@127.0.0.1:$auth_port" localhost
connect_through connect_http "http://127.0.0.1:$http_port" localhost
expect_error connect_proxy_not_udp 2 "--proxy: a proxy tunnels one TCP connection, not -u" \
    "$sockit" connect -u --proxy "socks5://127.0.0.1:$socks_port" 127.0.0.1 9
expect_error connect_proxy_not_scan 2 "not a port scan" \
    "$sockit" connect -z --proxy "socks5://127.0.0.1:$socks_port" 127.0.0.1 9-10
expect_error listen_has_no_proxy 2 "unknown option '--proxy'" \
    "$sockit" listen --proxy "socks5://127.0.0.1:$socks_port" 0
expect_error connect_wrong_password 1 "refused user 'bob'" \
    "$sockit" connect --proxy "socks5://bob:nope@127.0.0.1:$auth_port" 127.0.0.1 9

# TLS to the server inside the tunnel, its certificate checked for the target's name.
mkdir -p "$work/tls" && "$sockit" tls-cert --out "$work/tls" >/dev/null 2>&1
spawn 20 "$sockit" tcp-server --port 0 --count 1 --tls --cert "$work/tls/cert.pem" \
    --key "$work/tls/key.pem" </dev/null >"$work/tls_through_proxy.server" 2>&1
if wait_match "$work/tls_through_proxy.server" '^Listening on 127\.0\.0\.1:[0-9]+$'; then
    tls_port=$(port_of "$matched")
    timeout 10 "$sockit" tcp-client --host localhost --port "$tls_port" --json --tls \
        --ca "$work/tls/cert.pem" --proxy "socks5h://127.0.0.1:$socks_port" </dev/null \
        >"$work/tls_through_proxy.out" 2>"$work/tls_through_proxy.err"
    rc=$?
    if [ "$rc" -eq 0 ] && grep -q '"tls_version":"TLSv1.3"' "$work/tls_through_proxy.out" &&
        grep -q '"text":"Hello from server!"' "$work/tls_through_proxy.out"; then
        pass tls_through_proxy
    else
        fail tls_through_proxy "exit $rc"
    fi
else
    fail tls_through_proxy "the TLS tcp-server did not start"
fi
expect_error tcp_client_bad_url 2 "--proxy: proxy 'socks5://...@h:x/p': a proxy URL has no path" \
    "$sockit" tcp-client --proxy 'socks5://u:pw@h:x/p'
expect_error udp_client_has_no_proxy 2 "--proxy: a proxy tunnels TCP, not UDP" \
    "$sockit" udp-client --proxy "socks5://127.0.0.1:$socks_port"
expect_error tcp_client_proxy_refused 1 "Connection refused" \
    "$sockit" tcp-client --port 9 --proxy "socks5://127.0.0.1:$closed"

finish
