#!/usr/bin/env bash
# Issue 9, item 19: a relay whose input did not all reach the peer exits 1, says how
# many bytes were not delivered, and --json's exit event says "undelivered", whether
# the peer's FIN or its RST comes first. Input is delivered when all of it was read,
# sent and acknowledged by the peer's TCP before the connection ended; a peer that
# takes everything still means exit 0. The peers are python3, over loopback.
# shellcheck source=tests/e2e_cli_common.bash
source "$(dirname "$0")/e2e_cli_common.bash"

# 32 MB: more than any socket buffers on the way can hold, so a peer that reads 100
# bytes always leaves some of it unacknowledged.
input=$work/input.bin
head -c $((32 * 1024 * 1024)) /dev/zero >"$input"

# The peer reads READ bytes (all, for "all"), then: fin shuts its write side down
# (FIN), waits, and closes; rst closes with SO_LINGER 0 at once (RST, no FIN).
cat >"$work/reader.py" <<'PY'
import socket, struct, sys, time
role, ending, limit = sys.argv[1], sys.argv[2], sys.argv[3]
limit = None if limit == "all" else int(limit)
if role == "server":
    l = socket.socket()
    l.bind(("127.0.0.1", 0))
    l.listen(1)
    print("port", l.getsockname()[1], flush=True)
    l.settimeout(20)
    s, _ = l.accept()
else:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[4])), timeout=20)
s.settimeout(20)
got = 0
while limit is None or got < limit:
    chunk = s.recv(65536 if limit is None else limit - got)
    if not chunk:
        break
    got += len(chunk)
if ending == "rst":
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
elif ending == "fin":
    s.shutdown(socket.SHUT_WR)
    time.sleep(0.5)
s.close()
print("read", got, flush=True)
PY

# check NAME RC: sockit's exit code RC, its stderr NAME.err and --json NAME.json.
check() {
    local name=$1 rc=$2 want=$3
    if [ "$want" = lost ]; then
        if [ "$rc" -ne 1 ]; then
            fail "$name" "exit code $rc, want 1"
        elif ! grep -qE '^sockit: [1-9][0-9]* bytes of input not delivered to 127\.0\.0\.1:[0-9]+: the peer (closed|reset) the connection first' "$work/$name.err"; then
            fail "$name" "no 'sockit: N bytes of input not delivered to ...' line"
        else
            pass "$name"
        fi
    elif [ "$rc" -ne 0 ] || [ -s "$work/$name.err" ]; then
        fail "$name" "exit code $rc, want 0 and nothing on stderr"
    else
        pass "$name"
    fi
}

# connect < input, the peer a server.
for ending in fin rst all; do
    limit=100
    [ $ending = all ] && limit=all
    name=connect_input_not_all_delivered_${ending}_first
    [ $ending = all ] && name=connect_input_all_delivered_exits_0
    spawn 40 python3 -u "$work/reader.py" server $ending $limit </dev/null >"$work/$name.peer" 2>&1
    peer_pid=$spawn_pid
    if ! wait_match "$work/$name.peer" '^port [0-9]+$'; then
        fail "$name" "python peer did not start"
        continue
    fi
    timeout 30 "$sockit" connect 127.0.0.1 "${matched#port }" <"$input" >/dev/null 2>"$work/$name.err"
    check "$name" $? $([ $ending = all ] && echo ok || echo lost)
    wait_exit "$peer_pid" 5
done

# listen < input, the peer a client; --json says it in the exit event.
for ending in fin rst; do
    name=listen_input_not_all_delivered_${ending}_first
    spawn 40 "$sockit" listen --json 127.0.0.1 0 <"$input" >/dev/null 2>"$work/$name.json"
    listen_pid=$spawn_pid
    if ! wait_match "$work/$name.json" '"event":"bound"' || ! [[ $matched =~ \"port\":([0-9]+) ]]; then
        fail "$name" "no bound event"
        continue
    fi
    timeout 30 python3 "$work/reader.py" client $ending 100 "${BASH_REMATCH[1]}" >"$work/$name.peer" 2>&1
    wait_exit "$listen_pid" 20
    if [ "$exit_rc" -ne 1 ]; then
        fail "$name" "exit code $exit_rc, want 1"
    elif ! why=$(python3 - "$work/$name.json" <<'PY' 2>&1
import json, sys
events = [json.loads(line) for line in open(sys.argv[1])]
exit_event = events[-1]
assert exit_event["event"] == "exit", exit_event
assert exit_event["reason"] == "undelivered", exit_event
assert exit_event["undelivered"] > 0, exit_event
errors = [e for e in events if e["event"] == "error"]
assert any("bytes of input not delivered" in e["message"] for e in errors), errors
PY
    ); then
        fail "$name" "$why"
    else
        pass "$name"
    fi
done

finish
