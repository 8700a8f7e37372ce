#!/usr/bin/env bash
# sockit proxy from the outside: toxiproxy's HTTP API driven with curl and with
# toxiproxy-node-client from the npm registry (pinned in tests/proxy_client's
# lockfile, installed here with npm ci), each call checked by its effect on traffic
# to a sockit echo server behind the proxy; a one-off proxy with toxic options;
# a toxiproxy config file; --json events; SIGTERM; bad usage.
source "$(dirname "$0")/e2e_cli_common.bash"

# ---- an echo server behind everything ----
spawn 120 "$sockit" echo --json 127.0.0.1 0 >"$work/echo.out" 2>"$work/echo.err"
wait_match "$work/echo.out" '"bound"' 10 || { fail echo "no bound event"; finish; exit 1; }
echo_port=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$work/echo.out" | head -n 1)

# rtt PORT [MESSAGE]: one round trip through 127.0.0.1:PORT, in ms (or "error ...").
rtt() {
    python3 - "$1" "${2:-ping}" <<'PY'
import socket, sys, time
port, msg = int(sys.argv[1]), sys.argv[2].encode()
try:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    t0 = time.monotonic()
    s.sendall(msg)
    got = b""
    while len(got) < len(msg):
        b = s.recv(4096)
        if not b:
            break
        got += b
    ms = (time.monotonic() - t0) * 1000
    print(f"{ms:.1f}" if got == msg else f"error got {got!r}")
except OSError as e:
    print(f"error {e.__class__.__name__}")
PY
}

# ---- the API server ----
spawn 120 "$sockit" proxy --api 127.0.0.1:0 --json >"$work/api.out" 2>"$work/api.err"
api_pid=$spawn_pid
if ! wait_match "$work/api.out" '"event":"api"' 10; then
    fail api "no api event"
    finish
    exit 1
fi
api_port=$(sed -n 's/.*"event":"api".*"port":\([0-9]*\).*/\1/p' "$work/api.out" | head -n 1)
api=http://127.0.0.1:$api_port

# call NAME METHOD PATH [BODY]: sets status and body.
call() {
    local name=$1 method=$2 path=$3 data=${4:-}
    local args=(-s -o "$work/$name.body" -w '%{http_code}' -X "$method" "$api$path")
    [ -n "$data" ] && args+=(-H 'Content-Type: application/json' --data "$data")
    status=$(curl "${args[@]}")
    body=$(cat "$work/$name.body")
}
# expect NAME STATUS REGEX: the last call answered STATUS with a body matching REGEX.
expect() {
    if [ "$status" != "$2" ]; then
        fail "$1" "status $status, want $2: $body"
    elif ! [[ $body =~ $3 ]]; then
        fail "$1" "body [$body] does not match [$3]"
    else
        pass "$1"
    fi
}

call version GET /version
expect curl_version 200 '"version"'
call create POST /proxies "{\"name\":\"web\",\"listen\":\"127.0.0.1:0\",\"upstream\":\"127.0.0.1:$echo_port\"}"
expect curl_create 201 '"name":"web".*"enabled":true.*"toxics":\[\]'
web_port=$(port_of "$(sed -n 's/.*"listen":"\([^"]*\)".*/\1/p' "$work/create.body")")
t=$(rtt "$web_port")
[[ $t =~ ^[0-9.]+$ ]] && pass curl_proxy_relays || fail curl_proxy_relays "$t"
call dup POST /proxies "{\"name\":\"web\",\"upstream\":\"127.0.0.1:$echo_port\"}"
expect curl_duplicate 409 '^\{"error":"proxy already exists","status":409\}'
call toxic POST /proxies/web/toxics '{"type":"latency","attributes":{"latency":150}}'
expect curl_toxic 200 '"attributes":\{"latency":150,"jitter":0\},"name":"latency_downstream","type":"latency","stream":"downstream"'
t=$(rtt "$web_port")
python3 -c "import sys; sys.exit(0 if 140 <= float('$t') <= 400 else 1)" 2>/dev/null &&
    pass curl_latency_acts || fail curl_latency_acts "round trip $t ms with latency 150"
call bad_json POST /proxies/web/toxics '{"type":'
expect curl_bad_body 400 '"error":"bad request body'
call missing GET /proxies/nope
expect curl_not_found 404 '"proxy not found"'
call metrics GET /metrics
expect curl_metrics 200 'toxiproxy_proxy_sent_bytes_total\{direction="upstream",listener="127.0.0.1:[0-9]+",proxy="web"'
status=$(curl -s -o /dev/null -w '%{http_code}' -A 'Mozilla/5.0' "$api/proxies")
[ "$status" = 403 ] && pass curl_browser_refused || fail curl_browser_refused "status $status"
call delete DELETE /proxies/web
expect curl_delete 204 '^$'
t=$(rtt "$web_port")
[[ $t == error* ]] && pass curl_deleted_is_gone || fail curl_deleted_is_gone "$t"
# A raw request the parser refuses, and the connection still answers a good one.
reply=$(python3 - "$api_port" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"GET /version HTTP/1.1\r\n\r\nGET /version HTTP/1.1\r\nConnection: close\r\n\r\n")
data = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
print(data.count(b"HTTP/1.1 200 OK"))
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"BREW /pot HTTP/1.1\r\n\r\n")
print(s.recv(65536).split(b"\r\n")[0].decode())
PY
)
[ "$reply" = $'2\nHTTP/1.1 405 Method Not Allowed' ] && pass api_pipelined_and_refused ||
    fail api_pipelined_and_refused "$reply"

# ---- toxiproxy's Node client, unchanged ----
client_dir=$build/proxy_client
mkdir -p "$client_dir"
cp "$source_dir/tests/proxy_client/package.json" "$source_dir/tests/proxy_client/package-lock.json" \
    "$source_dir/tests/proxy_client/client_test.js" "$client_dir/"
if ! (cd "$client_dir" && timeout 120 npm ci --no-audit --no-fund --loglevel=error) \
    >"$work/npm.out" 2>&1; then
    fail node_client_install "npm ci failed: $(tail -n 3 "$work/npm.out")"
else
    if timeout 60 node "$client_dir/client_test.js" "$api" "$echo_port" >"$work/node.out" 2>&1; then
        pass node_client
    else
        fail node_client "$(grep -v '^PASS' "$work/node.out" | head -n 5)"
    fi
    sed 's/^/    /' "$work/node.out"
fi

# ---- events and SIGTERM ----
if json_check <(grep -E '"event":"(open|close)"' "$work/api.out" | head -n 2) 'open close' \
    'open.proxy=web' 'close.bytes_up=>0' 'close.toxics=*'; then
    pass api_json_events
else
    fail api_json_events "see api.out"
fi
t0=$(date +%s%N)
kill -TERM "$(pgrep -P "$api_pid" sockit || echo "$api_pid")"
wait_exit "$api_pid" 5
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$exit_rc" = 0 ] && [ "$ms" -lt 3000 ] && pass api_stops_on_sigterm ||
    fail api_stops_on_sigterm "exit $exit_rc after $ms ms"

# ---- a one-off proxy with toxic options ----
spawn 60 "$sockit" proxy --latency 100ms --direction both 127.0.0.1:0 "127.0.0.1:$echo_port" \
    >"$work/oneoff.out" 2>"$work/oneoff.err"
if wait_match "$work/oneoff.out" '^Proxy proxy: listening on' 10; then
    p=$(port_of "$(sed -n 's/^Proxy proxy: listening on \([^,]*\),.*/\1/p' "$work/oneoff.out")")
    t=$(rtt "$p")
    python3 -c "import sys; sys.exit(0 if 190 <= float('$t') <= 500 else 1)" 2>/dev/null &&
        pass oneoff_latency_both_ways || fail oneoff_latency_both_ways "round trip $t ms"
else
    fail oneoff_latency_both_ways "no listening line"
fi

# ---- a toxiproxy config file ----
cat >"$work/config.json" <<EOF
[{"name": "a", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:$echo_port"},
 {"name": "b", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:$echo_port", "enabled": false}]
EOF
spawn 60 "$sockit" proxy --config "$work/config.json" --api 127.0.0.1:0 --json \
    >"$work/config.out" 2>"$work/config.err"
if wait_match "$work/config.out" '"event":"bound","proxy":"b"' 10 &&
    grep -q '"proxy":"a".*"enabled":true' "$work/config.out" &&
    grep -q '"proxy":"b".*"enabled":false' "$work/config.out"; then
    pass config_file
else
    fail config_file "see config.out"
fi
echo '[{"name": "x"}]' >"$work/bad_config.json"
expect_error config_missing_upstream 1 'missing required field: upstream at proxy 1' \
    "$sockit" proxy --config "$work/bad_config.json" --api 127.0.0.1:0

# ---- bad usage ----
expect_error usage_latency 2 "--latency 'abc': not a time" "$sockit" proxy --latency abc 127.0.0.1:0 127.0.0.1:9
expect_error usage_unit 2 "unknown unit 'parsecs'" "$sockit" proxy --latency 5parsecs 127.0.0.1:0 127.0.0.1:9
expect_error usage_toxicity 2 "--toxicity '2': not a probability" "$sockit" proxy --toxicity 2 127.0.0.1:0 127.0.0.1:9
expect_error usage_upstream_port 2 "UPSTREAM" "$sockit" proxy 127.0.0.1:0 127.0.0.1:65536
expect_error usage_one_operand 2 'give LISTEN and UPSTREAM' "$sockit" proxy 127.0.0.1:0
expect_error usage_toxic_alone 2 'toxic options and --down act on the proxy' "$sockit" proxy --latency 5
expect_error usage_slicer 2 "--slicer '10/10'" "$sockit" proxy --slicer 10/10 127.0.0.1:0 127.0.0.1:9
finish
