#!/usr/bin/env bash
# Issue 9, items 17 and 18: every combination of the netcat pair's options either
# works as sockit(1) says, in bounded time, or is refused as bad usage (exit 2) with a
# line naming the option and why; and 0 means "no limit" for every time option that
# can be lifted (-w, -i, --timeout of the clients and tcp-server), -q 0 being netcat's
# "at once". Nobody connects to the listeners here unless a test says so.
# shellcheck source=tests/e2e_cli_common.bash
source "$(dirname "$0")/e2e_cli_common.bash"

millis() { echo $(($(date +%s%N) / 1000000)); }

# combo NAME RC MAX_MS PATTERN CMD...: CMD (stdin /dev/null) exits RC within MAX_MS
# (margins are wide: this is about hanging, not speed) and its first stderr line
# matches PATTERN.
combo() {
    local name=$1 want_rc=$2 max_ms=$3 pattern=$4 t0 rc ms first
    shift 4
    t0=$(millis)
    timeout 10 "$@" </dev/null >"$work/$name.out" 2>"$work/$name.err"
    rc=$?
    ms=$(($(millis) - t0))
    first=$(head -n 1 "$work/$name.err")
    if [ $rc -ne "$want_rc" ]; then
        fail "$name" "exit code $rc after $ms ms, want $want_rc"
    elif [ $ms -gt "$max_ms" ]; then
        fail "$name" "took $ms ms, want at most $max_ms"
    elif ! [[ $first =~ $pattern ]]; then
        fail "$name" "stderr [$first] does not match [$pattern]"
    else
        pass "$name"
    fi
}

l=("$sockit" listen)
c=("$sockit" connect)
any='.*'
# ---- -w bounds the wait for the first client (or datagram) in every mode ----------
combo listen_w 1 3000 'Timed out' "${l[@]}" -w 0.3 127.0.0.1 0
combo listen_k_w 1 3000 '^sockit: no client within 0\.3 s \(-w\)$' "${l[@]}" -k -w 0.3 127.0.0.1 0
combo listen_u_w 1 3000 '^sockit: no datagram within 0\.3 s \(-w\)$' "${l[@]}" -u -w 0.3 127.0.0.1 0
combo listen_k_u_w 1 3000 '^sockit: no datagram within 0\.3 s \(-w\)$' \
    "${l[@]}" -k -u -w 0.3 127.0.0.1 0
combo listen_k_m_w 1 3000 '^sockit: no client within' "${l[@]}" -k -m 2 -w 0.3 127.0.0.1 0
combo listen_k_i_q_w 1 3000 '^sockit: no client within' \
    "${l[@]}" -k -i 0.3 -q 0 -w 0.3 127.0.0.1 0
combo listen_4_w 1 3000 'Timed out' "${l[@]}" -4 -w 0.3 0
combo listen_6_k_w 1 3000 '^sockit: no client within' "${l[@]}" -6 -k -w 0.3 0
combo listen_json_v_x_k_w 1 3000 '^\{"event":"bound"' "${l[@]}" --json -v -x -k -w 0.3 127.0.0.1 0
for mode in "" -k -u "-k -u"; do
    # shellcheck disable=SC2086 # the modes are words
    combo "listen_unix${mode// /}_w" 1 3000 '(Timed out|no client within|no datagram within)' \
        "${l[@]}" $mode -w 0.3 "unix:$work/w${mode// /}.sock"
done
# ---- -i and -q end a datagram listener that nobody talks to ------------------------
combo listen_u_i 0 3000 "$any" "${l[@]}" -u -i 0.3 127.0.0.1 0
combo listen_u_q_0_quits_at_once 0 1500 "$any" "${l[@]}" -u -q 0 127.0.0.1 0
# ---- 0 lifts -w and -i, it never means "at once" -----------------------------------
combo listen_u_w_0_is_no_limit 0 3000 "$any" "${l[@]}" -u -w 0 -i 0.5 127.0.0.1 0
name=listen_w_0_and_i_0_are_no_limit
spawn 10 "${l[@]}" -w 0 -i 0 127.0.0.1 0 </dev/null >"$work/$name.out" 2>"$work/$name.err"
sleep 1
if kill -0 "$spawn_pid" 2>/dev/null; then pass $name; else
    wait "$spawn_pid"
    fail $name "exited ($?) within 1 s with -w 0 -i 0"
fi
kill_tree "$spawn_pid"
wait "$spawn_pid" 2>/dev/null
# ---- combinations that mean nothing are refused --------------------------------------
combo listen_m_without_k_is_bad_usage 2 3000 '^sockit listen: -m: limits the clients of -k' \
    "${l[@]}" -m 2 127.0.0.1 0
combo listen_u_m_without_k_is_bad_usage 2 3000 '^sockit listen: -m: limits the sessions of -u -k' \
    "${l[@]}" -u -m 2 127.0.0.1 0
combo listen_k_u_q_is_bad_usage 2 3000 '^sockit listen: -q: listen -u -k goes on after stdin' \
    "${l[@]}" -k -u -q 0 127.0.0.1 0
combo listen_u_no_shutdown_is_bad_usage 2 3000 '^sockit listen: --no-shutdown: a datagram socket' \
    "${l[@]}" -u --no-shutdown 127.0.0.1 0
combo connect_u_no_shutdown_is_bad_usage 2 3000 '^sockit connect: --no-shutdown: a datagram' \
    "${c[@]}" -u --no-shutdown 127.0.0.1 9
combo connect_u_w_is_bad_usage 2 3000 '^sockit connect: -w: connect -u does not wait' \
    "${c[@]}" -u -w 1 127.0.0.1 9
combo connect_k_is_bad_usage 2 3000 "^sockit connect: unknown option '-k'" "${c[@]}" -k 127.0.0.1 9
combo connect_4_unix_is_bad_usage 2 3000 '^sockit connect: -4/-6 do not apply' \
    "${c[@]}" -4 "unix:$work/x.sock"

# ---- -k with -i and -q, with a client -----------------------------------------------
# k_client NAME ARGS...: listen -k ARGS with a silent python client; the client must be
# closed by the listener within 3 s, and the listener still be running.
k_client() {
    local name=$1 port
    shift
    spawn 20 "${l[@]}" --json -k "$@" 127.0.0.1 0 </dev/null >"$work/$name.out" 2>"$work/$name.err"
    local listen_pid=$spawn_pid
    if ! wait_match "$work/$name.err" '"event":"bound"' || ! [[ $matched =~ \"port\":([0-9]+) ]]; then
        fail "$name" "no bound event"
        kill_tree "$listen_pid"
        return
    fi
    port=${BASH_REMATCH[1]}
    timeout 10 python3 -c 'import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.settimeout(5)
t = time.monotonic()
print("closed" if s.recv(1) == b"" else "data", round(time.monotonic() - t, 1))' "$port" \
        >"$work/$name.client" 2>&1
    if ! grep -qE '^closed [0-2]\.[0-9]$' "$work/$name.client"; then
        fail "$name" "the client was not closed within 3 s: $(cat "$work/$name.client")"
    elif ! kill -0 "$listen_pid" 2>/dev/null; then
        fail "$name" "listen -k stopped after its client"
    else
        pass "$name"
    fi
    kill_tree "$listen_pid"
    wait "$listen_pid" 2>/dev/null
}
k_client listen_k_i_closes_a_silent_client -i 0.3
k_client listen_k_q_0_closes_each_client_at_once -q 0

# ---- --timeout 0 of the reference clients: no limit ---------------------------------
# A server that answers 1.5 s late: 0 must wait for it (never "at once").
cat >"$work/late.py" <<'PY'
import socket, sys, time
kind = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
if kind == "tcp":
    s.listen(1)
print("port", s.getsockname()[1], flush=True)
if kind == "tcp":
    c, _ = s.accept()
    c.recv(100)
    time.sleep(1.5)
    c.sendall(b"late reply")
    c.close()
else:
    data, peer = s.recvfrom(100)
    time.sleep(1.5)
    s.sendto(b"late reply", peer)
PY
for kind in tcp udp; do
    name=${kind}_client_timeout_0_is_no_limit
    spawn 20 python3 -u "$work/late.py" $kind </dev/null >"$work/$name.peer" 2>&1
    if wait_match "$work/$name.peer" '^port [0-9]+$'; then
        out=$(timeout 10 "$sockit" $kind-client --timeout 0 --port "${matched#port }" 2>"$work/$name.err")
        rc=$?
        if [ $rc -eq 0 ] && [ "$out" = "late reply" ]; then pass $name; else
            fail $name "exit code $rc, stdout [$out]; want 0 and the late reply"
        fi
    else
        fail $name "python peer did not start"
    fi
done

finish
