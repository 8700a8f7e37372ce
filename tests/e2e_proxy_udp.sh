#!/usr/bin/env bash
# sockit proxy --udp from the outside, with a python3 UDP echo server behind it:
# datagrams of every size come back byte-exact; a loss toxic added through the API
# (curl) loses its share of 2,000 paced datagrams and, deleted, none; the API says
# "protocol":"udp", refuses a TCP toxic and a change of protocol; bad usage of the
# UDP options exits 2 with a one-line reason; a client's entry ends after
# --idle-timeout, as /metrics and the close event show. Loopback only, ports 0.
source "$(dirname "$0")/e2e_cli_common.bash"

cat >"$work/udp.py" <<'PY'
import os, socket, sys, time

def echo():
    # Answers every datagram with itself; gives up after 50 s of silence.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    print("port", s.getsockname()[1], flush=True)
    s.settimeout(50)
    while True:
        try:
            data, peer = s.recvfrom(65536)
        except socket.timeout:
            return
        s.sendto(data, peer)

def exact(port):
    # One datagram of each size, each answered before the next: all must match.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    for n in (0, 1, 100, 1472, 9000, 65507):
        data = os.urandom(n)
        s.sendto(data, ("127.0.0.1", port))
        try:
            got, peer = s.recvfrom(65536)
        except socket.timeout:
            print(f"no answer to {n} bytes")
            return
        if got != data or peer[1] != port:
            print(f"{n} bytes came back as {len(got)} other bytes from {peer}")
            return
    print("ok")

def count(port, total, round_size):
    # total numbered datagrams in rounds of round_size; after each round, replies
    # are read until 50 ms pass without one (a lost datagram never answers), so a
    # round never floods a socket buffer. Prints "sent N got M" (distinct, exact).
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    seen, bad, sent = set(), 0, 0

    def drain(quiet):
        nonlocal bad
        s.settimeout(quiet)
        while True:
            try:
                got = s.recv(65536)
            except socket.timeout:
                return
            i = int(got[:8])
            if got != b"%08d" % i + b"x" * 40:
                bad += 1
            seen.add(i)

    while sent < total:
        for _ in range(min(round_size, total - sent)):
            s.sendto(b"%08d" % sent + b"x" * 40, ("127.0.0.1", port))
            sent += 1
        drain(0.05)
    drain(0.5)
    print(f"sent {sent} got {len(seen)} bad {bad}")

mode = sys.argv[1]
if mode == "echo":
    echo()
elif mode == "exact":
    exact(int(sys.argv[2]))
else:
    count(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
PY

spawn 55 python3 -u "$work/udp.py" echo >"$work/echo.out" 2>&1
wait_match "$work/echo.out" '^port [0-9]+$' 10 || { fail echo "no echo server"; finish; exit 1; }
echo_port=${matched#port }

spawn 50 "$sockit" proxy --udp 127.0.0.1:0 "127.0.0.1:$echo_port" --json --api 127.0.0.1:0 \
    --seed 7 >"$work/proxy.out" 2>"$work/proxy.err"
if ! wait_match "$work/proxy.out" '"event":"bound"' 10; then
    fail proxy "no bound event"
    finish
    exit 1
fi
proxy_port=$(port_of "$(sed -n 's/.*"event":"bound".*"address":"\([^"]*\)".*/\1/p' "$work/proxy.out")")
api_port=$(sed -n 's/.*"event":"api".*"port":\([0-9]*\).*/\1/p' "$work/proxy.out" | head -n 1)
api=http://127.0.0.1:$api_port
if json_check "$work/proxy.out" 'api bound' 'bound.protocol=udp' 'bound.enabled=True'; then
    pass bound_event_says_udp
else
    fail bound_event_says_udp "see proxy.out"
fi

# call NAME METHOD PATH [BODY]: sets status and body.
call() {
    local name=$1 method=$2 path=$3 data=${4:-}
    local args=(-s -m 5 -o "$work/$name.body" -w '%{http_code}' -X "$method" "$api$path")
    [ -n "$data" ] && args+=(-H 'Content-Type: application/json' --data "$data")
    status=$(curl "${args[@]}")
    body=$(cat "$work/$name.body" 2>/dev/null)
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
# lost_share NAME TOTAL: sends TOTAL datagrams through the proxy and sets share to
# the percentage lost (or empty, with the client's words in NAME.client).
lost_share() {
    timeout 20 python3 "$work/udp.py" count "$proxy_port" "$2" 50 >"$work/$1.client" 2>&1
    share=$(awk '$1 == "sent" && $5 == "bad" && $6 == 0 { printf "%.1f", 100 * ($2 - $4) / $2 }' \
        "$work/$1.client")
}

# (a) byte-exact, every size up to the largest IPv4 datagram
said=$(timeout 20 python3 "$work/udp.py" exact "$proxy_port" 2>&1)
[ "$said" = ok ] && pass datagrams_come_back_exact || fail datagrams_come_back_exact "$said"

# (b) a loss toxic through the API, then without it
call loss POST /proxies/proxy/toxics '{"type":"loss","stream":"upstream","attributes":{"probability":0.3}}'
expect loss_toxic_added 200 '"attributes":\{"probability":0.3,"burst":0\},"name":"loss_upstream","type":"loss","stream":"upstream"'
lost_share lossy 2000
if [ -n "$share" ] && awk -v s="$share" 'BEGIN { exit !(s >= 22 && s <= 38) }'; then
    pass loss_loses_its_share
else
    fail loss_loses_its_share "lost ${share:-?}% of 2000 with probability 0.3 (want 22-38)"
fi
# The 6 exact ones and the 2000: each relayed upstream or dropped by the toxic.
call metrics_lossy GET /metrics
metric() { sed -n "s/^$1 //p" "$work/metrics_lossy.body"; }
dropped=$(metric 'sockit_proxy_datagrams_dropped_total{proxy="proxy"}')
up=$(metric 'sockit_proxy_datagrams_total{direction="upstream",proxy="proxy"}')
if [ -n "$dropped" ] && [ -n "$up" ] && [ "$dropped" -ge 400 ] &&
    [ $((up + dropped)) -ge 1990 ] && [ $((up + dropped)) -le 2006 ]; then
    pass metrics_count_datagrams
else
    fail metrics_count_datagrams "$(grep -E '^sockit_proxy_datagrams' "$work/metrics_lossy.body")"
fi
call unloss DELETE /proxies/proxy/toxics/loss_upstream
expect loss_toxic_deleted 204 '^$'
lost_share clean 500
[ "$share" = 0.0 ] && pass no_loss_without_the_toxic ||
    fail no_loss_without_the_toxic "lost ${share:-?}% of 500 with no toxic"

# (c), (d) the API's view of a UDP proxy
call index GET /proxies
expect proxies_say_udp 200 '"proxy":\{"name":"proxy",[^}]*"protocol":"udp"'
call slicer POST /proxies/proxy/toxics '{"type":"slicer","attributes":{"average_size":10}}'
expect tcp_toxic_refused 400 '"error":"[^"]*slicer acts on stream proxies only'
call change POST /proxies/proxy '{"protocol":"tcp"}'
expect protocol_change_refused 400 "protocol 'tcp': the proxy is udp"
call bad_protocol POST /proxies '{"name":"q","upstream":"127.0.0.1:9","protocol":"sctp"}'
expect bad_protocol_refused 400 "\"bad request body: protocol 'sctp': tcp or udp\""
call second POST /proxies "{\"name\":\"second\",\"listen\":\"127.0.0.1:0\",\"upstream\":\"127.0.0.1:$echo_port\",\"protocol\":\"udp\"}"
expect api_makes_udp_proxy 201 '"name":"second",.*"protocol":"udp"'
second_port=$(port_of "$(sed -n 's/.*"listen":"\([^"]*\)".*/\1/p' "$work/second.body")")
said=$(timeout 20 python3 "$work/udp.py" exact "${second_port:-9}" 2>&1)
[ "$said" = ok ] && pass api_udp_proxy_relays || fail api_udp_proxy_relays "$said"

# (e) bad usage of the UDP options
for_udp=(127.0.0.1:0 127.0.0.1:9)
expect_error usage_tcp_toxic_with_udp 2 '^sockit proxy: --slicer: a TCP toxic, not for --udp$' \
    "$sockit" proxy --udp "${for_udp[@]}" --slicer 10
expect_error usage_loss_range 2 "^sockit proxy: --loss '2': not a probability in 0-1$" \
    "$sockit" proxy --udp --loss 2 "${for_udp[@]}"
expect_error usage_loss_burst_short 2 '^sockit proxy: .*burst 1: a loss of 0.9 needs runs of 9' \
    "$sockit" proxy --udp --loss-burst 1 --loss 0.9 "${for_udp[@]}"
expect_error usage_udp_toxic_without_udp 2 '^sockit proxy: --duplicate: a UDP toxic: add --udp$' \
    "$sockit" proxy --duplicate 0.1 "${for_udp[@]}"
expect_error usage_truncate_range 2 "^sockit proxy: --truncate '64KiB': more than 65535 bytes$" \
    "$sockit" proxy --udp --truncate 64KiB "${for_udp[@]}"
for name in usage_tcp_toxic_with_udp usage_loss_range usage_loss_burst_short; do
    n=$(grep -vc '^usage: ' "$work/$name.err")
    [ "$n" = 1 ] && pass "${name}_one_line" || fail "${name}_one_line" "$n lines besides usage"
done

# (f) an entry ends after --idle-timeout: /metrics's open count goes back to 0
spawn 30 "$sockit" proxy --udp --idle-timeout 0.3 --api 127.0.0.1:0 127.0.0.1:0 \
    "127.0.0.1:$echo_port" >"$work/idle.out" 2>"$work/idle.err"
if wait_match "$work/idle.out" '^Proxy proxy: listening on .* \(udp\), relaying to' 10 &&
    wait_match "$work/idle.out" '^API on http://' 10; then
    pass listening_line_says_udp
    idle_port=$(port_of "$(sed -n 's/^Proxy proxy: listening on \([^ ]*\) (udp),.*/\1/p' "$work/idle.out")")
    api=http://127.0.0.1:$(port_of "$(sed -n 's|^API on http://||p' "$work/idle.out")")
    said=$(timeout 20 python3 "$work/udp.py" exact "$idle_port" 2>&1)
    # the 0.3 s idle timeout (the default is 60 s), with room for a loaded machine
    open_now=""
    for _ in $(seq 50); do
        sleep 0.1
        call idle_closed GET /metrics
        open_now=$(sed -n 's/^sockit_proxy_connections_open{proxy="proxy"} //p' "$work/idle_closed.body")
        [ "$open_now" = 0 ] && break
    done
    made=$(sed -n 's/^sockit_proxy_connections_total{proxy="proxy"} //p' "$work/idle_closed.body")
    if [ "$said" != ok ]; then
        fail idle_entry_ends "the relay: $said"
    elif [ "$made" != 1 ] || [ "$open_now" != 0 ]; then
        fail idle_entry_ends "after 5 s: ${made:-?} entries made, ${open_now:-?} open (want 1, 0)"
    else
        pass idle_entry_ends
    fi
else
    fail listening_line_says_udp "no 'listening on ... (udp)' line or no API line"
fi
# A table larger than the descriptors allow is said at start-up, not found out later.
warned=$( (ulimit -n 256; timeout 1 "$sockit" proxy --udp 127.0.0.1:0 "127.0.0.1:$echo_port") 2>&1 || true)
case "$warned" in
*"warning: up to 1024 UDP client entries, but only 256 descriptors"*) pass warns_of_too_few_descriptors ;;
*) fail warns_of_too_few_descriptors "$warned" ;;
esac
finish
